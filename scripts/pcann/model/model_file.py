"""The model file: one trained run as a portable, pickle-free file, and predictions from it.

A model file (``results/runs/<protocol>/pca<n>/<run>/model.npz``) holds everything that turns
image files into class probabilities. It is a numpy ``.npz`` archive, readable with
``np.load(path, allow_pickle=False)``, with these entries:

``metadata``
    A 0-d string array holding JSON: ``format`` (``"pcann-model"``), ``format_version`` (1),
    ``classes`` (class names, in output order), ``read_mode`` (``color``, ``grey`` or
    ``unchanged``: the ``cv2.imread`` flags the images were read with), ``image_shape`` and
    ``image_dtype`` (what every input image must be), ``n_features``, ``n_components``,
    ``n_layers``, ``protocol`` and ``zscore_fitted_on`` (which images the z-score statistics
    come from), ``setting`` (hidden, epochs, lr, batch_size, seed, ...), ``run``,
    ``test_accuracy_reported`` (the run's ``metrics.json``) and ``test_accuracy_model_file``
    (this file on the same test images), ``data_label`` (non-empty for demo data).
``zscore_mean``, ``zscore_scale``
    ``(n_features,)`` float64: the statistics that z-scored the run's *training* data.
``pca_mean``, ``pca_components``
    ``(n_features,)`` and ``(n_components, n_features)`` float64.
``W1``, ``b1``, ... ``W{n_layers}``, ``b{n_layers}``
    float64 weights ``(n_out, n_in)`` and biases ``(n_out,)``; sigmoid hidden layers, softmax
    output.

With numpy alone, for images ``X`` of shape ``(n, *image_shape)`` read with ``read_mode``::

    f = np.load("model.npz", allow_pickle=False); meta = json.loads(str(f["metadata"]))
    z = (X.reshape(len(X), -1).astype(np.float64) - f["zscore_mean"]) / f["zscore_scale"]
    a = z @ f["pca_components"].T - f["pca_mean"] @ f["pca_components"].T
    for l in range(1, meta["n_layers"] + 1):
        a = a @ f[f"W{l}"].T + f[f"b{l}"]
        if l < meta["n_layers"]:
            a = 1 / (1 + np.exp(-a))
    p = np.exp(a - a.max(axis=1, keepdims=True)); p /= p.sum(axis=1, keepdims=True)

New images are always scaled with the training statistics stored here. Under the ``study``
protocol the run's test set was z-scored with *its own* statistics, which a single new image
cannot have, so this file's accuracy on the test images differs from the run's reported test
accuracy (both are in ``metadata``); under ``train-only`` they are the same.

:func:`load` reads a file; :meth:`Model.predict` and :meth:`Model.predict_proba` take image
paths, folders (searched recursively) or arrays. Reading images needs OpenCV; nothing else but
numpy is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pcann import PcannError
from pcann.preprocessing.features import zscore
from pcann.data.images import IMAGE_SUFFIXES, _describe, files_under, is_image_file, read_image
from pcann.nn.network import logits as network_logits
from pcann.nn.network import softmax
from pcann.preprocessing.streaming import PROJECTION_CHUNK_BYTES, chunk_rows

FORMAT = "pcann-model"
FORMAT_VERSION = 1
#: What the study protocol's scaling means for a model file; said in every prediction output.
PROTOCOL_NOTES = {
    "study": (
        "Under the study protocol the run's test set was z-scored with its own mean and std; a "
        "new image cannot have such statistics, so the model file scales every image with the "
        "training statistics, and its accuracy on the run's test images can differ from the "
        "run's reported test accuracy."
    ),
    "train-only": (
        "Under the train-only protocol the test set was scaled with the training statistics, as "
        "the model file scales every new image: its accuracy on the run's test images equals the "
        "run's reported test accuracy."
    ),
}


#: The arrays of the preprocessing, in a model file as in a ``transform.npz``.
TRANSFORM_ARRAYS = ("zscore_mean", "zscore_scale", "pca_mean", "pca_components")


class ModelError(PcannError, ValueError):
    """A model file or an input image is unusable: names the file and what was expected."""


@dataclass
class Model:
    """A loaded model file (see the module docstring for the format)."""

    metadata: dict
    zscore_mean: np.ndarray
    zscore_scale: np.ndarray
    pca_mean: np.ndarray
    pca_components: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    source: str = "<memory>"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["classes"])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata["image_shape"])

    @property
    def read_mode(self) -> str:
        return self.metadata["read_mode"]

    @property
    def protocol_note(self) -> str:
        return PROTOCOL_NOTES[self.metadata["protocol"]]

    # --- inputs ---------------------------------------------------------------------------------

    def read(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Decode image files as the training images were decoded: ``(n, *image_shape)``. A file
        that is unreadable or of another shape, channel count or sample type is a
        :class:`ModelError` naming it and what the model expects."""
        images = []
        for path in paths:
            try:
                image = read_image(Path(path), self.read_mode)
            except PcannError as exc:
                raise ModelError(str(exc)) from None
            self._check_image(image, str(path))
            images.append(image)
        return np.stack(images) if images else np.empty((0, *self.image_shape))

    def _check_image(self, image: np.ndarray, name: str) -> None:
        expected = self.image_shape
        if image.shape != expected:
            raise ModelError(
                f"{name} has shape {_describe(image.shape)} but the model {self.source} expects "
                f"{_describe(expected)} (read mode {self.read_mode}); resize or convert it"
            )
        if str(image.dtype) != self.metadata["image_dtype"]:
            raise ModelError(
                f"{name} has samples of type {image.dtype} but the model {self.source} expects "
                f"{self.metadata['image_dtype']}"
            )

    def as_images(self, inputs) -> np.ndarray:
        """``inputs`` (a path, a folder, a sequence of paths, one image array or a stack of them)
        as an array ``(n, *image_shape)``."""
        if isinstance(inputs, np.ndarray):
            if inputs.shape == self.image_shape:
                return inputs[np.newaxis]
            if inputs.shape[1:] == self.image_shape:
                return inputs
            raise ModelError(
                f"an array of shape {inputs.shape} is neither one image {self.image_shape} nor a "
                f"stack (n, {', '.join(map(str, self.image_shape))}), which the model "
                f"{self.source} expects"
            )
        return self.read(find_images(inputs))

    # --- outputs --------------------------------------------------------------------------------

    def features(self, inputs) -> np.ndarray:
        """PCA coordinates ``(n, n_components)`` of the inputs, scaled with the training
        statistics (scikit-learn's order of operations)."""
        images = self.as_images(inputs)
        flat = images.reshape(len(images), -1)
        offset = self.pca_mean @ self.pca_components.T
        out = np.empty((len(flat), len(self.pca_components)))
        # a few rows at a time, in one buffer that stays in the processor's cache: the float64
        # copy of a large test set would be gigabytes
        rows = chunk_rows(flat.shape[1], PROJECTION_CHUNK_BYTES)
        buffer = np.empty((min(rows, len(flat)), flat.shape[1]))
        for start in range(0, len(flat), rows):
            block = flat[start : start + rows]
            z = zscore(block, self.zscore_mean, self.zscore_scale, out=buffer[: len(block)])
            out[start : start + rows] = z @ self.pca_components.T - offset
        return out

    def logits(self, inputs) -> np.ndarray:
        """``(n, n_classes)`` pre-softmax outputs, computed as the workflow's network does."""
        biases = [b.reshape(-1, 1) for b in self.biases]
        return network_logits(self.weights, biases, self.features(inputs).T).T

    def predict_proba(self, inputs) -> np.ndarray:
        """``(n, n_classes)`` class probabilities, columns in :attr:`classes` order."""
        return softmax(self.logits(inputs), axis=1)

    def predict(self, inputs) -> np.ndarray:
        """The most probable class name of each input."""
        return np.asarray(self.classes)[np.argmax(self.logits(inputs), axis=1)]

    # --- the file -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the model file atomically (no pickle)."""
        from pcann.io import save_npz

        arrays = {
            "metadata": np.asarray(json.dumps(self.metadata, sort_keys=True)),
            **{name: getattr(self, name) for name in TRANSFORM_ARRAYS},
        }
        for l, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
            arrays[f"W{l}"], arrays[f"b{l}"] = W, b.reshape(-1)
        save_npz(path, **arrays)


def load(path: str | os.PathLike) -> Model:
    """Read a model file; a missing, foreign or newer-format file is a :class:`ModelError`."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ModelError(
            f"model file {path} {what}; expected a pcann model file "
            "(results/runs/<protocol>/pca<n>/<run>/model.npz, made by the workflow)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        metadata = json.loads(str(arrays["metadata"]))
    except Exception as exc:  # not a zip, no metadata, not JSON, pickled arrays
        raise ModelError(f"{path} is not a pcann model file ({type(exc).__name__}: {exc})") from None
    if metadata.get("format") != FORMAT:
        raise ModelError(f"{path} is not a pcann model file (format {metadata.get('format')!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path} has model format version {metadata.get('format_version')}; this pcann "
            f"reads version {FORMAT_VERSION}"
        )
    layers = range(1, metadata["n_layers"] + 1)
    return Model(
        metadata=metadata,
        **{name: arrays[name] for name in TRANSFORM_ARRAYS},
        weights=[arrays[f"W{l}"] for l in layers],
        biases=[arrays[f"b{l}"] for l in layers],
        source=str(path),
    )


def find_images(inputs) -> list[Path]:
    """The image files of ``inputs``: a file, a folder (searched recursively, any layout, in
    sorted order, hidden entries skipped) or a sequence of them. A missing path, a file that is
    not an image, or nothing found at all is a :class:`ModelError`."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images = [p for p in files_under(item) if is_image_file(p)]
            if not images:
                raise ModelError(
                    f"{item} contains no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            found += images
        elif item.is_file():
            if not is_image_file(item):
                raise ModelError(
                    f"{item} is not an image file (expected one of {', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            found.append(item)
        else:
            raise ModelError(f"{item} does not exist; expected an image file or a folder of images")
    if not found:
        raise ModelError("no image files or folders were given")
    return found


def true_classes(paths: Iterable[Path], root: Path, classes: Sequence[str]) -> list[str | None]:
    """The class of each image under ``root`` whose first folder below ``root`` is named like a
    training class (``root/<class>/.../<image>``); ``None`` for the others."""
    known = set(classes)
    labels = []
    for path in paths:
        parts = Path(path).relative_to(root).parts
        labels.append(parts[0] if len(parts) > 1 and parts[0] in known else None)
    return labels


def export_model(
    *, weights_path, transform_path, metrics_path, read_mode: str, run: str, data_label: str = ""
) -> Model:
    """A :class:`Model` from a run's ``weights.npz`` and ``metrics.json`` and the
    ``transform.npz`` of its protocol and component count."""
    from pcann.io import load_npz
    from pcann.nn.weights_file import load_network

    network, _ = load_network(weights_path)
    transform = load_npz(transform_path)
    metrics = json.loads(Path(metrics_path).read_text())
    setting_keys = ("hidden", "epochs", "lr", "batch_size", "seed", "n_layers", "lr_schedule",
                    "lr_decay_rate", "lr_decay_every", "eval_every", "dtype", "exp_backend")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": [str(c) for c in transform["classes"]],
        "read_mode": read_mode,
        "image_shape": [int(s) for s in transform["image_shape"]],
        "image_dtype": str(transform["image_dtype"]),
        "n_features": int(transform["zscore_mean"].size),
        "n_components": int(transform["pca_components"].shape[0]),
        "n_layers": len(network.weights),
        "protocol": str(transform["protocol"]),
        "zscore_fitted_on": str(transform["zscore_fitted_on"]),
        "setting": {key: metrics[key] for key in setting_keys if key in metrics},
        "run": run,
        "diverged": bool(metrics["diverged"]),
        "test_accuracy_reported": metrics["test_accuracy"],
        "test_accuracy_model_file": None,
        "data_label": data_label,
    }
    return Model(
        metadata=metadata,
        **{name: transform[name] for name in TRANSFORM_ARRAYS},
        weights=[np.asarray(W, dtype=np.float64) for W in network.weights],
        biases=[np.asarray(b, dtype=np.float64).reshape(-1) for b in network.biases],
        source=str(weights_path),
    )
