"""The adaptive search (config key search): its rungs and candidates, its decisions and their
reasons, and the workflow that runs it: continuation instead of retraining, resumable after a
kill, byte-identical whatever --cores, and re-planning only what a change changes."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_snakemake, snakemake_command, snakemake_env, tiny_study_config
from support import REPO, copy_workflow

from pcann import PcannError
from pcann.search.halving import decide_rung, kept_names, score
from pcann.search.space import Candidate, random_candidates, rung_epochs, search_from_config, survivors
from pcann.workflow.config import ConfigError, check_config, load_config_file

SCHEMA = REPO / "schemas" / "config.schema.yaml"


# --- rungs, candidates and the configuration -----------------------------------------------------


def test_rungs_grow_by_the_factor_from_the_minimum_and_end_at_the_maximum():
    assert rung_epochs(30, 810, 3) == [30, 90, 270, 810]
    assert rung_epochs(30, 1000, 3) == [30, 90, 270, 810, 1000]
    assert rung_epochs(10, 10, 3) == [10]
    assert rung_epochs(10, 25, 2) == [10, 20, 25]
    # raising the maximum adds rungs on top: every earlier rung (its runs, its decisions) stays
    assert rung_epochs(30, 7000, 3)[:4] == rung_epochs(30, 810, 3)


def test_each_rung_keeps_the_best_share_rounded_up():
    assert [survivors(n, 3) for n in (60, 20, 7, 3, 1)] == [20, 7, 3, 1, 1]
    search = search_from_config(_config(grid={"hidden": [[4], [8], [16]], "lr": [0.01, 0.1, 1.0, 2.0], "batch_size": [4, 8, 16, 32, 64]},
                                        min_epochs=10, max_epochs=270))
    assert len(search.candidates) == 60
    assert search.rung_sizes() == [60, 20, 7, 3]


def test_random_candidates_are_reproducible_log_uniform_and_more_keep_the_first():
    baseline = Candidate((8,), 0.05, 8)
    spec = {"n": 400, "seed": 3, "lr": {"low": 1e-4, "high": 1e-1}, "hidden": [[4], [16]], "batch_size": [8, 32]}
    drawn = random_candidates(spec, baseline)
    assert drawn == random_candidates(spec, baseline)
    assert random_candidates({**spec, "n": 10}, baseline) == drawn[:10]
    lrs = np.array([c.lr for c in drawn])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    # log-uniform: each decade of the three holds about a third of the draws
    per_decade = np.histogram(np.log10(lrs), bins=[-4, -3, -2, -1])[0] / len(lrs)
    assert np.all(np.abs(per_decade - 1 / 3) < 0.08), per_decade
    assert {c.hidden for c in drawn} == {(4,), (16,)} and {c.batch_size for c in drawn} == {8, 32}


def test_candidates_combine_the_grid_and_the_draws_and_take_the_rest_from_the_baseline():
    search = search_from_config(_config(grid={"lr": [0.01, 0.1]}, random={"n": 2, "seed": 0}))
    assert [c.name for c in search.candidates[:2]] == ["hidden=8_lr=0.01_batch=8", "hidden=8_lr=0.1_batch=8"]
    # a draw of nothing but the baseline's values is the baseline: listed once
    assert len(search.candidates) == 3
    assert search.seeds == (1,) and search.protocol == "study" and search.n_components == 2


@pytest.mark.parametrize(
    "search, expected",
    [
        ({"network": "nope"}, "config key search.network: 'nope' is not one of the networks (two_layer)"),
        ({"min_epochs": 50, "max_epochs": 20}, "config key search.min_epochs: 50 is above search.max_epochs 20"),
        ({"candidates": {}}, "config key search.candidates: no candidates"),
        ({"candidates": {"random": {"n": 3, "lr": {"low": 0.5, "high": 0.1}}}},
         "config key search.candidates.random.lr: low 0.5 is above high 0.1"),
    ],
)
def test_a_search_that_cannot_run_is_refused_naming_its_key(search, expected):
    config = _config(grid={"lr": [0.1]})
    config["search"].update(search)
    with pytest.raises(PcannError) as error:
        search_from_config(config)
    assert str(error.value).startswith(expected)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"reduction_factor": 1}, "config key search.reduction_factor: 1 is less than the minimum of 2"),
        ({"candidates": {"grid": {"lr": [-0.1]}}}, "config key search.candidates.grid.lr.0: -0.1 is less than or equal"),
        ({"name": "two layers"}, "config key search.name: 'two layers' does not match"),
        ({"candidates": {"random": {"lr": {"low": 0.1, "high": 1}}}}, "config key search.candidates.random: 'n' is a required property"),
        ({"budget": 3}, "config key search.budget: Additional properties"),
    ],
)
def test_the_schema_checks_the_search_block_with_one_line_per_problem(change, expected):
    config = load_config_file(REPO / "config.yaml")
    config["search"] = {**_config(grid={"lr": [0.1]})["search"], **change}
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and lines[1].strip().startswith(expected), lines


def test_the_example_search_file_is_a_valid_search():
    config = load_config_file(REPO / "config.yaml")
    study = load_config_file(REPO / "studies" / "search.yaml")
    config.update(study)
    check_config(config, SCHEMA)
    search = search_from_config(config)
    assert search.rungs == [30, 90, 270, 810] and len(search.candidates) == 30


# --- decisions ---------------------------------------------------------------------------------


def _score(name_lr: float, accuracy, loss, hidden=(8,), seed_metrics=None):
    candidate = Candidate(hidden, name_lr, 8)
    metrics = seed_metrics or [
        {"seed": 1, "val_accuracy": accuracy, "val_loss": loss, "n_val": 100, "diverged": accuracy is None,
         "diverged_epoch": 7 if accuracy is None else None}
    ]
    return score(candidate, metrics)


def test_rank_by_validation_accuracy_then_loss_then_name_whatever_the_order_given():
    scores = [
        _score(0.1, 0.80, 0.50),
        _score(0.2, 0.90, 0.40),
        _score(0.3, 0.80, 0.45),  # tied with 0.1 in accuracy, lower loss: ahead of it
        _score(0.4, None, None),  # diverged: last
        _score(0.05, 0.80, 0.45),  # tied with 0.3 in both: the name decides (lr=0.05 < lr=0.3)
    ]
    rows = decide_rung([10, 30], 3, 0, scores)
    order = [row["candidate"] for row in rows]
    assert order == [
        "hidden=8_lr=0.2_batch=8", "hidden=8_lr=0.05_batch=8", "hidden=8_lr=0.3_batch=8",
        "hidden=8_lr=0.1_batch=8", "hidden=8_lr=0.4_batch=8",
    ]
    for _ in range(5):
        random.shuffle(scores)
        assert decide_rung([10, 30], 3, 0, scores) == rows
    assert [row["decision"] for row in rows] == ["kept", "kept", "stopped", "stopped", "stopped"]
    assert kept_names(rows) == order[:2]
    reasons = [row["reason"] for row in rows]
    assert reasons[0] == "rank 1 of 5, in the top 2 = ceil(5/3): continues to 30 epochs"
    assert reasons[2].endswith("tied with rank 2 in validation accuracy and loss; the tie goes to the name "
                               "first in sorted order (hidden=8_lr=0.05_batch=8)")
    assert "tied with rank 2 at validation accuracy 0.8000; validation loss 0.5000 > 0.4500" in reasons[3]
    assert reasons[4].endswith("seed 1 diverged at epoch 7: no validation accuracy")
    assert rows[0]["next_epochs"] == 30 and rows[3]["next_epochs"] == ""


def test_the_last_rung_names_one_winner_and_why_the_others_lost():
    rows = decide_rung([10, 30], 3, 1, [_score(0.1, 0.7, 0.5), _score(0.2, 0.9, 0.3)])
    assert [row["decision"] for row in rows] == ["winner", "stopped"]
    assert rows[0]["reason"] == "rank 1 of 2 at the maximum epochs (30): the best validation accuracy"
    assert rows[1]["reason"].endswith("validation accuracy 0.7000 < 0.9000 of rank 1")


def test_a_candidate_is_scored_by_its_mean_over_seeds_with_the_t_interval():
    metrics = [
        {"seed": s, "val_accuracy": a, "val_loss": 0.5, "n_val": 100, "diverged": False, "diverged_epoch": None}
        for s, a in ((1, 0.8), (2, 0.9), (3, 0.85))
    ]
    scored = score(Candidate((8,), 0.1, 8), metrics)
    assert math.isclose(scored.val_accuracy, 0.85)
    assert scored.val_low < 0.85 < scored.val_high and scored.seeds == 3
    one_diverged = [*metrics[:2], {**metrics[2], "diverged": True, "val_accuracy": None, "diverged_epoch": 3}]
    assert math.isnan(score(Candidate((8,), 0.1, 8), one_diverged).val_accuracy)


def _config(grid=None, random=None, **search) -> dict:
    candidates = {}
    if grid:
        candidates["grid"] = grid
    if random:
        candidates["random"] = random
    return {
        "networks": {"two_layer": {"baseline": {"hidden": [8], "epochs": 20, "lr": 0.05, "batch_size": 8}}},
        "seeds": [1],
        "protocol": "study",
        "n_components": 2,
        "search": {"name": "t", "network": "two_layer", "candidates": candidates,
                   "min_epochs": search.pop("min_epochs", 4), "max_epochs": search.pop("max_epochs", 36), **search},
    }


# --- the workflow --------------------------------------------------------------------------------

#: A tiny search on the tiny study's demo data: 5 candidates x 2 seeds, rungs at 4, 12 and 36 epochs
#: keeping 5, 2 and 1.
TINY_SEARCH = {
    "name": "tiny",
    "network": "two_layer",
    "candidates": {"grid": {"hidden": [[4], [8]], "lr": [0.5, 2.0]}, "random": {"n": 1, "seed": 1, "lr": {"low": 0.1, "high": 3.0}}},
    "min_epochs": 4,
    "max_epochs": 36,
    "seeds": [1, 2],
}
SEARCH_DIR = Path("results/search/tiny")


def search_config(**changes) -> dict:
    return tiny_study_config(search={**TINY_SEARCH, **changes})


def finished_runs(workdir: Path) -> dict[str, int]:
    """run folder -> modification time (ns) of its metrics.json, written last when a run ends."""
    return {
        str(path.parent.relative_to(workdir)): path.stat().st_mtime_ns
        for path in (workdir / "results" / "runs").glob("*/pca*/*/metrics.json")
    }


def compared_files(workdir: Path) -> dict[str, bytes]:
    """What must be byte-identical between two runs of the search: its decisions and result,
    its figure, and every run's metrics, history and predictions."""
    results = workdir / "results"
    patterns = ["search/tiny/*.csv", "search/tiny/*.json", "search/tiny/*.md", "search/tiny/*.svg",
                "runs/*/pca*/*/metrics.json", "runs/*/pca*/*/history.csv", "runs/*/pca*/*/predictions.npz"]
    return {str(p.relative_to(results)): p.read_bytes() for pattern in patterns for p in sorted(results.glob(pattern))}


def rung_members(workdir: Path) -> dict[int, set[str]]:
    members = {}
    for path in sorted((workdir / SEARCH_DIR).glob("rung_*.csv")):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        members[int(rows[0]["rung"])] = {row["candidate"] for row in rows}
    return members


def study_copy(tiny_study, dest: Path, config: dict) -> Path:
    """A copy of the finished tiny study (its preprocessing and runs done) with ``config``."""
    shutil.copytree(tiny_study[0], dest, symlinks=True)
    return copy_workflow(dest, config)


@pytest.fixture(scope="module")
def searched(tiny_study, tmp_path_factory):
    """The tiny study with the tiny search added, run to the end with --cores 2 (the study's
    runs were done: the search's are trained), and the dry run before it."""
    workdir = study_copy(tiny_study, tmp_path_factory.mktemp("search") / "study", search_config())
    dry = run_snakemake(workdir, "--cores", "2", "--dry-run")
    run_snakemake(workdir, "--cores", "2")
    return workdir, dry.stdout + dry.stderr


@pytest.mark.workflow
def test_the_dry_run_shows_the_first_rung_and_the_estimate_of_the_whole_search(searched):
    _, dry = searched
    assert "search tiny: 5 candidates x 2 seeds, candidates at epochs: 5 at 4, 2 at 12, 1 at 36" in dry, dry
    assert "the whole search: about" in dry and "each rung's jobs are known once the rung before has decided" in dry
    # the first rung's trainings (5 candidates x 2 seeds) are known before anything runs; the
    # study's runs are done
    assert "  train 10," in dry, dry


@pytest.mark.workflow
def test_the_search_decides_in_files_and_its_winner_is_tested_once(searched):
    workdir, _ = searched
    members = rung_members(workdir)
    assert [len(members[k]) for k in sorted(members)] == [5, 2, 1]
    assert members[2] <= members[1] <= members[0]
    result = json.loads((workdir / SEARCH_DIR / "result.json").read_text())
    assert {result["winner"]} == members[2]
    with open(workdir / SEARCH_DIR / "rung_0.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # every stopped candidate says why, against the last one kept
    assert all(row["reason"] for row in rows)
    assert all("below the top 2 = ceil(5/3)" in row["reason"] for row in rows if row["decision"] == "stopped")
    assert "test" not in ",".join(rows[0]), "a rung table must not show test results"
    # the winner's test accuracy with its interval, and the paired comparison with the headline run
    assert 0 <= result["test_accuracy"]["low"] <= result["test_accuracy"]["mean"] <= result["test_accuracy"]["high"] <= 1
    assert [c["seed"] for c in result["winner_minus_reference"]["by_seed"]] == [1, 2]
    assert result["reference"]["runs"] == [
        "study/pca2/hidden=8_epochs=20_lr=0.05_batch=8_seed=1", "study/pca2/hidden=8_epochs=20_lr=0.05_batch=8_seed=2",
    ]
    # the winner's runs have a model file and an evaluation (predict can use them)
    for run in result["runs"]:
        assert (workdir / "results" / "runs" / run / "model.npz").exists()
        assert (workdir / "results" / "runs" / run / "evaluation.md").exists()
    markdown = (workdir / SEARCH_DIR / "search.md").read_text()
    assert f"**Winner: {result['winner']}**" in markdown and "### Rung 0: 4 epochs, 5 candidates" in markdown
    assert (workdir / SEARCH_DIR / "search.png").stat().st_size > 10_000
    # a finished search plans nothing
    again = run_snakemake(workdir, "--cores", "2", "search", "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
def test_a_promoted_candidate_continues_and_equals_a_fresh_run_byte_for_byte(searched, tmp_path):
    from pcann.nn.training import shared_params
    from pcann.preprocessing.features import load_features
    from pcann.study.grid import Setting
    from pcann.study.runs import save_run, train_run

    workdir, _ = searched
    result = json.loads((workdir / SEARCH_DIR / "result.json").read_text())
    run_dir = workdir / "results" / "runs" / result["runs"][0]
    assert json.loads((run_dir / "timing.json").read_text())["first_epoch"] == 13, "not continued from rung 1"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    setting = Setting(**{k: tuple(v) if k == "hidden" else v for k, v in metrics.items() if k in Setting.__dataclass_fields__})
    features, _ = load_features(workdir / "results/features/study/pca2/features.npz")
    training = shared_params(load_config_file(workdir / "config.yaml").get("training") or load_config_file(REPO / "config.yaml")["training"])
    fresh = train_run(setting, features, training)
    outputs = {name: tmp_path / file for name, file in (
        ("history", "history.csv"), ("weights", "weights.npz"), ("timing", "timing.json"),
        ("predictions", "predictions.npz"), ("metrics", "metrics.json"))}
    save_run(outputs, fresh)
    for name in ("metrics.json", "history.csv", "predictions.npz"):
        assert (tmp_path / name).read_bytes() == (run_dir / name).read_bytes(), name
    with np.load(run_dir / "weights.npz") as continued, np.load(tmp_path / "weights.npz") as alone:
        assert sorted(continued.files) == sorted(alone.files)
        # everything but the wall time of the fit and the trajectory's key, which says how it was trained
        for key in set(continued.files) - {"fit_seconds", "trajectory_key"}:
            assert np.array_equal(continued[key], alone[key]), key


@pytest.mark.workflow
def test_a_search_killed_midway_trains_nothing_it_finished_and_ends_the_same_with_one_core(
    searched, tiny_study, tmp_path
):
    reference, _ = searched
    workdir = study_copy(tiny_study, tmp_path / "killed", search_config())
    process = subprocess.Popen(
        [*snakemake_command(), "--cores", "1", "search"], cwd=workdir, env=snakemake_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (workdir / SEARCH_DIR / "rung_0.csv").exists() and process.poll() is None:
            assert time.monotonic() < deadline, "the first rung never ended"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (workdir / SEARCH_DIR / "result.json").exists(), "killed too late: the search had ended"
    before = finished_runs(workdir)
    assert len(before) >= len(finished_runs(tiny_study[0])) + 10
    # a SIGKILLed Snakemake leaves its lock behind: the README's way on
    run_snakemake(workdir, "--unlock")
    run_snakemake(workdir, "--cores", "1", "search")
    after = finished_runs(workdir)
    assert {run: after[run] for run in before} == before, "a finished run was trained again"
    expected, produced = compared_files(reference), compared_files(workdir)
    assert sorted(produced) == sorted(expected)
    assert [name for name in expected if produced[name] != expected[name]] == []


@pytest.mark.workflow
def test_raising_the_maximum_or_adding_a_candidate_trains_only_what_that_changes(searched, tmp_path):
    source, _ = searched
    workdir = tmp_path / "changed"
    shutil.copytree(source, workdir, symlinks=True)
    rungs_before = {p.name: p.read_bytes() for p in (workdir / SEARCH_DIR).glob("rung_*.csv")}
    winner = json.loads((workdir / SEARCH_DIR / "result.json").read_text())["winner"]

    # up to the last rung's decisions: what is trained is the question, not the result's files
    last_rung = str(SEARCH_DIR / "rung_3.csv")
    before = finished_runs(workdir)
    copy_workflow(workdir, search_config(max_epochs=108))
    run_snakemake(workdir, "--cores", "2", last_rung)
    trained = set(finished_runs(workdir)) - set(before)
    assert trained == {f"results/runs/study/pca2/{winner.replace('_lr=', '_epochs=108_lr=')}_seed={s}" for s in (1, 2)}
    # the earlier rungs' decisions stand; the last one is now a rung like the others
    assert {name: (workdir / SEARCH_DIR / name).read_bytes() for name in ("rung_0.csv", "rung_1.csv")} == {
        name: rungs_before[name] for name in ("rung_0.csv", "rung_1.csv")
    }

    members_before, before = rung_members(workdir), finished_runs(workdir)
    grid = {**TINY_SEARCH["candidates"]["grid"], "lr": [0.5, 2.0, 1.0e-6]}
    copy_workflow(workdir, search_config(max_epochs=108, candidates={**TINY_SEARCH["candidates"], "grid": grid}))
    run_snakemake(workdir, "--cores", "2", last_rung)
    members = rung_members(workdir)
    epochs = rung_epochs(4, 108, 3)
    # exactly the runs of the candidates that are new to a rung: the added ones, and any they promote
    expected = {
        f"results/runs/study/pca2/{name.replace('_lr=', f'_epochs={epochs[k]}_lr=')}_seed={s}"
        for k, names in members.items()
        for name in names - members_before.get(k, set())
        for s in (1, 2)
    }
    assert set(finished_runs(workdir)) - set(before) == expected
    assert len(members[0]) == 7 and len(expected) >= 4


@pytest.mark.workflow
def test_the_study_with_a_search_shows_it_in_the_summary_and_the_report(searched):
    workdir, _ = searched
    result = json.loads((workdir / SEARCH_DIR / "result.json").read_text())
    summary = (workdir / "results" / "summary.md").read_text()
    assert f"- Search `tiny`: 3 rungs from 5 candidates; winner `{result['winner']}` at 36 epochs" in summary
    assert "## Search tiny" in summary and "](search/tiny/search.png)" in summary
    assert "### Rung 2: 36 epochs, 1 candidate\n" in summary
    front = (workdir / "results" / "report_front.html").read_text()
    assert "Search <code>tiny</code>" in front
    run_snakemake(workdir, "--report", "results/report.html")
    report = (workdir / "results" / "report.html").read_text(errors="replace")
    assert "rung_0.csv" in report and "search.png" in report


@pytest.mark.workflow
def test_a_search_batch_size_larger_than_the_training_split_stops_before_any_job(tmp_path):
    config = search_config(candidates={"grid": {"batch_size": [8, 4096]}})
    workdir = copy_workflow(tmp_path / "too-large", config)
    result = run_snakemake(workdir, "--cores", "1", "search", "--dry-run", check=False)
    assert result.returncode == 1
    assert "config key search.candidates.grid.batch_size: 4096 is larger than the training split (48 of the 60" in (
        result.stdout + result.stderr
    )
    assert not (workdir / "results" / "runs").exists()


@pytest.mark.workflow
def test_the_search_target_without_a_search_block_says_how_to_add_one(tmp_path):
    workdir = copy_workflow(tmp_path / "no-search", tiny_study_config())
    result = run_snakemake(workdir, "--cores", "1", "search", "--dry-run", check=False)
    assert result.returncode == 1
    assert (
        "Error: the search target needs a search: block in the configuration; see studies/search.yaml"
        in result.stdout + result.stderr
    )
