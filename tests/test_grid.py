"""The parameter study: plan expansion, and incremental re-runs checked with --dry-run job counts."""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, make_dataset, run_snakemake, tiny_study_config

from pcann import PcannError
from pcann.workflow.config import ConfigError, check_plan_fits_data
from pcann.study.resources import estimated_seconds, schedule_estimates
from pcann.study.plan import PER_RUN_OUTPUTS_AUTO_LIMIT, per_run_outputs_mode, plotted_settings
from pcann.study.grid import (
    RUN_ID_TEMPLATE,
    WILDCARD_PATTERNS,
    Setting,
    shorter_runs,
    study_plan,
    swept_epochs,
    unique_settings,
)


def parse_run_id(run_id: str) -> dict:
    """Values encoded in a run folder name: the inverse of ``Setting.run_id``, through the same
    wildcard patterns Snakemake matches run folders with."""
    pattern = RUN_ID_TEMPLATE.format(**{k: f"(?P<{k}>{v})" for k, v in WILDCARD_PATTERNS.items()})
    match = re.fullmatch(pattern, run_id)
    assert match, f"{run_id!r} is not a run folder name like {RUN_ID_TEMPLATE}"
    return match.groupdict()


def shipped_config():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(REPO / "schemas" / "config.schema.yaml"))
    return config


def test_shipped_study_has_the_studys_sweeps_with_shared_baselines():
    rows = study_plan(shipped_config())
    sweeps = [r for r in rows if r.table == "sweep"]
    per_table = Counter((r.network, r.parameter) for r in sweeps)
    # each table: the swept values plus the baseline value
    assert per_table == {
        ("two_layer", "hidden"): 6, ("two_layer", "epochs"): 7, ("two_layer", "lr"): 6,
        ("two_layer", "batch_size"): 5, ("three_layer", "hidden"): 6, ("three_layer", "epochs"): 7,
        ("three_layer", "lr"): 6, ("three_layer", "batch_size"): 5,
    }
    # per network: 1 baseline + 5 hidden + 6 epochs + 5 lr + 4 batch sizes = 21 distinct runs
    assert len(unique_settings(sweeps)) == 42
    baseline = Setting("study", 2, (256,), 1000, 0.005, 16, 1)
    assert sum(r.setting == baseline for r in sweeps) == 4  # in all four tables, trained once


def test_headline_runs_are_the_studys():
    rows = [r for r in study_plan(shipped_config()) if r.table == "headline"]
    assert [r.setting for r in rows] == [
        Setting("study", 2, (256,), 1000, 0.005, 16, 1),
        Setting("study", 2, (256, 512), 1000, 0.01, 16, 1),
    ]


def test_protocol_and_component_comparisons_reuse_the_headline_runs():
    rows = study_plan(shipped_config())
    protocols = [r.setting for r in rows if r.table == "protocols"]
    assert {s.protocol for s in protocols} == {"study", "train-only"}
    components = {s.n_components for r in rows if r.table == "components" for s in [r.setting]}
    assert components == {2, 3, 5, 10, 50}
    assert len(unique_settings(rows)) == 42 + 2 + 2 * 4


def test_plan_file_gives_the_aggregation_the_plan_records_as_they_are(tmp_path):
    """The aggregation reads the plan from results/tables/plan.json (rule study_plan) instead
    of params: the same records, types and order, so the same tables."""
    from pcann.results.tables import plan_file_text, plan_frame, read_plan
    from pcann.study.plan import StudyPlan

    config = shipped_config()
    config.update(seeds=[1, 2], full_factorial=True)
    records = StudyPlan(config, 1470).records()
    path = tmp_path / "plan.json"
    path.write_text(plan_file_text(records))
    assert read_plan(path) == records
    assert len(path.read_text().splitlines()) == len(records) + 2  # one row a line
    assert plan_frame(read_plan(path)).equals(plan_frame(records))
    path.write_text(plan_file_text([]))
    assert read_plan(path) == []


def test_seeds_multiply_runs_and_factorial_grid_is_the_product():
    config = shipped_config()
    config.update(seeds=[1, 2, 3], headline=[], compare_protocols=[], components_sweep=[])
    assert len(unique_settings(study_plan(config))) == 3 * 42
    config.update(seeds=[1], full_factorial=True)
    factorial = [r for r in study_plan(config) if r.table == "factorial"]
    assert len(factorial) == 2 * (6 * 7 * 6 * 5)


def test_run_folder_names_round_trip_and_canonicalise_learning_rates():
    setting = Setting("train-only", 5, (32, 64), 200, 1e-05, 4, 7)
    assert setting.run_dir == "results/runs/train-only/pca5/hidden=32-64_epochs=200_lr=1e-05_batch=4_seed=7"
    assert parse_run_id(setting.run_id) == {
        "hidden": "32-64", "epochs": "200", "lr": "1e-05", "batch_size": "4", "seed": "7"
    }
    assert Setting("study", 2, (8,), 1, 0.0050, 1, 1).run_id == Setting("study", 2, (8,), 1, 5e-3, 1, 1).run_id


def test_plot_runs_auto_draws_every_run_up_to_the_limit_and_the_headline_runs_beyond():
    assert per_run_outputs_mode("auto", PER_RUN_OUTPUTS_AUTO_LIMIT) == "all"
    assert per_run_outputs_mode("auto", PER_RUN_OUTPUTS_AUTO_LIMIT + 1) == "headline"
    assert per_run_outputs_mode("all", 10 * PER_RUN_OUTPUTS_AUTO_LIMIT) == "all"
    assert per_run_outputs_mode("headline", 1) == "headline"
    # the limit is documented where the option is
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    assert f"up to {PER_RUN_OUTPUTS_AUTO_LIMIT} " in schema["properties"]["per_run_outputs"]["description"]
    assert f"up to {PER_RUN_OUTPUTS_AUTO_LIMIT} " in (REPO / "config.yaml").read_text()


def test_headline_figures_are_the_headline_runs_and_their_repeats_not_the_factorial_grid():
    config = shipped_config()
    config.update(full_factorial=True)
    rows = study_plan(config)
    plotted = plotted_settings(rows, "headline")
    repeats = {r.setting for r in rows if r.table in ("headline", "protocols", "components")}
    # per headline run: itself, its train-only repeat and 4 more component counts
    assert set(plotted) == repeats and len(plotted) == 2 * (1 + 1 + 4)
    assert plotted_settings(rows, "all") == unique_settings(rows)


def test_epochs_sweep_runs_continue_the_next_shorter_swept_run():
    config = shipped_config()
    settings = unique_settings(study_plan(config))
    continued = shorter_runs(settings, swept_epochs(config))
    chains = {
        (run.hidden, run.epochs): shorter.epochs for run, shorter in continued.items()
    }
    for hidden in ((256,), (256, 512)):
        # the sweep's values 10 100 200 800 2000 4000, and the baseline's 1000 off the chain
        assert {e: chains.get((hidden, e)) for e in (10, 100, 200, 800, 1000, 2000, 4000)} == {
            10: None, 100: 10, 200: 100, 800: 200, 1000: 800, 2000: 800, 4000: 2000,
        }
    # only runs that differ in nothing but their epochs continue each other
    assert all(run.epochs > shorter.epochs and replace(run, epochs=0) == replace(shorter, epochs=0)
               for run, shorter in continued.items())
    assert len(continued) == 2 * 6


def test_changing_a_baseline_epochs_leaves_every_other_runs_continuation_alone():
    config = shipped_config()
    before = shorter_runs(unique_settings(study_plan(config)), swept_epochs(config))
    config["networks"]["two_layer"]["baseline"]["epochs"] = 1500
    after = shorter_runs(unique_settings(study_plan(config)), swept_epochs(config))
    changed = {run for run in set(before) | set(after) if before.get(run) != after.get(run)}
    assert {run.epochs for run in changed} == {1000, 1500}


def test_chains_of_continued_runs_are_scheduled_first():
    config = shipped_config()
    settings = unique_settings(study_plan(config))
    continued = shorter_runs(settings, swept_epochs(config))
    estimates = schedule_estimates(settings, continued, n_train=1176)
    head = Setting("study", 2, (256, 512), 10, 0.005, 16, 1)
    chain = [replace(head, epochs=e) for e in (10, 100, 200, 800, 2000, 4000)]
    own = {run: estimates[run][0] for run in settings}
    # a continued run trains only its own epochs; the chain's head carries the whole chain
    assert own[chain[-1]] == pytest.approx(estimated_seconds(chain[0], 1176, epochs=4000 - 2000))
    assert estimates[head][1] == pytest.approx(sum(own[run] for run in chain))
    assert estimates[head][1] == max(path for _, path in estimates.values())
    # without continuations a run's path is its own estimate
    alone = schedule_estimates(settings, {}, n_train=1176)
    assert all(own_seconds == path for own_seconds, path in alone.values())


def test_unknown_headline_network_is_named():
    config = shipped_config()
    config["headline"] = [{"network": "four_layer"}]
    with pytest.raises(PcannError, match="headline: network 'four_layer' is not one of the networks"):
        study_plan(config)


def test_batch_larger_than_training_split_is_refused_with_both_numbers():
    config = shipped_config()
    settings = [Setting("study", 2, (8,), 10, 0.1, 300, 1)]
    with pytest.raises(ConfigError, match=r"batch_size: 300 is larger than the training split \(288 of the 360"):
        check_plan_fits_data(settings, config, n_train_folder=360, n_features=768)


def test_too_many_components_for_the_data_is_refused():
    settings = [Setting("train-only", 300, (8,), 10, 0.1, 8, 1)]
    with pytest.raises(ConfigError, match=r"config key components_sweep: 300 .* min\(samples=288, features=768\) = 288"):
        check_plan_fits_data(settings, shipped_config(), n_train_folder=360, n_features=768)


@pytest.mark.workflow
def test_trainings_then_aggregation_then_run_figures(tmp_path):
    """Job priorities as a dry-run prints them: every training first (critical path), then the
    aggregation, which waits for all of them, beside the remaining per-run figure jobs."""
    config = tiny_study_config()
    result = run_snakemake(copy_workflow(tmp_path, config), "--dry-run", "--cores", "1", verbose=True)
    priorities: dict[str, list[int]] = {}
    for block in re.split(r"^\[[^\]]+\]$", result.stdout, flags=re.M)[1:]:
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)[1]
        priority = re.search(r"^\s+priority: (\d+)$", block, re.M)
        priorities.setdefault(rule, []).append(int(priority[1]) if priority else 0)
    aggregation = [p for rule in ("collect_metrics", "study_tables", "study_figures", "summary")
                   for p in priorities[rule]]
    assert len(priorities["train"]) > 1 and priorities["run_outputs"], priorities
    assert min(priorities["train"]) > max(aggregation)
    assert min(aggregation) > max(priorities["run_outputs"])


# --- incremental re-runs ---------------------------------------------------------------------

def planned_jobs(workdir: Path, config: dict) -> Counter:
    """Jobs a dry-run with ``config`` as config.yaml would execute, by rule."""
    return dry_run(workdir, config)[0]


def dry_run(workdir: Path, config: dict | str, *args: str) -> tuple[Counter, str]:
    """:func:`planned_jobs`, and the dry-run's output; ``config`` may be the text of config.yaml,
    ``args`` more command-line arguments."""
    config_file = workdir / "config.yaml"
    original = config_file.read_text()
    try:
        config_file.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
        result = run_snakemake(workdir, "--dry-run", "--quiet", "rules", "--cores", "1", *args, verbose=True)
    finally:
        config_file.write_text(original)
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return Counter(), output
    table = output.split("Job stats:", 1)[1]
    jobs = Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"})
    return jobs, output


AGGREGATION = {"collect_metrics", "compare_runs", "study_tables", "study_figures", "summary", "all", "run_outputs",
               "model_files_table", "explorer", "study_plan"}  # and the new runs' figures, model files


@pytest.fixture(scope="module")
def finished_study(tiny_study):
    workdir, config, _ = tiny_study
    return workdir, config


@pytest.mark.workflow
def test_finished_study_has_nothing_to_do(finished_study):
    assert planned_jobs(*finished_study) == Counter()


def _edited_config(config: dict, edit) -> dict:
    edited = copy.deepcopy(config)
    edit(edited)
    return edited


def _reordered(value, key=None):
    """Every mapping's keys in reverse order, but the networks' (their order is the tables')."""
    if isinstance(value, dict):
        items = list(value.items()) if key == "networks" else list(reversed(value.items()))
        return {k: _reordered(v, k) for k, v in items}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


#: The shared training options at their defaults, written in another order than the schema's.
DEFAULT_TRAINING_REORDERED = {
    "exp_backend": "opencv", "dtype": "float32", "eval_every": 1, "lr_decay_every": 100,
    "lr_decay_rate": 0.5, "lr_schedule": "constant",
}


@pytest.mark.workflow
@pytest.mark.parametrize("how", ["reordered-keys", "other-notation", "configfile", "config"])
def test_the_same_values_written_another_way_plan_no_job(finished_study, tmp_path, how):
    workdir, config = finished_study
    args: list[str] = []
    text = yaml.safe_dump(config, sort_keys=False)
    if how == "reordered-keys":
        text = yaml.safe_dump(_reordered({**config, "training": DEFAULT_TRAINING_REORDERED}), sort_keys=False)
    elif how == "other-notation":  # 5.0e-2 is 0.05
        text = text.replace("lr: 0.05", "lr: 5.0e-2").replace("lr: 0.1\n", "lr: 1.0e-1\n")
        assert "5.0e-2" in text and "1.0e-1" in text
        text += "val_fraction: 2.0e-1\ntraining: {lr_decay_rate: 5.0e-1, lr_decay_every: 100}\n"
    elif how == "configfile":
        extra = tmp_path / "same-values.yaml"
        extra.write_text(yaml.safe_dump(
            {"training": DEFAULT_TRAINING_REORDERED, "split_seed": 10,
             # a study file's networks replace the shipped ones whole: the same networks, reordered
             "networks": _reordered({"networks": config["networks"]})["networks"]}, sort_keys=False))
        args = ["--configfile", str(extra)]
    else:
        args = ["--config", "val_fraction=0.2", "split_seed=10", "protocol=study", "read_mode=color"]
    jobs, output = dry_run(workdir, text, *args)
    assert jobs == Counter(), output[-3000:]


@pytest.mark.workflow
def test_a_changed_shared_training_option_retrains_every_run_and_nothing_else_upstream(finished_study):
    workdir, config = finished_study
    jobs, output = dry_run(workdir, {**config, "training": {"eval_every": 2}})
    n_runs = len(unique_settings(study_plan(_validated(config))))
    assert jobs["train"] == n_runs, output[-3000:]
    assert set(jobs) - {"train"} <= AGGREGATION


@pytest.mark.workflow
def test_adding_one_learning_rate_trains_exactly_one_run(finished_study):
    workdir, config = finished_study
    edited = _edited_config(config, lambda c: c["networks"]["two_layer"]["sweep"]["lr"].append(0.2))
    jobs = planned_jobs(workdir, edited)
    assert jobs["train"] == 1
    assert set(jobs) - {"train"} <= AGGREGATION


@pytest.mark.workflow
def test_changing_a_baseline_value_retrains_exactly_the_runs_containing_it(finished_study):
    workdir, config = finished_study
    edited = _edited_config(config, lambda c: c["networks"]["two_layer"]["baseline"].update(epochs=25))
    before = {s for s in unique_settings(study_plan(_validated(config)))}
    after = {s for s in unique_settings(study_plan(_validated(edited)))}
    jobs = planned_jobs(workdir, edited)
    # every two-layer run except the epochs sweep's own values contains the baseline's epochs
    assert jobs["train"] == len(after - before) > 0
    assert all(s.epochs == 25 for s in after - before)
    assert set(jobs) - {"train"} <= AGGREGATION


@pytest.mark.workflow
def test_adding_an_epochs_value_trains_it_and_the_runs_that_now_continue_it(finished_study):
    workdir, config = finished_study
    # the tiny study's two-layer epochs sweep is [10] around a baseline of 20 epochs
    edited = _edited_config(config, lambda c: c["networks"]["two_layer"]["sweep"]["epochs"].append(15))
    jobs, output = dry_run(workdir, edited)
    assert jobs["train"] == 2, output[-3000:]  # the 15-epoch run, and the 20-epoch run continuing it
    assert set(jobs) - {"train"} <= AGGREGATION


@pytest.mark.workflow
def test_editing_a_plotting_script_retrains_nothing(finished_study):
    workdir, config = finished_study
    script = workdir / "scripts" / "run_outputs.py"
    original, stat = script.read_text(), script.stat()
    try:
        script.write_text(original + "\nLEGEND_LOCATION = 'best'  # a code change\n")
        jobs = planned_jobs(workdir, config)
    finally:
        # Snakemake's code trigger for scripts is their modification time: restore it too
        script.write_text(original)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert jobs["train"] == 0
    assert jobs["run_outputs"] > 0  # its figures are redrawn with the new code


@pytest.mark.workflow
def test_a_continued_run_has_the_files_of_a_run_from_the_start(finished_study, tmp_path):
    import json

    from pcann.preprocessing.features import load_features
    from pcann.study.runs import save_run, train_run

    workdir, config = finished_study
    # the tiny study's two-layer baseline (20 epochs) continues its 10-epoch sweep run
    run = Setting("study", 2, (8,), 20, 0.05, 8, 1)
    run_dir = workdir / run.run_dir
    assert json.loads((run_dir / "timing.json").read_text())["first_epoch"] == 11
    assert "continuing results/runs/study/pca2/hidden=8_epochs=10_" in (run_dir / "train.log").read_text()

    training = {k: v for k, v in _validated(config)["training"].items()
                if k not in ("plot_training_points", "continue_shorter_runs")}
    features, _ = load_features(workdir / "results/features/study/pca2/features.npz")
    outputs = {name: tmp_path / f"{name}.{ext}" for name, ext in
               [("history", "csv"), ("weights", "npz"), ("timing", "json"), ("metrics", "json")]}
    save_run(outputs, train_run(run, features, training))
    for name in ("metrics.json", "history.csv"):
        assert (run_dir / name).read_bytes() == outputs[name.split(".")[0]].read_bytes(), name


@pytest.mark.workflow
@pytest.mark.parametrize("n_runs", [PER_RUN_OUTPUTS_AUTO_LIMIT, PER_RUN_OUTPUTS_AUTO_LIMIT + 1])
def test_plot_runs_auto_plans_every_runs_figures_up_to_the_limit_and_says_when_it_stops(tmp_path, n_runs):
    lrs = [round(1e-3 * (1 + i), 6) for i in range(n_runs)]
    config = tiny_study_config(
        networks={"net": {"baseline": {"hidden": [4], "epochs": 2, "lr": lrs[0], "batch_size": 8},
                          "sweep": {"lr": lrs[1:]}}},
        headline=[{"network": "net"}], compare_protocols=[], components_sweep=[],
    )
    jobs, output = dry_run(copy_workflow(tmp_path, config), config)
    beyond = n_runs > PER_RUN_OUTPUTS_AUTO_LIMIT
    assert jobs["train"] == n_runs
    assert jobs["run_outputs"] == (1 if beyond else n_runs)
    message = f"per_run_outputs: auto: {n_runs} training runs, more than {PER_RUN_OUTPUTS_AUTO_LIMIT}: "
    assert (message in output) == beyond, output[-2000:]


def _validated(config: dict) -> dict:
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(REPO / "schemas" / "config.schema.yaml"))
    return config


@pytest.mark.workflow
def test_a_changed_added_or_removed_image_reloads_the_images_and_nothing_else_does(tmp_path):
    data = make_dataset(tmp_path / "data", n_train=10, n_test=4)
    config = tiny_study_config(data_dir=str(data))
    workdir = copy_workflow(tmp_path / "wf", config)
    target = "results/data/split.npz"
    run_snakemake(workdir, "--cores", "2", target)

    replace = ("--config", "replace_results=True")

    def planned(*args):
        result = run_snakemake(workdir, "--dry-run", "--quiet", "rules", "--cores", "1", target, *args, verbose=True)
        output = result.stdout + result.stderr
        assert str(data) not in output  # planning names no image
        return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", output, re.M) if m[1] != "total"})

    def refused():
        result = run_snakemake(workdir, "--dry-run", "--cores", "1", target, check=False)
        return result.returncode == 1 and "the images in the folder changed" in result.stdout + result.stderr

    assert planned() == Counter()
    image = data / "Data_train" / "apple" / "apple_000.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    # other images than results/ holds: stopped unless the user says the old results may go
    assert refused()
    assert planned(*replace) == Counter(load_images=1, split_train_val=1)
    shutil.copy(image, image.with_name("apple_100.png"))
    assert refused()
    assert planned(*replace) == Counter(load_images=1, split_train_val=1)
    run_snakemake(workdir, "--cores", "2", target, *replace)
    assert planned() == Counter()
    image.unlink()
    assert refused()
    assert planned(*replace) == Counter(load_images=1, split_train_val=1)
