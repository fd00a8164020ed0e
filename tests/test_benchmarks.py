"""The benchmarks still run and print what the README quotes (their numbers are not tested)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO


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


@pytest.mark.workflow
def test_planning_benchmark_plans_a_grid_and_the_bare_reference():
    out = run_benchmark("bench_planning.py", "--sizes", "5", "--repeat", "1")
    row = out.strip().splitlines()[-1].split()
    # settings, per-run figure jobs, jobs, our seconds, bare seconds, ratio
    assert row[:2] == ["5", "5"] and int(row[2]) > 10, out
    assert float(row[3]) > 0 and float(row[4]) > 0
