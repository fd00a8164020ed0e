"""The statistics of the tables, each against a value computed independently here: textbook
formulas written out, and published examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pcann.results.findings import spread_sentence, sweep_sentence
from pcann.results.stats import (
    accuracy_interval,
    agresti_min_interval,
    compare_paired,
    holm,
    mcnemar_exact,
    mean_interval,
    paired_t,
    wilson_interval,
)
from pcann.results.tables import add_comparisons, compare_runs, seed_spread, summarise

Z95 = 1.959963984540054  # the 97.5% normal quantile
T95_DF4 = 2.7764451051977987  # the 97.5% quantile of t with 4 degrees of freedom (tables: 2.776)


def wilson_textbook(k, n, z=Z95):
    """Wilson (1927): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


@pytest.mark.parametrize("k, n", [(417, 498), (0, 12), (12, 12), (81, 100), (1, 3)])
def test_wilson_interval_is_the_textbook_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(wilson_textbook(k, n), abs=1e-12)


def test_wilson_interval_of_a_known_example():
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 -> 0.2553 to 0.3662
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)


def test_accuracy_interval_counts_the_images_and_skips_missing_accuracies():
    assert accuracy_interval(417 / 498, 498) == pytest.approx(wilson_textbook(417, 498))
    assert all(math.isnan(v) for v in accuracy_interval(None, 498))
    assert all(math.isnan(v) for v in accuracy_interval(float("nan"), 498))


def exact_mcnemar_by_hand(b, c):
    """Two-sided exact McNemar: twice the binomial(b + c, 1/2) tail of min(b, c), at most 1."""
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b, c", [(2, 10), (10, 2), (7, 8), (0, 5), (30, 52), (1, 0)])
def test_exact_mcnemar_is_the_binomial_tail_of_the_discordant_pairs(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(exact_mcnemar_by_hand(b, c), rel=1e-10)


def test_exact_mcnemar_known_values():
    assert mcnemar_exact(2, 10) == pytest.approx(158 / 4096)  # 2 (1 + 12 + 66) / 2^12
    assert mcnemar_exact(0, 0) == 1.0  # no discordant pair: no evidence


def test_agresti_min_interval_is_the_adjusted_wald_interval():
    # n = 50 pairs, B alone right on 10, A alone right on 3; +1/2 in every cell -> 52 pairs
    p_b, p_a = 10.5 / 52, 3.5 / 52
    se = math.sqrt((p_b + p_a - (p_b - p_a) ** 2) / 52)
    expected = (p_b - p_a - Z95 * se, p_b - p_a + Z95 * se)
    assert agresti_min_interval(50, 10, 3) == pytest.approx(expected, abs=1e-12)
    low, high = agresti_min_interval(50, 0, 0)
    assert low < 0 < high and low == pytest.approx(-high)


def test_compare_paired_counts_the_table_and_the_difference():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
    result = compare_paired(a, b)
    assert (result.both_right, result.only_b_right, result.only_a_right, result.both_wrong) == (4, 2, 1, 1)
    assert result.difference == pytest.approx(b.mean() - a.mean())
    assert result.p_value == pytest.approx(exact_mcnemar_by_hand(2, 1))
    assert result.low < result.difference < result.high
    with pytest.raises(ValueError, match="different images"):
        compare_paired(a, b[:-1])


def test_holm_known_example():
    # step-down: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.2, float("nan"), 0.9])  # NaN is no test: m = 2
    assert adjusted[0] == pytest.approx(0.4) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.9)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_mean_interval_is_the_t_interval():
    values = [0.85, 0.86, 0.84, 0.87, 0.83]
    mean, sd, low, high = mean_interval(values)
    assert mean == pytest.approx(0.85) and sd == pytest.approx(math.sqrt(0.001 / 4))
    half = T95_DF4 * math.sqrt(0.00025) / math.sqrt(5)
    assert (low, high) == pytest.approx((0.85 - half, 0.85 + half), abs=1e-12)
    assert math.isnan(mean_interval([0.8])[1]) and mean_interval([0.8])[0] == 0.8


def test_paired_t_is_the_t_test_of_the_differences():
    base = np.array([0.85, 0.86, 0.84, 0.87, 0.83])
    value = np.array([0.86, 0.88, 0.84, 0.89, 0.85])
    d = value - base
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    mean, low, high, p = paired_t(base, value)
    assert mean == pytest.approx(d.mean())
    # t = 3.5 with 4 degrees of freedom; its closed-form CDF for 4 degrees of freedom:
    # F(x) = 1/2 + 3/8 · x/sqrt(1 + x²/4) · (1 - x²/(12 (1 + x²/4)))
    assert t == pytest.approx(3.5)
    cdf = 0.5 + 3 / 8 * t / math.sqrt(1 + t * t / 4) * (1 - t * t / (12 * (1 + t * t / 4)))
    assert p == pytest.approx(2 * (1 - cdf), rel=1e-9)
    half = T95_DF4 * d.std(ddof=1) / math.sqrt(5)
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert paired_t(base, base)[3] == 1.0  # no difference at all
    # the same difference on every seed: no variance, the exact sign-flip p of 5 seeds, 2/2^5
    assert paired_t(base, base + 0.01) == pytest.approx((0.01, 0.01, 0.01, 2 / 32))
    assert math.isnan(paired_t([0.8, None], [0.9, 0.7])[3])  # one pair left


# --- the tables' comparisons on a small made-up study -----------------------------------------

def _plan(seeds):
    rows = []
    for seed in seeds:
        for value, is_baseline in (("0.01", False), ("0.05", True), ("0.1", False)):
            rows.append({"table": "sweep", "network": "net", "parameter": "lr", "value": value,
                         "is_baseline": is_baseline, "run_dir": f"runs/lr={value}_seed={seed}",
                         "seed": seed})
        rows.append({"table": "headline", "network": "net", "parameter": "run", "value": "net",
                     "is_baseline": False, "run_dir": f"runs/lr=0.05_seed={seed}", "seed": seed})
    frame = pd.DataFrame(rows)
    frame["order"] = np.arange(len(frame))
    return frame


def _study(seeds, n=200, seed=0):
    """Predictions and runs.csv of a made-up sweep: 0.1 much worse than the baseline, 0.01 alike."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    predictions, runs = {}, []
    for s in seeds:
        for value, wrong in (("0.01", 0.15), ("0.05", 0.14), ("0.1", 0.45)):
            predicted = np.where(rng.random(n) < wrong, (truth + 1) % 3, truth)
            run_dir = f"runs/lr={value}_seed={s}"
            predictions[run_dir] = {"test_predicted": predicted, "test_true": truth}
            accuracy = float(np.mean(predicted == truth))
            runs.append({"run_dir": run_dir, "seed": s, "diverged": False, "n_train": 600, "n_val": 150,
                         "n_test": n, "train_accuracy": accuracy, "val_accuracy": accuracy,
                         "test_accuracy": accuracy})
    return predictions, pd.DataFrame(runs)


def test_one_seed_sweep_is_compared_by_mcnemar_with_holm():
    plan = _plan([1])
    predictions, runs = _study([1])
    comparisons = compare_runs(plan, predictions)
    assert list(comparisons["value"]) == ["0.01", "0.1"]
    for row in comparisons.itertuples():
        a = predictions[row.baseline_run_dir]
        b = predictions[row.run_dir]
        expected = compare_paired(a["test_predicted"] == a["test_true"], b["test_predicted"] == b["test_true"])
        assert row.p_value == pytest.approx(expected.p_value) and row.difference == pytest.approx(expected.difference)
    assert list(comparisons["p_holm"]) == pytest.approx(holm(comparisons["p_value"]))
    table = add_comparisons(summarise(plan, runs, "sweep"), comparisons, runs)
    assert list(table["test"]) == ["exact McNemar", "—", "exact McNemar"]
    assert list(table["significant"]) == [False, False, True]
    sentence = sweep_sentence(table)
    assert sentence.startswith("net, learning rate: 0.1 (-0.")
    assert "differs from the baseline 0.05" in sentence and "0.01 does not (Holm-adjusted p >= " in sentence
    # one run: the Wilson interval of its test accuracy over its images
    k = round(table["test_accuracy_mean"][1] * 200)
    assert (table["test_accuracy_low"][1], table["test_accuracy_high"][1]) == pytest.approx(wilson_textbook(k, 200))


def test_five_seed_sweep_is_compared_by_paired_t_and_keeps_each_seeds_mcnemar():
    seeds = [1, 2, 3, 4, 5]
    plan = _plan(seeds)
    predictions, runs = _study(seeds)
    comparisons = compare_runs(plan, predictions)
    table = add_comparisons(summarise(plan, runs, "sweep"), comparisons, runs)
    assert list(table["test"]) == ["paired t over seeds", "—", "paired t over seeds"]
    accuracy = runs.set_index("run_dir")["test_accuracy"]
    base = [accuracy[f"runs/lr=0.05_seed={s}"] for s in seeds]
    worse = [accuracy[f"runs/lr=0.1_seed={s}"] for s in seeds]
    assert table.loc[2, "p_value"] == pytest.approx(paired_t(base, worse)[3])
    assert table.loc[2, "test_accuracy_mean"] == pytest.approx(np.mean(worse))
    assert table.loc[2, "test_accuracy_std"] == pytest.approx(np.std(worse, ddof=1))
    assert {f"mcnemar_p_seed{s}" for s in seeds} <= set(table.columns)
    assert table.loc[2, "significant"] and not table.loc[0, "significant"]
    spread = seed_spread(plan, runs, {"sweep_net_lr": ("t", table, None)})
    baseline = spread.iloc[0]
    assert baseline["run"] == "net baseline" and baseline["seeds"] == 5
    assert baseline["test_range"] == pytest.approx(max(base) - min(base))
    assert baseline["largest_difference_at"] == "learning rate 0.1"
    assert baseline["beyond_seed_range"] >= 1 and baseline["significant"] == 1
    (sentence,) = spread_sentence(spread)
    assert sentence.startswith("net baseline: over 5 seeds the test accuracy ranges from ")
    assert "sweep values differ from the baseline by more than that, 1 significantly" in sentence


def test_a_diverged_run_is_not_compared():
    plan = _plan([1])
    predictions, runs = _study([1])
    predictions["runs/lr=0.1_seed=1"]["test_predicted"] = np.full(200, -1)
    comparisons = compare_runs(plan, predictions)
    assert math.isnan(comparisons.set_index("value").loc["0.1", "p_value"])
    table = add_comparisons(summarise(plan, runs, "sweep"), comparisons, runs)
    assert "0.1 not compared (a run diverged)" in sweep_sentence(table)
    assert "no value differs from the baseline 0.05" in sweep_sentence(table)


def test_seed_spread_lists_a_headline_run_that_is_its_networks_baseline_once():
    seeds = [1, 2]
    plan = _plan(seeds)  # its headline run "net" is the baseline lr=0.05
    other = pd.DataFrame([
        {"table": "headline", "network": "net", "parameter": "run", "value": "net lr=0.1",
         "is_baseline": False, "run_dir": f"runs/lr=0.1_seed={s}", "seed": s} for s in seeds
    ])
    plan = pd.concat([plan, other], ignore_index=True).assign(order=lambda f: np.arange(len(f)))
    predictions, runs = _study(seeds)
    table = add_comparisons(summarise(plan, runs, "sweep"), compare_runs(plan, predictions), runs)
    spread = seed_spread(plan, runs, {"sweep_net_lr": ("t", table, None)})
    assert list(spread["run"]) == ["net baseline", "net lr=0.1"]


@pytest.mark.parametrize("p_values, expected", [
    ([1.0, 1.0], "(Holm-adjusted p = 1.00)"),
    ([0.9091, 1.0], "(Holm-adjusted p >= 0.90)"),
])
def test_the_sentence_of_a_sweep_without_effects_never_says_p_at_least_one(p_values, expected):
    table = pd.DataFrame({
        "network": "net", "parameter": "lr", "value": ["0.01", "0.05", "0.1"],
        "is_baseline": [False, True, False], "difference": [0.0, np.nan, -0.03],
        "p_holm": [p_values[0], np.nan, p_values[1]],
    })
    sentence = sweep_sentence(table)
    assert sentence == f"net, learning rate: no value differs from the baseline 0.05 {expected}."
    assert ">= 1.00" not in sentence
