"""Rule study_figures: sweep figures, learning-rate curves, headline runs and comparisons."""

import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from pcann.features import load_features
from pcann.grid import study_plan
from pcann.weights_file import load_network
from pcann.plots import (
    comparison_figure,
    curves_figure,
    decision_regions_figure,
    lr_comparison_figure,
    note_figure,
    save_figure,
    sweep_accuracy_figure,
)
from pcann.rule import run_rule
from pcann.tables import PARAMETER_TITLES, plan_frame, study_tables


def _pair(paths, stem):
    """The PNG and SVG paths among ``paths`` whose file stem is ``stem``."""
    return sorted((p for p in paths if Path(p).stem == stem), key=lambda p: not p.endswith(".png"))


def main(smk):
    label = smk.params.data_label
    rows = study_plan(smk.params.study)
    plan = plan_frame(rows)
    runs = pd.read_csv(smk.input.runs)
    tables = study_tables(plan, runs)
    outputs = [str(p) for p in smk.output]

    for network in dict.fromkeys(r.network for r in rows if r.study == "sweep"):
        summaries = {
            PARAMETER_TITLES[parameter]: tables[f"sweep_{network}_{parameter}"][1]
            for parameter in PARAMETER_TITLES
            if f"sweep_{network}_{parameter}" in tables
        }
        save_figure(
            sweep_accuracy_figure(summaries, f"{network}: accuracy by swept value", label),
            *_pair(outputs, f"{network}_accuracy"),
        )
        lr_rows = [r for r in rows if r.study == "sweep" and r.network == network and r.parameter == "lr"]
        if lr_rows and _pair(outputs, f"{network}_lr_curves"):
            first_seed = lr_rows[0].setting.seed
            histories = {
                r.value: pd.read_csv(f"{r.setting.run_dir}/history.csv")
                for r in lr_rows
                if r.setting.seed == first_seed
            }
            save_figure(
                lr_comparison_figure(histories, f"{network}: learning rates (seed {first_seed})", label),
                *_pair(outputs, f"{network}_lr_curves"),
            )

    headline = [r for r in rows if r.study == "headline"]
    for index, row in enumerate(headline, 1):
        setting = row.setting
        run = Path(setting.run_dir)
        metrics = json.loads((run / "metrics.json").read_text())
        features, _ = load_features(
            f"results/features/{setting.protocol}/pca{setting.n_components}/features.npz"
        )
        title = f"{row.value}: {run.name}"
        stem = f"{index}_{row.network}"
        save_figure(
            curves_figure(pd.read_csv(run / "history.csv"), title, label, metrics["diverged_epoch"]),
            *_pair(outputs, f"{stem}_curves"),
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
        save_figure(figure, *_pair(outputs, f"{stem}_decision_regions"))

    for name, title in (("protocols", "Preprocessing protocol"), ("components", "Number of PCA components")):
        if name in tables and _pair(outputs, name):
            save_figure(comparison_figure(tables[name][1], title, label), *_pair(outputs, name))


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
