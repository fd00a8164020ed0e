"""One training run: fit a network on PCA features and record what a reader needs.

``metrics.json`` holds the setting and its results and is byte-reproducible (same config, same
numbers, whatever the machine load); wall-clock measurements go to ``timing.json`` beside it.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .features import Features
from .grid import Setting
from .io import save_csv, save_json
from .nn import MLPClassifier

HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


def make_classifier(setting: Setting, training: dict) -> MLPClassifier:
    return MLPClassifier(
        hidden=list(setting.hidden),
        epochs=setting.epochs,
        lr=setting.lr,
        batch_size=setting.batch_size,
        seed=setting.seed,
        lr_schedule=training.get("lr_schedule", "constant"),
        lr_decay_rate=training.get("lr_decay_rate", 0.5),
        lr_decay_every=training.get("lr_decay_every", 100),
        eval_every=training.get("eval_every", 1),
        dtype=training.get("dtype", "float32"),
    )


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def evaluate(model: MLPClassifier, X: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """``(accuracy, loss)`` of a fitted model; ``None`` where a diverged model has no number."""
    if model.diverged_:
        return None, None
    return _finite_or_none(model.score(X, y)), _finite_or_none(model.log_loss(X, y))


def train_run(setting: Setting, features: Features, training: dict) -> tuple[MLPClassifier, dict, pd.DataFrame, dict]:
    """Fit one setting; return the model, its metrics, its history table and its timing."""
    model = make_classifier(setting, training)
    started = time.perf_counter()
    model.fit(features.X_train, features.y_train, X_val=features.X_val, y_val=features.y_val)
    seconds = time.perf_counter() - started
    history = pd.DataFrame({column: model.history_[column] for column in HISTORY_COLUMNS})
    metrics = {
        **setting.as_record(),
        "n_layers": setting.n_layers,
        **{key: training[key] for key in sorted(training)},
        "classes": list(features.classes),
        "n_train": int(len(features.y_train)),
        "n_val": int(len(features.y_val)),
        "n_test": int(len(features.y_test)),
        "diverged": bool(model.diverged_),
        "diverged_epoch": model.diverged_epoch_,
        "epochs_run": int(model.n_epochs_run_),
        "steps": int(model.n_steps_),
    }
    for part in ("train", "val", "test"):
        accuracy, loss = evaluate(model, getattr(features, f"X_{part}"), getattr(features, f"y_{part}"))
        metrics[f"{part}_accuracy"] = accuracy
        metrics[f"{part}_loss"] = loss
    timing = {
        "seconds": round(seconds, 4),
        "fit_seconds": round(float(model.fit_seconds_), 4),
        "steps_per_second": round(float(model.steps_per_second_), 1),
    }
    return model, metrics, history, timing


def save_run(outputs, model: MLPClassifier, metrics: dict, history: pd.DataFrame, timing: dict) -> None:
    save_csv(outputs["history"], history)
    model.save_weights(outputs["weights"])
    save_json(outputs["timing"], timing)
    # metrics last: its presence means the run finished and everything else is in place
    save_json(outputs["metrics"], metrics)
