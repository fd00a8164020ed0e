"""Train/validation split, z-score normalisation and PCA, under two preprocessing protocols.

``study``
    What the reference study did: z-score every feature with the mean and population standard
    deviation of the whole training folder, fit PCA on the whole training folder, then split it
    into training and validation sets. The test folder is z-scored with *its own* mean and
    standard deviation before the PCA transform. Validation and test statistics leak into the
    features, and the test set is scaled differently from the data the network learned on.
``train-only``
    Leak-free: split first, fit the z-score and PCA on the training split only, and apply them
    unchanged to validation and test.

Two solvers (``pca_solver``; :func:`pcann.study.resources.pca_solver` picks one by the data's size):
on the *exact* path, scikit-learn's ``StandardScaler`` (population std, zero-variance features
left unscaled) and ``PCA`` (ARPACK to machine precision, see :func:`fit_pca`) do the work on a
float64 copy of the rows; on the *streaming* path, :mod:`pcann.preprocessing.streaming` computes the same
statistics in one exact pass and the leading components by block Krylov iteration (block Lanczos)
a chunk of images at a time, with no ARPACK and no float copy of the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np

from pcann import PcannError
from pcann.data.images import ImageSet

if TYPE_CHECKING:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

# scikit-learn is imported where it is used: loading saved features, which every training job
# does, then costs no scikit-learn import (0.9-1.1 s per job after numpy and OpenCV, measured on
# the project's Intel Xeon 2-vCPU VM, 2026-12-06).

PROTOCOLS = ("study", "train-only")
SPLITS = ("study", "stratified")


def zscore(X: np.ndarray, mean: np.ndarray, scale: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(X - mean) / scale`` in float64: the one z-score application, of the exact path and of
    the model files (which pass a small ``out`` buffer to work a chunk of rows at a time)."""
    z = np.subtract(X, mean, out=out, dtype=np.float64)
    return np.divide(z, scale, out=z)


def split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """``(training, validation)`` sizes of a training folder of ``n`` images: the validation
    split is ``floor(val_fraction * n)`` images, whichever split method draws them."""
    n_val = int(np.floor(val_fraction * n))
    return n - n_val, n_val


def split_indices(
    y: np.ndarray, val_fraction: float = 0.2, method: str = "study", seed: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, validation)`` of a training folder with labels ``y``.

    ``study``: ``np.random.seed(seed); perm = np.random.permutation(n)``; the first
    ``floor(val_fraction * n)`` rows of the permutation are validation, the rest training (in
    permutation order). ``stratified``: scikit-learn's seeded stratified split, which keeps the
    class proportions in both parts.
    """
    n = len(y)
    if not 0.0 < val_fraction < 1.0:
        raise PcannError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    n_val = n - split_sizes(n, val_fraction)[0]
    if n_val < 1 or n_val >= n:
        raise PcannError(
            f"val_fraction={val_fraction} of {n} training images leaves {n_val} for validation "
            f"and {n - n_val} for training; both need at least one"
        )
    if method == "study":
        permutation = np.random.RandomState(seed).permutation(n)
        return permutation[n_val:], permutation[:n_val]
    if method == "stratified":
        from sklearn.model_selection import train_test_split

        train, val = train_test_split(
            np.arange(n), test_size=n_val, stratify=y, random_state=seed, shuffle=True
        )
        return np.asarray(train), np.asarray(val)
    raise PcannError(f"split must be one of {', '.join(SPLITS)}, got {method!r}")


def fit_standardiser(X: np.ndarray) -> StandardScaler:
    """Z-score statistics of ``X``: per-feature mean and population std (zero std guarded)."""
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit(np.asarray(X, dtype=np.float64))


#: What the z-score statistics of each protocol were computed on (recorded in transform files).
ZSCORE_FITTED_ON = {"study": "the whole training folder", "train-only": "the training split"}


def pca_arrays(pca: PCA, n_components: int) -> dict[str, np.ndarray]:
    """The kept part of a fitted PCA as arrays: ``z`` becomes
    ``z @ pca_components.T - pca_mean @ pca_components.T`` (scikit-learn's order of operations)."""
    return {
        "pca_mean": np.asarray(pca.mean_, dtype=np.float64),
        "pca_components": np.asarray(pca.components_[:n_components], dtype=np.float64),
    }


def pca_fit_rows(zscored: dict[str, np.ndarray], protocol: str) -> np.ndarray:
    """The rows PCA is fitted on: the whole training folder (study) or the training split."""
    if protocol == "study":
        return np.concatenate([zscored["train"], zscored["val"]])
    return zscored["train"]


def check_n_components(n_components: int, n_samples: int, n_features: int) -> None:
    limit = min(n_samples, n_features)
    if not 1 <= n_components <= limit:
        raise PcannError(
            f"n_components={n_components} is not possible: PCA can keep at most "
            f"min(n_samples={n_samples}, n_features={n_features}) = {limit} components"
        )


def fit_pca(rows: np.ndarray, n_components: int, n_spectrum: int = 10) -> PCA:
    """PCA with ``max(n_components, n_spectrum)`` components (capped by the data).

    The extra components only feed the explained-variance figure, so the reader sees what the
    kept components leave out; the first ``n_components`` are those a PCA of ``n_components``
    would give.

    ARPACK computes only the leading components, to machine precision (``tol=0``), where the
    full SVD computes all ``min(n_samples, n_features)`` of them: on the study's 1470 x 3072
    rows it takes 0.2 s instead of 2.6 s, on the critical path of every study, and its
    projections agree with the full SVD's to 1e-13 there (tested to 1e-9). ``random_state``
    fixes its start vector, so a refit repeats. It needs fewer components than
    ``min(n_samples, n_features)``, so the full SVD takes the case where all are kept.
    """
    n_samples, n_features = rows.shape
    check_n_components(n_components, n_samples, n_features)
    n_fit = min(max(n_components, n_spectrum), n_samples, n_features)
    solver = "arpack" if n_fit < min(n_samples, n_features) else "full"
    from sklearn.decomposition import PCA

    return PCA(n_components=n_fit, svd_solver=solver, random_state=0).fit(rows)


def project(pca: PCA, X: np.ndarray, n_components: int) -> np.ndarray:
    """Coordinates of ``X`` on the first ``n_components`` principal axes."""
    return pca.transform(X)[:, :n_components]


@dataclass
class Features:
    """PCA features of one dataset under one protocol, ready for a classifier."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    protocol: str
    n_components: int
    explained_variance_ratio: np.ndarray  # of the kept components
    spectrum: np.ndarray = field(repr=False)  # explained-variance ratio of all fitted components


def pca_features(
    zscored: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    classes: tuple[str, ...],
    protocol: str,
    n_components: int,
    n_spectrum: int = 10,
    pca: PCA | None = None,
) -> Features:
    """Fit PCA on the protocol's rows of ``zscored`` (or take ``pca``, fitted by
    :func:`fit_pca` on them) and project train, val and test onto it."""
    if pca is None:
        pca = fit_pca(pca_fit_rows(zscored, protocol), n_components, n_spectrum)
    return Features(
        X_train=project(pca, zscored["train"], n_components),
        y_train=labels["train"],
        X_val=project(pca, zscored["val"], n_components),
        y_val=labels["val"],
        X_test=project(pca, zscored["test"], n_components),
        y_test=labels["test"],
        classes=tuple(classes),
        protocol=protocol,
        n_components=n_components,
        explained_variance_ratio=pca.explained_variance_ratio_[:n_components],
        spectrum=pca.explained_variance_ratio_,
    )


def save_features(path, features: Features, data_label: str = "") -> None:
    """Write :class:`Features` to a pickle-free ``.npz``."""
    from pcann.io import save_npz

    save_npz(
        path,
        X_train=features.X_train, y_train=features.y_train,
        X_val=features.X_val, y_val=features.y_val,
        X_test=features.X_test, y_test=features.y_test,
        classes=np.asarray(features.classes, dtype=str),
        protocol=np.asarray(features.protocol, dtype=str),
        n_components=np.asarray(features.n_components),
        explained_variance_ratio=features.explained_variance_ratio,
        spectrum=features.spectrum,
        data_label=np.asarray(data_label, dtype=str),
    )


def load_features(path) -> tuple[Features, str]:
    """Inverse of :func:`save_features`: ``(features, data_label)``."""
    from pcann.io import load_npz

    arrays = load_npz(path)
    features = Features(
        X_train=arrays["X_train"], y_train=arrays["y_train"],
        X_val=arrays["X_val"], y_val=arrays["y_val"],
        X_test=arrays["X_test"], y_test=arrays["y_test"],
        classes=tuple(str(c) for c in arrays["classes"]),
        protocol=str(arrays["protocol"]),
        n_components=int(arrays["n_components"]),
        explained_variance_ratio=arrays["explained_variance_ratio"],
        spectrum=arrays["spectrum"],
    )
    return features, str(arrays["data_label"])


def spectrum_table(spectrum: np.ndarray, n_components: int):
    """The explained-variance spectrum as a DataFrame: component, ratio, cumulative, kept."""
    import pandas as pd

    return pd.DataFrame(
        {
            "component": np.arange(1, len(spectrum) + 1),
            "explained_variance_ratio": spectrum,
            "cumulative": np.cumsum(spectrum),
            "kept": np.arange(1, len(spectrum) + 1) <= n_components,
        }
    )


# --- The preprocessing jobs: statistics, then PCA and projections ------------------------------
#
# Nothing z-scored is stored: the z-score job keeps the statistics, and the PCA job z-scores the
# images again as it needs them. Two solvers (resources.pca_solver picks one by the data's size):
# ``exact`` z-scores in memory and runs scikit-learn, exactly as the study was computed;
# ``streaming`` never holds a float copy of the images (pcann.preprocessing.streaming).

SOLVERS = ("exact", "streaming")


def zscore_statistics(
    X_train_folder: np.ndarray, X_test: np.ndarray, train_idx: np.ndarray, protocol: str, solver: str
) -> dict[str, np.ndarray]:
    """The z-score statistics ``protocol`` uses, as pickle-free arrays: ``zscore_mean`` and
    ``zscore_scale`` of the training data (the whole training folder under ``study``, the
    training split under ``train-only``: what a new image is scaled with), and under ``study``
    also the test set's own, ``test_zscore_mean`` and ``test_zscore_scale``."""
    if protocol not in PROTOCOLS:
        raise PcannError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    fit_rows = None if protocol == "study" else np.asarray(train_idx)
    if solver == "exact":
        def statistics(X, rows):
            scaler = fit_standardiser(X if rows is None else X[rows])
            return scaler.mean_, scaler.scale_
    else:
        from pcann.preprocessing.streaming import column_statistics as statistics
    mean, scale = statistics(X_train_folder, fit_rows)
    arrays = {"zscore_mean": mean, "zscore_scale": scale,
              "zscore_fitted_on": np.asarray(ZSCORE_FITTED_ON[protocol], dtype=str)}
    if protocol == "study":
        arrays["test_zscore_mean"], arrays["test_zscore_scale"] = statistics(X_test, None)
    return arrays


def _test_statistics(stats: dict) -> tuple[np.ndarray, np.ndarray]:
    if "test_zscore_mean" in stats:  # the study's test set: its own statistics
        return stats["test_zscore_mean"], stats["test_zscore_scale"]
    return stats["zscore_mean"], stats["zscore_scale"]


def fit_and_project(
    train: ImageSet,
    test: ImageSet,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    stats: dict,
    protocol: str,
    n_components: int,
    n_spectrum: int,
    solver: str,
) -> tuple[Features, dict[str, np.ndarray]]:
    """PCA of the protocol's z-scored training rows, and every set's coordinates on it:
    ``(features, pca arrays)`` (see :func:`pca_arrays`)."""
    labels = {"train": train.y[train_idx], "val": train.y[val_idx], "test": test.y}
    mean, scale = stats["zscore_mean"], stats["zscore_scale"]
    test_mean, test_scale = _test_statistics(stats)
    if solver == "exact":
        # z-scored as StandardScaler.transform does it (subtract, then divide, in float64)
        zscored = {
            "train": zscore(train.X[train_idx], mean, scale),
            "val": zscore(train.X[val_idx], mean, scale),
            "test": zscore(test.X, test_mean, test_scale),
        }
        pca = fit_pca(pca_fit_rows(zscored, protocol), n_components, n_spectrum)
        return pca_features(zscored, labels, train.classes, protocol, n_components, pca=pca), pca_arrays(
            pca, n_components
        )
    from pcann.preprocessing.streaming import Standardised, principal_components

    fit_rows = np.concatenate([train_idx, val_idx]) if protocol == "study" else np.asarray(train_idx)
    check_n_components(n_components, len(fit_rows), train.n_features)
    n_fit = min(max(n_components, n_spectrum), len(fit_rows), train.n_features)
    found = principal_components(Standardised(train.X, fit_rows, mean, scale), n_fit, n_axes=n_components)
    axes = found.components[:n_components].T
    features = Features(
        X_train=Standardised(train.X, np.asarray(train_idx), mean, scale).times(axes),
        y_train=labels["train"],
        X_val=Standardised(train.X, np.asarray(val_idx), mean, scale).times(axes),
        y_val=labels["val"],
        X_test=Standardised(test.X, np.arange(len(test.X)), test_mean, test_scale).times(axes),
        y_test=labels["test"],
        classes=tuple(train.classes),
        protocol=protocol,
        n_components=n_components,
        explained_variance_ratio=found.explained_variance_ratio[:n_components],
        spectrum=found.explained_variance_ratio,
    )
    # the fit rows' z-scores are centred by construction: PCA's own centring is zero
    arrays = {"pca_mean": np.zeros(train.n_features), "pca_components": found.components[:n_components]}
    return features, arrays
