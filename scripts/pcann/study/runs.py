"""One training run: fit a network on PCA features and record what a reader needs.

``metrics.json`` holds the setting and its results and is byte-reproducible (same config, same
numbers, whatever the machine load); wall-clock measurements go to ``timing.json`` beside it.
A run may continue a shorter run of the same setting (:func:`continuable_run`): its files are
then the same as from epoch 1, only ``timing.json`` tells the difference.
A training job imports only numpy-based code from here (no scikit-learn, no pandas), so that it
starts in well under a second: large grids run thousands of these jobs.
"""

from __future__ import annotations

import math
import time
import zipfile
from dataclasses import dataclass

import numpy as np

from pcann.preprocessing.features import Features
from pcann.study.grid import Setting
from pcann.io import save_columns_csv, save_json, save_npz
from pcann.nn.training import FittedNetwork, accuracy_and_loss, continuation_problem, train_network
from pcann.nn.weights_file import load_network, save_network


def network_params(setting: Setting, training: dict) -> dict:
    """The parameters of :func:`pcann.nn.training.train_network` for one setting of the study."""
    return {
        "hidden": tuple(setting.hidden),
        "epochs": setting.epochs,
        "lr": setting.lr,
        "batch_size": setting.batch_size,
        "seed": setting.seed,
        **training,
    }


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def evaluate(network: FittedNetwork, X: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """``(accuracy, loss)`` of a fitted network; ``None`` where a diverged one has no number."""
    if network.result.diverged:
        return None, None
    accuracy, loss = accuracy_and_loss(network, X, y)
    return _finite_or_none(accuracy), _finite_or_none(loss)


#: The splits whose per-sample predictions a run keeps (``predictions.npz``).
PREDICTED_SPLITS = ("val", "test")


def predicted_classes(network: FittedNetwork, X: np.ndarray) -> np.ndarray:
    """The class index the network predicts for each row of ``X``, as its accuracy counts it
    (float64 logits, as :func:`pcann.nn.training.accuracy_and_loss`); -1 everywhere for a
    diverged network, which predicts nothing."""
    if network.result.diverged:
        return np.full(len(X), -1, dtype=np.int16)
    return np.argmax(network.logits(X), axis=0).astype(np.int16)


def run_predictions(network: FittedNetwork, features: Features) -> dict[str, np.ndarray]:
    """``predictions.npz`` of a run: ``<split>_predicted`` and ``<split>_true`` class indices of
    every validation and test sample, in the features' order. Two runs on the same features
    can then be compared image by image (McNemar), and any run's confusion matrix drawn."""
    arrays = {}
    for part in PREDICTED_SPLITS:
        arrays[f"{part}_predicted"] = predicted_classes(network, getattr(features, f"X_{part}"))
        arrays[f"{part}_true"] = np.asarray(getattr(features, f"y_{part}")).astype(np.int16)
    return arrays


@dataclass
class TrainedRun:
    """One fitted setting and everything its run folder records."""

    network: FittedNetwork
    params: dict  # of train_network
    n_classes: int
    n_features: int
    metrics: dict
    history: dict  # column -> values, in the order of history.csv
    timing: dict
    predictions: dict  # predictions.npz: see run_predictions


def continuable_run(path, setting: Setting, features: Features, training: dict):
    """``(network, None)`` when the run saved at ``path`` (a ``weights.npz``) can be continued
    to ``setting``, else ``(None, why not)``."""
    try:
        network, _ = load_network(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # unreadable
        return None, f"it cannot be read ({exc})"
    problem = continuation_problem(
        network, len(features.classes), features.X_train, features.y_train,
        features.X_val, features.y_val, **network_params(setting, training),
    )
    return (None, problem) if problem else (network, None)


def train_run(
    setting: Setting, features: Features, training: dict, continue_from: FittedNetwork | None = None
) -> TrainedRun:
    """Fit one setting on the features and measure it; ``continue_from`` (see
    :func:`continuable_run`) is a shorter run of the same setting to continue."""
    params = network_params(setting, training)
    started = time.perf_counter()
    network = train_network(
        features.X_train,
        features.y_train,
        len(features.classes),
        features.X_val,
        features.y_val,
        continue_from=continue_from,
        **params,
    )
    seconds = time.perf_counter() - started
    result = network.result
    metrics = {
        **setting.as_record(),
        "n_layers": setting.n_layers,
        **{key: training[key] for key in sorted(training)},
        "classes": list(features.classes),
        "n_train": int(len(features.y_train)),
        "n_val": int(len(features.y_val)),
        "n_test": int(len(features.y_test)),
        "diverged": bool(result.diverged),
        "diverged_epoch": result.diverged_epoch,
        "epochs_run": int(result.n_epochs_run),
        "steps": int(result.n_steps),
    }
    for part in ("train", "val", "test"):
        accuracy, loss = evaluate(network, getattr(features, f"X_{part}"), getattr(features, f"y_{part}"))
        metrics[f"{part}_accuracy"] = accuracy
        metrics[f"{part}_loss"] = loss
    # this job's own work: a continued run only trained the epochs after the one it continued
    first_epoch = continue_from.result.n_epochs_run + 1 if continue_from is not None else 1
    steps_run = result.n_steps - (continue_from.result.n_steps if continue_from is not None else 0)
    steps_per_second = steps_run / result.seconds if result.seconds > 0 else math.nan
    timing = {
        "seconds": round(seconds, 4),
        "fit_seconds": round(float(result.seconds), 4),
        "steps_per_second": round(float(steps_per_second), 1),
        "first_epoch": first_epoch,
    }
    return TrainedRun(
        network, params, len(features.classes), features.X_train.shape[1], metrics, result.history,
        timing, run_predictions(network, features),
    )


def save_run(outputs, run: TrainedRun) -> None:
    """Write a run's ``history``, ``weights``, ``timing``, ``predictions`` (if asked for) and
    ``metrics`` (in that order)."""
    save_columns_csv(outputs["history"], run.history)
    # class indices as labels, with the names in metrics.json: what run_outputs and the tables expect
    save_network(
        outputs["weights"],
        run.network,
        params=run.params,
        classes=np.arange(run.n_classes),
        n_features_in=run.n_features,
    )
    save_json(outputs["timing"], run.timing)
    if "predictions" in outputs:
        save_npz(outputs["predictions"], **run.predictions)
    # metrics last: its presence means the run finished and everything else is in place
    save_json(outputs["metrics"], run.metrics)
