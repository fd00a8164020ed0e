"""The ``weights.npz`` file of a fitted network: a pickle-free ``.npz``, written atomically.

Arrays: ``W1``, ``b1``, ... (the study's layout, float64); ``params_json`` (the training options,
JSON); ``classes``; ``n_features_in``; ``n_layers``; the training record (``diverged``,
``diverged_epoch`` (-1 for none), ``n_epochs_run``, ``n_steps``, ``fit_seconds``, one
``history_<column>`` array per history column); and, for a longer run to continue this one
(:func:`pcann.nn.training.train_network`), the random stream's state (``rng_keys``,
``rng_position``, ``rng_has_gauss``, ``rng_cached_gaussian``) and ``trajectory_key``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pcann.io import load_npz, save_npz
from pcann.nn.sgd import HISTORY_KEYS, TrainingResult
from pcann.nn.training import FittedNetwork, jsonable


def save_network(path, network: FittedNetwork, *, params: dict, classes, n_features_in: int) -> None:
    """Write a fitted network to ``path`` (``.npz``, no pickle), atomically: the parameters (as
    JSON), the class labels, weights and biases, and the training record."""
    classes = np.asarray(classes)
    if classes.dtype == object:
        classes = classes.astype(str)
    result = network.result
    arrays = {
        "params_json": np.array(json.dumps(jsonable(params))),
        "classes": classes,
        "n_features_in": np.array(n_features_in),
        "n_layers": np.array(len(network.weights)),
        "diverged": np.array(result.diverged),
        "diverged_epoch": np.array(-1 if result.diverged_epoch is None else result.diverged_epoch),
        "n_epochs_run": np.array(result.n_epochs_run),
        "n_steps": np.array(result.n_steps),
        "fit_seconds": np.array(result.seconds),
    }
    if result.rng_state is not None:  # what a longer run needs to continue this one
        name, keys, position, has_gauss, cached_gaussian = result.rng_state
        arrays.update(
            rng_keys=np.asarray(keys, dtype=np.uint32),
            rng_position=np.array(position),
            rng_has_gauss=np.array(has_gauss),
            rng_cached_gaussian=np.array(cached_gaussian, dtype=np.float64),
        )
    if result.trajectory_key is not None:
        arrays["trajectory_key"] = np.array(result.trajectory_key)
    for l, (W, b) in enumerate(zip(network.weights, network.biases)):
        arrays[f"W{l + 1}"], arrays[f"b{l + 1}"] = W, b
    for key, values in result.history.items():
        arrays[f"history_{key}"] = np.asarray(values, dtype=np.float64)
    save_npz(path, **arrays)


def load_network(path: str | Path) -> tuple[FittedNetwork, dict]:
    """``(network, info)`` read back from :func:`save_network` (never unpickles anything);
    ``info`` holds ``params``, ``classes`` and ``n_features_in``."""
    arrays = load_npz(path)
    params = json.loads(str(arrays["params_json"]))
    if isinstance(params.get("hidden"), list):
        params["hidden"] = tuple(params["hidden"])
    n_layers = int(arrays["n_layers"])
    history = {
        key: arrays[f"history_{key}"].tolist() for key in HISTORY_KEYS if f"history_{key}" in arrays
    }
    if "epoch" in history:
        history["epoch"] = [int(e) for e in history["epoch"]]
    epoch = int(arrays["diverged_epoch"])
    result = TrainingResult(
        history=history,
        diverged=bool(arrays["diverged"]),
        diverged_epoch=None if epoch < 0 else epoch,
        n_epochs_run=int(arrays["n_epochs_run"]),
        n_steps=int(arrays["n_steps"]),
        seconds=float(arrays["fit_seconds"]),
    )
    if "rng_keys" in arrays:
        result.rng_state = (
            "MT19937",
            arrays["rng_keys"],
            int(arrays["rng_position"]),
            int(arrays["rng_has_gauss"]),
            float(arrays["rng_cached_gaussian"]),
        )
    if "trajectory_key" in arrays:
        result.trajectory_key = str(arrays["trajectory_key"])
    network = FittedNetwork(
        [arrays[f"W{l + 1}"] for l in range(n_layers)],
        [arrays[f"b{l + 1}"] for l in range(n_layers)],
        result,
    )
    info = {
        "params": params,
        "classes": arrays["classes"],
        "n_features_in": int(arrays["n_features_in"]),
    }
    return network, info

