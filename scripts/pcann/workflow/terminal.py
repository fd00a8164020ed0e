"""What a run prints on the terminal: the cost before the first job, then progress and one short
line per finished training run. Snakemake's per-job blocks go to its log file only
(.snakemake/log/), every job's own output to the job's log file under results/.

The main process adds :class:`TerminalReport` to Snakemake's logger while the Snakefile is read
(rules/terminal.smk). It reads Snakemake's log events: RUN_INFO, sent once the jobs to run are
known in runs and dry runs alike, prints the cost block (pcann.study.cost); JOB_INFO and JOB_FINISHED
give the finished job, PROGRESS the count. A filter on Snakemake's own terminal handler keeps its
warnings, errors and a few plain messages and hides the rest. ``PCANN_VERBOSE=1`` in the
environment leaves Snakemake's terminal output as it is and the jobs' INFO lines on stderr.
Design and measurements: docs/terminal.md.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from pcann.search.halving import read_rung_table
from pcann.study.cost import CostEstimate, duration, planned_jobs
from pcann.workflow.rule import VERBOSE_VARIABLE, verbose_requested
#: Plain Snakemake messages (no event) that only say what it is doing, one or more per job.
#: ("Building DAG of jobs..." stays: planning a large grid takes seconds before the cost block.)
SNAKEMAKE_CHATTER = (
    "Select jobs to execute",
    "Using shell:",
    "Assuming unrestricted shared filesystem usage",
    "Rules claiming more threads will be scaled down",
    "Conda environments: ignored",
    "Singularity containers: ignored",
    "Group jobs: inactive",
    "Elapsed time:",
    "This was a dry-run",
    "Waiting for running jobs to complete",
    "Reasons:",
    # checkpoints (an adaptive search's rungs): pcann prints each rung's decision instead
    "DAG of jobs will be updated after completion",
    "Updating checkpoint dependencies",
    "The run involves checkpoint jobs",
)
#: A progress line at least every this fraction of the jobs, and at least every this many seconds.
PROGRESS_STEP = 0.1
PROGRESS_SECONDS = 60.0


def event_name(record: logging.LogRecord) -> str | None:
    event = getattr(record, "event", None)
    return None if event is None else str(getattr(event, "value", event)).lower()


class QuietSnakemakeFilter(logging.Filter):
    """For Snakemake's terminal handler: keep warnings, errors (with the failed job's log) and
    plain messages such as "Nothing to be done"; hide per-job blocks, progress, statistics,
    the start header and the scheduler's chatter. Its log file keeps everything."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if event_name(record) is not None:
            return False
        message = str(record.msg or "")
        return not message.startswith(SNAKEMAKE_CHATTER)


def _accuracy(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def training_line(metrics_file: Path, run: str, show_test: bool = True) -> str:
    """``study/pca2/hidden=...: validation 0.8571, test 0.8614`` from a run's metrics.json
    (validation only for a run of an adaptive search, which selects without the test set)."""
    try:
        metrics = json.loads(Path(metrics_file).read_text())
    except (OSError, ValueError):
        return f"trained {run} (its metrics.json is not readable yet)"
    line = f"trained {run}: validation {_accuracy(metrics['val_accuracy'])}"
    if show_test:
        line += f", test {_accuracy(metrics['test_accuracy'])}"
    if metrics.get("diverged"):
        line += f" (diverged at epoch {metrics.get('diverged_epoch')})"
    return line


def rung_line(table: Path) -> str:
    """``search rung 1 (90 epochs): 3 of 8 go on: hidden=...`` from a rung's table."""
    try:
        rows = read_rung_table(table)
    except OSError:
        return f"decided {table} (not readable yet)"
    going = [row["candidate"] for row in rows if row["decision"] != "stopped"]
    what = "the winner" if rows and rows[0]["decision"] == "winner" else f"{len(going)} of {len(rows)} go on"
    return (
        f"search {table.parent.name} rung {rows[0]['rung']} ({rows[0]['epochs']} epochs): "
        f"{what}: {', '.join(going[:3])}{', ...' if len(going) > 3 else ''}"
    )


def busy_machine_note(load: float | None = None, cpus: int | None = None) -> list[str]:
    """A line when other processes already keep this machine's CPUs busy: the estimate is for
    an otherwise idle machine (measured: 2.7x longer at a load average of 6-8 on 2 CPUs)."""
    try:
        load = os.getloadavg()[0] if load is None else load
    except OSError:  # not known on this system
        return []
    cpus = cpus or os.cpu_count() or 1
    if load <= cpus:
        return []
    return [f"  this machine is busy (load average {load:.1f} on {cpus} CPUs): expect a longer wall time"]


class Progress:
    """Done / total jobs, elapsed time and the time left: the plan's wall time at first, then
    the elapsed time extrapolated by the share of the estimated work done."""

    def __init__(self, job_seconds: dict[int, float], wall_seconds: float, started: float):
        self.job_seconds = job_seconds
        self.total_work = sum(job_seconds.values())
        self.wall_seconds = wall_seconds
        self.started = started
        self.done_work = 0.0

    def add(self, jobid: int, seconds: float) -> None:
        """A job Snakemake planned after the start (after a checkpoint: a search's next rung)."""
        self.job_seconds[jobid] = seconds
        self.total_work += seconds

    def finished(self, jobid: int) -> None:
        self.done_work += self.job_seconds.get(jobid, 0.0)

    def remaining(self, now: float) -> float:
        elapsed = now - self.started
        share = min(1.0, self.done_work / self.total_work) if self.total_work > 0 else 0.0
        planned = self.wall_seconds * (1 - share)
        extrapolated = elapsed * (1 - share) / share if share > 0 else planned
        return max(0.0, (1 - share) * planned + share * extrapolated)

    def prefix(self, done: int, total: int, now: float) -> str:
        width = len(str(total))
        left = "" if done >= total else f", ~{duration(self.remaining(now))} left"
        return f"[{done:>{width}}/{total} {duration(now - self.started)}{left}]"


class TerminalReport(logging.Handler):
    """Prints pcann's lines to the terminal from Snakemake's log events (see the module)."""

    def __init__(self, workflow, seconds_of, stream=None, verbose: bool = False, notes=lambda: [],
                 test_hidden=lambda run_dir: False):
        super().__init__(level=logging.INFO)
        self.workflow = workflow
        self.seconds_of = seconds_of
        #: more lines for the cost block (an adaptive search's estimate), and the runs whose
        #: test accuracy the terminal leaves out (a search's own runs)
        self.notes = notes
        self.test_hidden = test_hidden
        self.rungs: dict[int, Path] = {}  # search_rung jobid -> its table
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.lock_ = threading.Lock()
        self.cost_printed = False
        self.progress: Progress | None = None
        self.runs: dict[int, tuple[str, Path]] = {}  # training jobid -> (run, metrics.json)
        self.last_shown = (0, 0.0)  # (done, time) of the last progress line
        self.done = 0
        self.total = 0

    def write(self, lines: list[str]) -> None:
        self.stream.write("".join(f"{line}\n" for line in lines))
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = event_name(record)
            with self.lock_:
                if event == "run_info" and not self.cost_printed:
                    self.cost_printed = True
                    self.print_cost()
                elif event == "job_finished":
                    self.job_finished(int(record.job_id))
                elif event == "progress":
                    self.show_progress(int(record.done), int(record.total))
        except Exception:  # the terminal report must never stop a run
            self.handleError(record)

    def print_cost(self) -> None:
        workflow = self.workflow
        dag = workflow.dag
        dry_run = bool(workflow.dryrun)
        # a dry run for a cluster: its group jobs tell (pcann packs training runs into groups
        # only for Slurm, pcann.workflow.packing), or groups set on the command line
        cluster = (
            not workflow.local_exec
            or bool(workflow.group_settings.overwrite_groups)
            or any(dag.get_job_group(job) is not None for job in dag.needrun_jobs())
        )
        jobs = planned_jobs(dag, self.seconds_of)
        # a cluster runs as many jobs at once as --jobs allows (queue waits aside); "unlimited"
        # (sys.maxsize) is every job at once
        cores = workflow.nodes if cluster else workflow._cores
        if not isinstance(cores, int) or not 0 < cores < 10**6:
            cores = max(1, len(jobs))
        local_cores = getattr(workflow.resource_settings, "local_cores", None) or 1
        estimate = CostEstimate.of(jobs, cores, cluster=cluster, local_cores=local_cores)
        lines = estimate.lines(dry_run=dry_run)
        lines.extend(self.notes())
        if not cluster:
            lines.extend(busy_machine_note())
        if not self.verbose and not dry_run:
            lines.append(f"  each job's log: under results/; Snakemake's per-job output: {VERBOSE_VARIABLE}=1")
        self.write(lines)
        if not dry_run:
            self.progress = Progress({}, estimate.wall_seconds, time.monotonic())
            self.register_jobs()
            self.total = len(self.progress.job_seconds)
            self.last_shown = (0, self.progress.started)

    def register_jobs(self) -> None:
        """Follow the jobs Snakemake will run: at the start, and again when a checkpoint has
        added jobs (a search's next rung)."""
        for job in self.workflow.dag.needrun_jobs():
            if job.jobid in self.progress.job_seconds:
                continue
            self.progress.add(job.jobid, self.seconds_of(job))
            if job.rule.name == "train":
                metrics = next((f for f in job.output if str(f).endswith("metrics.json")), None)
                if metrics is not None:
                    run = str(Path(metrics).parent).split("runs/", 1)[-1]
                    self.runs[job.jobid] = (run, Path(metrics))
            elif job.rule.name == "search_rung":
                self.rungs[job.jobid] = Path(job.output[0])

    def job_finished(self, jobid: int) -> None:
        if self.progress is None:
            return
        if jobid not in self.progress.job_seconds:
            self.register_jobs()
        self.progress.finished(jobid)
        line = None
        if jobid in self.runs:
            run, metrics = self.runs.pop(jobid)
            line = training_line(metrics, run, show_test=not self.test_hidden(str(metrics.parent)))
        elif jobid in self.rungs:
            line = rung_line(self.rungs.pop(jobid))
        if line:
            now = time.monotonic()
            # the count is that of the finished jobs before this one: Snakemake sends PROGRESS next
            prefix = self.progress.prefix(self.done + 1, max(self.total, 1), now)
            self.write([f"{prefix} {line}"])
            self.last_shown = (self.done + 1, now)

    def show_progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.progress is None or self.verbose:
            return
        now = time.monotonic()
        shown_done, shown_at = self.last_shown
        step = max(1, int(total * PROGRESS_STEP))
        if done == total or done - shown_done >= step or (now - shown_at >= PROGRESS_SECONDS and done > shown_done):
            self.write([f"{self.progress.prefix(done, total, now)} {done * 100 // total}% of the jobs done"])
            self.last_shown = (done, now)


def install(workflow, seconds_of, environ=os.environ, notes=lambda: [],
            test_hidden=lambda run_dir: False) -> TerminalReport:
    """Add pcann's terminal report to Snakemake's logger and, unless ``PCANN_VERBOSE`` is set,
    the quiet filter to Snakemake's own terminal handler."""
    from snakemake.logging import logger

    verbose = verbose_requested(environ)
    stream = None
    for handler in logger.handlers:
        if handler.name == "DefaultStreamHandler":
            stream = handler.stream
            if not verbose:
                handler.addFilter(QuietSnakemakeFilter())
    report = TerminalReport(workflow, seconds_of, stream=stream, verbose=verbose, notes=notes,
                            test_hidden=test_hidden)
    logger.addHandler(report)
    return report
