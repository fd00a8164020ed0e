"""The terminal: the cost block before the first job, and a short default output (pcann.study.cost,
pcann.workflow.terminal, rules/terminal.smk)."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import copy_workflow, run_snakemake, tiny_study_config
from pcann.study.cost import CostEstimate, PlannedJob, duration, parse_duration, simulated_wall_seconds, wrap_items
from pcann.workflow.terminal import QuietSnakemakeFilter, busy_machine_note, rung_line, training_line

#: A pcann progress line: "[12/65 0:09, ~0:21 left] ..." (no time left on the last one).
PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+) (?:\d+:)?\d+:\d\d(?:, ~((?:\d+:)?\d+:\d\d) left)?\] ", re.M)
#: The cost block's first line and the jobs by kind that follow it.
COST_HEADER = re.compile(r"^pcann: (\d+) jobs (?:would run|to run):$", re.M)


def cost_block_counts(output: str) -> tuple[int, Counter]:
    """The total and the jobs by rule of the (first) cost block in ``output``."""
    header = COST_HEADER.search(output)
    assert header, f"no cost block in:\n{output[-3000:]}"
    kinds = []
    for line in output[header.end():].splitlines()[1:]:
        if line.lstrip().startswith("estimated CPU time"):
            break
        kinds.extend(item for item in line.strip().rstrip(",").split(", ") if item)
    counts = Counter({rule: int(n) for rule, n in (item.rsplit(" ", 1) for item in kinds)})
    return int(header[1]), counts


def snakemake_job_stats(output: str) -> Counter:
    table = output.split("Job stats:", 1)[1]
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"})


# --- the cost estimate -------------------------------------------------------------------------


def test_the_wall_time_of_independent_jobs_is_shared_by_the_cores_and_a_chain_is_not():
    independent = [PlannedJob("train", 10.0) for _ in range(4)]
    assert simulated_wall_seconds(independent, cores=2) == pytest.approx(20.0)
    assert simulated_wall_seconds(independent, cores=4) == pytest.approx(10.0)
    chain = [PlannedJob("train", 10.0, waits_for=[i - 1] if i else []) for i in range(4)]
    assert simulated_wall_seconds(chain, cores=4) == pytest.approx(40.0)


def test_the_wall_time_follows_priorities_and_threads():
    # the long job first (higher priority) keeps both cores busy: 10 s; the short ones first: 12 s
    jobs = [PlannedJob("a", 2.0, priority=0), PlannedJob("b", 2.0, priority=0), PlannedJob("c", 10.0, priority=5)]
    assert simulated_wall_seconds(jobs, cores=2) == pytest.approx(10.0)
    jobs[2].priority = -1
    assert simulated_wall_seconds(jobs, cores=2) == pytest.approx(12.0)
    # a two-thread job holds both cores; one wider than the machine gets all of it
    assert simulated_wall_seconds([PlannedJob("load", 4.0, threads=2), PlannedJob("x", 4.0)], cores=2) == 8.0
    assert simulated_wall_seconds([PlannedJob("load", 4.0, threads=8)], cores=2) == 4.0


def test_the_cost_block_counts_jobs_by_kind_cpu_wall_memory_and_slurm_submissions():
    group = ("group", 1)
    jobs = [
        PlannedJob("load_images", 3.0, threads=2, mem_mb=700, submission=("job", 1)),
        *[PlannedJob("train", 6.0, mem_mb=500, waits_for=[0], submission=group) for _ in range(4)],
        *[PlannedJob("plot_run", 1.0, mem_mb=1000, waits_for=[i]) for i in range(1, 5)],
    ]
    estimate = CostEstimate.of(jobs, cores=2)
    assert estimate.counts == Counter(load_images=1, train=4, plot_run=4)
    assert estimate.cpu_seconds == pytest.approx(2 * 3 + 4 * 6 + 4 * 1)
    assert estimate.largest_mem_mb == 1000 and estimate.largest_mem_rule == "plot_run"
    assert estimate.submissions is None
    lines = estimate.lines()
    assert lines[0] == "pcann: 9 jobs to run:" and lines[1] == "  plot_run 4, train 4, load_images 1"
    assert "estimated CPU time 0:34, wall time about" in lines[2] and "on 2 cores" in lines[2]
    assert not any("Slurm" in line for line in lines)

    on_slurm = CostEstimate.of(jobs, cores=100, cluster=True, local_cores=1)
    assert (on_slurm.submissions, on_slurm.group_submissions, on_slurm.grouped_jobs) == (2, 1, 4)
    assert on_slurm.lines(dry_run=True)[-1] == (
        "  Slurm submissions: 2 (4 jobs in 1 group job); the rest run on this node"
    )
    # the four figure jobs run one at a time on this node, after the trainings
    assert on_slurm.wall_seconds == pytest.approx(3 + 6 + 4)


def test_durations_read_as_a_clock_and_back_and_long_lists_wrap():
    assert [duration(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0:00", "1:00", "1:01", "1:01:02"]
    assert parse_duration("1:01:02") == 3662 and parse_duration("2:03") == 123
    lines = wrap_items([f"rule_{i} {i}" for i in range(40)], width=100)
    assert len(lines) > 1 and all(len(line) <= 100 for line in lines)


# --- the terminal's pieces ---------------------------------------------------------------------


def test_a_training_line_gives_both_accuracies_to_four_digits(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps({"val_accuracy": 0.8571428571428571, "test_accuracy": 0.86144578313253, "diverged": False})
    )
    assert training_line(metrics, "study/pca2/run") == "trained study/pca2/run: validation 0.8571, test 0.8614"
    assert "not readable" in training_line(tmp_path / "missing.json", "study/pca2/run")
    # a search's own run: selected without the test set, so the terminal does not show it
    assert training_line(metrics, "study/pca2/run", show_test=False) == "trained study/pca2/run: validation 0.8571"


def test_a_rung_line_names_the_candidates_that_go_on_or_the_winner(tmp_path):
    folder = tmp_path / "search" / "two_layer"
    folder.mkdir(parents=True)
    header = "rung,epochs,rank,candidate,decision\n"
    (folder / "rung_0.csv").write_text(header + "".join(
        f"0,30,{rank},c{rank},{'kept' if rank <= 2 else 'stopped'}\n" for rank in range(1, 6)))
    (folder / "rung_1.csv").write_text(header + "1,90,1,c2,winner\n1,90,2,c1,stopped\n")
    assert rung_line(folder / "rung_0.csv") == "search two_layer rung 0 (30 epochs): 2 of 5 go on: c1, c2"
    assert rung_line(folder / "rung_1.csv") == "search two_layer rung 1 (90 epochs): the winner: c2"


def test_a_busy_machine_is_named_beside_the_estimate():
    assert busy_machine_note(load=1.5, cpus=2) == []
    assert busy_machine_note(load=6.1, cpus=2) == [
        "  this machine is busy (load average 6.1 on 2 CPUs): expect a longer wall time"
    ]


@pytest.mark.parametrize(
    "event, level, message, shown",
    [
        ("job_info", logging.INFO, None, False),
        ("shellcmd", logging.INFO, "Shell command: None", False),
        ("run_info", logging.INFO, "Job stats: ...", False),
        ("progress", logging.INFO, "1 of 2 steps (50%) done", False),
        (None, logging.INFO, "Select jobs to execute...", False),
        (None, logging.INFO, "Nothing to be done (all requested files are present and up to date).", True),
        (None, logging.INFO, "Building DAG of jobs...", True),
        (None, logging.WARNING, "*** DEMO DATA ***", True),
        ("job_error", logging.ERROR, None, True),
    ],
)
def test_snakemakes_terminal_keeps_warnings_errors_and_plain_news_only(event, level, message, shown):
    record = logging.LogRecord("snakemake", level, "", 0, message, None, None)
    if event is not None:
        record.event = event
    assert QuietSnakemakeFilter().filter(record) is shown


# --- the workflow --------------------------------------------------------------------------------


@pytest.mark.workflow
def test_a_studys_default_terminal_is_short_with_progress_and_a_line_per_training_run(tiny_study):
    workdir, _, result = tiny_study
    output = result.stdout + result.stderr
    lines = output.splitlines()
    # 35 lines measured (65 jobs); a slow machine adds a progress line a minute
    assert len(lines) <= 45, output
    assert max(len(line) for line in lines) <= 200, max(lines, key=len)[:300]
    # the cost block, then progress up to the last job
    total, counts = cost_block_counts(output)
    progress = PROGRESS.findall(output)
    assert progress and all(int(n) == total for _, n, _ in progress)
    assert re.search(rf"^\[{total}/{total} \d+:\d\d\] 100% of the jobs done$", output, re.M), output
    assert any(left for *_, left in progress), "no line says the time left"
    # one line per training run, its accuracies from its metrics.json to 4 digits
    metrics_files = sorted((workdir / "results" / "runs").glob("*/*/*/metrics.json"))
    assert len(metrics_files) == counts["train"] > 1
    trained = [line for line in lines if "] trained " in line]
    assert len(trained) == len(metrics_files), "\n".join(trained)
    for metrics_file in metrics_files:
        metrics = json.loads(metrics_file.read_text())
        run = metrics_file.parent.relative_to(workdir / "results" / "runs").as_posix()
        expected = f"trained {run}: validation {metrics['val_accuracy']:.4f}, test {metrics['test_accuracy']:.4f}"
        assert any(line.endswith(expected) for line in trained), expected
    # Snakemake's per-job blocks, statistics and the target's input list are out of sight
    for hidden in ("rule train:", "localrule all:", "Job stats:", "Select jobs to execute", "Shell command:",
                   "INFO pcann."):
        assert hidden not in output, hidden
    # and every job's full log is in its file
    train_logs = sorted((workdir / "results" / "runs").glob("*/*/*/train.log"))
    assert len(train_logs) == len(metrics_files)
    assert all("accuracy train" in log.read_text() for log in train_logs)


@pytest.mark.workflow
def test_pcann_verbose_brings_back_snakemakes_job_blocks_and_the_jobs_info_lines(tmp_path):
    target = "results/data/split.npz"
    outputs = {}
    for verbose in (False, True):
        workdir = copy_workflow(tmp_path / f"verbose-{verbose}", tiny_study_config())
        result = run_snakemake(workdir, "--cores", "1", target, verbose=verbose)
        outputs[verbose] = result.stdout + result.stderr
    for shown in ("rule load_images:", "jobid: ", "INFO pcann.load_images:", "Job stats:"):
        assert shown in outputs[True], shown
        assert shown not in outputs[False], shown
    # the cost block comes in both; the progress is pcann's, or Snakemake's own
    assert all(COST_HEADER.search(output) for output in outputs.values())
    assert PROGRESS.search(outputs[False]) and "3 of 3 steps (100%) done" in outputs[True]


@pytest.mark.workflow
def test_a_dry_run_prints_the_cost_block_of_the_jobs_that_would_run(tmp_path, tiny_study):
    workdir = copy_workflow(tmp_path, tiny_study_config())
    dry = run_snakemake(workdir, "--dry-run", "--cores", "2")
    output = dry.stdout + dry.stderr
    total, counts = cost_block_counts(output)
    verbose = run_snakemake(workdir, "--dry-run", "--quiet", "rules", "--cores", "2", verbose=True)
    stats = snakemake_job_stats(verbose.stdout + verbose.stderr)
    assert counts == stats and total == sum(stats.values())
    assert counts["train"] == 12 and counts["run_outputs"] == 12 and counts["fit_pca"] == 3
    assert re.search(r"^  estimated CPU time \d+:\d\d, wall time about \d+:\d\d on 2 cores$", output, re.M), output
    assert re.search(r"^  largest memory request [\d,]+ MB \(\w+\)$", output, re.M), output
    assert "Slurm" not in output and "rule train:" not in output
    assert len(output.splitlines()) <= 15, output

    # only the jobs that will run count: after the study, only what is forced
    finished, _, _ = tiny_study
    forced = run_snakemake(finished, "--dry-run", "--cores", "2", "--forcerun", "summary")
    assert cost_block_counts(forced.stdout + forced.stderr) == (2, Counter(summary=1, all=1))
    nothing = run_snakemake(finished, "--dry-run", "--cores", "2")
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    assert not COST_HEADER.search(nothing.stdout + nothing.stderr)


@pytest.mark.workflow
def test_a_dry_run_with_the_slurm_profile_counts_a_group_of_training_jobs_as_one_submission(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    workdir = copy_workflow(tmp_path, tiny_study_config())
    result = run_snakemake(workdir, "--dry-run", "--profile", "profiles/slurm")
    output = result.stdout + result.stderr
    # make_demo_data, load_images, split_train_val, 2 standardise and 3 fit_pca are submitted one
    # by one; the 12 training jobs (at most 50 a group) as one group job; the rest run locally
    assert "  Slurm submissions: 9 (12 jobs in 1 group job); the rest run on this node" in output, output
    assert re.search(r"wall time about \d+:\d\d with 100 jobs at once, plus queue waits", output), output
