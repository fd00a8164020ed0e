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

from pcann.results.evaluation import (
    accuracy,
    accuracy_text,
    evaluation_markdown,
    labelled_report,
    per_class_scores,
    prediction_rows,
    save_rows_csv,
)
from pcann.data.images import IMAGE_SUFFIXES, SYSTEM_FILES, files_under, is_image_file
from pcann.io import save_json, save_text
from pcann.model.model_file import Model, ModelError, find_images, load, true_classes


@dataclass
class PredictFiles:
    """The files of a folder to classify: its images, and the other files with the reason each
    is left out (hidden and system files are not listed)."""

    folder: Path
    images: list[Path]
    not_images: list[tuple[Path, str]]


def list_predict_files(folder: str | os.PathLike, key: str = "folder") -> PredictFiles:
    """Every file under ``folder`` (any layout, sorted), or the one image file ``folder`` names;
    a missing folder, or one with no image at all, is a :class:`ModelError` naming ``key``."""
    folder = Path(folder)
    if folder.is_file():
        return PredictFiles(folder.parent, find_images(folder), [])
    if not folder.is_dir():
        raise ModelError(f"{key}: {folder} does not exist; expected a folder of images or an image file")
    files = [p for p in files_under(folder) if p.name.lower() not in SYSTEM_FILES]
    images = [p for p in files if is_image_file(p)]
    if not images:
        raise ModelError(
            f"{key}: {folder} contains no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    expected = ", ".join(sorted(IMAGE_SUFFIXES))
    not_images = [(p, f"not an image file (expected one of {expected})") for p in files if not is_image_file(p)]
    return PredictFiles(folder, images, not_images)


def check_images_readable(files: PredictFiles, model_paths: Sequence[str | os.PathLike]) -> None:
    """Raise a :class:`ModelError` for the first file that a strict prediction would reject,
    checked against the first of ``model_paths`` that exists (none: nothing to check against)."""
    existing = [p for p in model_paths if Path(p).is_file()]
    if not existing:
        return
    advice = "; remove it, or leave predict_strict false to list it in rejected.csv and classify the rest"
    if files.not_images:
        path, reason = files.not_images[0]
        raise ModelError(f"{path} is {reason}{advice}")
    model = load(existing[0])
    for path in files.images:
        try:
            model.read([path])
        except ModelError as exc:
            raise ModelError(f"{exc}{advice}") from None


@dataclass
class Classified:
    """Images classified by one model: names as given or relative to their folder."""

    names: list[str]
    probabilities: np.ndarray  # (n, n_classes)
    true: list[str | None]  # the class folder an image sits in, when named like a class
    rejected: list[tuple[str, str]] = ()  # files left out, as (name, reason)

    def predicted(self, classes: Sequence[str]) -> list[str]:
        return [classes[k] for k in np.argmax(self.probabilities, axis=1)]


def classify(model: Model, inputs: Sequence[str | os.PathLike], strict: bool = True) -> Classified:
    """Classify every image of ``inputs`` (files, or folders of any layout); an image under a
    given folder whose first sub-folder is named like a training class counts as labelled.

    ``strict``: a file that is not an image or cannot be read as the model's images is a
    :class:`ModelError`; otherwise it is left out and listed in :attr:`Classified.rejected`."""
    names, paths, true, rejected = [], [], [], []
    for item in map(Path, inputs):
        if item.is_dir():
            files = list_predict_files(item, str(item))
            if strict and files.not_images:
                path, reason = files.not_images[0]
                raise ModelError(f"{path} is {reason}")
            rejected += [(str(p.relative_to(item)), reason) for p, reason in files.not_images]
            found = files.images
            names += [str(p.relative_to(item)) for p in found]
            true += true_classes(found, item, model.classes)
        else:
            found = find_images(item)
            names.append(str(item))
            true.append(None)
        paths += found
    images, kept = [], []
    for index, path in enumerate(paths):
        try:
            images.append(model.read([path])[0])
            kept.append(index)
        except ModelError as exc:
            if strict:
                raise
            rejected.append((names[index], str(exc)))
    if not kept:
        probabilities = np.empty((0, len(model.classes)))
    else:
        probabilities = model.predict_proba(np.stack(images))
    return Classified([names[i] for i in kept], probabilities, [true[i] for i in kept], rejected)


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
        "n_rejected": len(result.rejected),
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
                  source: str = "", rejected=None) -> dict:
    """Write the predictions CSV and, if asked, the rejected files' CSV, the Markdown page and
    the JSON record."""
    classes = model.classes
    save_rows_csv(predictions, *prediction_rows(result.names, result.probabilities, classes, result.true))
    if rejected:
        save_rows_csv(rejected, ["file", "reason"], [list(row) for row in result.rejected])
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
        if result.rejected:
            lines += [f"{len(result.rejected)} files were left out: not images, unreadable, or not of "
                      "the model's shape or sample type (each with its reason in `rejected.csv`).", ""]
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

