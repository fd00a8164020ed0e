"""How a classifier did, class by class: confusion matrix, precision and recall, and the files
that record them (numpy only, no pandas or scikit-learn: per-run jobs import this)."""

from __future__ import annotations

import csv
import io
import os
from typing import Sequence

import numpy as np

from pcann.io import save_text
from pcann.results.markdown import markdown_table


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts: row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class from a confusion matrix; a class never
    predicted (or never present) scores 0 where the ratio is undefined."""
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def gallery_picks(y_true, y_pred, limit: int) -> tuple[np.ndarray, int]:
    """``(rows, n_wrong)``: up to ``limit`` misclassified rows, taken in turn from each true
    class (in row order within a class), so that a gallery shows every class's mistakes."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    by_class = [wrong[y_true[wrong] == k] for k in np.unique(y_true[wrong])]
    rounds = max((len(rows) for rows in by_class), default=0)
    order = [rows[i] for i in range(rounds) for rows in by_class if i < len(rows)]
    return np.asarray(order[:limit], dtype=np.int64), len(wrong)


def accuracy(matrix: np.ndarray) -> float:
    total = int(np.sum(matrix))
    return float(np.trace(matrix) / total) if total else float("nan")


def accuracy_text(value) -> str:
    """An accuracy as text: four decimals, or a dash where there is none (a diverged run)."""
    return "—" if value is None else f"{value:.4f}"


def confusion_rows(matrix: np.ndarray, classes: Sequence[str]) -> tuple[list[str], list[list]]:
    """Header and rows of the confusion matrix as a table (true class down, predicted across)."""
    header = ["true \\ predicted", *classes]
    return header, [[name, *map(int, row)] for name, row in zip(classes, matrix)]


def per_class_rows(matrix: np.ndarray, classes: Sequence[str]) -> tuple[list[str], list[list]]:
    scores = per_class_scores(matrix)
    header = ["class", "precision", "recall", "f1", "support"]
    rows = [
        [name, float(scores["precision"][i]), float(scores["recall"][i]), float(scores["f1"][i]),
         int(scores["support"][i])]
        for i, name in enumerate(classes)
    ]
    return header, rows


def save_rows_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Write a table as CSV atomically (quoted where needed; floats as ``%.10g``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["%.10g" % v if isinstance(v, (float, np.floating)) else v for v in row])
    save_text(path, buffer.getvalue())


def load_rows_csv(path: str | os.PathLike) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def prediction_rows(
    names: Sequence[str], probabilities: np.ndarray, classes: Sequence[str],
    true: Sequence[str | None] | None = None,
) -> tuple[list[str], list[list]]:
    """One row per image: its name, true class (empty when unknown), predicted class and one
    probability column per class (``p_<class>``)."""
    predicted = np.argmax(probabilities, axis=1)
    true = [None] * len(names) if true is None else true
    header = ["image", "true_class", "predicted_class", *(f"p_{c}" for c in classes)]
    rows = [
        [name, label or "", classes[k], *map(float, p)]
        for name, label, k, p in zip(names, true, predicted, probabilities)
    ]
    return header, rows


def labelled_report(true: Sequence[str | None], predicted: Sequence[str], classes: Sequence[str]):
    """``(matrix, n_labelled)`` over the images whose true class is known; ``None`` if none is."""
    index = {name: i for i, name in enumerate(classes)}
    pairs = [(index[t], index[p]) for t, p in zip(true, predicted) if t is not None]
    if not pairs:
        return None, 0
    y_true, y_pred = zip(*pairs)
    return confusion_matrix(y_true, y_pred, len(classes)), len(pairs)


def evaluation_markdown(title: str, matrix: np.ndarray | None, classes: Sequence[str],
                        lines: Sequence[str] = ()) -> str:
    """A Markdown page: ``lines`` of text, then accuracy, confusion matrix and per-class table."""
    parts = [f"# {title}", "", *lines, ""]
    if matrix is not None:
        parts += [f"Accuracy: **{accuracy(matrix):.4f}** ({int(np.trace(matrix))} of "
                  f"{int(matrix.sum())} images).", "", "Confusion matrix (rows: true class; "
                  "columns: predicted class):", "", markdown_table(*confusion_rows(matrix, classes)),
                  "Per class:", "", markdown_table(*per_class_rows(matrix, classes))]
    return "\n".join(parts)


def write_rows(path, header, rows) -> None:
    """CSV, or Markdown when ``path`` ends in ``.md``."""
    if str(path).endswith(".md"):
        save_text(path, markdown_table(header, rows))
    else:
        save_rows_csv(path, header, rows)

