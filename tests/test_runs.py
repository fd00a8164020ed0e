"""One training run as the train rule does it: scripts/pcann/study/runs.py, without Snakemake."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from pcann.nn.estimator import MLPClassifier
from pcann.preprocessing.features import Features
from pcann.study.grid import Setting
from pcann.io import load_columns_csv, load_npz, save_columns_csv, save_csv
from pcann.study.runs import continuable_run, predicted_classes, save_run, train_run
from pcann.nn.sgd import HISTORY_KEYS

TRAINING = {"lr_schedule": "constant", "lr_decay_rate": 0.5, "lr_decay_every": 100,
            "eval_every": 1, "dtype": "float32", "exp_backend": "opencv"}


def blob_features() -> Features:
    X, y = make_blobs(n_samples=240, centers=[(-3, -3), (0, 3), (3, -3)], cluster_std=1.5, random_state=0)
    parts = {"train": slice(0, 160), "val": slice(160, 200), "test": slice(200, 240)}
    return Features(
        **{f"X_{part}": X[rows] for part, rows in parts.items()},
        **{f"y_{part}": y[rows] for part, rows in parts.items()},
        classes=("a", "b", "c"), protocol="study", n_components=2,
        explained_variance_ratio=np.array([0.6, 0.4]), spectrum=np.array([0.6, 0.4]),
    )


def test_columns_csv_is_written_as_pandas_writes_it(tmp_path):
    columns = {
        "epoch": [1, 2, 3],
        "loss": [0.1234567890123, float("nan"), 1e-12],
        "accuracy": [1.0, 0.5, float("inf")],
    }
    save_columns_csv(tmp_path / "ours.csv", columns)
    save_csv(tmp_path / "pandas.csv", pd.DataFrame(columns))
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_a_run_records_what_its_model_predicts(tmp_path):
    setting = Setting(protocol="study", n_components=2, hidden=(8,), epochs=30, lr=0.1, batch_size=16, seed=1)
    features = blob_features()
    run = train_run(setting, features, TRAINING)
    outputs = {name: tmp_path / f"{name}.{ext}" for name, ext in
               [("history", "csv"), ("weights", "npz"), ("timing", "json"), ("predictions", "npz"),
                ("metrics", "json")]}
    save_run(outputs, run)

    metrics = json.loads(outputs["metrics"].read_text())
    # the per-image predictions are what the accuracies counted, image by image
    predictions = load_npz(outputs["predictions"])
    for part in ("val", "test"):
        assert np.array_equal(predictions[f"{part}_true"], getattr(features, f"y_{part}"))
        correct = predictions[f"{part}_predicted"] == predictions[f"{part}_true"]
        assert correct.mean() == metrics[f"{part}_accuracy"]
    history = pd.read_csv(outputs["history"])
    model = MLPClassifier.from_npz(outputs["weights"])
    assert list(history.columns) == list(HISTORY_KEYS) and len(history) == 30
    assert metrics["epochs_run"] == 30 and not metrics["diverged"]
    assert model.get_params()["hidden"] == (8,) and model.get_params()["exp_backend"] == "opencv"
    for part in ("train", "val", "test"):
        X, y = getattr(features, f"X_{part}"), getattr(features, f"y_{part}")
        assert metrics[f"{part}_accuracy"] == pytest.approx(model.score(X, y), abs=1e-12)
        assert metrics[f"{part}_loss"] == pytest.approx(model.log_loss(X, y), rel=1e-12)
    assert metrics["test_accuracy"] > 0.9
    # the last recorded epoch is the model that was saved
    assert history["train_accuracy"].iloc[-1] == pytest.approx(metrics["train_accuracy"], abs=1e-6)


def test_a_diverged_run_predicts_no_class():
    setting = Setting(protocol="study", n_components=2, hidden=(8,), epochs=5, lr=1e6, batch_size=8, seed=1)
    run = train_run(setting, blob_features(), TRAINING)
    assert run.metrics["diverged"]
    assert np.all(run.predictions["test_predicted"] == -1)
    assert np.all(predicted_classes(run.network, blob_features().X_val) == -1)


def test_the_estimator_and_a_run_train_the_same_network():
    setting = Setting(protocol="study", n_components=2, hidden=(8, 4), epochs=5, lr=0.05, batch_size=8, seed=3)
    features = blob_features()
    run = train_run(setting, features, TRAINING)
    model = MLPClassifier(hidden=(8, 4), epochs=5, lr=0.05, batch_size=8, seed=3).fit(
        features.X_train, features.y_train, features.X_val, features.y_val
    )
    for W_run, W_model in zip(run.network.weights, model.coefs_):
        assert np.array_equal(W_run, W_model)
    assert run.history["val_loss"] == model.history_["val_loss"]


def test_columns_csv_reads_back(tmp_path):
    columns = {"epoch": [1, 2], "loss": [0.25, float("nan")]}
    save_columns_csv(tmp_path / "h.csv", columns)
    read = load_columns_csv(tmp_path / "h.csv")
    assert list(read) == ["epoch", "loss"]
    np.testing.assert_array_equal(read["epoch"], [1, 2])
    np.testing.assert_array_equal(read["loss"], [0.25, np.nan])


def test_a_shorter_run_is_continued_only_when_it_matches(tmp_path):
    features = blob_features()
    shorter = Setting(protocol="study", n_components=2, hidden=(8,), epochs=6, lr=0.1, batch_size=16, seed=1)
    longer = Setting(**{**shorter.as_record(), "hidden": (8,), "epochs": 15})
    outputs = {name: tmp_path / f"{name}.{ext}" for name, ext in
               [("history", "csv"), ("weights", "npz"), ("timing", "json"), ("metrics", "json")]}
    save_run(outputs, train_run(shorter, features, TRAINING))

    network, problem = continuable_run(outputs["weights"], longer, features, TRAINING)
    assert problem is None
    continued = train_run(longer, features, TRAINING, network)
    from_start = train_run(longer, features, TRAINING)
    assert continued.metrics == from_start.metrics and continued.history == from_start.history
    assert continued.timing["first_epoch"] == 7 and from_start.timing["first_epoch"] == 1

    other_lr = Setting(**{**longer.as_record(), "hidden": (8,), "lr": 0.2})
    assert continuable_run(outputs["weights"], other_lr, features, TRAINING) == (
        None, "it was trained with other parameters, data or code"
    )
    outputs["weights"].write_bytes(outputs["weights"].read_bytes()[:100])  # truncated
    network, problem = continuable_run(outputs["weights"], longer, features, TRAINING)
    assert network is None and problem.startswith("it cannot be read (")
