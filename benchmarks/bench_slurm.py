"""Requested against used, on a Slurm cluster: runs a study through profiles/slurm and reads every
job's accounting with sacct (time limit against elapsed time, CPUs asked for against CPU time
used).

Needs a Slurm with accounting (sacct), e.g. the localhost one of the tests:
    SLURM_ACCOUNTING=1 bash tests/slurm/start-slurm.sh
    python benchmarks/bench_slurm.py --cores 2 [--configfile STUDY.yaml] [--keep DIR]

The study runs up to its runs table (every training, no figures), from nothing, in a copy of
the workflow. Prints one line per Slurm job and the totals.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_ITEMS = ("Snakefile", "config.yaml", "rules", "scripts", "schemas", "envs", "profiles", "report")
FIELDS = ("JobID", "JobName", "Partition", "AllocCPUS", "Timelimit", "Elapsed", "TotalCPU", "State")


def seconds(text: str) -> float:
    """Seconds of a sacct duration: [D-][HH:]MM:SS[.fff]."""
    days, _, rest = text.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    hours, minutes, secs = parts
    return (int(days) if days else 0) * 86400 + hours * 3600 + minutes * 60 + secs


def accounting(job_ids: list[str]) -> list[dict]:
    """sacct's record of each job's allocation. slurmdbd stores a job's CPU time some seconds
    after it ends: wait until every job has one (at most a minute)."""
    # not -X: with it, sacct 22.05 gives the allocation a TotalCPU of 0; the job's own line
    # (no "." in its id) sums its steps
    command = ["sacct", "-P", "-n", "-j", ",".join(job_ids), f"--format={','.join(FIELDS)}"]
    for _ in range(30):
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        records = [dict(zip(FIELDS, line.split("|"))) for line in out.splitlines()]
        records = [r for r in records if "." not in r["JobID"]]
        if len(records) == len(job_ids) and all(seconds(r["TotalCPU"]) > 0 for r in records):
            break
        time.sleep(2)
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="2", help="CPUs of a group job (the profile's cores: 8)")
    parser.add_argument("--configfile", help="a study file (default: the shipped config.yaml)")
    parser.add_argument("--keep", help="run in this new folder and keep it")
    parser.add_argument("--report", help="only report on the run kept in this folder")
    parser.add_argument("extra", nargs="*", help="more snakemake arguments (after --)")
    args = parser.parse_args()
    if args.report:
        workdir, wall = Path(args.report), float("nan")
        output = (workdir / "bench_slurm.log").read_text()
    else:
        workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pcann-bench-slurm-"))
        workdir.mkdir(parents=True, exist_ok=True)
        for item in WORKFLOW_ITEMS:
            source = REPO / item
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, workdir / item)
        command = [
            sys.executable, "-m", "snakemake", "results/tables/runs.csv", "--profile", "profiles/slurm",
            "--cores", args.cores, "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5",
            *(["--configfile", str(Path(args.configfile).resolve())] if args.configfile else []),
            *args.extra,
        ]  # fmt: skip
        started = time.monotonic()
        # PCANN_VERBOSE=1: Snakemake's own lines, which name every submitted job's Slurm id
        run = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, env={**os.environ, "PCANN_VERBOSE": "1"}
        )
        wall = time.monotonic() - started
        output = run.stdout + run.stderr
        (workdir / "bench_slurm.log").write_text(output)
        if run.returncode != 0:
            print(output[-5000:])
            print(f"snakemake exited {run.returncode}; log: {workdir / 'bench_slurm.log'}")
            return 1
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/(\S+?)/", output)
    names = dict(submitted)
    print(f"{len(names)} Slurm jobs, snakemake {wall:.0f} s")
    print(f"{'job':36} {'CPUs':>4} {'limit':>8} {'elapsed':>8} {'CPU time':>9} {'of limit':>8} {'CPU use':>7}")
    totals = {"asked": 0.0, "held": 0.0, "used": 0.0}
    for record in accounting(list(names)):
        cpus = int(record["AllocCPUS"])
        limit, elapsed, used = (seconds(record[k]) for k in ("Timelimit", "Elapsed", "TotalCPU"))
        totals["asked"] += cpus * limit
        totals["held"] += cpus * elapsed
        totals["used"] += used
        print(
            f"{names.get(record['JobID'], record['JobName'])[:36]:36} {cpus:>4} {limit / 60:>7.0f}m "
            f"{elapsed:>7.0f}s {used:>8.1f}s {elapsed / limit:>8.1%} {used / max(cpus * elapsed, 1):>7.0%}"
        )
    print(
        f"total: asked {totals['asked'] / 3600:.2f} CPU-hours (CPUs x limit), held "
        f"{totals['held'] / 3600:.3f} (CPUs x elapsed, {totals['held'] / totals['asked']:.1%} of asked), "
        f"used {totals['used'] / 3600:.3f} CPU-hours ({totals['used'] / max(totals['held'], 1):.0%} of held)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
