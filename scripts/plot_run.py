"""Rule plot_run: the learning curves and decision regions of one training run."""

import json
from functools import partial

import numpy as np

from pcann.preprocessing.features import load_features
from pcann.io import load_columns_csv
from pcann.nn.weights_file import load_network
from pcann.results.plots import curves_figure, decision_regions_figure, note_figure, save_figure
from pcann.workflow.rule import run_rule


def main(smk):
    features, data_label = load_features(smk.input.features)
    label = data_label or None
    metrics = json.loads(open(smk.input.metrics).read())
    history = load_columns_csv(smk.input.history)
    run = smk.wildcards
    title = (
        f"hidden {run.hidden.replace('-', ', ')} | {run.epochs} epochs | lr {run.lr} | "
        f"batch {run.batch_size} | seed {run.seed} | {run.protocol}"
    )
    save_figure(curves_figure(history, title, label, metrics["diverged_epoch"]), *smk.output.curves)
    if features.n_components != 2:
        figure = note_figure(
            f"Decision regions are drawn over the 2-D PCA plane; this run uses "
            f"{features.n_components} components.",
            title,
        )
    elif metrics["diverged"]:
        figure = note_figure(f"The run diverged at epoch {metrics['diverged_epoch']}: no regions.", title)
    else:
        network, _ = load_network(smk.input.weights)
        show_train = smk.params.plot_training_points
        figure = decision_regions_figure(
            partial(network.predict, dtype=np.float32), features.X_test, features.y_test, features.classes,
            f"{title}\ntest accuracy {metrics['test_accuracy']:.4f}", label,
            X_train=features.X_train if show_train else None,
            y_train=features.y_train if show_train else None,
        )
    save_figure(figure, *smk.output.regions)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
