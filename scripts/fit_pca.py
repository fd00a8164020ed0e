"""Rule fit_pca: fit PCA under one protocol and project every set onto its components; record
the whole transform (z-score statistics, PCA mean and components) in transform.npz."""

import logging

import numpy as np

from pcann.features import (
    fit_pca,
    pca_arrays,
    pca_features,
    pca_fit_rows,
    save_features,
    spectrum_table,
)
from pcann.io import load_npz, save_csv, save_npz
from pcann.rule import run_rule

logger = logging.getLogger("pcann.fit_pca")


def main(smk):
    arrays = load_npz(smk.input.zscored)
    zscored = {part: arrays[part] for part in ("train", "val", "test")}
    protocol, n_components = smk.wildcards.protocol, int(smk.wildcards.n_components)
    pca = fit_pca(pca_fit_rows(zscored, protocol), n_components, smk.params.spectrum_components)
    features = pca_features(
        zscored=zscored,
        labels={part: arrays[f"y_{part}"] for part in ("train", "val", "test")},
        classes=tuple(str(c) for c in arrays["classes"]),
        protocol=protocol,
        n_components=n_components,
        pca=pca,
    )
    logger.info(
        "protocol %s: %d components keep %.4f of the variance (ratios %s)",
        features.protocol, features.n_components, features.explained_variance_ratio.sum(),
        np.array2string(features.explained_variance_ratio, precision=4),
    )
    save_features(smk.output.features, features, data_label=str(arrays["data_label"]))
    save_csv(smk.output.spectrum, spectrum_table(features.spectrum, features.n_components))
    save_npz(
        smk.output.transform,
        **load_npz(smk.input.zscore),
        **pca_arrays(pca, features.n_components),
        protocol=np.asarray(features.protocol, dtype=str),
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
