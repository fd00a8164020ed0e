"""How long Snakemake takes to plan (dry-run) grids of 100, 1000 and 5000 settings.

Each grid is one network whose learning-rate sweep has N - 1 values, so the study has N training
runs (plus their per-run figure jobs unless --plot-runs headline). For scale, the same number of
trivial jobs in a bare Snakefile is planned too, and the ratio printed.

    python benchmarks/bench_planning.py [--sizes 100 1000 5000] [--plot-runs all|headline]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_ITEMS = ("Snakefile", "config.yaml", "rules", "scripts", "schemas", "envs", "profiles", "report")


def grid_config(n_settings: int, plot_runs: str) -> dict:
    lrs = [round(1e-4 * (1 + i), 10) for i in range(n_settings)]
    return {
        "networks": {
            "net": {
                "baseline": {"hidden": [8], "epochs": 10, "lr": lrs[0], "batch_size": 16},
                "sweep": {"lr": lrs[1:]},
            }
        },
        "headline": [{"network": "net"}],
        "compare_protocols": [],
        "components_sweep": [],
        "plot_runs": plot_runs,
    }


BARE_SNAKEFILE = """
N = int(config["n_jobs"])
rule all:
    input: expand("out/{i}.txt", i=range(N))
rule one:
    output: "out/{i}.txt"
    shell: "touch {output}"
"""


def timed(cmd, cwd) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--plot-runs", choices=["all", "headline"], default="all")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many dry-runs")
    args = parser.parse_args()
    snakemake = [sys.executable, "-m", "snakemake"]
    print(f"{'settings':>8} {'jobs':>6} {'pcann dry-run s':>16} {'bare jobs s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "wf"
        work.mkdir()
        for item in WORKFLOW_ITEMS:
            source = REPO / item
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, work / item)
        bare = Path(tmp) / "bare"
        bare.mkdir()
        (bare / "Snakefile").write_text(BARE_SNAKEFILE)
        for n in args.sizes:
            # replaces config.yaml: a --configfile would be merged into the shipped study
            (work / "config.yaml").write_text(yaml.safe_dump(grid_config(n, args.plot_runs)))
            cmd = [*snakemake, "--dry-run", "--quiet", "--cores", "2"]
            ours = min(timed(cmd, work) for _ in range(args.repeat))
            n_jobs = n * (2 if args.plot_runs == "all" else 1)
            bare_cmd = [*snakemake, "--dry-run", "--quiet", "--cores", "2", "--config", f"n_jobs={n_jobs}"]
            reference = min(timed(bare_cmd, bare) for _ in range(args.repeat))
            print(f"{n:>8} {n_jobs:>6} {ours:>16.2f} {reference:>12.2f} {ours / reference:>6.2f}")


if __name__ == "__main__":
    main()
