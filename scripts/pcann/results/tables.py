"""The study's tables: collect every run's metrics and arrange them as the study presents them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from pcann.results.markdown import markdown_table
from pcann.results.stats import (
    ALPHA,
    DASH,
    accuracy_summary,
    compare_paired,
    holm,
    paired_t,
)


ACCURACIES = ("train_accuracy", "val_accuracy", "test_accuracy")
ACCURACY_HEADERS = {"train_accuracy": "train", "val_accuracy": "validation", "test_accuracy": "test"}
PARAMETER_TITLES = {
    "hidden": "hidden units",
    "epochs": "epochs",
    "lr": "learning rate",
    "batch_size": "batch size",
}


def collect_metrics(paths) -> pd.DataFrame:
    """One row per run from its ``metrics.json``, indexed by run folder."""
    records = []
    for path in paths:
        record = json.loads(Path(path).read_text())
        record["run_dir"] = str(Path(path).parent)
        record["hidden"] = "-".join(map(str, record["hidden"]))
        record.pop("classes", None)
        records.append(record)
    columns = ["run_dir", *[c for c in (records[0] if records else {}) if c != "run_dir"]]
    return pd.DataFrame.from_records(records, columns=columns)


def plan_file_text(records: list[dict]) -> str:
    """The plan's records as JSON (:data:`pcann.study.paths.PLAN_FILE`), one row a line: readable,
    and a changed row shows as one changed line."""
    rows = ",\n".join(json.dumps(record) for record in records)
    return f"[\n{rows}\n]\n"


def read_plan(path) -> list[dict]:
    """The plan's records as rule study_plan wrote them (:func:`plan_file_text`)."""
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def plan_frame(records: list[dict]) -> pd.DataFrame:
    """The study plan's rows (:meth:`pcann.study.plan.StudyPlan.records`) as a frame, in plan order."""
    frame = pd.DataFrame.from_records(records)
    frame["order"] = np.arange(len(frame))
    return frame[["table", "network", "parameter", "value", "is_baseline", "run_dir", "seed", "order"]]


#: How many images each accuracy was measured on (columns of runs.csv).
SAMPLE_COUNTS = {"train_accuracy": "n_train", "val_accuracy": "n_val", "test_accuracy": "n_test"}
#: The mark of a value that differs from its sweep's baseline (Holm-adjusted p < ALPHA).
SIGNIFICANT_MARK = "*"
def summarise(plan: pd.DataFrame, runs: pd.DataFrame, table: str) -> pd.DataFrame:
    """Rows of ``table``, one per value, with every accuracy's mean, standard deviation and 95%
    interval over seeds (see :func:`accuracy_summary`), diverged runs counted."""
    rows = plan[plan["table"] == table].merge(
        runs.drop(columns=["seed"]), on="run_dir", how="left", validate="many_to_one"
    )
    records = []
    for (network, parameter, value), group in rows.groupby(["network", "parameter", "value"], sort=False):
        record = {
            "network": network, "parameter": parameter, "value": value,
            "order": group["order"].min(), "is_baseline": bool(group["is_baseline"].any()),
            "seeds": group["seed"].nunique(),
            "diverged": int(group["diverged"].fillna(False).astype(bool).sum()),
        }
        for metric in ACCURACIES:
            counts = group[SAMPLE_COUNTS[metric]] if SAMPLE_COUNTS[metric] in group else []
            summary = accuracy_summary(group[metric].tolist(), counts)
            record.update({f"{metric}_{key}": v for key, v in summary.items()})
        records.append(record)
    columns = ["network", "parameter", "value", "order", "is_baseline", "seeds", "diverged"] + [
        f"{metric}_{key}" for key in ("mean", "std", "low", "high", "text") for metric in ACCURACIES
    ]
    table = pd.DataFrame.from_records(records, columns=columns)
    return table.sort_values("order").drop(columns="order").reset_index(drop=True)


# --- comparisons with the baseline ----------------------------------------------------------

def sweep_pairs(plan: pd.DataFrame) -> pd.DataFrame:
    """Every sweep value's run beside its baseline's run of the same seed: ``network,
    parameter, value, seed, run_dir, baseline_run_dir`` (the baseline rows left out)."""
    sweeps = plan[plan["table"] == "sweep"]
    baselines = sweeps[sweeps["is_baseline"]][["network", "parameter", "seed", "run_dir"]]
    pairs = sweeps[~sweeps["is_baseline"]].merge(
        baselines.rename(columns={"run_dir": "baseline_run_dir"}),
        on=["network", "parameter", "seed"], how="left", validate="many_to_one",
    )
    return pairs[["network", "parameter", "value", "seed", "run_dir", "baseline_run_dir", "order"]]


def _correct(predictions: dict, split: str = "test"):
    """Per-image correctness of a run, or None for a diverged run (no predictions)."""
    predicted = predictions[f"{split}_predicted"]
    if np.any(predicted < 0):
        return None
    return predicted == predictions[f"{split}_true"]


def compare_runs(plan: pd.DataFrame, predictions: dict[str, dict]) -> pd.DataFrame:
    """The exact McNemar comparison of every sweep value with its baseline, seed by seed, on
    the shared test images (``predictions``: run folder -> its ``predictions.npz`` arrays).
    A pair with a diverged run has no comparison (NaN)."""
    records = []
    for pair in sweep_pairs(plan).itertuples(index=False):
        record = pair._asdict()
        value, base = predictions[pair.run_dir], predictions[pair.baseline_run_dir]
        if not np.array_equal(value["test_true"], base["test_true"]):
            raise ValueError(f"{pair.run_dir} and {pair.baseline_run_dir} were tested on different images")
        correct_value, correct_base = _correct(value), _correct(base)
        if correct_value is None or correct_base is None:
            record.update(n=len(value["test_true"]), p_value=math.nan, difference=math.nan,
                          low=math.nan, high=math.nan)
        else:
            record.update(compare_paired(correct_base, correct_value).as_record())
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=COMPARISON_COLUMNS)
    frame["p_holm"] = math.nan
    for _, index in frame.groupby(["network", "parameter", "seed"], sort=False).groups.items():
        frame.loc[index, "p_holm"] = holm(frame.loc[index, "p_value"])
    return frame.sort_values(["order", "seed"]).drop(columns="order").reset_index(drop=True)


COMPARISON_COLUMNS = [
    "network", "parameter", "value", "seed", "run_dir", "baseline_run_dir", "order", "n",
    "both_right", "only_b_right", "only_a_right", "both_wrong", "difference", "low", "high",
    "p_value",
]


def _difference_text(difference, low, high) -> str:
    if not np.isfinite(difference):
        return DASH
    interval = f" [{low:+.3f}, {high:+.3f}]" if np.isfinite(low) else ""
    return f"{difference:+.4f}{interval}"


def _p_text(p, significant) -> str:
    if not np.isfinite(p):
        return DASH
    return (f"{p:.3f}" if p >= 0.001 else "<0.001") + (f" {SIGNIFICANT_MARK}" if significant else "")


def read_comparisons(path) -> pd.DataFrame:
    """``comparisons.csv`` as written, its ``value`` column as text: the plan names values as
    text, and a study whose swept values are all numbers would otherwise read them back as
    floats that match none of them."""
    return pd.read_csv(path, dtype={"value": str})


def add_comparisons(summary: pd.DataFrame, comparisons: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """A sweep's summary with each value against the baseline: with one seed the exact McNemar
    test on the test images (difference with its Agresti-Min interval), with several the
    paired t-test over seeds of the test accuracies (difference with its t interval); Holm's
    correction over the sweep's values; and every seed's McNemar result (``*_seed<s>``)."""
    summary = summary.copy()
    accuracy = runs.set_index("run_dir")["test_accuracy"]
    seeds = sorted(comparisons["seed"].unique())
    rows = []
    for value in summary["value"]:
        part = comparisons[comparisons["value"] == value]
        row = {}
        if len(part) == 0:  # the baseline
            row.update(test=DASH, difference=math.nan, difference_low=math.nan,
                       difference_high=math.nan, p_value=math.nan)
        elif len(seeds) == 1:
            first = part.iloc[0]
            row.update(test="exact McNemar", difference=first["difference"], difference_low=first["low"],
                       difference_high=first["high"], p_value=first["p_value"])
        else:
            mean, low, high, p = paired_t(accuracy.reindex(part["baseline_run_dir"]).to_numpy(dtype=float),
                                          accuracy.reindex(part["run_dir"]).to_numpy(dtype=float))
            row.update(test="paired t over seeds", difference=mean, difference_low=low,
                       difference_high=high, p_value=p)
        for seed in seeds:
            one = part[part["seed"] == seed]
            for column, source in (("difference", "difference"), ("mcnemar_p", "p_value"),
                                   ("mcnemar_p_holm", "p_holm")):
                row[f"{column}_seed{seed}"] = one[source].iloc[0] if len(one) else math.nan
        rows.append(row)
    added = pd.DataFrame.from_records(rows, index=summary.index)
    added.insert(list(added.columns).index("p_value") + 1, "p_holm", holm(added["p_value"]))
    added.insert(list(added.columns).index("p_holm") + 1, "significant", added["p_holm"] < ALPHA)
    return pd.concat([summary, added], axis=1)


def _status(row) -> str:
    notes = []
    if row["is_baseline"]:
        notes.append("baseline")
    if row["diverged"]:
        notes.append(f"DIVERGED ({row['diverged']}/{row['seeds']} seeds)" if row["seeds"] > 1 else "DIVERGED")
    return ", ".join(notes)


def display_table(summary: pd.DataFrame, value_title: str) -> pd.DataFrame:
    """The human-readable version of a summary: value, accuracies, notes."""
    shown = pd.DataFrame({value_title: summary["value"]})
    for metric in ACCURACIES:
        shown[ACCURACY_HEADERS[metric]] = summary[f"{metric}_text"]
    if "p_holm" in summary:
        shown["Δ test vs baseline [95% CI]"] = [
            _difference_text(*values)
            for values in zip(summary["difference"], summary["difference_low"], summary["difference_high"])
        ]
        shown["p (Holm)"] = [_p_text(p, sig) for p, sig in zip(summary["p_holm"], summary["significant"])]
    shown["note"] = summary.apply(_status, axis=1)
    return shown


def frame_markdown(frame: pd.DataFrame) -> str:
    """A table frame as Markdown, every value as its text (the frames hold formatted text)."""
    return markdown_table(
        list(map(str, frame.columns)), [[str(v) for v in row] for row in frame.itertuples(index=False)]
    )


def study_tables(
    plan: pd.DataFrame, runs: pd.DataFrame, comparisons: pd.DataFrame
) -> dict[str, tuple[str, pd.DataFrame, pd.DataFrame]]:
    """``{name: (title, summary, display)}`` of every table the plan defines; ``comparisons``
    is :func:`compare_runs`'s table (``comparisons.csv``)."""
    tables = {}
    sweeps = summarise(plan, runs, "sweep")
    for (network, parameter), part in sweeps.groupby(["network", "parameter"], sort=False):
        title = f"{network}: {PARAMETER_TITLES[parameter]}"
        part = add_comparisons(
            part.reset_index(drop=True),
            comparisons[(comparisons["network"] == network) & (comparisons["parameter"] == parameter)],
            runs,
        )
        tables[f"sweep_{network}_{parameter}"] = (title, part, display_table(part, PARAMETER_TITLES[parameter]))
    for name, value_title, title in (
        ("headline", "run", "Headline runs"),
        ("protocols", "run / protocol", "Preprocessing protocols on the headline runs"),
        ("components", "run / components", "PCA components on the headline runs"),
        ("factorial", "setting", "Full-factorial grid"),
    ):
        part = summarise(plan, runs, name)
        if len(part):
            tables[name] = (title, part, display_table(part, value_title))
    return tables


# --- seed spread ----------------------------------------------------------------------------

SEED_SPREAD_TITLE = "Seed spread: test accuracy over seeds beside the sweeps' differences"


def seed_spread(plan: pd.DataFrame, runs: pd.DataFrame, tables: dict) -> pd.DataFrame:
    """For each network's baseline and each headline run (once: a headline run that is its
    network's baseline is that baseline's row): the test accuracy of every seed, its
    range, and beside it the largest difference from the baseline that the network's sweeps
    found (:func:`study_tables`' differences), with how many sweep values differ by more than
    the baseline's seed range and how many significantly (Holm-adjusted p < 0.05)."""
    accuracy = runs.set_index("run_dir")["test_accuracy"]
    sweeps = plan[plan["table"] == "sweep"]
    effects = {}
    for name, (_, summary, _) in tables.items():
        if name.startswith("sweep_") and "difference" in summary:
            network = summary["network"].iloc[0]
            part = summary[~summary["is_baseline"]].assign(parameter_title=PARAMETER_TITLES[summary["parameter"].iloc[0]])
            effects.setdefault(network, []).append(part)
    subjects = [
        ("baseline", network, group.drop_duplicates("run_dir"))
        for network, group in sweeps[sweeps["is_baseline"]].groupby("network", sort=False)
    ] + [
        (value, group["network"].iloc[0], group)
        for value, group in plan[plan["table"] == "headline"].groupby("value", sort=False)
    ]
    records, listed = [], set()
    for label, network, group in subjects:
        runs_of_subject = tuple(sorted(group["run_dir"]))
        if runs_of_subject in listed:  # a headline run that is its network's baseline: one row
            continue
        listed.add(runs_of_subject)
        values = accuracy.reindex(group.sort_values("seed")["run_dir"]).to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        record = {
            "run": f"{network} baseline" if label == "baseline" else label,
            "network": network,
            "seeds": len(values),
            "test_accuracies": " ".join(f"{v:.4f}" if np.isfinite(v) else "nan" for v in values),
            "diverged": int(np.sum(~np.isfinite(values))),
            "test_min": finite.min() if finite.size else math.nan,
            "test_max": finite.max() if finite.size else math.nan,
        }
        record["test_range"] = record["test_max"] - record["test_min"]
        record.update(largest_difference=math.nan, largest_difference_at="", sweep_values=math.nan,
                      beyond_seed_range=math.nan, significant=math.nan)
        part = pd.concat(effects[network], ignore_index=True) if effects.get(network) else pd.DataFrame()
        if len(part) and part["difference"].notna().any():
            largest = part.loc[part["difference"].abs().idxmax()]
            record.update(
                largest_difference=largest["difference"],
                largest_difference_at=f"{largest['parameter_title']} {largest['value']}",
                sweep_values=int(part["difference"].notna().sum()),
                beyond_seed_range=int((part["difference"].abs() > record["test_range"]).sum())
                if len(values) > 1 else math.nan,
                significant=int(part["significant"].sum()),
            )
        records.append(record)
    return pd.DataFrame.from_records(records)


def seed_spread_display(spread: pd.DataFrame) -> pd.DataFrame:
    def count(value):
        return DASH if pd.isna(value) else str(int(value))

    return pd.DataFrame({
        "run": spread["run"],
        "seeds": spread["seeds"],
        "test accuracy by seed": spread["test_accuracies"].str.replace("nan", DASH),
        "range over seeds": [
            f"{r:.4f}" if n > 1 and np.isfinite(r) else "— (one seed)" for r, n in zip(spread["test_range"], spread["seeds"])
        ],
        "largest sweep difference": [
            DASH if pd.isna(d) else f"{d:+.4f} ({at})"
            for d, at in zip(spread["largest_difference"], spread["largest_difference_at"])
        ],
        "sweep values beyond the seed range": [
            f"{count(b)} of {count(n)}" for b, n in zip(spread["beyond_seed_range"], spread["sweep_values"])
        ],
        "significant (Holm p < 0.05)": [
            f"{count(s)} of {count(n)}" for s, n in zip(spread["significant"], spread["sweep_values"])
        ],
        "note": [
            "" if not d else "DIVERGED" if n == 1 else f"DIVERGED ({d}/{n} seeds)"
            for d, n in zip(spread["diverged"], spread["seeds"])
        ],
    })
