"""Z-score statistics and principal components of image arrays too large to copy.

A Fruits-360-sized folder (90,000 images of 100 x 100 x 3) is 2.7 GB as uint8 images and 22 GB
as one float64 copy. Everything here reads the images a chunk of rows at a time, z-scores the
chunk on the fly and keeps only per-feature statistics and a few vectors per feature, so memory
is the images plus one chunk, whatever their number.

* :func:`column_statistics`: per-feature mean and population standard deviation, two passes
  (mean, then squared deviations), with scikit-learn's rule for constant features (scale 1).
* :func:`principal_components`: the leading principal axes of the z-scored rows by block
  subspace iteration on their covariance, one pass over the images per iteration, until every
  wanted axis's residual ``||C v - lambda v|| / lambda`` is below ``tol``; the sign of each axis
  follows scikit-learn's (its largest coefficient positive).
* :func:`project`: the rows' coordinates on those axes, a chunk at a time.

The z-scored rows of the fit are centred by construction (their statistics are the fit rows'
own), so the covariance needs no second centring, as PCA of the in-memory copy would do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Bytes of one float64 chunk of z-scored rows.
CHUNK_BYTES = 64 * 2**20


def chunk_rows(n_features: int, chunk_bytes: int | None = None) -> int:
    """Rows per chunk so that a float64 chunk takes about ``chunk_bytes`` (:data:`CHUNK_BYTES`)."""
    return max(1, (CHUNK_BYTES if chunk_bytes is None else chunk_bytes) // (8 * max(1, n_features)))


def _chunks(rows: np.ndarray, n_features: int):
    size = chunk_rows(n_features)
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def column_statistics(X: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of the columns of ``X[rows]`` (all rows by default): the z-score
    ``(x - mean) / scale`` with the population standard deviation, and 1 for a constant column
    (scikit-learn's ``StandardScaler`` rule), computed a chunk of rows at a time in float64."""
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    n, n_features = len(rows), X.shape[1]
    total = np.zeros(n_features)
    for chunk in _chunks(rows, n_features):
        total += X[chunk].sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = np.zeros(n_features)
    for chunk in _chunks(rows, n_features):
        deviation = X[chunk] - mean
        squares += np.einsum("ij,ij->j", deviation, deviation)
    var = squares / n
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant | (scale == 0)] = 1.0
    return mean, scale


@dataclass(frozen=True)
class Standardised:
    """The rows ``X[rows]`` z-scored with ``(mean, scale)``, never held whole: products with
    blocks of vectors are taken a chunk of rows at a time."""

    X: np.ndarray
    rows: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def chunks(self):
        """``(row positions, z-scored rows)`` a chunk at a time, float64."""
        position = 0
        for chunk in _chunks(self.rows, self.X.shape[1]):
            z = self.X[chunk] - self.mean
            z /= self.scale
            yield slice(position, position + len(chunk)), z
            position += len(chunk)

    def gram_times(self, V: np.ndarray) -> np.ndarray:
        """``Z^T (Z V)`` for a block ``V`` of ``(n_features, b)``: one pass over the rows."""
        out = np.zeros_like(V)
        for _, z in self.chunks():
            out += z.T @ (z @ V)
        return out

    def times(self, V: np.ndarray) -> np.ndarray:
        """``Z V``: the rows' coordinates along the columns of ``V``."""
        out = np.empty((len(self.rows), V.shape[1]))
        for part, z in self.chunks():
            out[part] = z @ V
        return out

    def total_variance(self) -> float:
        """Sum of the columns' variances (ddof 1), as PCA's explained-variance ratios need."""
        total = 0.0
        for _, z in self.chunks():
            total += float(np.einsum("ij,ij->", z, z))
        return total / (len(self.rows) - 1)


@dataclass(frozen=True)
class Components:
    """The leading principal axes: ``components`` ``(k, n_features)``, their variances, and
    the explained-variance ratios; ``iterations`` passes over the rows found them."""

    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    iterations: int


def principal_components(
    data: Standardised, k: int, tol: float = 1e-10, max_iterations: int = 300, seed: int = 0
) -> Components:
    """The ``k`` leading principal axes of ``data`` by block subspace iteration.

    A block of ``k + 8`` vectors (capped by the data) is multiplied by the covariance once per
    iteration (one pass over the rows) and re-orthonormalised; a Rayleigh-Ritz step then reads
    the axes off it. It stops when every wanted axis's relative residual is below ``tol``, and
    raises after ``max_iterations`` passes (a spectrum with no gap after the ``k``-th axis).
    """
    n_samples, n_features = len(data.rows), data.X.shape[1]
    block = min(k + 8, n_samples, n_features)
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((n_features, block)))
    started = time.perf_counter()
    for iteration in range(1, max_iterations + 1):
        product = data.gram_times(basis)
        values, vectors = np.linalg.eigh(basis.T @ product)
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
        ritz = basis @ vectors
        residual = np.linalg.norm(product @ vectors[:, :k] - ritz[:, :k] * values[:k], axis=0)
        worst = float(np.max(residual / np.abs(values[:k])))
        logger.info("pass %d over %d rows: largest relative residual %.2e (target %.0e), %.0f s so far",
                    iteration, n_samples, worst, tol, time.perf_counter() - started)
        if worst <= tol:
            break
        basis, _ = np.linalg.qr(product)
    else:
        raise RuntimeError(
            f"principal components did not converge in {max_iterations} passes "
            f"(largest relative residual {worst:.2e}, target {tol:.0e})"
        )
    components = ritz[:, :k].T
    # scikit-learn's sign convention: the largest coefficient of each axis is positive
    signs = np.sign(components[np.arange(k), np.argmax(np.abs(components), axis=1)])
    components *= signs[:, None]
    variance = values[:k] / (n_samples - 1)
    ratio = variance / data.total_variance()
    return Components(components, variance, ratio, iteration)


def memory_bytes(n_images: int, n_features: int, image_itemsize: int = 1, k: int = 10) -> int:
    """What a job that holds the images and streams over them needs: the images, one float64
    chunk and its temporaries (three of them at once), and the blocks of vectors."""
    chunk = min(n_images, chunk_rows(n_features)) * n_features * 8
    vectors = 6 * n_features * min(k + 8, n_features) * 8
    return n_images * n_features * image_itemsize + 3 * chunk + vectors


def passes_estimate(k: int) -> int:
    """A generous number of passes over the images for :func:`principal_components` (for
    time limits): what the study's images and the demo sets took, with room to spare."""
    return 60 + 4 * k

