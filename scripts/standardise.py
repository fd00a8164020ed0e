"""Rule standardise: z-score the images under one preprocessing protocol, and record the
statistics that z-scored the training data (what a new image is scaled with)."""

import logging

import numpy as np

from pcann.data import load_saved_dataset
from pcann.features import standardise_with_scaler, zscore_arrays
from pcann.io import load_npz, save_npz
from pcann.rule import run_rule

logger = logging.getLogger("pcann.standardise")


def main(smk):
    train, test, data_label = load_saved_dataset(smk.input.images)
    split = load_npz(smk.input.split)
    protocol = smk.wildcards.protocol
    zscored, scaler = standardise_with_scaler(
        train.X, test.X, split["train_idx"], split["val_idx"], protocol
    )
    logger.info("protocol %s: z-scored %s", protocol, {k: v.shape for k, v in zscored.items()})
    save_npz(
        smk.output.zscored,
        train=zscored["train"], val=zscored["val"], test=zscored["test"],
        y_train=train.y[split["train_idx"]], y_val=train.y[split["val_idx"]], y_test=test.y,
        classes=np.asarray(train.classes, dtype=str), data_label=np.asarray(data_label, dtype=str),
    )
    save_npz(
        smk.output.zscore,
        **zscore_arrays(scaler, protocol),
        classes=np.asarray(train.classes, dtype=str),
        image_shape=np.asarray(train.image_shape, dtype=np.int64),
        image_dtype=np.asarray(str(train.X.dtype)),
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
