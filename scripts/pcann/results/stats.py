"""The statistics of honest comparisons: intervals, paired tests and multiple-testing corrections.

- One run's accuracy ``k / n``: the **Wilson score interval** (no continuity correction), from
  :meth:`scipy.stats.binomtest(...).proportion_ci <scipy.stats.binomtest>`.
- Two runs on the same images (one seed): the **exact McNemar test**, a two-sided binomial test
  of the discordant pairs (:func:`scipy.stats.binomtest`, p = 1/2), and the difference of their
  accuracies with the **Agresti-Min interval** (Wald interval of the paired difference after
  adding 1/2 to each of the four cells of the 2x2 table; Agresti & Min 2005, recommended by
  Fagerland, Lydersen & Laake 2014). scipy has no interval for paired proportions.
- Several seeds: mean, standard deviation and the **t interval** of the mean
  (:func:`scipy.stats.t`); a value against the baseline by the **paired t-test** over seeds
  (:func:`scipy.stats.ttest_rel`, paired by seed) with the t interval of the mean difference.
- Every sweep's values against its baseline: **Holm's step-down correction** (:func:`holm`).

Every function returns NaN where there is no number (no images, one seed, a diverged run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Confidence level of every interval; the significance level is 1 minus it.
LEVEL = 0.95
ALPHA = 1 - LEVEL
NAN_PAIR = (math.nan, math.nan)


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``."""
    if not n:
        return NAN_PAIR
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_interval(accuracy, n, level: float = LEVEL) -> tuple[float, float]:
    """Wilson interval of an accuracy measured on ``n`` images (NaN for a missing accuracy)."""
    if accuracy is None or n is None or not np.isfinite(accuracy) or not np.isfinite(n) or n <= 0:
        return NAN_PAIR
    return wilson_interval(round(float(accuracy) * n), int(n), level)


@dataclass(frozen=True)
class PairedComparison:
    """Run B against run A on the same images: the 2x2 table and what follows from it."""

    n: int
    both_right: int
    only_b_right: int  # A wrong, B right
    only_a_right: int  # A right, B wrong
    both_wrong: int
    difference: float  # accuracy of B minus accuracy of A
    low: float  # Agresti-Min interval of the difference
    high: float
    p_value: float  # exact McNemar

    def as_record(self, prefix: str = "") -> dict:
        return {f"{prefix}{key}": value for key, value in self.__dict__.items()}


def mcnemar_exact(only_b_right: int, only_a_right: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (1 when there are none)."""
    discordant = int(only_b_right) + int(only_a_right)
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(int(only_b_right), discordant, 0.5).pvalue)


def agresti_min_interval(
    n: int, only_b_right: int, only_a_right: int, level: float = LEVEL
) -> tuple[float, float]:
    """Agresti-Min interval of a paired difference of proportions (B minus A): add 1/2 to each
    cell of the 2x2 table (n + 2 pairs), then the Wald interval, clipped to [-1, 1]."""
    if not n:
        return NAN_PAIR
    total = n + 2.0
    p_b = (only_b_right + 0.5) / total
    p_a = (only_a_right + 0.5) / total
    difference = p_b - p_a
    se = math.sqrt(max((p_b + p_a) - difference**2, 0.0) / total)
    z = stats.norm.ppf(0.5 + level / 2)
    return max(-1.0, difference - z * se), min(1.0, difference + z * se)


def compare_paired(correct_a, correct_b, level: float = LEVEL) -> PairedComparison:
    """Run B against run A from per-image correctness (boolean arrays, same images)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"runs scored on different images: {a.shape} and {b.shape}")
    n = int(a.size)
    only_b, only_a = int(np.sum(b & ~a)), int(np.sum(a & ~b))
    low, high = agresti_min_interval(n, only_b, only_a, level)
    return PairedComparison(
        n=n, both_right=int(np.sum(a & b)), only_b_right=only_b, only_a_right=only_a,
        both_wrong=int(np.sum(~a & ~b)), difference=(only_b - only_a) / n if n else math.nan,
        low=low, high=high, p_value=mcnemar_exact(only_b, only_a),
    )


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (step-down, monotone, at most 1); NaN entries stay NaN and do not
    count among the tests."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(np.isfinite(p))
    m = len(present)
    running = 0.0
    for rank, index in enumerate(present[np.argsort(p[present], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def mean_interval(values, level: float = LEVEL) -> tuple[float, float, float, float]:
    """``(mean, sd, low, high)`` of replicate values: the t interval of the mean (NaN
    standard deviation and interval below two values). Missing values are left out."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return mean, sd, mean - half, mean + half


def paired_t(baseline, values, level: float = LEVEL) -> tuple[float, float, float, float]:
    """``(mean difference, low, high, p)`` of ``values - baseline``, paired by position (seed):
    :func:`scipy.stats.ttest_rel` and its t interval. Pairs with a missing side are left out;
    below two pairs everything but the mean is NaN. When every difference is the same the t
    statistic is undefined (no variance): the interval has zero width and p is 1 for no
    difference at all, else the exact Wilcoxon signed-rank p-value (:func:`scipy.stats.wilcoxon`,
    2 / 2^n: every seed moved the same way, which n seeds can show only so strongly)."""
    pairs = [
        (b, v) for b, v in zip(baseline, values)
        if b is not None and v is not None and np.isfinite(b) and np.isfinite(v)
    ]
    if not pairs:
        return (math.nan,) * 4
    base, value = map(np.asarray, zip(*pairs))
    differences = value - base
    mean = float(differences.mean())
    if len(pairs) < 2:
        return mean, math.nan, math.nan, math.nan
    if np.all(differences == differences[0]):
        return mean, mean, mean, 1.0 if mean == 0 else float(stats.wilcoxon(differences).pvalue)
    result = stats.ttest_rel(value, base)
    ci = result.confidence_interval(confidence_level=level)
    return mean, float(ci.low), float(ci.high), float(result.pvalue)


#: What a table shows where there is no number.
DASH = "—"


def _accuracy_text(mean, sd, low, high, n_values) -> str:
    """``0.8373 [0.802, 0.868]`` for one run, ``0.8373 ± 0.0100 [0.825, 0.850]`` over seeds."""
    if not np.isfinite(mean):
        return DASH
    text = f"{mean:.4f}"
    if n_values > 1:
        text += f" ± {sd:.4f}"
    if np.isfinite(low):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def accuracy_summary(values, counts) -> dict:
    """Mean, standard deviation and 95% interval of one accuracy over a setting's seeds: the
    Wilson interval over the images for a single run, the t interval over seeds for several."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    counts = list(counts)
    if len(values) == 1:
        low, high = accuracy_interval(values[0], counts[0] if counts else None)
        mean, sd = values[0], math.nan
    else:
        mean, sd, low, high = mean_interval(values)
        low, high = max(low, 0.0), min(high, 1.0)  # an accuracy lies in [0, 1]; NaN stays NaN
    return {"mean": mean, "std": sd, "low": low, "high": high,
            "text": _accuracy_text(mean, sd, low, high, len(values))}
