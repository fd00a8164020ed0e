"""Preprocessing a Fruits-360-sized folder: peak memory per job, wall time, and the decode floor.

    python benchmarks/bench_scale.py [--cache DIR] [--classes 131] [--train 517] [--test 173]
                                     [--size 100] [--cores 2]

1. Generates, once, a demo set the shape of Fruits-360 (by default 131 classes, 67,727 training
   and 22,663 test PNGs of 100 x 100 pixels) with the workflow's own generator, in ``--cache``
   (default ``benchmarks/out/scale``; reused while its manifest is complete).
2. Measures the floor: decoding every image once on one core (``cv2`` as the loader reads them),
   in a fresh process, right before the workflow runs.
3. Runs the preprocessing in a copy of the workflow (``--cores``): loading, the split, z-scoring
   and PCA under both protocols, with the shipped ``pca_solver: auto``. Prints each job's peak
   memory (Snakemake's benchmark files) beside the memory it asked for, the wall time, and the
   wall time as a multiple of the floor (the target is at most 2x on 2 cores), and what else the
   time went to.
4. With ``--study``, then trains a small study on the same folder (the 2-layer baseline and one
   learning-rate value, ``--epochs`` each, every run evaluated) and prints each per-run figure
   job's time and peak memory (targets: under 10 s and 1 GB) and the summary page's size.
5. Times planning (``--dry-run``) of the whole study on this folder against the study's own
   images (``PCANN_FRUITS_DIR``), and counts the bytes planning prints.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from pcann.data.demo import MANIFEST_NAME, generate_demo_dataset  # noqa: E402
from support import copy_workflow, cpu_name  # noqa: E402

#: The preprocessing's outputs under both protocols, with the default two components.
TARGETS = ["results/features/study/pca2/features.npz", "results/features/train-only/pca2/features.npz"]
#: Jobs whose peak memory is reported (their benchmark files).
BENCHMARKED = {
    "load_images": "results/benchmarks/load_images.tsv",
    "split_train_val": "results/benchmarks/split_train_val.tsv",
    "standardise (study)": "results/benchmarks/standardise/study.tsv",
    "standardise (train-only)": "results/benchmarks/standardise/train-only.tsv",
    "fit_pca (study)": "results/benchmarks/fit_pca/study-pca2.tsv",
    "fit_pca (train-only)": "results/benchmarks/fit_pca/train-only-pca2.tsv",
}

DECODE_SCRIPT = """
import sys, time
sys.path.insert(0, {scripts!r})
from pathlib import Path
from pcann.data.images import read_image, scan_split
started = time.perf_counter()
count = 0
for folder in ("Data_train", "Data_test"):
    found, _ = scan_split(Path({root!r}) / folder)
    for files in found.values():
        for path in files:
            read_image(path, "color")
            count += 1
print(count, time.perf_counter() - started)
"""


def generate(cache: Path, classes: int, train: int, test: int, size: int) -> Path:
    if (cache / MANIFEST_NAME).is_file():
        print(f"data: {cache} (cached)")
        return cache
    started = time.perf_counter()
    generate_demo_dataset(cache, n_train_per_class=train, n_test_per_class=test, image_size=size,
                          n_classes=classes)
    print(f"data: generated {cache} in {time.perf_counter() - started:.0f} s")
    return cache


def decode_floor(root: Path) -> tuple[int, float]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    script = DECODE_SCRIPT.format(scripts=str(REPO / "scripts"), root=str(root))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    count, seconds = out.stdout.split()
    return int(count), float(seconds)


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, capture_output=True,
                          text=True)


def planning(data_dir: Path, config: dict) -> tuple[float, int]:
    """Best of two dry-runs of the whole study on ``data_dir``: seconds, and bytes printed."""
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(Path(tmp) / "wf", config)
        best, printed = float("inf"), 0
        for _ in range(2):
            started = time.perf_counter()
            done = snakemake(work, "--dry-run", "--cores", "2", "--config", f"data_dir={data_dir}")
            best = min(best, time.perf_counter() - started)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            printed = len(done.stdout) + len(done.stderr)
        return best, printed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "out" / "scale")
    parser.add_argument("--classes", type=int, default=131)
    parser.add_argument("--train", type=int, default=517, help="training images per class")
    parser.add_argument("--test", type=int, default=173, help="test images per class")
    parser.add_argument("--size", type=int, default=100, help="image height and width")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run the workflow in this new folder and keep it")
    parser.add_argument("--study", action="store_true", help="also train and evaluate a small study")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each run of --study")
    args = parser.parse_args(argv)

    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    root = generate(args.cache, args.classes, args.train, args.test, args.size)
    n_images, floor = decode_floor(root)
    print(f"decode floor: {n_images} images decoded once on one core in {floor:.1f} s")

    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(compare_protocols=[], components_sweep=[])
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_workflow(args.keep or Path(tmp) / "wf", config)
        started = time.perf_counter()
        done = snakemake(work, *TARGETS, "--cores", str(args.cores), "--config", f"data_dir={root}")
        wall = time.perf_counter() - started
        if done.returncode:
            print(done.stderr[-5000:])
            return 1
        print(f"preprocessing with --cores {args.cores}: {wall:.1f} s wall = {wall / floor:.2f} x the decode floor "
              "(target: at most 2x)")
        print(f"{'job':<26} {'s':>7} {'peak MiB':>9} {'asked MiB':>10}")
        asked = _asked_memory(work, root)
        seconds = {}
        for name, path in BENCHMARKED.items():
            row = _benchmark_row(work / path)
            seconds[name] = float(row["s"])
            rule = name.split()[0]
            print(f"{name:<26} {seconds[name]:>7.1f} {float(row['max_rss']):>9.0f} {asked.get(rule, '?'):>10}")
        critical = {
            "loading": seconds["load_images"],
            "split": seconds["split_train_val"],
            "z-scoring (slower protocol)": max(v for k, v in seconds.items() if k.startswith("standardise")),
            "PCA (slower protocol)": max(v for k, v in seconds.items() if k.startswith("fit_pca")),
        }
        critical["Snakemake between jobs"] = wall - sum(critical.values())
        print("where the wall time went (the jobs on the critical path):")
        for name, value in critical.items():
            print(f"  {name:<30} {value:>6.1f} s = {value / floor:.2f} x the floor")
        if args.study:
            _small_study(work, root, config, args.cores, args.epochs)
    if os.environ.get("PCANN_FRUITS_DIR"):
        small, _ = planning(Path(os.environ["PCANN_FRUITS_DIR"]), yaml.safe_load((REPO / "config.yaml").read_text()))
        large, printed = planning(root, yaml.safe_load((REPO / "config.yaml").read_text()))
        print(f"planning the shipped study: {large:.1f} s on this folder vs {small:.1f} s on the study's images "
              f"({large - small:+.1f} s; target at most +3 s); {printed} bytes printed")
    return 0


def _benchmark_row(path: Path) -> dict[str, str]:
    with open(path) as handle:
        return next(csv.DictReader(handle, delimiter="\t"))


def _small_study(work: Path, root: Path, config: dict, cores: int, epochs: int) -> None:
    """Train the 2-layer baseline and one other learning rate for ``epochs`` on the folder the
    preprocessing ran on, with every output (per-run figures, evaluation, tables, summary), and
    print what each per-run figure job cost."""
    import yaml

    baseline = dict(config["networks"]["two_layer"]["baseline"], epochs=epochs)
    config = dict(config, networks={"two_layer": {"baseline": baseline, "sweep": {"lr": [0.01]}}},
                  headline=[{"network": "two_layer"}], seeds=[1], per_run_outputs="all")
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    done = snakemake(work, "--cores", str(cores), "--config", f"data_dir={root}")
    if done.returncode:
        raise SystemExit(done.stderr[-5000:])
    print(f"small study ({epochs} epochs a run, 2 runs, every output): {time.perf_counter() - started:.0f} s")
    print(f"{'per-run job':<40} {'s':>6} {'peak MiB':>9}   (targets: under 10 s and 1024 MiB)")
    for path in sorted(work.glob("results/runs/**/*.benchmark.tsv")):
        if path.name.startswith("train."):
            continue
        row = _benchmark_row(path)
        name = f"{path.name.split('.')[0]} {path.parent.name[:28]}"
        print(f"{name:<40} {float(row['s']):>6.1f} {float(row['max_rss']):>9.0f}")
    summary = (work / "results" / "summary.md").read_text()
    print(f"summary.md: {len(summary.splitlines())} lines, {len(summary)} characters, longest line "
          f"{max(map(len, summary.splitlines()))} characters")


def _asked_memory(work: Path, root: Path) -> dict[str, str]:
    """mem_mb each preprocessing rule asks for, as the workflow itself plans the jobs for this
    folder (a forced dry-run prints every job's resources)."""
    done = snakemake(work, *TARGETS, "--cores", "1", "--dry-run", "--forceall", "--config", f"data_dir={root}")
    asked = {}
    for block in re.split(r"^\[[^\]]+\]$", done.stdout, flags=re.M)[1:]:
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        memory = re.search(r"\bmem_mb=(\d+)", block)
        if rule and memory:
            asked.setdefault(rule[1], memory[1])
    return asked

if __name__ == "__main__":
    sys.exit(main())
