"""Z-score statistics and principal components of image arrays too large to copy.

A Fruits-360-sized folder (90,000 images of 100 x 100 x 3) is 2.7 GB as uint8 images and 22 GB
as one float64 copy. Everything here reads the images a chunk of rows at a time, z-scores the
chunk on the fly and keeps only per-feature statistics and a few vectors per feature, so memory
is the images plus one chunk, whatever their number.

* :func:`column_statistics`: per-feature mean and population standard deviation, with
  scikit-learn's rule for constant features (scale 1). For 8-bit images in one pass and exactly
  (the sums of the samples and of their squares are integers, summed without rounding).
* :func:`principal_components`: the leading principal axes of the z-scored rows by block Krylov
  iteration (block Lanczos with full reorthogonalisation) on their covariance: one pass over the
  images per block, and a Rayleigh-Ritz step over every block so far, until every wanted axis's
  relative residual ``||C v - lambda v|| / lambda`` is below ``tol`` (``sqrt(tol)`` for axes
  wanted only for their variances, which are then good to about ``tol``). The passes multiply in
  float32, which halves the memory traffic that bounds them; if float32 cannot reach ``tol``,
  the iteration goes on in float64 from where it stands. The sign of each axis follows
  scikit-learn's (its largest coefficient positive).
* :meth:`Standardised.times`: the rows' coordinates on those axes, in float64.

The z-scored rows of the fit are centred by construction (their statistics are the fit rows'
own), so the covariance needs no second centring, as PCA of the in-memory copy would do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Bytes of one float64 chunk of rows (statistics of samples wider than 8 bits).
CHUNK_BYTES = 64 * 2**20
#: Bytes of one float64 chunk of a projection (it stays in a core's cache).
PROJECTION_CHUNK_BYTES = 4 * 2**20
#: Rows per float32 chunk of the covariance products; 256 rows of squared 8-bit samples also
#: sum exactly in float32 (256 * 255**2 < 2**24).
PRODUCT_ROWS = 256
#: What float32 products can reach: below this relative residual the passes go on in float64.
FLOAT32_TOL = 1e-6
#: Blocks the Krylov basis holds before it restarts from its best vectors (bounds its memory).
MAX_BLOCKS = 12


def chunk_rows(n_features: int, chunk_bytes: int | None = None) -> int:
    """Rows per chunk so that a float64 chunk takes about ``chunk_bytes`` (:data:`CHUNK_BYTES`)."""
    return max(1, (CHUNK_BYTES if chunk_bytes is None else chunk_bytes) // (8 * max(1, n_features)))


def _row_blocks(X: np.ndarray, rows: np.ndarray | None, size: int):
    """Blocks of at most ``size`` rows of ``X`` (``rows`` of it, in that order, or all)."""
    if rows is None:
        for start in range(0, len(X), size):
            yield X[start : start + size]
    else:
        for start in range(0, len(rows), size):
            yield X[rows[start : start + size]]


def column_statistics(X: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of the columns of ``X[rows]`` (all rows by default): the z-score
    ``(x - mean) / scale`` with the population standard deviation, and 1 for a constant column
    (scikit-learn's ``StandardScaler`` rule)."""
    rows = None if rows is None else np.sort(np.asarray(rows))  # the order does not matter here
    n = len(X) if rows is None else len(rows)
    if X.dtype == np.uint8:
        mean, var = _uint8_moments(X, rows, n)
        constant = var == 0
    else:
        mean, var = _float64_moments(X, rows, n)
        eps = np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant | (scale == 0)] = 1.0
    return mean, scale


def _uint8_moments(X, rows, n):
    """Mean and population variance from the exact integer sums of the samples and squares."""
    n_features = X.shape[1]
    sums = np.zeros(n_features, np.int64)
    squares = np.zeros(n_features, np.int64)
    ones = np.ones(PRODUCT_ROWS, np.float32)
    buffer = np.empty((PRODUCT_ROWS, n_features), np.float32)
    for block in _row_blocks(X, rows, PRODUCT_ROWS):
        x = buffer[: len(block)]
        np.copyto(x, block)
        sums += (ones[: len(x)] @ x).astype(np.int64)
        np.multiply(x, x, out=x)
        squares += (ones[: len(x)] @ x).astype(np.int64)
    # n * sum(x^2) - sum(x)^2 is an exact integer: the variance is rounded once
    return sums / n, (n * squares - sums * sums).astype(np.float64) / n / n


def _float64_moments(X, rows, n):
    """Mean and population variance in two float64 passes (mean, then squared deviations)."""
    size = chunk_rows(X.shape[1])
    total = np.zeros(X.shape[1])
    for block in _row_blocks(X, rows, size):
        total += block.sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = np.zeros(X.shape[1])
    for block in _row_blocks(X, rows, size):
        deviation = block - mean
        squares += np.einsum("ij,ij->j", deviation, deviation)
    return mean, squares / n


@dataclass(frozen=True)
class Standardised:
    """The rows ``X[rows]`` z-scored with ``(mean, scale)``, never held whole: products with
    blocks of vectors are taken a chunk of rows at a time."""

    X: np.ndarray
    rows: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def times(self, V: np.ndarray) -> np.ndarray:
        """``Z V`` in float64: the rows' coordinates along the columns of ``V``. The scale is
        folded into ``V``, so each chunk is only centred, and chunks are small enough to stay
        in the processor's cache between centring and product."""
        weights = V / self.scale[:, None]
        size = chunk_rows(self.X.shape[1], PROJECTION_CHUNK_BYTES)
        buffer = np.empty((size, self.X.shape[1]))
        out = np.empty((len(self.rows), V.shape[1]))
        position = 0
        for block in _row_blocks(self.X, np.asarray(self.rows), size):
            z = buffer[: len(block)]
            np.subtract(block, self.mean, out=z)
            out[position : position + len(block)] = z @ weights
            position += len(block)
        return out

    def gram_times(self, V: np.ndarray, dtype=np.float32, with_total: bool = False):
        """``Z^T Z V`` for a block ``V`` of ``(n_features, b)``: one pass over the rows,
        multiplying in ``dtype``; ``with_total=True`` also returns the sum of Z's squared
        entries (``n - 1`` times the total variance), from the same pass.

        The chunk is centred with the mean rounded to ``dtype`` (the difference of two numbers
        of that type, so accurate relative to the centred sample), the scale is folded into
        the vectors, and the mean's rounding is corrected afterwards in float64."""
        mean_rounded = self.mean.astype(dtype)
        correction = (self.mean - mean_rounded) / self.scale  # z = (x - mean_rounded)/scale - correction
        weights = (V / self.scale[:, None]).astype(dtype)
        shift = (correction @ V).astype(dtype)
        product = np.zeros(V.shape)
        column_sums = np.zeros(V.shape[1])
        squares = np.zeros(len(self.scale))
        buffer = np.empty((PRODUCT_ROWS, len(self.scale)), dtype)
        # sorted rows read the images in order; the product does not depend on the order
        for block in _row_blocks(self.X, np.sort(np.asarray(self.rows)), PRODUCT_ROWS):
            x = buffer[: len(block)]
            np.subtract(block, mean_rounded, out=x, dtype=dtype, casting="unsafe")
            y = x @ weights
            y -= shift
            product += x.T @ y
            column_sums += y.sum(axis=0, dtype=np.float64)
            if with_total:  # in dtype too: float32's sums are good to about 1e-7 relative
                squares += np.einsum("ij,ij->j", x, x)
        product = product / self.scale[:, None] - np.outer(correction, column_sums)
        if not with_total:
            return product
        # the rows' sum of (x - mean)^2 is that of (x - mean_rounded)^2 less n (mean - mean_rounded)^2
        total = float(np.sum(squares / self.scale**2) - len(self.rows) * np.sum(correction**2))
        return product, total


@dataclass(frozen=True)
class Components:
    """The leading principal axes: ``components`` ``(k, n_features)``, their variances, and
    the explained-variance ratios; ``iterations`` passes over the rows found them."""

    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    iterations: int


def block_size(k: int) -> int:
    """Vectors per Krylov block for ``k`` wanted axes (a few more than wanted, for the gap)."""
    return k + 6


def principal_components(
    data: Standardised, k: int, tol: float = FLOAT32_TOL, max_iterations: int = 60, seed: int = 0,
    n_axes: int | None = None,
) -> Components:
    """The ``k`` leading principal axes of ``data`` by block Krylov iteration.

    Each pass multiplies the newest block of :func:`block_size` orthonormal vectors by the
    covariance; the next block is the product's part orthogonal to every block so far, and the
    axes are the leading Ritz vectors of the covariance on all the blocks together. Their
    residuals come from the stored products, so checking convergence costs no pass. Past
    :data:`MAX_BLOCKS` blocks the basis restarts from its best vectors. The products are float32
    until the residual is below :data:`FLOAT32_TOL`, then float64 (only if ``tol`` is lower).
    Raises after ``max_iterations`` passes (a spectrum with no gap after the ``k``-th axis).

    ``n_axes`` (default ``k``): only the leading ``n_axes`` axes are wanted as axes; the others
    only for their variances (an explained-variance spectrum), which a Ritz value has to about
    the square of its vector's residual, so their residuals need only reach ``sqrt(tol)``.

    Kept in one piece (about 50 lines of code): the basis, its products and the precision switch
    are state shared by every pass, and the loop reads as the algorithm's steps in order.
    """
    n_samples, n_features = len(data.rows), data.X.shape[1]
    size = min(block_size(k), n_samples, n_features)
    dimension = min(n_samples, n_features)  # the covariance's rank is at most this
    rng = np.random.default_rng(seed)
    block, _ = np.linalg.qr(rng.standard_normal((n_features, size)))
    n_axes = k if n_axes is None else n_axes
    targets = np.where(np.arange(k) < n_axes, tol, np.sqrt(tol))  # relative residual wanted per axis
    dtype = np.float32
    bases: list[np.ndarray] = []
    products: list[np.ndarray] = []
    started = time.perf_counter()
    for iteration in range(1, max_iterations + 1):
        if not bases:  # the first pass in this precision also sums the squares
            product, total = data.gram_times(block, dtype, with_total=True)
        else:
            product = data.gram_times(block, dtype)
        bases.append(block)
        products.append(product)
        basis, basis_products = np.hstack(bases), np.hstack(products)
        rayleigh = basis.T @ basis_products
        values, vectors = np.linalg.eigh((rayleigh + rayleigh.T) / 2)
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
        ritz = basis @ vectors
        residual = np.linalg.norm(basis_products @ vectors[:, :k] - ritz[:, :k] * values[:k], axis=0)
        relative = residual / np.abs(values[:k])
        logger.info("pass %d over %d rows (%s): largest relative residual %.1e of the %d axes (target %.0e), "
                    "%.1e of the %d spectrum-only ones (target %.0e), %.0f s so far",
                    iteration, n_samples, np.dtype(dtype).name, relative[:n_axes].max(), n_axes, tol,
                    relative[n_axes:].max(initial=0), k - n_axes, np.sqrt(tol), time.perf_counter() - started)
        if np.all(relative <= targets) or basis.shape[1] >= dimension:
            break
        if dtype == np.float32 and np.all(relative <= np.maximum(targets, FLOAT32_TOL)):
            # float32 has done what it can: go on in float64 from the best vectors so far
            dtype, bases, products = np.float64, [], []
            block = ritz[:, :size]
            continue
        if len(bases) == MAX_BLOCKS:
            # restart from the best vectors, whose products are known without a pass; the
            # next block continues from their residuals
            bases, products = [ritz[:, :size]], [basis_products @ vectors[:, :size]]
            basis, product = bases[0], products[0]
        block = _orthonormal_complement(product, basis, min(size, dimension - basis.shape[1]))
    else:
        raise RuntimeError(
            f"principal components did not converge in {max_iterations} passes (largest relative "
            f"residual {relative.max():.2e}, targets {tol:.0e} for axes, {np.sqrt(tol):.0e} for variances only)"
        )
    components = ritz[:, :k].T
    # scikit-learn's sign convention: the largest coefficient of each axis is positive
    signs = np.sign(components[np.arange(k), np.argmax(np.abs(components), axis=1)])
    components *= signs[:, None]
    variance = values[:k] / (n_samples - 1)
    ratio = values[:k] / total
    return Components(components, variance, ratio, iteration)


def _orthonormal_complement(product: np.ndarray, basis: np.ndarray, width: int) -> np.ndarray:
    """``width`` orthonormal vectors spanning the part of ``product`` orthogonal to ``basis``."""
    fresh = product
    for _ in range(2):  # twice: once is not enough in floating point
        fresh = fresh - basis @ (basis.T @ fresh)
        fresh, _ = np.linalg.qr(fresh)
    return fresh[:, :width]


def memory_bytes(n_images: int, n_features: int, image_itemsize: int = 1, k: int = 10) -> int:
    """What a job that holds the images and streams over them needs: the images, one float64
    chunk and its temporaries (three of them at once), and the Krylov basis with its products."""
    chunk = min(n_images, chunk_rows(n_features)) * n_features * 8
    vectors = 2 * (MAX_BLOCKS + 2) * n_features * min(block_size(k), n_features) * 8
    return n_images * n_features * image_itemsize + 3 * chunk + vectors


def passes_estimate(k: int) -> int:
    """A generous number of passes over the images for :func:`principal_components` (for
    time limits): what the study's images and the demo sets took, with room to spare."""
    return 20 + k
