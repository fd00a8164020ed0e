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

scikit-learn's ``StandardScaler`` (population std, zero-variance features left unscaled) and
``PCA`` (ARPACK to machine precision, see :func:`fit_pca`) do the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import numpy as np

from . import PcannError

if TYPE_CHECKING:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

# scikit-learn is imported where it is used: loading saved features, which every training job
# does, then costs no scikit-learn import (about 2 s per job).

PROTOCOLS = ("study", "train-only")
SPLITS = ("study", "stratified")


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
    n_val = int(np.floor(val_fraction * n))
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


def standardise(
    X_train_folder: np.ndarray,
    X_test: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    protocol: str,
) -> dict[str, np.ndarray]:
    """Z-scored ``train``/``val``/``test`` arrays (float64) under ``protocol``."""
    return standardise_with_scaler(X_train_folder, X_test, train_idx, val_idx, protocol)[0]


def standardise_with_scaler(
    X_train_folder: np.ndarray,
    X_test: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    protocol: str,
) -> tuple[dict[str, np.ndarray], StandardScaler]:
    """:func:`standardise`, and the scaler that z-scored the training split: the statistics a
    new image must be scaled with (under ``study`` the test set had its own)."""
    X_train_folder = np.asarray(X_train_folder, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    if protocol == "study":
        scaler = fit_standardiser(X_train_folder)
        whole = scaler.transform(X_train_folder)
        test = fit_standardiser(X_test).transform(X_test)  # the test set's own statistics
        return {"train": whole[train_idx], "val": whole[val_idx], "test": test}, scaler
    if protocol == "train-only":
        scaler = fit_standardiser(X_train_folder[train_idx])
        return {
            "train": scaler.transform(X_train_folder[train_idx]),
            "val": scaler.transform(X_train_folder[val_idx]),
            "test": scaler.transform(X_test),
        }, scaler
    raise PcannError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


#: What the z-score statistics of each protocol were computed on (recorded in transform files).
ZSCORE_FITTED_ON = {"study": "the whole training folder", "train-only": "the training split"}


def zscore_arrays(scaler: StandardScaler, protocol: str) -> dict[str, np.ndarray]:
    """The z-score statistics of ``scaler`` as arrays for a pickle-free ``.npz``: ``x`` becomes
    ``(x - zscore_mean) / zscore_scale`` (``scale`` is the population std, 1 where it is 0)."""
    return {
        "zscore_mean": np.asarray(scaler.mean_, dtype=np.float64),
        "zscore_scale": np.asarray(scaler.scale_, dtype=np.float64),
        "zscore_fitted_on": np.asarray(ZSCORE_FITTED_ON[protocol], dtype=str),
    }


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
    from .io import save_npz

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
    from .io import load_npz

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
