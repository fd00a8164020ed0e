"""Rule standardise: the z-score statistics of one preprocessing protocol (no z-scored copy of
the images is stored: the PCA job z-scores them again as it reads them)."""

import logging

import numpy as np

from pcann.data.images import load_saved_dataset
from pcann.preprocessing.features import zscore_statistics
from pcann.io import load_npz, save_npz
from pcann.study.resources import DataSize, check_memory, preprocessing_mem_mb
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.standardise")


def main(smk):
    size, solver = DataSize(**smk.params.data_size), smk.params.solver
    needed = preprocessing_mem_mb(size, solver)
    logger.info("%s; %s solver, about %d MB needed, mem_mb=%s given", size.describe(), solver, needed,
                smk.resources.get("mem_mb"))
    check_memory(needed, smk.resources.get("mem_mb"), size, smk.rule)
    train, test, _ = load_saved_dataset(smk.input.images, mmap=True)
    split = load_npz(smk.input.split)
    protocol = smk.wildcards.protocol
    stats = zscore_statistics(train.X, test.X, split["train_idx"], protocol, solver)
    logger.info("protocol %s: z-score statistics of %s", protocol, stats["zscore_fitted_on"])
    save_npz(
        smk.output.zscore,
        **stats,
        classes=np.asarray(train.classes, dtype=str),
        image_shape=np.asarray(train.image_shape, dtype=np.int64),
        image_dtype=np.asarray(str(train.X.dtype)),
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
