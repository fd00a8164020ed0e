"""The adaptive search against the full grid, scikit-learn's and Optuna's successive halving.

    python benchmarks/bench_search.py [--data-dir DIR] [--generated-classes 24]
        [--generated-per-class 600] [--quick] [--no-optuna] [--no-sklearn] [--keep DIR]

On each dataset, (a) the real images (``--data-dir``, default ``$PCANN_FRUITS_DIR``; ``''``
leaves them out) and (b) a generated one (``--generated-classes`` demo classes,
``--generated-per-class`` training-folder images each, 600 by default, and a quarter as many
test images, ``pcann.data.demo``; 0 classes leaves it out), the same space of candidates
(a two-layer network: hidden 8, 32, 128, 512 x learning rate 0.001, 0.005, 0.02, 0.1, 0.5 x
batch 16, 64, 256 = 60 candidates; PCA 2 components, protocol study, seed 1), the same epoch
budget (30 to 810 epochs, reduction factor 3: rungs 30, 90, 270, 810 keeping 60, 20, 7, 3) and
the same trainer (``pcann.nn.training.train_network`` with the same training options: the
shipped config.yaml's, but ``eval_every`` the first rung's epochs, 30, for every method) are
searched four ways. ``eval_every`` is how often a run scores its training and validation sets
for its history; the shipped study scores them every epoch, which costs a method that keeps a
validation set (the search's runs, the grid, Optuna) more per epoch than scikit-learn's, which
fits without one. Every rung's epochs are a multiple of the first rung's, so the search's runs
still continue their shorter runs exactly, and every method scores its validation set at each
rung's end only. Before the methods, each method's per-epoch cost is measured on one candidate
with this setting (and with the shipped ``eval_every: 1`` for comparison), and the printout
states the trainer configuration they all use:

1. **pcann's search** as a user runs it: a copy of the workflow (``tests/support.py``
   ``copy_workflow``) with a study file holding the ``search:`` block, and three
   ``snakemake --cores 2`` calls one after the other, each timed on its own (CPU: Snakemake
   and every process it started, rusage of the children; Snakemake's own share apart):
   the **preparation** (targets: the PCA features file and the reference run's
   ``metrics.json``: loading the images, z-scores, PCA, and the headline run the winner is
   compared with, which the other methods neither do nor need: they start from these
   features), then the search **to its decisions** (target: the last rung's table,
   ``results/search/<name>/rung_<K>.csv``: every training job and every rung decision), then
   **the rest** (target ``search``: result.json, search.md, the figure, the winner's model
   file, evaluation and figures). The search's CPU compared with the grid's and scikit-learn's
   (which make decisions and nothing else) is the one to its decisions; the complete one
   (decisions + the rest) is in the table too. The reference run is the space's first candidate
   at the first rung's epochs, so it is also one of the search's first-rung runs, trained in the
   preparation and not again. The search's rungs are also replayed in this process (the
   candidates of its rung tables, each continuing its network of the rung before), which is the
   same training without the workflow around it, so that what the workflow itself costs shows
   (its validation accuracies are checked against the tables'). That the search's runs above
   the first rung continued their shorter run is checked too (``timing.json``'s first epoch,
   and no "not continuing" warning in any ``train.log``).
2. **The full grid** at the maximum epochs, in this process on the search run's PCA features
   (``results/features/study/pca2/features.npz``), with ``pcann.study.runs.train_run`` as the
   training jobs call it; the best by the search's rule (validation accuracy, then validation
   loss, then name: ``pcann.search.halving``).
3. **scikit-learn's HalvingGridSearchCV** with pcann's ``MLPClassifier`` (``resource='epochs'``,
   the same factor, minimum and maximum, ``cv`` a ``PredefinedSplit`` of the same training and
   validation rows, ``refit=False``, one job): it trains every rung from epoch 1. Its kept sets
   are compared with the search's rung tables ("the same decisions").
4. **Optuna's SuccessiveHalvingPruner** (``min_resource`` the minimum epochs, the same factor)
   with a ``GridSampler`` over the space, one trial per candidate, in turn; a trial trains to
   each rung's epochs continuing its network, reports the validation accuracy there and stops
   when pruned. Optional (``requirements-bench.txt``): skipped, saying so, when not installed.

Every in-process method runs with one BLAS thread, as a training job does. The table gives each
method's CPU and wall time, the candidate-epochs it trained, its best candidate with its
validation and test accuracy (Wilson 95% interval), and the exact McNemar p-value of its best
against the grid's best, paired on the test images (a method's best that the grid also trained
is scored from the grid's run: the trainer is deterministic). The target lines are ratios
measured in this run: the search's CPU time to its decisions at most a quarter of the grid's;
its winner not significantly worse than the grid's best (McNemar p >= 0.05, or better); its CPU
time to its decisions below scikit-learn's for the same decisions. The validation accuracies of
every method (the replay, the grid at the last rung, scikit-learn and Optuna at each rung) are
compared with the search's rung tables. A missed target is printed
MISSED with the numbers that explain it. ``--quick`` is a smoke run (4 candidates, 2 to 6 epochs,
a small generated dataset) of a few tens of seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_study import run_snakemake  # noqa: E402
from pcann.data.demo import generate_demo_dataset  # noqa: E402
from pcann.io import load_npz  # noqa: E402
from pcann.nn.training import shared_params, train_network  # noqa: E402
from pcann.preprocessing.features import Features, load_features  # noqa: E402
from pcann.results.stats import accuracy_interval, compare_paired  # noqa: E402
from pcann.search.halving import kept_names, score  # noqa: E402
from pcann.search.space import Candidate, Search, search_from_config  # noqa: E402
from pcann.study.runs import evaluate, predicted_classes, train_run  # noqa: E402
from support import copy_workflow, cpu_name  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

SEED = 1
NAME = "bench"


@dataclass(frozen=True)
class Budget:
    """The space and the epochs every method searches."""

    hidden: tuple[tuple[int, ...], ...]
    lr: tuple[float, ...]
    batch_size: tuple[int, ...]
    min_epochs: int
    max_epochs: int
    factor: int = 3


FULL = Budget(((8,), (32,), (128,), (512,)), (0.001, 0.005, 0.02, 0.1, 0.5), (16, 64, 256), 30, 810)
QUICK = Budget(((4,), (16,)), (0.1, 0.5), (32,), 2, 6)
#: The candidate whose per-epoch cost is measured for every method (the middle of the space).
PROBE = {"full": ((128,), 0.02, 64), "quick": ((16,), 0.1, 32)}
#: The generated dataset: training-folder images per class (``--generated-per-class``'s default;
#: a quarter as many test images) and image size.
GENERATED = {"full": (600, 32), "quick": (40, 16)}


@dataclass
class Outcome:
    """One method's row of the table."""

    method: str
    cpu: float
    wall: float
    candidate_epochs: int
    best: str
    val_accuracy: float
    test_correct: np.ndarray | None
    notes: list[str] = field(default_factory=list)


def study_config(budget: Budget, data_dir: str) -> dict:
    """The shipped config.yaml with one network whose baseline is the space's first candidate at
    the first rung's epochs (so the search's reference run is one of its own first-rung runs),
    no sweeps, and the search block."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data_dir"] = data_dir
    config["networks"] = {
        "two_layer": {
            "baseline": {
                "hidden": list(budget.hidden[0]), "epochs": budget.min_epochs,
                "lr": budget.lr[0], "batch_size": budget.batch_size[0],
            }
        }
    }
    config["headline"] = [{"network": "two_layer"}]
    # the same trainer for every method: score the history at every rung's end only (the shipped
    # study scores it every epoch); every rung is a multiple of the first, so runs still continue
    config["training"]["eval_every"] = budget.min_epochs
    config.update(compare_protocols=[], components_sweep=[], seeds=[SEED], n_components=2, protocol="study")
    config["search"] = {
        "name": NAME,
        "network": "two_layer",
        "candidates": {
            "grid": {
                "hidden": [list(h) for h in budget.hidden],
                "lr": list(budget.lr),
                "batch_size": list(budget.batch_size),
            }
        },
        "min_epochs": budget.min_epochs,
        "max_epochs": budget.max_epochs,
        "reduction_factor": budget.factor,
        "seeds": [SEED],
    }
    return config


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


def correct_of(predictions_file: Path) -> np.ndarray:
    arrays = load_npz(predictions_file, ["test_predicted", "test_true"])
    return arrays["test_predicted"] == arrays["test_true"]


# --- 1. pcann's search, the real workflow ---------------------------------------------------


@dataclass
class Call:
    """One ``snakemake`` call: its targets, CPU seconds (its own process and every process it
    started, rusage of the children), Snakemake's own share of them, and wall seconds."""

    what: str
    cpu: float
    snakemake_cpu: float
    wall: float


def snakemake_call(work: Path, cores: int, what: str, targets: list[str]) -> Call:
    started = time.perf_counter()
    returncode, output, snakemake_cpu, cpu = run_snakemake(
        [sys.executable, "-m", "snakemake", "--cores", str(cores), *targets], work
    )
    wall = time.perf_counter() - started
    if returncode != 0:
        sys.exit(f"snakemake {' '.join(targets)} failed:\n{output[-5000:]}")
    return Call(what, cpu, snakemake_cpu, wall)


def reference_setting(search: Search):
    """The study's reference run, the headline run the winner is compared with: the space's first
    candidate at the first rung's epochs (study_config), so also one of the search's first-rung runs."""
    return search.setting(search.candidates[0], search.min_epochs, SEED)


def run_search(work: Path, search: Search, cores: int):
    """Three ``snakemake --cores N`` calls, one after the other: the preparation (the features
    and the reference run, which the other methods do not do: they start from the features), the
    search to its decisions (the last rung's table), and the rest of ``search`` (result.json,
    search.md, the figure, the winner's model file, evaluation and figures)."""
    features_file = f"results/features/{search.protocol}/pca{search.n_components}/features.npz"
    reference = reference_setting(search)
    last_table = f"{search.folder}/rung_{len(search.rungs) - 1}.csv"
    calls = {
        "preparation": snakemake_call(
            work, cores, f"{features_file}, {reference.run_dir}/metrics.json",
            [features_file, f"{reference.run_dir}/metrics.json"],
        ),
        "decisions": snakemake_call(work, cores, last_table, [last_table]),
        "rest": snakemake_call(work, cores, "search", ["search"]),
    }
    folder = work / search.folder
    result = json.loads((folder / "result.json").read_text())
    rungs = [read_csv(folder / f"rung_{k}.csv") for k in range(len(search.rungs))]
    run_dir = work / "results" / "runs" / result["runs"][0]
    winner_row = next(row for row in rungs[-1] if row["decision"] == "winner")
    # candidate-epochs per seed from the rung tables: each candidate as far as it went
    reached = {row["candidate"]: int(row["epochs"]) for rows in rungs for row in rows}
    candidate_epochs = sum(reached.values())
    # the training jobs: their trainer's own seconds (timing.json); the reference run's was
    # trained by the preparation
    timings = {
        p.parent.name: json.loads(p.read_text())["seconds"] for p in (work / "results" / "runs").rglob("timing.json")
    }
    # continuation: every run above the first rung continues its shorter run (timing.json's first
    # epoch after 1), and no train.log says "not continuing"
    first_epochs = [
        json.loads(p.read_text()).get("first_epoch", 1) for p in (work / "results" / "runs").rglob("timing.json")
    ]
    not_continuing = [
        str(p.relative_to(work)) for p in (work / "results" / "runs").rglob("train.log")
        if "not continuing" in p.read_text()
    ]
    jobs = {
        "continued": sum(first > 1 for first in first_epochs),
        "above_first": sum(len(rows) for rows in rungs[1:]),
        "not_continuing": not_continuing,
        "n": len(timings) - (reference.run_id in timings),
        "fit": sum(seconds for name, seconds in timings.items() if name != reference.run_id),
        "reference_fit": timings.get(reference.run_id, math.nan),
        "rungs": len(rungs),
    }
    decisions, rest = calls["decisions"], calls["rest"]
    best = (result["winner"], float(winner_row["val_accuracy"]), correct_of(run_dir / "predictions.npz"))
    to_decisions = Outcome(
        f"pcann search to its decisions (snakemake --cores {cores} {last_table})",
        decisions.cpu, decisions.wall, candidate_epochs, *best,
    )
    complete = Outcome(
        f"pcann search complete (+ snakemake --cores {cores} search: result, figure, winner's outputs)",
        decisions.cpu + rest.cpu, decisions.wall + rest.wall, candidate_epochs, *best,
    )
    return to_decisions, complete, rungs, jobs, calls


def replay_search(search: Search, rungs: list[list[dict]], features: Features, training: dict):
    """The search's own rungs (the candidates of its rung tables) trained again in this process,
    each continuing its network of the rung before: the search's training without the workflow
    around it. Returns the outcome and how many of its validation accuracies equal the tables'."""
    networks, reached, same = {}, {}, 0
    final = []
    started, wall = time.process_time(), time.perf_counter()
    with threadpool_limits(1):
        for k, rows in enumerate(rungs):
            for row in rows:
                candidate = search.candidate_named(row["candidate"])
                shorter = networks.get(candidate)
                if shorter is not None and shorter.result.diverged:
                    shorter = None  # as the train rule: a diverged run is trained again from epoch 1
                run = train_run(search.setting(candidate, search.rungs[k], SEED), features, training, shorter)
                networks[candidate], reached[candidate] = run.network, search.rungs[k]
                value = run.metrics["val_accuracy"]
                same += row["val_accuracy"] != "" and value is not None and f"{value:.6f}" == row["val_accuracy"]
                if k == len(rungs) - 1:
                    final.append((score(candidate, [run.metrics]), run.predictions["test_predicted"] == features.y_test))
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
    best, correct = min(final, key=lambda entry: entry[0].sort_key())
    outcome = Outcome(
        "the search's rungs replayed in-process", cpu, wall, sum(reached.values()), best.candidate.name,
        best.val_accuracy, correct,
    )
    return outcome, same, sum(len(rows) for rows in rungs)


# --- each method's per-epoch cost on one candidate ----------------------------------------------


def per_epoch_costs(search: Search, features: Features, training: dict, probe: tuple, repeats: int = 3) -> list[str]:
    """CPU milliseconds per epoch of one candidate over the first rung's epochs, as each method
    trains it: a training job / the replay / the grid (``train_run``, scoring training and
    validation sets in the history, then train, validation and test once), scikit-learn's halving
    (``MLPClassifier.fit`` on the training rows, no validation set, then its score of the
    validation rows), Optuna (``train_network`` with the validation set, then its accuracy); with
    ``training``'s ``eval_every`` and with the shipped 1. The best of ``repeats``, one BLAS thread."""
    from pcann.nn.estimator import MLPClassifier

    hidden, lr, batch_size = probe
    candidate = Candidate(hidden, lr, batch_size)
    epochs, n_classes = search.min_epochs, len(features.classes)
    setting = search.setting(candidate, epochs, SEED)

    def pcann_job(t):
        train_run(setting, features, t)

    def sklearn_fit(t):
        model = MLPClassifier(hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size, seed=SEED, **t)
        model.fit(features.X_train, features.y_train).score(features.X_val, features.y_val)

    def optuna_step(t):
        network = train_network(
            features.X_train, features.y_train, n_classes, features.X_val, features.y_val,
            hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size, seed=SEED, **t,
        )
        evaluate(network, features.X_val, features.y_val)

    methods = {
        "pcann training job / replay / grid (train_run)": pcann_job,
        "scikit-learn halving (MLPClassifier.fit, no validation set)": sklearn_fit,
        "Optuna (train_network with the validation set)": optuna_step,
    }
    lines = []
    with threadpool_limits(1):
        for name, fit in methods.items():
            costs = []
            for every in (training["eval_every"], 1):
                t = {**training, "eval_every": every}
                best = math.inf
                for _ in range(repeats):
                    started = time.process_time()
                    fit(t)
                    best = min(best, time.process_time() - started)
                costs.append(1000 * best / epochs)
            lines.append(
                f"  {name}: {costs[0]:.2f} ms/epoch with eval_every {training['eval_every']} "
                f"({costs[1]:.2f} with eval_every 1, {costs[1] / costs[0]:.2f}x)"
            )
    return [f"per-epoch CPU of one candidate ({candidate.name}, {epochs} epochs, the run's final "
            f"scoring included; best of {repeats}), as each method trains it:", *lines]


def table_matches(rungs: list[list[dict]], search: Search, values: dict[tuple[str, int], float]) -> tuple[int, int]:
    """(runs of the rung tables whose validation accuracy ``values`` holds equal, as the tables
    write it (6 decimals), runs both have): ``values`` maps (candidate name, epochs) to a
    method's validation accuracy."""
    same = both = 0
    for k, rows in enumerate(rungs):
        for row in rows:
            value = values.get((row["candidate"], search.rungs[k]))
            if value is not None:
                both += 1
                same += row["val_accuracy"] != "" and f"{value:.6f}" == row["val_accuracy"]
    return same, both


# --- 2. the full grid ---------------------------------------------------------------------


def run_grid(search: Search, features: Features, training: dict):
    """Every candidate at the maximum epochs: (outcome, candidate -> (score, test correct))."""
    table = {}
    started, wall = time.process_time(), time.perf_counter()
    with threadpool_limits(1):
        for candidate in search.candidates:
            run = train_run(search.setting(candidate, search.max_epochs, SEED), features, training)
            table[candidate] = (score(candidate, [run.metrics]), run.predictions["test_predicted"] == features.y_test)
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
    best = min(table.values(), key=lambda entry: entry[0].sort_key())[0]
    outcome = Outcome(
        f"full grid at {search.max_epochs} epochs (in-process)", cpu, wall,
        len(search.candidates) * search.max_epochs, best.candidate.name, best.val_accuracy, table[best.candidate][1],
    )
    return outcome, table


# --- 3. scikit-learn's successive halving -----------------------------------------------------


def run_sklearn(search: Search, features: Features, training: dict, table: dict):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV, PredefinedSplit

    from pcann.nn.estimator import MLPClassifier

    X = np.vstack([features.X_train, features.X_val])
    y = np.concatenate([features.y_train, features.y_val])
    fold = np.r_[np.full(len(features.y_train), -1), np.zeros(len(features.y_val), dtype=int)]
    grid = {
        "hidden": sorted({c.hidden for c in search.candidates}),
        "lr": sorted({c.lr for c in search.candidates}),
        "batch_size": sorted({c.batch_size for c in search.candidates}),
    }
    halving = HalvingGridSearchCV(
        MLPClassifier(seed=SEED, **training), grid, factor=search.reduction_factor, resource="epochs",
        min_resources=search.min_epochs, max_resources=search.max_epochs, cv=PredefinedSplit(fold),
        scoring="accuracy", refit=False, n_jobs=1,
    )
    started, wall = time.process_time(), time.perf_counter()
    with threadpool_limits(1):
        halving.fit(X, y)
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
    results = halving.cv_results_

    def name(params) -> str:
        return Candidate(tuple(params["hidden"]), float(params["lr"]), int(params["batch_size"])).name

    # iteration -> candidate -> validation accuracy
    iterations = [
        {name(p): float(s) for p, i, s in zip(results["params"], results["iter"], results["mean_test_score"]) if i == k}
        for k in range(halving.n_iterations_)
    ]
    best = name(halving.best_params_)
    best_candidate = search.candidate_named(best)
    outcome = Outcome(
        "scikit-learn HalvingGridSearchCV", cpu, wall, int(np.sum(results["n_resources"])), best,
        float(halving.best_score_), table[best_candidate][1] if best_candidate in table else None,
    )
    grid_val = table[best_candidate][0].val_accuracy if best_candidate in table else math.nan
    if not math.isclose(grid_val, outcome.val_accuracy, abs_tol=1e-12):
        outcome.notes.append(
            f"its validation accuracy {outcome.val_accuracy:.4f} differs from the grid's run of "
            f"{best} ({grid_val:.4f}): not the same trajectory"
        )
    return outcome, iterations


def same_scores(rungs: list[list[dict]], iterations: list[dict[str, float]]) -> tuple[int, int]:
    """(candidates both trained at the same rung with the same validation accuracy, candidates
    both trained at the same rung): equal numbers mean the same trajectories, so that any other
    decision comes from breaking ties."""
    same = both = 0
    for rows, scores in zip(rungs, iterations):
        for row in rows:
            if row["candidate"] in scores:
                both += 1
                # as the table writes it (6 decimals): a tolerance of 5e-7 fails on k / n exactly
                # halfway, e.g. 237 / 1920 = 0.1234375, written 0.123438
                same += row["val_accuracy"] != "" and f"{scores[row['candidate']]:.6f}" == row["val_accuracy"]
    return same, both


def same_decisions(rungs: list[list[dict]], iterations: list[dict[str, float]], sklearn_best: str) -> tuple[int, int, list[str]]:
    """How many of the search's decisions scikit-learn made alike: each rung's kept set (the
    candidates of its next iteration) and the winner; and what differs."""
    equal, differences = 0, []
    decisions = len(rungs)
    for k, rows in enumerate(rungs[:-1]):
        ours = set(kept_names(rows))
        theirs = set(iterations[k + 1]) if k + 1 < len(iterations) else set()
        if ours == theirs:
            equal += 1
        else:
            differences.append(
                f"rung {k}: kept only by pcann {sorted(ours - theirs)}, only by scikit-learn {sorted(theirs - ours)}"
            )
    winner = kept_names(rungs[-1])[0]
    if winner == sklearn_best:
        equal += 1
    else:
        differences.append(f"winner: pcann {winner}, scikit-learn {sklearn_best}")
    return equal, decisions, differences


# --- 4. Optuna's successive-halving pruner ------------------------------------------------------


def run_optuna(search: Search, features: Features, training: dict):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    hidden_text = {"-".join(map(str, c.hidden)): c.hidden for c in search.candidates}
    space = {
        "hidden": list(hidden_text),
        "lr": sorted({c.lr for c in search.candidates}),
        "batch_size": sorted({c.batch_size for c in search.candidates}),
    }
    n_classes = len(features.classes)
    networks, trained, values = {}, {}, {}

    def objective(trial):
        candidate = Candidate(
            hidden_text[trial.suggest_categorical("hidden", space["hidden"])],
            float(trial.suggest_categorical("lr", space["lr"])),
            int(trial.suggest_categorical("batch_size", space["batch_size"])),
        )
        network = None
        for epochs in search.rungs:
            network = train_network(
                features.X_train, features.y_train, n_classes, features.X_val, features.y_val,
                continue_from=network, hidden=candidate.hidden, epochs=epochs, lr=candidate.lr,
                batch_size=candidate.batch_size, seed=SEED, **training,
            )
            trained[trial.number] = epochs
            accuracy, _ = evaluate(network, features.X_val, features.y_val)
            value = math.nan if accuracy is None else accuracy
            values[(candidate.name, epochs)] = value
            trial.report(value, epochs)
            if network.result.diverged or (epochs < search.max_epochs and trial.should_prune()):
                raise optuna.TrialPruned()
        networks[trial.number] = (candidate, network)
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.GridSampler(space, seed=0),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=search.min_epochs, reduction_factor=search.reduction_factor, min_early_stopping_rate=0
        ),
    )
    started, wall = time.process_time(), time.perf_counter()
    with threadpool_limits(1):
        study.optimize(objective, n_trials=len(search.candidates), n_jobs=1)
    cpu, wall = time.process_time() - started, time.perf_counter() - wall
    candidate, network = networks[study.best_trial.number]
    correct = predicted_classes(network, features.X_test) == features.y_test
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    outcome = Outcome(
        f"Optuna {optuna.__version__} SuccessiveHalvingPruner + GridSampler", cpu, wall,
        sum(trained.values()), candidate.name, float(study.best_value), correct,
        [f"Optuna: {complete} of {len(study.trials)} trials reached {search.max_epochs} epochs"],
    )
    return outcome, values


# --- the report -------------------------------------------------------------------------------


def test_text(correct: np.ndarray | None) -> str:
    if correct is None:
        return "—"
    accuracy = float(np.mean(correct))
    low, high = accuracy_interval(accuracy, correct.size)
    return f"{accuracy:.4f} [{low:.3f}, {high:.3f}]"


def table(outcomes: list[Outcome], reference: Outcome) -> str:
    lines = [
        "| method | CPU s | wall s | candidate-epochs | best candidate | validation acc | test acc [Wilson 95%] | McNemar p vs grid best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o is reference:
            p = "(the reference)"
        elif o.test_correct is None:
            p = "—"
        else:
            c = compare_paired(reference.test_correct, o.test_correct)
            p = f"{c.p_value:.3g} ({c.difference:+.4f})"
        lines.append(
            f"| {o.method} | {o.cpu:.1f} | {o.wall:.1f} | {o.candidate_epochs} | {o.best} | "
            f"{o.val_accuracy:.4f} | {test_text(o.test_correct)} | {p} |"
        )
    return "\n".join(lines)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def bench_dataset(label: str, work: Path, config: dict, args) -> None:
    search = search_from_config(config)
    training = shared_params(config["training"])
    copy_workflow(work, config)
    print(f"\n## {label}")
    print(search.describe())
    print(
        f"trainer, the same for every method: pcann.nn.training.train_network, seed {SEED}, "
        + ", ".join(f"{key} {value}" for key, value in training.items())
        + f" (the search's runs: its study file's training block; the in-process methods: the same "
        f"options). Every run scores its history at every epoch divisible by eval_every and at its "
        f"last; the search's runs, the replay, the grid and Optuna score the training and validation "
        f"sets there, scikit-learn's MLPClassifier the training set only (the halving fits it "
        f"without a validation set and scores the validation rows after each fit)"
    )
    load_before = os.getloadavg()[0]
    ours, complete, rungs, jobs, calls = run_search(work, search, args.cores)
    features, _ = load_features(work / "results" / "features" / search.protocol / f"pca{search.n_components}" / "features.npz")
    print(
        f"data: {len(features.y_train)} train / {len(features.y_val)} val / {len(features.y_test)} test "
        f"images, {len(features.classes)} classes, PCA {features.X_train.shape[1]} components"
    )
    for line in per_epoch_costs(search, features, training, PROBE["quick" if args.quick else "full"]):
        print(line)
    fits = sorted(
        (json.loads(p.read_text())["fit_seconds"], p.parent.name)
        for p in (work / "results" / "runs").rglob("timing.json")
        if p.parent.name != reference_setting(search).run_id
    )
    replayed, replayed_same, replayed_runs = replay_search(search, rungs, features, training)
    grid, grid_table = run_grid(search, features, training)
    outcomes = [ours, complete, replayed, grid]
    matches = {
        "the grid (at the last rung)": table_matches(
            rungs, search, {(c.name, search.max_epochs): entry[0].val_accuracy for c, entry in grid_table.items()}
        )
    }
    sklearn_line = None
    if not args.no_sklearn:
        theirs, iterations = run_sklearn(search, features, training, grid_table)
        outcomes.append(theirs)
        equal, decisions, differences = same_decisions(rungs, iterations, theirs.best)
        sklearn_line = (theirs, equal, decisions, differences, same_scores(rungs, iterations))
    if not args.no_optuna:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print("Optuna is not installed (pip install -r requirements-bench.txt): skipped")
        else:
            optuna_outcome, optuna_values = run_optuna(search, features, training)
            outcomes.append(optuna_outcome)
            matches["Optuna (at each rung it reached)"] = table_matches(rungs, search, optuna_values)
    load_after = os.getloadavg()[0]
    print(table(outcomes, grid))
    for o in outcomes:
        for note in o.notes:
            print(f"note: {note}")
    prep, to_decisions, rest = calls["preparation"], calls["decisions"], calls["rest"]
    print(
        f"CPU of each snakemake call (its own process and every process it started; Snakemake's own "
        f"share in brackets), one after the other:"
    )
    print(
        f"  preparation, snakemake --cores {args.cores} {prep.what}: {prep.cpu:.1f} s [{prep.snakemake_cpu:.1f} s]"
        f", {prep.wall:.1f} s wall: loading the images, z-scores, PCA and training the reference run "
        f"{reference_setting(search).run_id} (trainer {jobs['reference_fit']:.2f} s, timing.json), which is "
        f"also that candidate's first-rung run: the search does not train it again. Not counted in the "
        f"search's CPU; the other methods start from its features"
    )
    print(
        f"  the search to its decisions, snakemake --cores {args.cores} {to_decisions.what}: "
        f"{to_decisions.cpu:.1f} s [{to_decisions.snakemake_cpu:.1f} s], {to_decisions.wall:.1f} s wall: "
        f"{jobs['n']} training jobs (their trainer's own {jobs['fit']:.1f} s wall, timing.json) and "
        f"{jobs['rungs']} rung decisions; everything besides Snakemake's own: "
        f"{to_decisions.cpu - to_decisions.snakemake_cpu:.1f} s"
    )
    print(
        f"  the rest of the search, snakemake --cores {args.cores} search: {rest.cpu:.1f} s "
        f"[{rest.snakemake_cpu:.1f} s], {rest.wall:.1f} s wall: result.json, search.md, the figure, the "
        f"winner's model file, evaluation and figures"
    )
    print(
        f"  the search complete (to its decisions + the rest): {complete.cpu:.1f} s CPU; with the "
        f"preparation {complete.cpu + prep.cpu:.1f} s"
    )
    workflow = ours.cpu - replayed.cpu
    print(
        f"the search's rungs replayed in-process: validation accuracies equal the rung tables' for "
        f"{replayed_same} of {replayed_runs} runs (the reference run's included); the workflow around "
        f"the same training, to the decisions: {ours.cpu:.1f} - {replayed.cpu:.1f} = {workflow:.1f} s "
        f"CPU ({workflow / max(jobs['n'] + jobs['rungs'], 1):.2f} s per job), {ours.cpu / replayed.cpu:.2f}x the replay's"
    )
    print(
        f"continuation: {jobs['continued']} of the {jobs['above_first']} runs above the first rung "
        f"continued their shorter run (timing.json's first epoch after 1); \"not continuing\" in "
        f"{len(jobs['not_continuing'])} train.log" + (f": {', '.join(jobs['not_continuing'])}" if jobs["not_continuing"] else "")
    )
    if fits:
        print(
            f"the search's {len(fits)} training jobs, the trainer's own fit (timing.json fit_seconds): "
            f"{sum(f for f, _ in fits):.1f} s wall in all, {fits[0][0]:.2f} to {fits[-1][0]:.2f} s a run"
        )
    for method, (same, both) in matches.items():
        print(f"validation accuracies of {method} equal the rung tables' for {same} of the {both} runs both trained")
    print(f"load average (1 min): {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs")
    ratio = ours.cpu / grid.cpu
    met = ratio <= 0.25
    print(
        f"target: search CPU <= 1/4 of the grid's: search to its decisions {ours.cpu:.1f} s / grid "
        f"{grid.cpu:.1f} s = {ratio:.2f} (complete: {complete.cpu / grid.cpu:.2f}; the rungs replayed "
        f"in-process: {replayed.cpu / grid.cpu:.2f}; candidate-epochs "
        f"{ours.candidate_epochs / grid.candidate_epochs:.2f}) -> {verdict(met)}"
    )
    if not met:
        print(
            f"  why: the replayed training alone is {replayed.cpu / grid.cpu:.2f} of the grid's; the "
            f"workflow's {workflow:.1f} s around it is {workflow / grid.cpu:.2f} of it, more than the "
            f"{0.25 - replayed.cpu / grid.cpu:.2f} left: the grid would have to cost "
            f"{workflow / max(0.25 - replayed.cpu / grid.cpu, 1e-9):.0f} s for it to fit"
            if replayed.cpu / grid.cpu < 0.25 else
            f"  why: the replayed training alone is {replayed.cpu / grid.cpu:.2f} of the grid's"
        )
    comparison = compare_paired(grid.test_correct, ours.test_correct)
    print(
        f"target: the search's winner not significantly worse than the grid's best: winner minus grid best "
        f"{comparison.difference:+.4f} [{comparison.low:+.3f}, {comparison.high:+.3f}], exact McNemar "
        f"p = {comparison.p_value:.3g} ({comparison.only_b_right} images only the winner got right, "
        f"{comparison.only_a_right} only the grid's best) -> "
        f"{verdict(comparison.p_value >= 0.05 or comparison.difference >= 0)}"
    )
    if sklearn_line:
        theirs, equal, decisions, differences, (scores_same, scores_both) = sklearn_line
        same, cheaper = equal == decisions, ours.cpu < theirs.cpu
        why = []
        if not same:
            why.append("not the same decisions")
        if not cheaper:
            why.append("the search took more CPU")
        print(
            f"target: search CPU < scikit-learn halving CPU for the same decisions: search to its decisions "
            f"{ours.cpu:.1f} s vs {theirs.cpu:.1f} s = {ours.cpu / theirs.cpu:.2f}x (complete: "
            f"{complete.cpu / theirs.cpu:.2f}x; the rungs replayed in-process: {replayed.cpu / theirs.cpu:.2f}x); "
            f"{equal} of {decisions} decisions the same (each rung's kept set and the winner) -> "
            f"{verdict(same and cheaper)}"
            + (f" ({'; '.join(why)})" if why else "")
        )
        if not cheaper:
            margin = theirs.cpu - replayed.cpu
            print(
                f"  why: scikit-learn trains {theirs.candidate_epochs} candidate-epochs from epoch 1 against "
                f"the search's {ours.candidate_epochs} continued, {margin:.1f} s more CPU than the replay; "
                f"the workflow's {workflow:.1f} s around the search's training is more than that"
                if margin > 0 else
                f"  why: the replayed training alone took {replayed.cpu:.1f} s, not less than scikit-learn's"
            )
        print(
            f"  scikit-learn's validation accuracies equal the search's for {scores_same} of the "
            f"{scores_both} (candidate, rung) pairs both trained"
            + ("; the decisions that differ differ by breaking ties (scikit-learn: the later in its "
               "parameter order; pcann: lower validation loss, then the name)" if differences and scores_same == scores_both else "")
        )
        for difference in differences:
            print(f"  differs at {difference}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("PCANN_FRUITS_DIR", ""),
                        help="the real images (default $PCANN_FRUITS_DIR; '' leaves them out)")
    parser.add_argument("--generated-classes", type=int, default=24, help="classes of the generated dataset (0: none)")
    parser.add_argument(
        "--generated-per-class", type=int, default=None,
        help=f"training-folder images per generated class, a quarter as many test images "
             f"(default {GENERATED['full'][0]}; {GENERATED['quick'][0]} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny space, budget and generated dataset (smoke run)")
    parser.add_argument("--no-optuna", action="store_true")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    if not args.data_dir and not args.generated_classes:
        sys.exit("nothing to do: --data-dir '' and --generated-classes 0")
    budget = QUICK if args.quick else FULL
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M %Z')}; "
          f"numpy {np.__version__}; in-process methods with one BLAS thread")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        if args.data_dir:
            data_dir = str(Path(args.data_dir).resolve())
            bench_dataset(f"the real images ({data_dir})", root / "real", study_config(budget, data_dir), args)
        if args.generated_classes:
            default, size = GENERATED["quick" if args.quick else "full"]
            n_train = args.generated_per_class or default
            n_test = max(n_train // 4, 1)
            data = generate_demo_dataset(root / "generated-data", n_train, n_test, size, 0, args.generated_classes)
            bench_dataset(
                f"generated: {args.generated_classes} demo classes, {n_train} + {n_test} images of "
                f"{size} x {size} per class", root / "generated", study_config(budget, str(data)), args,
            )


if __name__ == "__main__":
    main()
