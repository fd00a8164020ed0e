"""Rule run_outputs: everything a reader gets of one trained run beyond its metrics, in one
process: its learning curves and decision regions, its portable model file (see
pcann.model.model_file for the format), and its test-set evaluation (per-image predictions,
confusion matrix, per-class precision and recall, a gallery of misclassified test images).

One job instead of three: each was a fresh Python process importing numpy, matplotlib and the
library to draw or write a few files, which cost more than the work itself."""

import json
import logging
from functools import partial

import numpy as np

from pcann.data.images import load_saved_dataset
from pcann.io import load_columns_csv, save_text
from pcann.model.model_file import export_model
from pcann.model.model_file import load as load_model
from pcann.nn.network import softmax
from pcann.nn.weights_file import load_network
from pcann.preprocessing.features import load_features
from pcann.results.evaluation import (
    accuracy_text,
    confusion_matrix,
    confusion_rows,
    evaluation_markdown,
    gallery_picks,
    per_class_rows,
    prediction_rows,
    save_rows_csv,
)
from pcann.results.plots import (
    confusion_figure,
    curves_figure,
    decision_regions_figure,
    misclassified_figure,
    note_figure,
    save_figure,
)
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.run_outputs")


def draw_run(smk, features, data_label, metrics, network):
    """The learning curves and the decision regions over the 2-D PCA plane."""
    label = data_label or None
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
        show_train = smk.params.plot_training_points
        figure = decision_regions_figure(
            partial(network.predict, dtype=np.float32), features.X_test, features.y_test, features.classes,
            f"{title}\ntest accuracy {metrics['test_accuracy']:.4f}", label,
            X_train=features.X_train if show_train else None,
            y_train=features.y_train if show_train else None,
        )
    save_figure(figure, *smk.output.regions)


def write_model_file(smk, test, data_label):
    model = export_model(
        weights_path=smk.input.weights, transform_path=smk.input.transform,
        metrics_path=smk.input.metrics, read_mode=smk.params.read_mode, run=smk.params.run,
        data_label=data_label,
    )
    # the same test images, through the model file: what a user of the file would measure
    predicted = np.argmax(model.logits(test.X.reshape(len(test.y), *test.image_shape)), axis=1)
    model.metadata["test_accuracy_model_file"] = (
        None if model.metadata["diverged"] else float(np.mean(predicted == test.y))
    )
    logger.info(
        "%s: test accuracy %s reported by the run, %s through the model file (protocol %s)",
        smk.params.run, model.metadata["test_accuracy_reported"],
        model.metadata["test_accuracy_model_file"], model.metadata["protocol"],
    )
    model.save(smk.output.model)


def evaluate(smk, features, data_label, test, metrics, network):
    # the model file as written, as a user of it reads it
    model = load_model(smk.output.model)
    classes = features.classes
    # the run's own test predictions: the features and network its metrics.json was scored on
    probabilities = softmax(network.logits(features.X_test), axis=0).T
    predicted = np.argmax(probabilities, axis=1)
    true_names = [classes[k] for k in features.y_test]
    save_rows_csv(smk.output.predictions,
                  *prediction_rows(list(test.files), probabilities, classes, true_names))
    matrix = confusion_matrix(features.y_test, predicted, len(classes))
    save_rows_csv(smk.output.confusion, *confusion_rows(matrix, classes))
    save_rows_csv(smk.output.per_class, *per_class_rows(matrix, classes))
    run = smk.params.run
    lines = [
        f"Run `{run}`, protocol `{features.protocol}`: test set, {len(predicted)} images, "
        "as the workflow scored it.",
        "",
        f"- Reported test accuracy (metrics.json): {accuracy_text(metrics['test_accuracy'])}.",
        f"- Model file on the same test images: {accuracy_text(model.metadata['test_accuracy_model_file'])}.",
        f"- {model.protocol_note}",
    ]
    if metrics["diverged"]:
        lines.append(f"- The run DIVERGED at epoch {metrics['diverged_epoch']}: its predictions "
                     "are meaningless.")
    if data_label:
        lines.append(f"- **{data_label}**")
    save_text(smk.output.markdown, evaluation_markdown(f"Evaluation of {run}", matrix, classes, lines))
    title = f"{run}"
    label = data_label or None
    if metrics["diverged"]:
        note = f"The run diverged at epoch {metrics['diverged_epoch']}: no confusion matrix."
        save_figure(note_figure(note, title), *smk.output.confusion_figure)
        save_figure(note_figure(note, title), *smk.output.misclassified_figure)
        return
    save_figure(confusion_figure(matrix, classes, title, label), *smk.output.confusion_figure)
    shown, n_wrong = gallery_picks(features.y_test, predicted, smk.params.gallery_limit)
    images = test.X[shown].reshape(len(shown), *test.image_shape)
    gallery = misclassified_figure(
        images, [classes[features.y_test[i]] for i in shown], [classes[predicted[i]] for i in shown],
        n_wrong, title, label,
    )
    save_figure(gallery, *smk.output.misclassified_figure)


def main(smk):
    features, data_label = load_features(smk.input.features)
    metrics = json.loads(open(smk.input.metrics).read())
    network, _ = load_network(smk.input.weights)
    _, test, images_label = load_saved_dataset(smk.input.images, splits=["test"], mmap=True)
    draw_run(smk, features, data_label, metrics, network)
    write_model_file(smk, test, images_label)
    evaluate(smk, features, data_label, test, metrics, network)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
