"""The workflow end to end, in a temporary copy: runs, lints, formats, refuses bad config."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, copy_workflow, make_dataset, run_snakemake, tiny_study_config

pytestmark = pytest.mark.workflow
FEATURES = "results/features/{protocol}/pca2/features.npz"


@pytest.fixture(scope="module")
def demo_run(tiny_study):
    workdir, _, result = tiny_study
    return workdir, result


def test_demo_run_produces_features_and_figures(demo_run):
    workdir, _ = demo_run
    results = workdir / "results"
    with np.load(results / "features/study/pca2/features.npz", allow_pickle=False) as f:
        assert f["X_train"].shape == (48, 2) and f["X_val"].shape == (12, 2) and f["X_test"].shape == (24, 2)
        assert "DEMO DATA" in str(f["data_label"])
    for name in ("explained_variance", "projection"):
        for ext in ("png", "svg"):
            assert (results / f"figures/pca/study-pca2/{name}.{ext}").stat().st_size > 1000
    assert (results / "demo_data/Data_train/Pear").is_dir()


def test_tables_carry_intervals_comparisons_and_the_seed_spread(demo_run):
    import pandas as pd

    workdir, _ = demo_run
    tables = workdir / "results" / "tables"
    comparisons = pd.read_csv(tables / "comparisons.csv")
    # every sweep value but the baselines', against its baseline on the same test images
    assert len(comparisons) == 5 + 1 and comparisons["n"].eq(24).all()
    assert (comparisons[["both_right", "only_b_right", "only_a_right", "both_wrong"]].sum(axis=1) == 24).all()
    lr = pd.read_csv(tables / "sweep_two_layer_lr.csv")
    assert {"test_accuracy_low", "test_accuracy_high", "p_holm", "significant", "mcnemar_p_seed1"} <= set(lr.columns)
    assert (lr["test_accuracy_low"] <= lr["test_accuracy_mean"]).all()
    assert "p (Holm)" in (tables / "sweep_two_layer_lr.md").read_text()
    assert "Wilson" in (tables / "sweep_two_layer_lr.html").read_text()
    assert "one seed" in (tables / "seed_spread.md").read_text()
    assert (workdir / "results/figures/seed_spread.png").stat().st_size > 1000
    summary = (workdir / "results/summary.md").read_text()
    assert "## What holds up" in summary and "two_layer, learning rate: " in summary


def test_a_five_seed_study_plans_every_replicate_and_its_comparisons(demo_run, tmp_path):
    workdir = copy_workflow(tmp_path, tiny_study_config(seeds=[1, 2, 3, 4, 5]))
    result = run_snakemake(workdir, "--dry-run", "--quiet", "rules", "--cores", "1", verbose=True)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout.split("Job stats:", 1)[1], re.M))
    single = run_snakemake(demo_run[0], "--dry-run", "--quiet", "rules", "--cores", "1", "--forceall", verbose=True)
    single_jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", single.stdout.split("Job stats:", 1)[1], re.M))
    assert int(jobs["train"]) == 5 * int(single_jobs["train"])
    assert jobs["compare_runs"] == jobs["study_tables"] == jobs["summary"] == "1"


def test_demo_data_is_announced_loudly(demo_run):
    workdir, result = demo_run
    assert "DEMO DATA" in result.stderr
    assert "DEMO DATA" in (workdir / "results/logs/load_images.log").read_text()
    assert b"DEMO DATA" in (workdir / "results/figures/pca/study-pca2/projection.svg").read_bytes()


def test_every_job_has_its_log(demo_run):
    workdir, _ = demo_run
    logs = list((workdir / "results/logs").rglob("*.log"))
    assert {p.stem for p in logs} >= {"make_demo_data", "load_images", "split_train_val"}


def test_complete_run_leaves_nothing_to_do(demo_run):
    workdir, _ = demo_run
    result = run_snakemake(workdir, "--cores", "1", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_planning_writes_nothing_under_results(demo_run):
    workdir, _ = demo_run
    results = workdir / "results"

    def snapshot():
        return {p: p.stat().st_mtime_ns for p in results.rglob("*")} | {results: results.stat().st_mtime_ns}

    before = snapshot()
    run_snakemake(workdir, "--cores", "1", "--dry-run", "--forceall")
    assert snapshot() == before


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output, output


def test_snakefmt_check_passes():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    result = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--config", "n_components=-2"], "config key n_components: -2 is less than the minimum of 1"),
        (["--config", "tpyo=1"], "config key tpyo"),
        (["--config", "split_seed=ten"], "config key split_seed: 'ten' is not of type 'integer'"),
        (["--config", "data_dir=/no/such/folder"], "config key data_dir: '/no/such/folder' does not exist"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, args, expected):
    workdir = copy_workflow(tmp_path)
    result = run_snakemake(workdir, "--cores", "1", *args, check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_real_layout_folder_runs_and_is_never_written(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=10, n_test=4, shape=(12, 12, 4))
    (data / "Data_train" / "apple" / ".DS_Store").write_bytes(b"junk")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.rglob("*")if p.is_file()}
    workdir = copy_workflow(tmp_path / "wf", tiny_study_config(data_dir=str(data), protocol="train-only"))
    result = run_snakemake(workdir, "--cores", "2", FEATURES.format(protocol="train-only"))
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in data.iterdir()) == ["Data_test", "Data_train"]
    assert (workdir / "results/features/train-only/pca2/features.npz").exists()
    assert "DEMO DATA" not in result.stderr
    assert "skipped 1 non-image" in (workdir / "results/logs/load_images.log").read_text()


def test_bad_image_fails_the_loading_job_with_the_file_named(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=8, n_test=2)
    (data / "Data_train" / "banana" / "banana_002.png").write_bytes(b"broken")
    workdir = copy_workflow(tmp_path / "wf", tiny_study_config(data_dir=str(data)))
    result = run_snakemake(workdir, "--cores", "1", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "banana_002.png is not a readable image" in output
    assert "Traceback" not in (workdir / "results/logs/load_images.log").read_text()
    assert not (workdir / "results/data/images.npz").exists()
