"""Plain sentences from the numbers: which of the study's sweep effects hold up against the
baseline and against the spread that the seed alone produces (for ``results/summary.md``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pcann.results.stats import ALPHA
from pcann.results.tables import PARAMETER_TITLES


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _holding_p(lowest: float) -> str:
    """The Holm-adjusted p-values of the values that do not differ, by the lowest of them: at
    least that, rounded down to 2 decimals; or exactly 1 when none is below 1 (Holm caps at 1)."""
    if lowest >= 1:
        return "Holm-adjusted p = 1.00"
    return f"Holm-adjusted p >= {np.floor(lowest * 100) / 100:.2f}"


def sweep_sentence(summary: pd.DataFrame) -> str | None:
    """One sentence on a sweep table (its CSV or :func:`pcann.results.tables.study_tables` summary):
    which values differ from the baseline, and which do not, with the Holm-adjusted p-values."""
    if "p_holm" not in summary:
        return None
    network, parameter = summary["network"].iloc[0], summary["parameter"].iloc[0]
    baseline = summary.loc[summary["is_baseline"].astype(bool), "value"]
    others = summary[~summary["is_baseline"].astype(bool)]
    if others.empty:
        return None
    head = f"{network}, {PARAMETER_TITLES.get(parameter, parameter)}"
    base = baseline.iloc[0] if len(baseline) else "?"
    tested = others[others["p_holm"].notna()]
    untested = others[others["p_holm"].isna()]
    significant = tested[tested["p_holm"] < ALPHA]
    holding = tested[~(tested["p_holm"] < ALPHA)]
    parts = []
    if len(significant):
        listed = ", ".join(
            f"{v} ({d:+.4f}, {_p(p)})"
            for v, d, p in zip(significant["value"], significant["difference"], significant["p_holm"])
        )
        parts.append(f"{listed} {'differs' if len(significant) == 1 else 'differ'} from the baseline {base}")
    if len(holding):
        values = ", ".join(map(str, holding["value"]))
        bound = _holding_p(holding["p_holm"].min())
        if significant.empty:
            parts.append(f"no value differs from the baseline {base} ({bound})")
        else:
            parts.append(f"{values} {'does' if len(holding) == 1 else 'do'} not ({bound})")
    if len(untested):
        parts.append(f"{', '.join(map(str, untested['value']))} not compared (a run diverged)")
    return f"{head}: " + "; ".join(parts) + "."


def spread_sentence(spread: pd.DataFrame) -> list[str]:
    """Sentences from the seed-spread table: the baselines' range over seeds against the
    sweeps' differences."""
    sentences = []
    for entry in spread.itertuples(index=False):
        if not entry.run.endswith("baseline"):
            continue
        if entry.seeds < 2:
            sentences.append(
                f"{entry.run}: one seed, so how much the test accuracy moves with the seed alone is "
                "not measured; the comparisons above rest on the test images only "
                "(`seeds: [1, 2, 3, 4, 5]` measures it)."
            )
            continue
        text = (f"{entry.run}: over {entry.seeds} seeds the test accuracy ranges from {entry.test_min:.4f} "
                f"to {entry.test_max:.4f} ({entry.test_range:.4f})")
        if hasattr(entry, "sweep_values") and pd.notna(entry.sweep_values):
            text += (f"; {int(entry.beyond_seed_range)} of {int(entry.sweep_values)} sweep values differ from "
                     f"the baseline by more than that, {int(entry.significant)} significantly")
        sentences.append(text + ".")
    return sentences


def findings(summaries: dict[str, pd.DataFrame], spread: pd.DataFrame, protocol: str) -> list[str]:
    """The summary's sentences: one per sweep table (in the given order), then the seed spread."""
    several = any((t["seeds"] > 1).any() for t in summaries.values())
    how = ("a paired t-test over seeds of the test accuracies" if several
           else "an exact McNemar test on the shared test images")
    lines = [f"Under the `{protocol}` protocol, each sweep value against its network's baseline by "
             f"{how}, Holm-corrected over the sweep's values (significance level {ALPHA:.2f}):", ""]
    lines += [f"- {s}" for s in (sweep_sentence(t) for t in summaries.values()) if s]
    lines += [f"- {s}" for s in spread_sentence(spread)]
    return lines
