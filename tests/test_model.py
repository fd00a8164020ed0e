"""Model files, test-set evaluation and the predict target: what was trained, used.

The library tests build a small model in memory; the workflow tests use the tiny study's runs
(the session's ``tiny_study``) and, with ``PCANN_FRUITS_DIR`` set, a run on the real images.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_snakemake, write_image

from pcann.results.evaluation import confusion_matrix, gallery_picks, per_class_scores
from pcann.workflow.study_record import folder_key
from pcann.model.model_file import FORMAT, FORMAT_VERSION, Model, ModelError, load

TRAIN_ONLY_RUN = "train-only/pca2/hidden=8_epochs=20_lr=0.05_batch=8_seed=1"
STUDY_RUN = "study/pca2/hidden=8_epochs=20_lr=0.05_batch=8_seed=1"
PREDICT_CLI = REPO / "scripts" / "predict.py"


def _csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- the library ------------------------------------------------------------------------------


@pytest.fixture
def toy_model():
    """A 2-layer model for 8x8 colour images, random but fixed."""
    rng = np.random.default_rng(3)
    n_features, n_components, classes = 8 * 8 * 3, 3, ["apple", "banana", "cherry"]
    components = np.linalg.qr(rng.normal(size=(n_features, n_components)))[0].T
    return Model(
        metadata={
            "format": FORMAT, "format_version": FORMAT_VERSION, "classes": classes,
            "read_mode": "color", "image_shape": [8, 8, 3], "image_dtype": "uint8",
            "n_features": n_features, "n_components": n_components, "n_layers": 2,
            "protocol": "train-only", "zscore_fitted_on": "the training split", "setting": {},
            "run": "toy", "diverged": False, "test_accuracy_reported": None,
            "test_accuracy_model_file": None, "data_label": "",
        },
        zscore_mean=rng.uniform(50, 200, n_features), zscore_scale=rng.uniform(10, 60, n_features),
        pca_mean=rng.normal(0, 0.1, n_features), pca_components=components,
        weights=[rng.normal(size=(5, n_components)), rng.normal(size=(3, 5))],
        biases=[rng.normal(size=5), rng.normal(size=3)],
    )


def _images(n, shape=(8, 8, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def test_model_file_round_trip(toy_model, tmp_path):
    path = tmp_path / "model.npz"
    toy_model.save(path)
    loaded = load(path)
    assert loaded.metadata == toy_model.metadata
    for name in ("zscore_mean", "zscore_scale", "pca_mean", "pca_components"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(toy_model, name))
    images = _images(5)
    np.testing.assert_array_equal(loaded.predict_proba(images), toy_model.predict_proba(images))
    assert list(loaded.predict(images)) == list(toy_model.predict(images))
    assert set(loaded.predict(images)) <= {"apple", "banana", "cherry"}


def test_model_file_is_usable_with_numpy_alone(toy_model, tmp_path):
    """The recipe in the format's documentation, run as written in a process that imports numpy
    and json only."""
    toy_model.save(tmp_path / "model.npz")
    images = _images(7)
    np.save(tmp_path / "images.npy", images)
    import textwrap

    import pcann.model.model_file

    doc = pcann.model.model_file.__doc__
    recipe = textwrap.dedent(doc[doc.index("With numpy alone"):].split("::\n\n", 1)[1].split("\n\n", 1)[0])
    code = "\n".join([
        "import json, sys",
        "import numpy as np",
        f"X = np.load({str(tmp_path / 'images.npy')!r})",
        recipe.replace('"model.npz"', repr(str(tmp_path / "model.npz"))),
        'assert not {"pcann", "cv2", "sklearn", "scipy"} & set(sys.modules), sorted(sys.modules)',
        f"np.save({str(tmp_path / 'p.npy')!r}, p)",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), toy_model.predict_proba(images), rtol=1e-12)


def test_confusion_matrix_and_scores_match_scikit_learn():
    from sklearn.metrics import confusion_matrix as sk_confusion
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 3, 200))  # class 3 rarely predicted
    y_pred[y_pred == 3] = 2  # ... never, so its precision is undefined (0, as scikit-learn's zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, 4)
    np.testing.assert_array_equal(matrix, sk_confusion(y_true, y_pred, labels=range(4)))
    scores = per_class_scores(matrix)
    expected = precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    for name, values in zip(("precision", "recall", "f1", "support"), expected):
        np.testing.assert_allclose(scores[name], values, rtol=1e-12)
    assert scores["precision"][3] == 0 and scores["support"][3] == (y_true == 3).sum() > 0


def test_gallery_takes_mistakes_from_every_true_class_in_turn():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([1, 1, 1, 0, 0, 1, 0, 2, 0])
    np.testing.assert_array_equal(gallery_picks(y_true, y_pred, 4)[0], [0, 4, 6, 1])
    assert gallery_picks(y_true, y_pred, 4)[1] == 6
    assert len(gallery_picks(y_true, y_true, 24)[0]) == 0


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelError, match=r"model file .*nothere\.npz does not exist; expected a pcann model file"):
        load(tmp_path / "nothere.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"junk\.npz is not a pcann model file"):
        load(tmp_path / "junk.npz")


def test_bad_images_are_named_with_what_was_expected(toy_model, tmp_path):
    write_image(tmp_path / "small.png", _images(1, (6, 6, 3))[0])
    with pytest.raises(ModelError, match=r"small\.png has shape 6x6 with 3 channels but the model .* expects 8x8 with 3 channels"):
        toy_model.predict(tmp_path / "small.png")
    toy_model.metadata["read_mode"] = "unchanged"  # keeps the alpha channel of a PNG
    write_image(tmp_path / "rgba.png", _images(1, (8, 8, 4))[0])
    with pytest.raises(ModelError, match=r"rgba\.png has shape 8x8 with 4 channels but .* expects 8x8 with 3 channels"):
        toy_model.predict(tmp_path / "rgba.png")
    (tmp_path / "broken.png").write_bytes(b"broken")
    with pytest.raises(ModelError, match=r"broken\.png is not a readable image"):
        toy_model.predict([tmp_path / "broken.png"])
    with pytest.raises(ModelError, match=r"an array of shape \(8, 8\) is neither one image"):
        toy_model.predict(np.zeros((8, 8), np.uint8))
    empty = tmp_path / "empty"
    (empty / "apple").mkdir(parents=True)
    (empty / "apple" / "notes.txt").write_text("no images here")
    with pytest.raises(ModelError, match=r"empty contains no images \(looked for .*\.png"):
        toy_model.predict(empty)


def test_command_line_reports_bad_input_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, str(PREDICT_CLI), str(tmp_path / "missing.npz"), str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert f"model file {tmp_path / 'missing.npz'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


# --- the workflow: the tiny study --------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tiny_study):
    workdir, _, _ = tiny_study
    return workdir / "results"


def _run_dir(results, run):
    return results / "runs" / run


def test_model_file_outputs_equal_the_workflow_network(study):
    """On the images each run's network was scored on in the workflow: the test images under
    train-only, the training split under both protocols (the study scaled only its test set
    differently)."""
    from pcann.data.images import load_saved_dataset
    from pcann.preprocessing.features import load_features
    from pcann.io import load_npz
    from pcann.nn.network import softmax
    from pcann.nn.weights_file import load_network

    train, test, _ = load_saved_dataset(study / "data/images.npz")
    split = load_npz(study / "data/split.npz")
    for run, parts in ((TRAIN_ONLY_RUN, ("train", "test")), (STUDY_RUN, ("train",))):
        model = load(_run_dir(study, run) / "model.npz")
        network, _ = load_network(_run_dir(study, run) / "weights.npz")
        features, _ = load_features(study / f"features/{run.split('/')[0]}/pca2/features.npz")
        for part in parts:
            images = test if part == "test" else train
            rows = slice(None) if part == "test" else split["train_idx"]
            X = images.X[rows].reshape(-1, *images.image_shape)
            expected = softmax(network.logits(getattr(features, f"X_{part}")), axis=0).T
            np.testing.assert_allclose(model.features(X), getattr(features, f"X_{part}"), rtol=0, atol=1e-10)
            np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-9, atol=1e-12)


def test_train_only_model_file_gives_the_reported_test_results(study, tmp_path):
    """The command line on the test folder: the run's per-image predictions and test accuracy."""
    run_dir = _run_dir(study, TRAIN_ONLY_RUN)
    out = tmp_path / "predictions.csv"
    result = subprocess.run(
        [sys.executable, str(PREDICT_CLI), str(run_dir / "model.npz"), str(study / "demo_data/Data_test"),
         "--output", str(out), "--json", str(tmp_path / "summary.json")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    predicted = {row["image"]: row["predicted_class"] for row in _csv_rows(out)}
    workflow = {row["image"]: row["predicted_class"] for row in _csv_rows(run_dir / "test_predictions.csv")}
    assert predicted == workflow and len(predicted) == 24
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["accuracy"] == metrics["test_accuracy"]
    assert summary["n_labelled"] == 24
    assert load(run_dir / "model.npz").metadata["test_accuracy_model_file"] == metrics["test_accuracy"]


def test_evaluation_tables_match_scikit_learn(study):
    from sklearn.metrics import confusion_matrix as sk_confusion
    from sklearn.metrics import precision_recall_fscore_support

    for run in (TRAIN_ONLY_RUN, STUDY_RUN):
        run_dir = _run_dir(study, run)
        rows = _csv_rows(run_dir / "test_predictions.csv")
        classes = [c[2:] for c in rows[0] if c.startswith("p_")]
        y_true = [row["true_class"] for row in rows]
        y_pred = [row["predicted_class"] for row in rows]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert np.mean(np.array(y_true) == np.array(y_pred)) == metrics["test_accuracy"]
        confusion = [[int(v) for v in list(row.values())[1:]] for row in _csv_rows(run_dir / "confusion.csv")]
        np.testing.assert_array_equal(confusion, sk_confusion(y_true, y_pred, labels=classes))
        precision, recall, _, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
        per_class = _csv_rows(run_dir / "per_class.csv")
        np.testing.assert_allclose([float(r["precision"]) for r in per_class], precision, rtol=1e-9)
        np.testing.assert_allclose([float(r["recall"]) for r in per_class], recall, rtol=1e-9)
        assert [int(r["support"]) for r in per_class] == list(support)
        for name in ("confusion", "misclassified"):
            assert (run_dir / f"{name}.png").stat().st_size > 5000
        assert "Accuracy:" in (run_dir / "evaluation.md").read_text()


def test_summary_shows_model_files_and_headline_evaluations(study):
    summary = (study / "summary.md").read_text()
    assert "## Model files and test-set evaluation" in summary
    assert f"{STUDY_RUN}/confusion.png" in summary and f"{STUDY_RUN}/misclassified.png" in summary
    table = _csv_rows(study / "tables/model_files.csv")
    train_only = [r for r in table if r["protocol"] == "train-only"]
    assert train_only and all(float(r["difference"]) == 0 for r in train_only)


@pytest.fixture
def predict_folder(study, tmp_path):
    """Class folders named like the training classes (two of three), and a loose image."""
    folder = tmp_path / "new images"
    for name in ("Lychee", "Pear"):
        shutil.copytree(study / "demo_data/Data_test" / name, folder / "labelled" / name)
    shutil.copy(study / "demo_data/Data_test/Carambula/Carambula_test_0.png", folder / "loose.png")
    return folder


def test_predict_target_end_to_end(tiny_study, predict_folder):
    workdir, _, _ = tiny_study
    try:
        run_snakemake(workdir, "--cores", "2", "predict", "--config", f"predict_dir={predict_folder / 'labelled'}")
        for run in (STUDY_RUN, "study/pca2/hidden=8-8_epochs=20_lr=0.1_batch=8_seed=1"):
            out = workdir / "results/predictions" / folder_key(predict_folder / "labelled") / run
            rows = _csv_rows(out / "predictions.csv")
            assert len(rows) == 16 and list(rows[0])[:3] == ["image", "true_class", "predicted_class"]
            assert [c for c in rows[0] if c.startswith("p_")] == ["p_Carambula", "p_Lychee", "p_Pear"]
            np.testing.assert_allclose([sum(float(r[c]) for c in r if c.startswith("p_")) for r in rows], 1, rtol=1e-9)
            page = (out / "evaluation.md").read_text()
            assert "Accuracy:" in page and "Per class:" in page
            assert "Under the study protocol the run's test set was z-scored with its own" in page
            record = json.loads((out / "evaluation.json").read_text())
            correct = sum(r["true_class"] == r["predicted_class"] for r in rows)
            assert record["accuracy"] == correct / 16
        # without class folders: predictions, no accuracy
        loose = predict_folder / "loose.png"
        run_snakemake(workdir, "--cores", "2", "predict", "--config", f"predict_dir={loose}",
                      f"predict_runs=[{TRAIN_ONLY_RUN}]")
        out = workdir / "results/predictions" / folder_key(loose) / TRAIN_ONLY_RUN
        assert len(_csv_rows(out / "predictions.csv")) == 1
        assert "no accuracy" in (out / "evaluation.md").read_text()
    finally:
        shutil.rmtree(workdir / "results/predictions", ignore_errors=True)


@pytest.mark.parametrize(
    "config, expected",
    [
        ([], "the predict target needs the images to classify: snakemake --cores 4 predict --config predict_dir=PATH"),
        (["predict_dir={empty}"], "config key predict_dir: {empty} contains no images"),
        (["predict_dir={study}/demo_data", "predict_runs=[two_layer]"], "config key predict_runs: 'two_layer' is not a run"),
    ],
)
def test_predict_target_refuses_bad_input(tiny_study, tmp_path, config, expected):
    workdir, _, _ = tiny_study
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [c.format(empty=empty, study=workdir / "results") for c in config]
    result = run_snakemake(workdir, "--cores", "1", "--dry-run", "predict", *(["--config", *args] if args else []),
                           check=False)
    assert result.returncode != 0
    assert expected.format(empty=empty) in result.stdout + result.stderr


# --- the real images ---------------------------------------------------------------------------


@pytest.mark.realdata
def test_train_only_model_file_on_the_real_test_folder(fruits_dir, tmp_path):
    """The workflow's steps as library calls on the real images (train-only, 2-layer [256],
    200 epochs): the model file classifies the test folder exactly as the run was scored."""
    from pcann.data.images import load_dataset
    from pcann.preprocessing.features import (
        fit_and_project, split_indices, zscore_statistics,
    )
    from pcann.study.grid import Setting
    from pcann.io import save_npz
    from pcann.model.model_file import export_model
    from pcann.model.prediction import classify
    from pcann.study.runs import save_run, train_run

    train, test = load_dataset(fruits_dir, mode="color")
    train_idx, val_idx = split_indices(train.y)
    stats = zscore_statistics(train.X, test.X, train_idx, "train-only", "exact")
    features, pca = fit_and_project(train, test, train_idx, val_idx, stats, "train-only", 2, 10, "exact")
    setting = Setting("train-only", 2, (256,), 200, 0.005, 16, 1)
    run = train_run(setting, features, {"dtype": "float32", "exp_backend": "opencv"})
    outputs = {name: tmp_path / f"{name}.{ext}" for name, ext in
               (("history", "csv"), ("weights", "npz"), ("timing", "json"), ("metrics", "json"))}
    save_run(outputs, run)
    save_npz(tmp_path / "transform.npz", **stats, **pca,
             classes=np.asarray(train.classes), image_shape=np.asarray(train.image_shape),
             image_dtype=np.asarray(str(train.X.dtype)), protocol=np.asarray("train-only"))
    model = export_model(weights_path=outputs["weights"], transform_path=tmp_path / "transform.npz",
                         metrics_path=outputs["metrics"], read_mode="color", run="real")
    model.save(tmp_path / "model.npz")
    result = classify(load(tmp_path / "model.npz"), [fruits_dir / "Data_test"])
    assert result.names == list(test.files) and result.true == [train.classes[k] for k in test.y]
    expected = np.asarray(train.classes)[run.network.predict(features.X_test)]
    assert result.predicted(train.classes) == list(expected)
    accuracy = float(np.mean(np.asarray(result.predicted(train.classes)) == np.asarray(result.true)))
    assert accuracy == run.metrics["test_accuracy"] > 0.8
