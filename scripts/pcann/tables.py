"""The study's tables: collect every run's metrics and arrange them as the study presents them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


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


def plan_frame(records: list[dict]) -> pd.DataFrame:
    """The study plan's rows (:meth:`pcann.plan.StudyPlan.records`) as a frame, in plan order."""
    frame = pd.DataFrame.from_records(records)
    frame["order"] = np.arange(len(frame))
    return frame[["study", "network", "parameter", "value", "is_baseline", "run_dir", "seed", "order"]]


def _mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def summarise(plan: pd.DataFrame, runs: pd.DataFrame, study: str) -> pd.DataFrame:
    """Rows of ``study`` with accuracies as mean ± std over seeds, diverged runs marked."""
    rows = plan[plan["study"] == study].merge(
        runs.drop(columns=["seed"]), on="run_dir", how="left", validate="many_to_one"
    )
    grouped = rows.groupby(["network", "parameter", "value"], sort=False)
    table = grouped.agg(
        order=("order", "min"),
        is_baseline=("is_baseline", "any"),
        seeds=("seed", "nunique"),
        diverged=("diverged", lambda d: int(d.fillna(False).astype(bool).sum())),
        **{f"{metric}_mean": (metric, "mean") for metric in ACCURACIES},
        **{f"{metric}_std": (metric, lambda v: v.std(ddof=1) if v.notna().sum() > 1 else np.nan)
           for metric in ACCURACIES},
        **{f"{metric}_text": (metric, _mean_std) for metric in ACCURACIES},
    )
    table = table.reset_index().sort_values("order").drop(columns="order").reset_index(drop=True)
    return table


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
    shown["note"] = summary.apply(_status, axis=1)
    return shown


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency such as tabulate)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def study_tables(plan: pd.DataFrame, runs: pd.DataFrame) -> dict[str, tuple[str, pd.DataFrame, pd.DataFrame]]:
    """``{name: (title, summary, display)}`` of every table the plan defines."""
    tables = {}
    sweeps = summarise(plan, runs, "sweep")
    for (network, parameter), part in sweeps.groupby(["network", "parameter"], sort=False):
        title = f"{network}: {PARAMETER_TITLES[parameter]}"
        part = part.reset_index(drop=True)
        tables[f"sweep_{network}_{parameter}"] = (title, part, display_table(part, PARAMETER_TITLES[parameter]))
    for study, value_title, title in (
        ("headline", "run", "Headline runs"),
        ("protocols", "run / protocol", "Preprocessing protocols on the headline runs"),
        ("components", "run / components", "PCA components on the headline runs"),
        ("factorial", "setting", "Full-factorial grid"),
    ):
        part = summarise(plan, runs, study)
        if len(part):
            tables[study] = (title, part, display_table(part, value_title))
    return tables
