"""Rule standardise: z-score the images under one preprocessing protocol."""

import logging

import numpy as np

from pcann.data import load_saved_dataset
from pcann.features import standardise
from pcann.io import load_npz, save_npz
from pcann.rule import run_rule

logger = logging.getLogger("pcann.standardise")


def main(smk):
    train, test, data_label = load_saved_dataset(smk.input.images)
    split = load_npz(smk.input.split)
    protocol = smk.wildcards.protocol
    zscored = standardise(train.X, test.X, split["train_idx"], split["val_idx"], protocol)
    logger.info("protocol %s: z-scored %s", protocol, {k: v.shape for k, v in zscored.items()})
    save_npz(
        smk.output[0],
        train=zscored["train"], val=zscored["val"], test=zscored["test"],
        y_train=train.y[split["train_idx"]], y_val=train.y[split["val_idx"]], y_test=test.y,
        classes=np.asarray(train.classes, dtype=str), data_label=np.asarray(data_label, dtype=str),
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
