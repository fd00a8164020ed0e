"""Wall time of the whole study on the real data: both networks, four sweeps, headline runs.

    PCANN_FRUITS_DIR=/path/to/fruits python benchmarks/bench_study.py [--cores 2] [--with-extras]

The workflow is copied to a temporary folder and run from nothing with the shipped config.yaml,
``data_dir`` set to the real data, and (unless --with-extras) the protocol comparison and the
PCA-components sweep switched off, which is the study as the reference ran it. Prints the wall
time, the number of training jobs, and the sum of their own run times from Snakemake's
benchmark files (the work the cores shared).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from pcann.workflow_files import copy_workflow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("PCANN_FRUITS_DIR"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--with-extras", action="store_true", help="keep protocols and components sweeps")
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit("set PCANN_FRUITS_DIR or pass --data-dir")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data_dir"] = str(Path(args.data_dir).resolve())
    if not args.with_extras:
        config.update(compare_protocols=[], components_sweep=[])
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(Path(args.keep or tmp), config)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "--quiet", "all"],
            cwd=work, capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"the study failed:\n{result.stderr[-5000:]}")
        benchmarks = list((work / "results" / "runs").rglob("train.benchmark.tsv"))
        job_seconds = sum(float(next(csv.DictReader(open(p), delimiter="\t"))["s"]) for p in benchmarks)
        print(f"study on {args.data_dir} with --cores {args.cores}: {wall:.1f} s wall")
        print(f"training jobs: {len(benchmarks)}, their summed run time: {job_seconds:.1f} s")
        print(f"headline table:\n{(work / 'results' / 'tables' / 'headline.md').read_text()}")


if __name__ == "__main__":
    main()
