"""Rule evaluate_run: a run's test predictions per image, its confusion matrix and per-class
precision and recall (tables and figure), and a gallery of misclassified test images."""

import json

import numpy as np

from pcann.data.images import load_saved_dataset
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
from pcann.preprocessing.features import load_features
from pcann.io import save_text
from pcann.model.model_file import load as load_model
from pcann.nn.network import softmax
from pcann.nn.weights_file import load_network
from pcann.results.plots import confusion_figure, misclassified_figure, note_figure, save_figure
from pcann.workflow.rule import run_rule


def main(smk):
    features, data_label = load_features(smk.input.features)
    _, test, _ = load_saved_dataset(smk.input.images, splits=["test"], mmap=True)
    metrics = json.loads(open(smk.input.metrics).read())
    model = load_model(smk.input.model)
    classes = features.classes
    network, _ = load_network(smk.input.weights)
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


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
