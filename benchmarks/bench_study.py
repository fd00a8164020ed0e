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



#: Which stage a job's benchmark file belongs to, by its rule (the file's name or folder).
STAGES = {
    "training": ("train",),
    "per-run outputs": ("run_outputs", "plot_run", "export_model", "evaluate_run"),
    "preprocessing": ("load_images", "split_train_val", "standardise", "fit_pca", "plot_samples", "plot_pca"),
}


def time_split(results: Path) -> dict[str, tuple[int, float]]:
    """stage -> (jobs, their summed run time in s), from every benchmark file under results/
    (a run's <rule>.benchmark.tsv; benchmarks/<rule>.tsv or benchmarks/<rule>/<job>.tsv):
    training, per-run outputs, preprocessing, and the rest, the aggregation."""
    split = {stage: (0, 0.0) for stage in (*STAGES, "aggregation")}
    for path in results.rglob("*.tsv"):
        if path.name.endswith(".benchmark.tsv"):
            rule = path.name.split(".")[0]
        elif path.parent.name == "benchmarks":
            rule = path.stem
        elif path.parent.parent.name == "benchmarks":
            rule = path.parent.name
        else:
            continue
        stage = next((stage for stage, rules in STAGES.items() if rule in rules), "aggregation")
        jobs, seconds = split[stage]
        split[stage] = (jobs + 1, seconds + float(next(csv.DictReader(open(path), delimiter="\t"))["s"]))
    return split


def run_snakemake(cmd: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """Run Snakemake; its return code, its terminal output (stdout and stderr), and the CPU seconds (user + system) of its own
    process and of all its jobs' processes. Its own is read from /proc once it has exited and
    before it is reaped (waitid with WNOWAIT): the jobs' processes are its children, counted
    apart (cutime, cstime), so that the scheduler's cost is not mixed with the jobs'."""
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(cmd, cwd=cwd, stdout=err, stderr=err, text=True)
        own = None
        if hasattr(os, "waitid") and Path(f"/proc/{process.pid}/stat").exists():
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        total = usage.ru_utime + usage.ru_stime
        err.seek(0)
        return process.returncode, err.read(), (own if own is not None else float("nan")), total


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
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        returncode, output, snakemake_cpu, cpu = run_snakemake(
            [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "all"], work,
        )
        wall = time.perf_counter() - started
        load_after = os.getloadavg()[0]
        if returncode != 0:
            sys.exit(f"the study failed:\n{output[-5000:]}")
        peak = max(peak_before, matmul_peak())  # the faster moment: a conservative bound
        benchmarks = list((work / "results" / "runs").rglob("train.benchmark.tsv"))
        job_seconds = sum(float(next(csv.DictReader(open(p), delimiter="\t"))["s"]) for p in benchmarks)
        flops = sum(training_flops(p.parent) for p in benchmarks)
        bound = flops / (args.cores * peak * 1e9)
        print(f"study {args.study or 'config.yaml'} on {config.get('data_dir') or 'the demo data'} "
              f"with --cores {args.cores}: {wall:.1f} s wall, {cpu:.1f} s CPU; load average (1 min) "
              f"{load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs")
        estimate = estimated_times(output)
        if estimate:
            print(
                f"the cost block's estimate: {estimate[1]:.0f} s wall = {estimate[1] / wall:.2f}x the "
                f"measured wall time, {estimate[0]:.0f} s CPU = {estimate[0] / cpu:.2f}x the measured CPU time"
            )
        else:
            print("the run printed no cost block")
        terminal = (output).splitlines()
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
        print(f"where the {args.cores} x {wall:.1f} s of core time went (jobs' run times from their benchmark files):")
        for stage, (jobs, seconds) in time_split(work / "results").items():
            print(f"  {stage:16s} {jobs:4d} jobs {seconds:8.1f} s  {100 * seconds / (args.cores * wall):5.1f}%")
        print(
            f"  Snakemake itself: {snakemake_cpu:.1f} s CPU = {100 * snakemake_cpu / wall:.1f}% of the wall time "
            f"(all processes: {cpu:.1f} s CPU, {100 * cpu / (args.cores * wall):.0f}% of the core time)"
        )
        print(f"headline table:\n{(work / 'results' / 'tables' / 'headline.md').read_text()}")


if __name__ == "__main__":
    main()
