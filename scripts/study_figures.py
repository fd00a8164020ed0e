"""Rule study_figures: sweep figures, learning-rate curves, headline runs and comparisons.

Every figure arrives with its files through ``params`` (from the study plan), the same files the
rule declares as outputs.
"""

import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from pcann.preprocessing.features import load_features
from pcann.study.plan import COMPARISONS
from pcann.results.plots import (
    comparison_figure,
    curves_figure,
    decision_regions_figure,
    lr_comparison_figure,
    note_figure,
    save_figure,
    seed_spread_figure,
    sweep_accuracy_figure,
)
from pcann.workflow.rule import run_rule
from pcann.results.tables import (
    PARAMETER_TITLES,
    SEED_SPREAD_TITLE,
    plan_frame,
    read_comparisons,
    read_plan,
    seed_spread,
    study_tables,
)
from pcann.nn.weights_file import load_network


def main(smk):
    label = smk.params.data_label
    runs = pd.read_csv(smk.input.runs)
    plan = plan_frame(read_plan(smk.input.plan))
    tables = study_tables(plan, runs, read_comparisons(smk.input.comparisons))

    for network, files in smk.params.sweep_figures.items():
        summaries = {
            PARAMETER_TITLES[parameter]: tables[f"sweep_{network}_{parameter}"][1]
            for parameter in PARAMETER_TITLES
            if f"sweep_{network}_{parameter}" in tables
        }
        save_figure(sweep_accuracy_figure(summaries, f"{network}: accuracy by swept value", label), *files)

    for network, figure in smk.params.lr_figures.items():
        histories = {value: pd.read_csv(path) for value, path in figure["histories"].items()}
        title = f"{network}: learning rates (seed {figure['seed']})"
        save_figure(lr_comparison_figure(histories, title, label), *figure["files"])

    for headline in smk.params.headline_figures:
        run = Path(headline["run_dir"])
        metrics = json.loads((run / "metrics.json").read_text())
        features, _ = load_features(headline["features"])
        title = f"{headline['title']}: {run.name}"
        seed_histories = [pd.read_csv(path) for path in headline["seed_histories"]]
        save_figure(
            curves_figure(pd.read_csv(run / "history.csv"), title, label, metrics["diverged_epoch"],
                          seed_histories),
            *headline["curves"],
        )
        if metrics["diverged"] or features.n_components != 2:
            figure = note_figure("No decision regions: the run diverged or its features are not 2-D.", title)
        else:
            show_train = smk.params.plot_training_points
            figure = decision_regions_figure(
                partial(load_network(run / "weights.npz")[0].predict, dtype=np.float32),
                features.X_test, features.y_test, features.classes,
                f"{title}\ntest accuracy {metrics['test_accuracy']:.4f}", label,
                X_train=features.X_train if show_train else None,
                y_train=features.y_train if show_train else None,
            )
        save_figure(figure, *headline["regions"])

    for name, files in smk.params.comparison_figures.items():
        save_figure(comparison_figure(tables[name][1], COMPARISONS[name], label), *files)

    differences = {}
    for name, (_, summary, _) in tables.items():
        if name.startswith("sweep_"):
            rows = summary[~summary["is_baseline"] & summary["difference"].notna()]
            rows = rows.assign(label=[f"{PARAMETER_TITLES[p]} {v}" for p, v in zip(rows["parameter"], rows["value"])])
            if len(rows):
                network = rows["network"].iloc[0]
                differences[network] = pd.concat([differences.get(network), rows])
    save_figure(
        seed_spread_figure(seed_spread(plan, runs, tables), differences, SEED_SPREAD_TITLE, label),
        *smk.params.seed_spread_figure,
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
