"""How fast the results explorer's table follows a brush, at 1,000 runs, in headless Chromium.

    python benchmarks/bench_explorer.py [--runs 1000] [--drags 10] [--keep PAGE]

Generates a study of ``--runs`` runs (two networks, two protocols, five component counts, swept
hidden units, epochs, learning rates and batch sizes, five seeds; accuracies drawn at random,
some runs diverged, each non-baseline run compared with a baseline), builds its explorer page
with pcann.results.explorer (without figures: a page of 1,000 runs keeps none within the size
limit), opens it in Debian's headless Chromium, and drags ``--drags`` brushes with the mouse,
one axis after another. For every table update while a brush moves it takes the time from the
mouse event that moved the brush to (a) the table rows in the page and (b) the next frame
painted after them, and prints the median, the 95th percentile and the largest of each, with
the page's size. The table must follow within 200 ms (issue 25).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))
from support import cpu_name  # noqa: E402

from pcann.results.explorer import AXES, build_explorer  # noqa: E402
from pcann.study.paths import RUNS_ROOT  # noqa: E402

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)
#: Records, in the page, when the mouse last moved and when each table update was painted.
PROBE = """
window.latencies = [];
document.addEventListener("pointermove", event => { window.lastMove = event.timeStamp; }, true);
const render = window.renderTable;
window.renderTable = function () {
  render();
  const moved = window.lastMove, rendered = performance.now();
  if (moved === undefined) return;
  requestAnimationFrame(() => setTimeout(() => {
    window.latencies.push([rendered - moved, performance.now() - moved]);
  }, 0));
};
"""
AXIS_BOX = (REPO / "tests" / "test_report.py").read_text().split('AXIS_BOX = """')[1].split('"""')[0]


def generated_study(n_runs: int, seed: int = 0):
    """runs.csv, comparisons.csv and plan records of ``n_runs`` generated runs."""
    rng = np.random.default_rng(seed)
    choices = {
        "protocol": ["study", "train-only"], "n_components": [2, 3, 5, 10, 50],
        "hidden": ["2", "4", "32", "128", "256", "512", "256-512", "32-64", "512-1024"],
        "epochs": [10, 100, 200, 800, 1000, 2000, 4000], "lr": [1e-5, 1e-4, 1e-3, 5e-3, 1e-2, 1e-1],
        "batch_size": [4, 16, 32, 64, 256],
    }
    settings = set()
    while len(settings) < (n_runs + 4) // 5:
        settings.add(tuple(rng.choice(values) for values in choices.values()))
    rows = []
    for setting in sorted(settings, key=str):
        for seed_ in range(1, 6):
            record = dict(zip(choices, setting))
            record = {key: (value.item() if hasattr(value, "item") else value) for key, value in record.items()}
            name = (f"hidden={record['hidden']}_epochs={record['epochs']}_lr={record['lr']:g}_"
                    f"batch={record['batch_size']}_seed={seed_}")
            diverged = rng.random() < 0.03
            accuracy = lambda: float("nan") if diverged else float(rng.uniform(0.3, 1.0))  # noqa: E731
            rows.append({
                "run_dir": f"{RUNS_ROOT}/{record['protocol']}/pca{record['n_components']}/{name}",
                **record, "seed": seed_, "n_train": 1176, "n_val": 294, "n_test": 490,
                "diverged": diverged, "train_accuracy": accuracy(), "val_accuracy": accuracy(),
                "test_accuracy": accuracy(),
            })
    runs = pd.DataFrame(rows[:n_runs])
    plan, comparisons = [], []
    network = lambda hidden: "three_layer" if "-" in hidden else "two_layer"  # noqa: E731
    baselines = runs.groupby(runs["hidden"].map(network)).head(1)
    for row in runs.itertuples():
        base = baselines[baselines["hidden"].map(network) == network(row.hidden)].iloc[0]
        is_baseline = row.run_dir == base["run_dir"]
        plan.append({"table": "sweep", "network": network(row.hidden), "parameter": "lr", "value": f"{row.lr:g}",
                     "is_baseline": is_baseline, "run_dir": row.run_dir})
        if not is_baseline:
            difference = float(rng.normal(0, 0.05))
            p = float(rng.uniform(0, 1))
            comparisons.append({"network": network(row.hidden), "parameter": "lr", "value": f"{row.lr:g}",
                                "seed": row.seed, "run_dir": row.run_dir, "baseline_run_dir": base["run_dir"],
                                "difference": difference, "low": difference - 0.04, "high": difference + 0.04,
                                "p_value": p, "p_holm": min(1.0, 3 * p)})
    return runs, pd.DataFrame(comparisons), plan


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_window_size(1500, 1100)
    return driver


def drag(driver, x, y0, y1, steps=12):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionChains(driver)
    pointer = ActionBuilder(driver).pointer_action
    pointer.move_to_location(int(x), int(y0))
    pointer.pointer_down()
    for step in range(1, steps + 1):
        pointer.move_to_location(int(x), int(y0 + (y1 - y0) * step / steps))
    pointer.pointer_up()
    actions.w3c_actions.devices = [pointer.source]
    actions.perform()


def open_page(driver, path):
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + 60
    while not driver.execute_script("return !!window.explorerView"):
        if time.monotonic() > deadline:
            sys.exit("the page did not draw its chart within 60 s")
        time.sleep(0.2)
    driver.execute_script(PROBE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--drags", type=int, default=10)
    parser.add_argument("--keep", help="write the generated page here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        runs, comparisons, plan = generated_study(args.runs)
        runs.to_csv(Path(tmp) / "runs.csv", index=False)
        comparisons.to_csv(Path(tmp) / "comparisons.csv", index=False)
        started = time.perf_counter()
        page = build_explorer(Path(tmp) / "runs.csv", Path(tmp) / "comparisons.csv", plan, {}, [])
        built = time.perf_counter() - started
        path = Path(args.keep) if args.keep else Path(tmp) / "explorer.html"
        path.write_text(page)
        print(f"{len(runs)} runs: page {len(page.encode()) / 1e6:.2f} MB, built in {built:.1f} s")

        driver = browser()
        measured = []
        try:
            axes = list(AXES)
            for index in range(args.drags):
                # a fresh page for every brush: each one filters all 1,000 runs
                open_page(driver, path)
                axis = axes[index % len(axes)]
                box = driver.execute_script(AXIS_BOX, f"axis_{axis}_group")
                top = box["y"] + box["height"] * (0.1 + 0.05 * (index % 4))
                drag(driver, box["x"] + box["width"] / 2, top, top + box["height"] * 0.5)
                time.sleep(0.5)
                shown = driver.execute_script("return document.getElementById('count').textContent")
                print(f"  brush {index + 1} on {axis}: {shown}")
                measured += driver.execute_script("return window.latencies")
        finally:
            driver.quit()
        latencies = np.array(measured)
    if not len(latencies):
        sys.exit("no table update was measured")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    for column, what in ((0, "mouse move -> table rows in the page"), (1, "mouse move -> next frame painted")):
        values = latencies[:, column]
        print(f"{what}: median {statistics.median(values):.0f} ms, 95th percentile "
              f"{np.percentile(values, 95):.0f} ms, max {values.max():.0f} ms ({len(values)} updates)")


if __name__ == "__main__":
    main()
