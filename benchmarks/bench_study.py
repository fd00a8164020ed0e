"""Wall time of the whole study on the real data: both networks, four sweeps, headline runs.

    PCANN_FRUITS_DIR=/path/to/fruits python benchmarks/bench_study.py [--cores 2] [--with-extras]
        [--seeds N]
    python benchmarks/bench_study.py --study .test/config.yaml [--data-dir DIR]   # another study

The workflow is copied to a temporary folder and run from nothing with the shipped config.yaml,
``data_dir`` set to the real data, and (unless --with-extras) the protocol comparison and the
PCA-components sweep switched off, which is the study as the reference ran it; ``--seeds N``
replicates every run with seeds 1..N. Prints the wall
time, the number of training jobs, and the sum of their own run times from Snakemake's
benchmark files (the work the cores shared). ``--study FILE`` runs that study file instead (it
replaces config.yaml; the extras switch and --seeds still apply; with ``data_dir: null`` it runs
on the demo data).

The cost block every run prints before its first job (pcann.study.cost) is checked against the run:
its estimated wall and CPU times beside the measured wall time and the CPU time of Snakemake
and every job it started, and their ratios (the target: within 0.5-2x).

The reference measured in the same run is the machine itself: the matrix products the training
jobs computed (counted from each run's metrics.json, timing.json and history.csv, as
bench_training.py counts them) against the single-core float32 matmul peak, measured just before
and just after the study in a process with one BLAS thread. Products at the peak on every core
would take ``flops / (cores * peak)``; the wall time is printed as a multiple of that bound,
which carries over between machines where seconds do not.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from pcann.study.cost import parse_duration  # noqa: E402
from pcann.io import load_columns_csv  # noqa: E402
sys.path.insert(0, str(REPO / "tests"))
from support import copy_workflow  # noqa: E402

BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from bench_training import matmul_flops_per_epoch  # noqa: E402

#: Measures the peak in a fresh process: one BLAS thread, as every training job has.
PEAK_SCRIPT = "import bench_training; print(bench_training.measure_matmul_peak())"
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def matmul_peak() -> float:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT], cwd=BENCHMARKS, env={**os.environ, **ONE_THREAD},
        capture_output=True, text=True, check=True,
    )
    return float(result.stdout)


def training_flops(run_dir: Path) -> float:
    """Flops of the matrix products of the epochs this job trained (a continued run trains only
    those after the run it continues) and of its evaluations: the rows of its history from
    those epochs."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    first = json.loads((run_dir / "timing.json").read_text())["first_epoch"]
    recorded = load_columns_csv(run_dir / "history.csv")["epoch"]
    sizes = (metrics["n_components"], *metrics["hidden"], len(metrics["classes"]))
    n_train, n_eval = metrics["n_train"], metrics["n_train"] + metrics["n_val"]
    n_epochs = metrics["epochs_run"] - first + 1
    n_evaluations = sum(1 for epoch in recorded if epoch >= first)
    training = matmul_flops_per_epoch(sizes, n_train, 0)
    evaluation = matmul_flops_per_epoch(sizes, 0, n_eval)
    return n_epochs * training + n_evaluations * evaluation


#: The times of the cost block: "estimated CPU time 12:34, wall time about 6:40 on 2 cores".
COST_LINE = re.compile(r"estimated CPU time ([\d:]+), wall time about ([\d:]+) on (\d+) core")


def estimated_times(output: str) -> tuple[float, float] | None:
    """(CPU, wall) seconds of the cost block in a run's terminal output, if it printed one."""
    found = COST_LINE.search(output)
    return (parse_duration(found[1]), parse_duration(found[2])) if found else None


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("PCANN_FRUITS_DIR"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--with-extras", action="store_true", help="keep protocols and components sweeps")
    parser.add_argument(
        "--seeds", type=int, default=None,
        help="replicate seeds 1..N (default: the shipped config's seeds)",
    )
    parser.add_argument("--keep", help="run in this new folder and keep it (default: a temporary one)")
    parser.add_argument("--study", help="a study file to run instead of the shipped config.yaml")
    args = parser.parse_args()
    if not args.data_dir and not args.study:
        sys.exit("set PCANN_FRUITS_DIR or pass --data-dir (or --study FILE)")
    keep = Path(args.keep) if args.keep else None
    if keep and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        # a folder holding an earlier study would time Snakemake finding nothing to do
        sys.exit(f"--keep {keep}: exists and is not an empty folder; name a new folder")
    config = yaml.safe_load(Path(args.study or REPO / "config.yaml").read_text())
    if args.data_dir:
        config["data_dir"] = str(Path(args.data_dir).resolve())
    if args.seeds:
        config["seeds"] = list(range(1, args.seeds + 1))
    if not args.with_extras:
        config.update(compare_protocols=[], components_sweep=[])
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(keep or Path(tmp), config)
        peak_before = matmul_peak()
        cpu_before = children_cpu_seconds()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "all"],
            cwd=work, capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
        cpu = children_cpu_seconds() - cpu_before
        load_after = os.getloadavg()[0]
        if result.returncode != 0:
            sys.exit(f"the study failed:\n{result.stderr[-5000:]}")
        peak = max(peak_before, matmul_peak())  # the faster moment: a conservative bound
        benchmarks = list((work / "results" / "runs").rglob("train.benchmark.tsv"))
        job_seconds = sum(float(next(csv.DictReader(open(p), delimiter="\t"))["s"]) for p in benchmarks)
        flops = sum(training_flops(p.parent) for p in benchmarks)
        bound = flops / (args.cores * peak * 1e9)
        print(f"study {args.study or 'config.yaml'} on {config.get('data_dir') or 'the demo data'} "
              f"with --cores {args.cores}: {wall:.1f} s wall, {cpu:.1f} s CPU; load average (1 min) "
              f"{load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs")
        estimate = estimated_times(result.stdout + result.stderr)
        if estimate:
            print(
                f"the cost block's estimate: {estimate[1]:.0f} s wall = {estimate[1] / wall:.2f}x the "
                f"measured wall time, {estimate[0]:.0f} s CPU = {estimate[0] / cpu:.2f}x the measured CPU time"
            )
        else:
            print("the run printed no cost block")
        terminal = (result.stdout + result.stderr).splitlines()
        print(f"its terminal: {len(terminal)} lines, the longest {max(map(len, terminal), default=0)} characters")
        print(f"training jobs: {len(benchmarks)}, their summed run time: {job_seconds:.1f} s")
        print(
            f"their matrix products: {flops / 1e12:.2f} TFLOP, run at {flops / job_seconds / 1e9:.1f} "
            f"GFLOP/s per job = {100 * flops / job_seconds / 1e9 / peak:.0f}% of the single-core "
            f"float32 matmul peak ({peak_before:.1f} GFLOP/s before the study, {peak:.1f} best)"
        )
        print(
            f"the products at that peak on {args.cores} cores: {bound:.0f} s; "
            f"wall time / that bound: {wall / bound:.2f}"
        )
        headline = work / "results" / "tables" / "headline.md"
        if headline.exists():
            print(f"headline table:\n{headline.read_text()}")


if __name__ == "__main__":
    main()
