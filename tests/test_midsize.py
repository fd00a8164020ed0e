"""A mid-sized study end to end (issue 14): 20 demo classes of 100 training images of 64x64x3
(12,288 samples per image), the streaming PCA under both protocols, every run evaluated, and the
whole default target (tables, figures, summary) on 2 cores, in about a minute.

The streamed features are held to an exact in-memory reference computed here (scikit-learn's
StandardScaler and pcann's ARPACK PCA on the same images and split); every other expectation
derives from the configuration below, not from numbers the workflow computed.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_workflow, run_snakemake

from pcann.data.images import load_saved_dataset
from pcann.io import load_npz

pytestmark = pytest.mark.workflow

DEMO = {"n_classes": 20, "n_train_per_class": 100, "n_test_per_class": 25, "image_size": 64, "seed": 0}
#: 0.1234 x 2000 = 246.8 validation images: the floor rule, not rounding, gives 246.
VAL_FRACTION = 0.1234
N_COMPONENTS = 2
SPECTRUM_COMPONENTS = 10
PROTOCOLS = ("study", "train-only")
BASELINE = {"hidden": [32], "epochs": 40, "lr": 0.1, "batch_size": 32}
#: One value per parameter; a hidden-size value and a learning rate.
SWEEP = {"lr": [0.3], "batch_size": [64]}  # all numbers: comparisons.csv must still match them
CONFIG = {
    "data_dir": None,
    "demo": DEMO,
    "protocol": "study",
    "split": "study",
    "val_fraction": VAL_FRACTION,
    "split_seed": 10,
    "n_components": N_COMPONENTS,
    "pca_solver": "streaming",
    "spectrum_components": SPECTRUM_COMPONENTS,
    "networks": {"two_layer": {"baseline": BASELINE, "sweep": SWEEP}},
    "headline": [{"network": "two_layer"}],
    "seeds": [1],
    "compare_protocols": list(PROTOCOLS),
    "components_sweep": [],
    "per_run_outputs": "all",
}
#: Largest difference between the streamed and the exact projections (train, validation and
#: test, up to each axis's sign), relative to the largest exact projection: the accuracy the
#: exact solver is held to on the study's images. The streaming solver multiplies in float32 and
#: stops when each kept axis's relative residual is below 1e-6; measured here: at most 4.3e-8.
PROJECTION_RTOL = 1e-6
#: Relative tolerance of the explained-variance spectrum. The axes beyond the kept ones are only
#: wanted for their variances, so their residuals only need to reach 1e-3 (a Ritz value's error
#: goes as its residual squared); measured here: at most 1.0e-6, on the last of the ten.
SPECTRUM_RTOL = 1e-5
N_TRAIN_FOLDER = DEMO["n_classes"] * DEMO["n_train_per_class"]
N_TEST = DEMO["n_classes"] * DEMO["n_test_per_class"]
N_VAL = math.floor(VAL_FRACTION * N_TRAIN_FOLDER)
N_FEATURES = DEMO["image_size"] ** 2 * 3  # read_mode color


def _expected_settings() -> set[tuple]:
    """(protocol, hidden, epochs, lr, batch_size) of every run the configuration asks for: the
    baseline and each sweep value under the main protocol, the headline run (the baseline) under
    every compared protocol."""

    def setting(protocol, **changes):
        values = {**BASELINE, **changes}
        return (protocol, tuple(values["hidden"]), values["epochs"], values["lr"], values["batch_size"])

    settings = {setting(CONFIG["protocol"])}
    settings |= {setting(CONFIG["protocol"], **{p: v}) for p, values in SWEEP.items() for v in values}
    settings |= {setting(protocol) for protocol in PROTOCOLS}
    return settings


@pytest.fixture(scope="module")
def midsize(tmp_path_factory):
    """The whole default target of the mid-sized study: ``(results folder, snakemake result)``."""
    workdir = copy_workflow(tmp_path_factory.mktemp("midsize"), CONFIG)
    result = run_snakemake(workdir, "--cores", "2", timeout=900)
    return workdir / "results", result


@pytest.fixture(scope="module")
def dataset(midsize):
    results, _ = midsize
    train, test, label = load_saved_dataset(results / "data/images.npz")
    return train, test, label, load_npz(results / "data/split.npz")


@pytest.fixture(scope="module")
def run_dirs(midsize):
    results, _ = midsize
    return sorted(p.parent for p in results.glob("runs/*/pca*/*/metrics.json"))


def test_images_split_and_features_have_the_configured_sizes(midsize, dataset):
    results, _ = midsize
    train, test, label, split = dataset
    assert "DEMO DATA" in label
    assert train.X.shape == (N_TRAIN_FOLDER, N_FEATURES) and test.X.shape == (N_TEST, N_FEATURES)
    assert train.image_shape == (DEMO["image_size"], DEMO["image_size"], 3)
    assert len(set(train.classes)) == DEMO["n_classes"] and test.classes == train.classes
    assert np.bincount(train.y).tolist() == [DEMO["n_train_per_class"]] * DEMO["n_classes"]
    assert np.bincount(test.y).tolist() == [DEMO["n_test_per_class"]] * DEMO["n_classes"]
    train_idx, val_idx = split["train_idx"], split["val_idx"]
    assert N_VAL != round(VAL_FRACTION * N_TRAIN_FOLDER)  # the configuration tells floor from rounding
    assert len(val_idx) == N_VAL and len(train_idx) == N_TRAIN_FOLDER - N_VAL
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(N_TRAIN_FOLDER))
    for protocol in PROTOCOLS:
        f = load_npz(results / f"features/{protocol}/pca{N_COMPONENTS}/features.npz")
        assert f["X_train"].shape == (len(train_idx), N_COMPONENTS)
        assert f["X_val"].shape == (N_VAL, N_COMPONENTS) and f["X_test"].shape == (N_TEST, N_COMPONENTS)
        np.testing.assert_array_equal(f["y_train"], train.y[train_idx])
        np.testing.assert_array_equal(f["y_val"], train.y[val_idx])
        np.testing.assert_array_equal(f["y_test"], test.y)
        assert tuple(f["classes"]) == train.classes and str(f["protocol"]) == protocol
        assert len(f["spectrum"]) == SPECTRUM_COMPONENTS


def test_streamed_features_equal_the_exact_pca(midsize, dataset):
    from sklearn.preprocessing import StandardScaler

    from pcann.preprocessing.features import fit_pca, project

    results, _ = midsize
    train, test, _, split = dataset
    train_idx, val_idx = split["train_idx"], split["val_idx"]
    X_folder, X_test = train.X.astype(np.float64), test.X.astype(np.float64)
    for protocol in PROTOCOLS:
        log = (results / f"logs/fit_pca/{protocol}-pca{N_COMPONENTS}.log").read_text()
        assert "streaming" in log, log[-2000:]
        # the z-scored sets as the study computed them (tests/test_features.py `standardise`)
        if protocol == "study":
            whole = StandardScaler().fit_transform(X_folder)
            zscored = {"train": whole[train_idx], "val": whole[val_idx],
                       "test": StandardScaler().fit_transform(X_test)}
            del whole
            fit_rows = np.concatenate([zscored["train"], zscored["val"]])
        else:
            scaler = StandardScaler().fit(X_folder[train_idx])
            zscored = {"train": scaler.transform(X_folder[train_idx]), "val": scaler.transform(X_folder[val_idx]),
                       "test": scaler.transform(X_test)}
            fit_rows = zscored["train"]
        pca = fit_pca(fit_rows, N_COMPONENTS, SPECTRUM_COMPONENTS)
        del fit_rows
        exact = {part: project(pca, z, N_COMPONENTS) for part, z in zscored.items()}
        del zscored
        streamed = load_npz(results / f"features/{protocol}/pca{N_COMPONENTS}/features.npz")
        largest = max(np.abs(values).max() for values in exact.values())
        signs = np.sign(np.sum(streamed["X_train"] * exact["train"], axis=0))
        errors = {
            part: np.abs(streamed[f"X_{part}"] - signs * exact[part]).max() / largest for part in exact
        }
        assert max(errors.values()) <= PROJECTION_RTOL, (protocol, errors)
        np.testing.assert_allclose(streamed["spectrum"], pca.explained_variance_ratio_, rtol=SPECTRUM_RTOL)


def test_every_run_is_trained_tabled_and_above_chance(midsize, run_dirs):
    from scipy.stats import binomtest

    results, _ = midsize
    metrics = {run: json.loads((run / "metrics.json").read_text()) for run in run_dirs}
    found = {(m["protocol"], tuple(m["hidden"]), m["epochs"], m["lr"], m["batch_size"]) for m in metrics.values()}
    assert found == _expected_settings()
    runs = pd.read_csv(results / "tables/runs.csv")
    assert sorted(runs["run_dir"]) == sorted(str(run.relative_to(results.parent)) for run in run_dirs)
    assert not runs["diverged"].any()
    assert (runs[["n_train", "n_val", "n_test"]] == [N_TRAIN_FOLDER - N_VAL, N_VAL, N_TEST]).all().all()
    for row in runs.itertuples():
        # 20 classes: a network that learned nothing gets about 1/20 of the test images right
        right = round(row.test_accuracy * row.n_test)
        assert binomtest(right, row.n_test, 1 / DEMO["n_classes"], alternative="greater").pvalue < 1e-6, row
    for parameter, values in SWEEP.items():
        table = pd.read_csv(results / f"tables/sweep_two_layer_{parameter}.csv")
        assert len(table) == 1 + len(values) and table["is_baseline"].sum() == 1
        compared = table[~table["is_baseline"]]
        assert np.isfinite(compared["p_value"]).all() and np.isfinite(compared["difference"]).all(), table
    protocols = pd.read_csv(results / "tables/protocols.csv")
    assert [value.split(" / ")[-1] for value in protocols["value"]] == list(PROTOCOLS)
    model_files = pd.read_csv(results / "tables/model_files.csv")
    assert sorted(model_files["run"]) == sorted(str(run.relative_to(results / "runs")) for run in run_dirs)
    # a train-only model file scales the test images as the run did: the same accuracy
    leak_free = model_files[model_files["protocol"] == "train-only"]
    assert len(leak_free)
    assert (leak_free["test accuracy (model file)"] == leak_free["test accuracy (reported)"]).all()


def _svg_texts(path: Path, group_id: str | None = None) -> list[str]:
    """The texts of an SVG figure (matplotlib writes each as a comment before its glyphs), or
    those inside the group with id ``group_id``."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.parse(path, parser).getroot()
    if group_id is not None:
        root = root.find(f".//{{http://www.w3.org/2000/svg}}g[@id='{group_id}']")
        assert root is not None, f"{path} has no {group_id}"
    return [str(node.text).strip() for node in root.iter() if node.tag is ET.Comment]


def test_every_run_is_evaluated_over_the_20_classes(midsize, dataset, run_dirs):
    from pcann.results.plots import CONFUSION_LABEL_LIMIT

    train, test, _, _ = dataset
    classes = list(train.classes)
    step = 1 if len(classes) <= CONFUSION_LABEL_LIMIT else math.ceil(len(classes) / CONFUSION_LABEL_LIMIT)
    for run in run_dirs:
        for name in ("curves", "decision_regions", "confusion", "misclassified"):
            for ext in ("png", "svg"):
                assert (run / f"{name}.{ext}").stat().st_size > 1000, run / f"{name}.{ext}"
        assert (run / "model.npz").exists()
        confusion = pd.read_csv(run / "confusion.csv", index_col=0)
        assert list(confusion.index) == classes and list(confusion.columns) == classes
        assert confusion.sum(axis=1).tolist() == np.bincount(test.y).tolist()
        reported = json.loads((run / "metrics.json").read_text())["test_accuracy"]
        assert np.trace(confusion.to_numpy()) == round(reported * len(test.y))
        per_class = pd.read_csv(run / "per_class.csv")
        assert per_class["class"].tolist() == classes
        assert per_class["support"].tolist() == [DEMO["n_test_per_class"]] * DEMO["n_classes"]
        named = set(_svg_texts(run / "confusion.svg"))
        assert {c for c in classes[::step]} <= named


def test_legends_name_at_most_the_legend_limit(midsize, dataset, run_dirs):
    from pcann.results.plots import LEGEND_CLASSES

    results, _ = midsize
    classes = list(dataset[0].classes)

    def expected(suffix=""):
        if len(classes) <= LEGEND_CLASSES:
            return [f"{c}{suffix}" for c in classes]
        left_out = len(classes) - (LEGEND_CLASSES - 1)
        return [f"{c}{suffix}" for c in classes[: LEGEND_CLASSES - 1]] + [
            f"... {left_out} more classes (colours repeat)"
        ]

    projection = _svg_texts(results / f"figures/pca/study-pca{N_COMPONENTS}/projection.svg", "legend_1")
    assert projection == ["class", *expected()]
    regions = [run / "decision_regions.svg" for run in run_dirs]
    regions += sorted(results.glob("figures/headline/*_decision_regions.svg"))
    assert len(regions) == len(run_dirs) + len(CONFIG["headline"])
    for path in regions:
        entries = _svg_texts(path, "legend_1")
        assert entries == expected(" (test)"), path
        assert len(entries) <= LEGEND_CLASSES


def test_summary_reports_the_whole_study(midsize, run_dirs):
    results, result = midsize
    summary = (results / "summary.md").read_text()
    assert "DEMO DATA" in summary and "DEMO DATA" in result.stderr
    assert f"- {len(run_dirs)} training runs; 0 diverged." in summary
    assert "not compared" not in summary  # every sweep value was compared with its baseline
    for run in run_dirs:
        assert str(run.relative_to(results / "runs")) in summary
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", summary)
    assert links and all((results / link).is_file() for link in links)
    # the headline run's confusion matrix, over the 20 classes
    headline = [results / link for link in links if link.endswith("/confusion.png")]
    assert len(headline) == len(CONFIG["headline"])
    for figure in headline:
        confusion = pd.read_csv(figure.with_suffix(".csv"), index_col=0)
        assert confusion.shape == (DEMO["n_classes"], DEMO["n_classes"])
