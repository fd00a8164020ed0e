"""Rule split_train_val: choose the validation rows of the training folder."""

import logging

from pcann.preprocessing.features import split_indices
from pcann.io import load_npz, save_npz
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.split_train_val")


def main(smk):
    y = load_npz(smk.input[0], ["y_train_folder"])["y_train_folder"]
    train_idx, val_idx = split_indices(y, smk.params.val_fraction, smk.params.method, smk.params.seed)
    logger.info("%s split: %d training, %d validation rows", smk.params.method, len(train_idx), len(val_idx))
    save_npz(smk.output[0], train_idx=train_idx, val_idx=val_idx)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
