"""Rule fit_pca: fit PCA under one protocol and project every set onto its components; record
the whole transform (z-score statistics, PCA mean and components) in transform.npz."""

import logging

import numpy as np

from pcann.data.images import load_saved_dataset
from pcann.preprocessing.features import fit_and_project, save_features, spectrum_table
from pcann.io import load_npz, save_csv, save_npz
from pcann.study.resources import DataSize, check_memory, preprocessing_mem_mb
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.fit_pca")


def main(smk):
    size, solver = DataSize(**smk.params.data_size), smk.params.solver
    needed = preprocessing_mem_mb(size, solver, smk.params.spectrum_components)
    logger.info("%s; %s solver, about %d MB needed, mem_mb=%s given", size.describe(), solver, needed,
                smk.resources.get("mem_mb"))
    check_memory(needed, smk.resources.get("mem_mb"), size, smk.rule)
    train, test, data_label = load_saved_dataset(smk.input.images, mmap=True)
    split = load_npz(smk.input.split)
    stats = load_npz(smk.input.zscore)
    protocol, n_components = smk.wildcards.protocol, int(smk.wildcards.n_components)
    features, pca = fit_and_project(
        train, test, split["train_idx"], split["val_idx"], stats, protocol, n_components,
        smk.params.spectrum_components, solver,
    )
    logger.info(
        "protocol %s: %d components keep %.4f of the variance (ratios %s)",
        features.protocol, features.n_components, features.explained_variance_ratio.sum(),
        np.array2string(features.explained_variance_ratio, precision=4),
    )
    save_features(smk.output.features, features, data_label=data_label)
    save_csv(smk.output.spectrum, spectrum_table(features.spectrum, features.n_components))
    save_npz(smk.output.transform, **stats, **pca, protocol=np.asarray(protocol, dtype=str))


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
