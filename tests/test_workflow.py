"""The workflow end to end, in a temporary copy: runs, lints, formats, refuses bad config."""

from __future__ import annotations

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
