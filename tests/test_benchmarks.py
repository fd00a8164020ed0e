"""The benchmarks still run and print what the README quotes (their numbers are not tested)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO
from pcann.io import save_columns_csv


def run_benchmark(name: str, *args: str, timeout: int = 600) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *args],
        capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.realdata
def test_training_benchmark_prints_same_round_ratios_and_the_table(fruits_dir):
    out = run_benchmark(
        "bench_training.py", "--data-dir", str(fruits_dir), "--settings", "2,256",
        "--epochs", "2", "--repeats", "2", "--no-torch",
    )
    assert "data: 1176 train / 294 val samples, 2 features" in out
    assert "[256] b16: pcann" in out and "vs reference: " in out and "% of the round's peak" in out
    table = [line for line in out.splitlines() if line.startswith("| [")]
    assert [line.split(" | ")[0] for line in table] == ["| [2]", "| [256]"]


def test_training_benchmark_on_synthetic_data_sets_the_speed_ups_side_by_side():
    out = run_benchmark(
        "bench_training.py", "--data-dir", "", "--synthetic", "400:131", "--synthetic", "300:50:3",
        "--synthetic-epochs", "1", "--settings", "2", "--repeats", "2", "--no-torch", "--no-numpy-exp",
    )
    assert "data (synthetic 400:100:131): 400 train / 100 val samples, 2 features, 131 classes" in out
    assert "[2] b16, 300:50:3: pcann" in out and "s / epoch; vs reference: " in out
    assert "| net, batch 16 | 400:100:131, 131 classes | 300:50:3, 3 classes |" in out
    side_by_side = out.strip().splitlines()[-1]
    assert side_by_side.startswith("| [2] | ") and side_by_side.count("x (") == 2


@pytest.mark.workflow
def test_planning_benchmark_plans_a_grid_and_the_bare_reference():
    out = run_benchmark("bench_planning.py", "--sizes", "5", "--repeat", "1")
    row = out.strip().splitlines()[-1].split()
    # settings, per-run figure jobs, jobs, our seconds, bare seconds, ratio
    assert row[:2] == ["5", "5"] and int(row[2]) > 10, out
    assert float(row[3]) > 0 and float(row[4]) > 0


def test_study_benchmark_counts_the_products_of_the_epochs_each_job_trained(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import bench_study

    def run(name, first_epoch, epochs_run, recorded_epochs):
        run_dir = tmp_path / name
        run_dir.mkdir()
        metrics = {
            "n_components": 2, "hidden": [4], "classes": ["a", "b", "c"], "n_train": 10,
            "n_val": 5, "epochs_run": epochs_run,
        }
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        (run_dir / "timing.json").write_text(json.dumps({"first_epoch": first_epoch}))
        save_columns_csv(run_dir / "history.csv", {"epoch": recorded_epochs})
        return run_dir

    # 2 -> 4 -> 3 with biases: 12 and 15 weights; a sample costs 2 * 27 flops forward and
    # 3 * 2 * 27 - 2 * 12 = 138 in training (no gradient for the input); 15 samples are evaluated
    assert bench_study.training_flops(run("fresh", 1, 3, [1, 2, 3])) == 3 * 10 * 138 + 3 * 15 * 54
    # eval_every 2, continued after epoch 2: epochs 3, 4, 5 trained; the history holds the
    # shorter run's row of epoch 2, and this job's of 4 (every 2nd) and 5 (the last)
    assert bench_study.training_flops(run("continued", 3, 5, [2, 4, 5])) == 3 * 10 * 138 + 2 * 15 * 54


def test_explorer_benchmark_brushes_a_generated_study_and_times_the_table():
    import os
    import shutil

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("PCANN_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromium-driver are not installed, and PCANN_REQUIRE_BROWSER is set")
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    out = run_benchmark("bench_explorer.py", "--runs", "60", "--drags", "2")
    assert out.startswith("60 runs: page ") and "brush 2 on hidden_units: " in out
    assert "mouse move -> table rows in the page: median " in out and "CPU: " in out


def test_study_benchmark_splits_the_job_time_by_stage(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import bench_study

    def benchmark(path, seconds):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t10\n")

    run = tmp_path / "runs" / "study" / "pca2" / "hidden=4_epochs=2_lr=0.1_batch=8_seed=1"
    benchmark(run / "train.benchmark.tsv", 10.0)
    benchmark(run / "run_outputs.benchmark.tsv", 2.0)
    benchmark(tmp_path / "benchmarks" / "load_images.tsv", 3.0)
    benchmark(tmp_path / "benchmarks" / "fit_pca" / "study-pca2.tsv", 1.5)
    benchmark(tmp_path / "benchmarks" / "study_tables.tsv", 0.5)
    benchmark(tmp_path / "benchmarks" / "summary.tsv", 0.25)
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "not_a_benchmark.tsv").write_text("s\n99\n")
    assert bench_study.time_split(tmp_path) == {
        "training": (1, 10.0), "per-run outputs": (1, 2.0), "preprocessing": (2, 4.5), "aggregation": (2, 0.75),
    }


def test_study_benchmark_tells_snakemakes_own_cpu_time_from_its_jobs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import bench_study

    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass\n"
    # a "Snakemake" that computes 0.3 s itself and runs a "job" computing 0.6 s
    parent = busy.format(0.3) + f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy.format(0.6)!r}])"
    returncode, _, own, total = bench_study.run_snakemake([sys.executable, "-c", parent], tmp_path)
    assert returncode == 0
    assert 0.3 <= own < 0.55, own
    assert total - own >= 0.6, (own, total)


@pytest.mark.workflow
def test_search_benchmark_sets_the_methods_side_by_side_and_prints_the_targets():
    import re

    out = run_benchmark(
        "bench_search.py", "--quick", "--no-optuna", "--data-dir", "", "--generated-classes", "4", timeout=120,
    )
    assert out.startswith("CPU: ") and "## generated: 4 demo classes" in out
    number = r"\d+(?:\.\d+)?"
    accuracy = rf"{number} \[{number}, {number}\]"
    for method in (
        "pcann search to its decisions (snakemake --cores 2 results/search/bench/rung_1.csv)",
        "pcann search complete (+ snakemake --cores 2 search: result, figure, winner's outputs)",
        "the search's rungs replayed in-process",
        "full grid at 6 epochs (in-process)", "scikit-learn HalvingGridSearchCV",
    ):
        row = rf"^\| {re.escape(method)} \| {number} \| {number} \| \d+ \| hidden=\S+ \| {number} \| {accuracy} \| "
        assert re.search(row, out, re.M), (method, out)
    assert "Optuna" not in out.split("| method |")[1].split("\n\n")[0]
    for target in (
        rf"^target: search CPU <= 1/4 of the grid's: search to its decisions {number} s / grid {number} s = {number} .* -> (met|MISSED)$",
        rf"^target: the search's winner not significantly worse than the grid's best: .*McNemar p = {number}.* -> (met|MISSED)$",
        rf"^target: search CPU < scikit-learn halving CPU for the same decisions: search to its decisions {number} s vs {number} s = {number}x .*; \d of 2 decisions .* -> (met|MISSED)",
    ):
        assert re.search(target, out, re.M), (target, out)
    assert "validation accuracies equal the rung tables' for 6 of 6 runs" in out
    for call in (r"preparation, snakemake --cores 2 \S+features.npz, \S+metrics.json: ",
                 r"the search to its decisions, snakemake --cores 2 results/search/bench/rung_1.csv: ",
                 r"the rest of the search, snakemake --cores 2 search: "):
        assert re.search(rf"^  {call}{number} s \[{number} s\]", out, re.M), (call, out)
