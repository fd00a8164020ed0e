"""Classify image files with a model file and record the result: the predictions table, and,
where images sit in class folders named like the training classes, accuracy, confusion matrix
and per-class precision and recall. Used by the workflow's ``predict`` target and by
``scripts/predict.py``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .evaluation import (
    accuracy,
    accuracy_text,
    evaluation_markdown,
    labelled_report,
    per_class_scores,
    prediction_rows,
    save_rows_csv,
)
from .io import save_json, save_text
from .model import Model, find_images, true_classes


@dataclass
class Classified:
    """Images classified by one model: names as given or relative to their folder."""

    names: list[str]
    probabilities: np.ndarray  # (n, n_classes)
    true: list[str | None]  # the class folder an image sits in, when named like a class

    def predicted(self, classes: Sequence[str]) -> list[str]:
        return [classes[k] for k in np.argmax(self.probabilities, axis=1)]


def classify(model: Model, inputs: Sequence[str | os.PathLike]) -> Classified:
    """Classify every image of ``inputs`` (files, or folders of any layout); an image under a
    given folder whose first sub-folder is named like a training class counts as labelled."""
    names, paths, true = [], [], []
    for item in map(Path, inputs):
        found = find_images(item)
        paths += found
        if item.is_dir():
            names += [str(p.relative_to(item)) for p in found]
            true += true_classes(found, item, model.classes)
        else:
            names.append(str(item))
            true.append(None)
    return Classified(names, model.predict_proba(paths), true)


def summary(model: Model, result: Classified) -> dict:
    """Accuracy, confusion matrix and per-class scores over the labelled images (JSON-ready)."""
    classes = model.classes
    matrix, n_labelled = labelled_report(result.true, result.predicted(classes), classes)
    record = {
        "model": model.source,
        "run": model.metadata.get("run"),
        "protocol": model.metadata["protocol"],
        "protocol_note": model.protocol_note,
        "test_accuracy_reported": model.metadata.get("test_accuracy_reported"),
        "test_accuracy_model_file": model.metadata.get("test_accuracy_model_file"),
        "n_images": len(result.names),
        "n_labelled": n_labelled,
        "classes": list(classes),
    }
    if matrix is not None:
        scores = per_class_scores(matrix)
        record.update(
            accuracy=accuracy(matrix),
            confusion_matrix=matrix.tolist(),
            per_class={key: values.tolist() for key, values in scores.items()},
        )
    return record


def write_outputs(model: Model, result: Classified, predictions, markdown=None, metrics=None,
                  source: str = "") -> dict:
    """Write the predictions CSV and, if asked, the Markdown page and JSON record."""
    classes = model.classes
    save_rows_csv(predictions, *prediction_rows(result.names, result.probabilities, classes, result.true))
    record = summary(model, result)
    if metrics:
        save_json(metrics, record)
    if markdown:
        matrix = np.asarray(record["confusion_matrix"]) if "confusion_matrix" in record else None
        lines = [
            f"{record['n_images']} images{f' under `{source}`' if source else ''}, classified with "
            f"`{model.source}` (run `{record['run']}`, protocol `{record['protocol']}`).",
            "",
            f"**Scaling.** Every image is z-scored with the training statistics stored in the model "
            f"file ({model.metadata['zscore_fitted_on']}). {model.protocol_note} For this run: "
            f"test accuracy {accuracy_text(record['test_accuracy_reported'])} reported, "
            f"{accuracy_text(record['test_accuracy_model_file'])} through the model file.",
            "",
        ]
        if matrix is None:
            lines.append("No image sits in a class folder named like a training class "
                         f"({', '.join(classes)}): no accuracy.")
        else:
            lines.append(f"{record['n_labelled']} of {record['n_images']} images sit in class "
                         "folders named like the training classes; the tables below are over them.")
        if model.metadata.get("data_label"):
            lines.append(f"\n**{model.metadata['data_label']}**: this model was trained on demo data.")
        save_text(markdown, evaluation_markdown("Predictions", matrix, classes, lines))
    return record

