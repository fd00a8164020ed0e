"""The results explorer's rows and its size limit (the page in a browser: tests/test_report.py)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from pcann.results.explorer import build_explorer, explorer_runs
from pcann.study.paths import RUNS_ROOT


def _run(name, hidden="8", epochs=20, seed=1, test=0.5, diverged=False):
    return {
        "run_dir": f"{RUNS_ROOT}/study/pca2/{name}", "protocol": "study", "n_components": 2,
        "hidden": hidden, "epochs": epochs, "lr": 0.05, "batch_size": 8, "seed": seed,
        "n_train": 100, "n_val": 20, "n_test": 40, "diverged": diverged,
        "train_accuracy": math.nan if diverged else 0.9, "val_accuracy": math.nan if diverged else 0.8,
        "test_accuracy": math.nan if diverged else test,
    }


@pytest.fixture
def study():
    runs = pd.DataFrame([
        _run("base1", seed=1, test=0.50), _run("base2", seed=2, test=0.60),
        _run("long1", epochs=40, seed=1, test=0.70), _run("long2", epochs=40, seed=2, test=0.75),
        _run("wide1", hidden="4", seed=1, diverged=True),
    ])
    base = {"table": "sweep", "network": "two_layer", "is_baseline": True}
    plan = [
        {**base, "parameter": "epochs", "value": "20", "run_dir": runs.run_dir[0]},
        {**base, "parameter": "epochs", "value": "20", "run_dir": runs.run_dir[1]},
        {**base, "is_baseline": False, "parameter": "epochs", "value": "40", "run_dir": runs.run_dir[2]},
        {**base, "is_baseline": False, "parameter": "epochs", "value": "40", "run_dir": runs.run_dir[3]},
        {**base, "is_baseline": False, "parameter": "hidden", "value": "[4]", "run_dir": runs.run_dir[4]},
    ]
    comparisons = pd.DataFrame([
        {"run_dir": runs.run_dir[2], "difference": 0.2, "low": 0.05, "high": 0.35, "p_holm": 0.01},
        {"run_dir": runs.run_dir[3], "difference": 0.15, "low": -0.01, "high": 0.3, "p_holm": 0.2},
        {"run_dir": runs.run_dir[4], "difference": math.nan, "low": math.nan, "high": math.nan,
         "p_holm": math.nan},
    ])
    return runs, comparisons, plan


def test_every_run_is_a_row_with_its_intervals_difference_and_seeds_range(study):
    runs, comparisons, plan = study
    rows = explorer_runs(runs, comparisons, plan)
    assert rows["folder"].iloc[0] == "study/pca2/base1"  # under results/runs/
    rows.index = [folder.split("/")[-1] for folder in rows["folder"]]
    assert list(rows.index) == ["base1", "base2", "long1", "long2", "wide1"]  # seeds side by side
    # the Wilson interval of 20 right out of 40 test images
    assert rows.loc["base1", "test_accuracy_low"] == pytest.approx(0.352, abs=1e-3)
    assert rows.loc["base1", "test_accuracy_high"] == pytest.approx(0.648, abs=1e-3)
    assert rows.loc["base1", "baseline"] and not rows.loc["long1", "baseline"]
    assert rows.loc["long1", "significant"] and not rows.loc["long2", "significant"]
    assert rows.loc["long1", "difference_low"] == 0.05
    assert rows.loc["wide1", "diverged"] and np.isnan(rows.loc["wide1", "difference"])
    assert rows.loc["long2", "setting_seeds"] == 2
    assert (rows.loc["long2", "setting_test_min"], rows.loc["long2", "setting_test_max"]) == (0.70, 0.75)
    assert rows.loc["wide1", "network"] == "two_layer" and rows.loc["wide1", "studies"] == "sweep hidden"


def _figure(path, seed):
    """A figure: flat (a few hundred bytes as a thumbnail) for seed 0, noise (tens of kB) else."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (300, 600, 3), dtype=np.uint8) if seed else np.full((300, 600, 3), 200, np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def test_the_page_keeps_under_its_size_limit_by_shrinking_then_dropping_figures(study, tmp_path):
    runs, comparisons, plan = study
    runs.to_csv(tmp_path / "runs.csv", index=False)
    comparisons.to_csv(tmp_path / "comparisons.csv", index=False)
    figures = {
        run: {"curves": _figure(tmp_path / f"c{i}.png", i), "confusion": _figure(tmp_path / f"m{i}.png", i and i + 10)}
        for i, run in enumerate(runs.run_dir)
    }
    args = (tmp_path / "runs.csv", tmp_path / "comparisons.csv", plan, figures, [runs.run_dir[0]])

    def embedded(page):
        payload = re.search(r'<script type="application/json" id="figures-data">(.*?)</script>', page, re.S)
        return json.loads(payload.group(1))

    roomy = build_explorer(*args)
    assert len(roomy.encode()) <= 1_500_000 and set(embedded(roomy)) == set(runs.run_dir)
    assert "http://" not in roomy.split("<script>")[0]  # nothing loaded from elsewhere
    bare = len(build_explorer(*args, max_bytes=0).encode())
    # room for the headline run's thumbnails only, then for none
    tight = build_explorer(*args, max_bytes=bare + 8_000)
    assert set(embedded(tight)) == {runs.run_dir[0]} and len(tight.encode()) <= bare + 8_000
    assert "headline runs only" in tight
    assert embedded(build_explorer(*args, max_bytes=bare + 2_000)) == {}
