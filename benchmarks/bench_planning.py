"""How long Snakemake takes to plan (dry-run) grids of 100, 1000 and 5000 settings.

Each grid is one network whose learning-rate sweep has N - 1 values, so the study has N training
runs, plus one per-run outputs job (figures, model file, evaluation) for each run that gets them. The grids keep the workflow's
default `per_run_outputs` (auto) unless --per-run-outputs sets it. For scale, a bare Snakefile with the same
number of trivial jobs is planned too, in the same run, and the ratio printed. Times are the
best of --repeat dry-runs.

    python benchmarks/bench_planning.py [--sizes 100 1000 5000] [--per-run-outputs auto|all|headline]
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(REPO / "tests"))
from support import copy_workflow  # noqa: E402


def grid_config(n_settings: int, per_run_outputs: str | None = None) -> dict:
    lrs = [round(1e-4 * (1 + i), 10) for i in range(n_settings)]
    config = {
        "networks": {
            "net": {
                "baseline": {"hidden": [8], "epochs": 10, "lr": lrs[0], "batch_size": 16},
                "sweep": {"lr": lrs[1:]},
            }
        },
        "headline": [{"network": "net"}],
        "compare_protocols": [],
        "components_sweep": [],
    }
    if per_run_outputs is not None:
        config["per_run_outputs"] = per_run_outputs
    return config


BARE_SNAKEFILE = """
N = int(config["n_jobs"])
rule all:
    input: expand("out/{i}.txt", i=range(N))
rule one:
    output: "out/{i}.txt"
    shell: "touch {output}"
"""


def timed(cmd, cwd) -> tuple[float, dict[str, int]]:
    """Wall time of a dry-run, and its planned jobs by rule."""
    started = time.perf_counter()
    # Snakemake's "Job stats" table, which pcann's default terminal hides, counts the jobs
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PCANN_VERBOSE": "1"})
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{result.stderr[-3000:]}")
    table = (result.stdout + result.stderr).split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return elapsed, {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument(
        "--per-run-outputs", choices=["auto", "all", "headline"], default=None,
        help="per-run figures; default: the workflow's default (auto)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of this many dry-runs")
    args = parser.parse_args()
    # `--quiet rules` still prints the job stats, from which the job counts are read
    dry_run = [sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "rules", "--cores", "2"]
    print(f"{'settings':>8} {'per-run':>8} {'jobs':>6} {'pcann dry-run s':>16} {'bare jobs s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(Path(tmp) / "wf")
        bare = Path(tmp) / "bare"
        bare.mkdir()
        (bare / "Snakefile").write_text(BARE_SNAKEFILE)
        for n in args.sizes:
            # replaces config.yaml: a --configfile would be merged into the shipped study
            (work / "config.yaml").write_text(yaml.safe_dump(grid_config(n, args.per_run_outputs)))
            elapsed, jobs = timed(dry_run, work)
            ours = [elapsed]
            # the bare workflow's own `all` job makes the totals equal
            bare_cmd = [*dry_run, "--config", f"n_jobs={jobs['total'] - 1}"]
            reference = []
            # alternated, so that both see the same moments of a machine whose speed drifts
            for repeat in range(args.repeat):
                if repeat:
                    ours.append(timed(dry_run, work)[0])
                reference.append(timed(bare_cmd, bare)[0])
            print(
                f"{n:>8} {jobs.get('run_outputs', 0):>8} {jobs['total']:>6} {min(ours):>16.2f} "
                f"{min(reference):>12.2f} {min(ours) / min(reference):>6.2f}"
            )


if __name__ == "__main__":
    main()
