"""The cost of a run before it starts: jobs by kind, CPU and wall time, memory, Slurm submissions.

Every run and dry run prints this block once its jobs are known (pcann.workflow.terminal). The times come
from the plan's own estimates: the training jobs' cost model (:func:`pcann.study.resources.estimated_seconds`,
through :meth:`pcann.study.plan.StudyPlan.training_estimate`), the preprocessing rates of
:mod:`pcann.study.resources`, and for the small jobs whose work does not grow with the data (figures,
model files, tables) a constant per job, measured. The wall time is a list-scheduling simulation
of the jobs on the given cores, in Snakemake's order (dependencies first, higher priority first).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field

from pcann.study.grid import Setting
from pcann.study.resources import (
    DECODE_SECONDS_PER_SAMPLE,
    PASS_SECONDS_PER_SAMPLE,
    DataSize,
)
from pcann.preprocessing.streaming import block_size, passes_estimate

#: The training cost model is an upper bound, fitted never to fall below the measured time (it
#: sets Slurm time limits and priorities): measured 1.48-2.90x the CPU time of the training, median
#: 2.42 (benchmarks/README.md, bench_estimates). The cost block expects this fraction of it.
TRAINING_EXPECTED_FRACTION = 1 / 2
#: Seconds of one job of the rules whose work does not grow with the study, its process's start
#: included: the `s` of their benchmark files in a run of the tiny study (.test/config.yaml),
#: Intel Xeon VM, 2026-12-06, median rounded up; rules without a benchmark file from the
#: timestamps of Snakemake's log of the same run (1 s resolution).
JOB_SECONDS = {
    "make_demo_data": 0.5,
    "split_train_val": 0.3,
    "plot_samples": 1.0,
    "plot_pca": 1.5,
    # one process for a run's figures, model file and evaluation: 111.2 s for 52 runs of the
    # shipped study (bench_study.py --with-extras, same VM, load 2.0-2.7)
    "run_outputs": 2.2,
    "collect_metrics": 1.0,
    "compare_runs": 1.0,
    "model_files_table": 0.5,
    "study_tables": 1.0,
    "study_figures": 5.0,
    "summary": 1.0,
    "predict_images": 1.5,
}
#: A rule not listed above (a target rule with no work of its own counts nothing).
OTHER_JOB_SECONDS = 1.0
TARGET_RULES = ("all", "predict", "search")
#: Start-up of a preprocessing job (numpy, OpenCV, scikit-learn imported), before its data work.
PREPROCESSING_START_SECONDS = 1.2
#: Snakemake's own work per job in the main process (selecting, starting and finishing it).
DISPATCH_SECONDS = 0.15


def job_seconds(rule: str, wildcards, plan, size: DataSize, solver: str, threads: int = 1) -> float:
    """Expected seconds of one job of ``rule`` on one core (``threads`` for load_images)."""
    if rule in TARGET_RULES:
        return 0.0
    if rule == "train":
        own_bound = plan.training_estimate(Setting.from_wildcards(wildcards))[0]
        return DISPATCH_SECONDS + own_bound * TRAINING_EXPECTED_FRACTION
    if rule == "load_images":
        decode = size.n_images * size.n_features * DECODE_SECONDS_PER_SAMPLE / max(1, threads)
        return DISPATCH_SECONDS + PREPROCESSING_START_SECONDS + decode
    if rule in ("standardise", "fit_pca"):
        k = int(getattr(wildcards, "n_components", 10) or 10)
        passes = passes_estimate(k) if solver == "streaming" else 4
        work = passes * size.n_images * size.n_features * min(block_size(k), size.n_features)
        return DISPATCH_SECONDS + PREPROCESSING_START_SECONDS + work * PASS_SECONDS_PER_SAMPLE
    return DISPATCH_SECONDS + JOB_SECONDS.get(rule, OTHER_JOB_SECONDS)


@dataclass
class PlannedJob:
    """One job that will run, as the cost block sees it."""

    rule: str
    seconds: float
    threads: int = 1
    priority: float = 0
    mem_mb: int | None = None
    #: indexes (into the same list) of the jobs it waits for
    waits_for: list[int] = field(default_factory=list)
    #: what it is submitted as on a cluster: None for a job run by the main process (localrule)
    submission: object | None = None


def simulated_wall_seconds(jobs: list[PlannedJob], cores: int, local_cores: int | None = None) -> float:
    """Wall time of ``jobs`` on ``cores`` cores: every job starts as soon as the jobs it waits for
    are done and its threads are free, the highest priority first (Snakemake's greedy order).
    With ``local_cores`` (a cluster), jobs not submitted share that many cores of this node and
    the submitted ones ``cores`` slots (queue waits aside)."""
    cores = max(1, cores)
    pools = {False: cores} if local_cores is None else {False: cores, True: max(1, local_cores)}
    free = dict(pools)

    def pool(index: int) -> bool:
        return local_cores is not None and jobs[index].submission is None

    def width(index: int) -> int:
        return min(pools[pool(index)], jobs[index].threads)

    waiting = [len(job.waits_for) for job in jobs]
    followers: list[list[int]] = [[] for _ in jobs]
    for index, job in enumerate(jobs):
        for dependency in job.waits_for:
            followers[dependency].append(index)
    ready = [(-job.priority, index) for index, job in enumerate(jobs) if not job.waits_for]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []  # (end time, index)
    now = 0.0
    while ready or running:
        # start what fits, highest priority first (a job wider than the machine gets all of it)
        held = []
        while ready and any(free.values()):  # a full pool's jobs are held until a job ends
            _, index = heapq.heappop(ready)
            if width(index) <= free[pool(index)]:
                free[pool(index)] -= width(index)
                heapq.heappush(running, (now + jobs[index].seconds, index))
            else:
                held.append((-jobs[index].priority, index))
        for item in held:
            heapq.heappush(ready, item)
        if not running:
            break
        now, index = heapq.heappop(running)
        free[pool(index)] += width(index)
        for follower in followers[index]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                heapq.heappush(ready, (-jobs[follower].priority, follower))
    return now


def duration(seconds: float) -> str:
    """``1:02:03`` / ``2:03``: hours, minutes and seconds as a person reads a clock."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def parse_duration(text: str) -> float:
    """Seconds of a :func:`duration` (``2:03`` or ``1:02:03``)."""
    seconds = 0.0
    for part in text.split(":"):
        seconds = 60 * seconds + float(part)
    return seconds


def wrap_items(items: list[str], width: int = 100, indent: str = "  ") -> list[str]:
    """``items`` joined by ", " into lines of at most about ``width`` characters."""
    lines, line = [], ""
    for item in items:
        candidate = f"{line}, {item}" if line else item
        if line and len(indent) + len(candidate) + 1 > width:  # + the comma that ends a line
            lines.append(indent + line + ",")
            candidate = item
        line = candidate
    if line:
        lines.append(indent + line)
    return lines


@dataclass
class CostEstimate:
    """What the cost block says, computed from the jobs that will run."""

    counts: Counter
    cpu_seconds: float
    wall_seconds: float
    cores: int
    largest_mem_mb: int | None
    largest_mem_rule: str | None
    #: Slurm submissions (None when the run is not on a cluster) and how many group jobs of them
    submissions: int | None = None
    group_submissions: int = 0
    grouped_jobs: int = 0

    @classmethod
    def of(
        cls, jobs: list[PlannedJob], cores: int, cluster: bool = False, local_cores: int | None = None
    ) -> "CostEstimate":
        """``cores``: the cores of this node, or on a cluster the jobs at once (``--jobs``) beside
        the ``local_cores`` of this node for the jobs it runs itself."""
        counts = Counter(job.rule for job in jobs)
        with_mem = [job for job in jobs if job.mem_mb]
        largest = max(with_mem, key=lambda job: job.mem_mb, default=None)
        estimate = cls(
            counts=counts,
            cpu_seconds=sum(job.seconds * min(cores, job.threads) for job in jobs),
            wall_seconds=simulated_wall_seconds(jobs, cores, local_cores if cluster else None),
            cores=cores,
            largest_mem_mb=largest.mem_mb if largest else None,
            largest_mem_rule=largest.rule if largest else None,
        )
        if cluster:
            submitted = [job for job in jobs if job.submission is not None]
            members = Counter(job.submission for job in submitted)
            groups = [key for key, n in members.items() if isinstance(key, tuple) and key[0] == "group"]
            estimate.submissions = len(members)
            estimate.group_submissions = len(groups)
            estimate.grouped_jobs = sum(members[key] for key in groups)
        return estimate

    def lines(self, dry_run: bool = False) -> list[str]:
        total = sum(self.counts.values())
        kinds = [f"{rule} {n}" for rule, n in sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))]
        verb = "would run" if dry_run else "to run"
        lines = [f"pcann: {total} jobs {verb}:", *wrap_items(kinds)]
        where = (
            f"on {plural(self.cores, 'core')}"
            if self.submissions is None
            else f"with {plural(self.cores, 'job')} at once, plus queue waits"
        )
        lines.append(
            f"  estimated CPU time {duration(self.cpu_seconds)}, wall time about {duration(self.wall_seconds)} {where}"
        )
        if self.largest_mem_mb:
            lines.append(f"  largest memory request {self.largest_mem_mb:,} MB ({self.largest_mem_rule})")
        if self.submissions is not None:
            grouped = (
                f" ({self.grouped_jobs} jobs in {plural(self.group_submissions, 'group job')})"
                if self.group_submissions
                else ""
            )
            lines.append(f"  Slurm submissions: {self.submissions}{grouped}; the rest run on this node")
        return lines


def planned_jobs(dag, seconds_of) -> list[PlannedJob]:
    """The jobs Snakemake's ``dag`` will run (not those already done), with ``seconds_of(job)``
    expected seconds each, their dependencies among them, and their submission on a cluster."""
    jobs = list(dag.needrun_jobs())
    index = {job: i for i, job in enumerate(jobs)}
    # Snakemake's own Workflow.is_local, without its "everything is local" of a dry run
    local_rules = getattr(dag.workflow, "_localrules", set())
    planned = []
    for job in jobs:
        group = dag.get_job_group(job)
        if job.group is None and (job.rule.name in local_rules or job.rule.norun):
            submission = None
        elif group is not None:
            submission = ("group", id(group))
        else:
            submission = ("job", job.jobid)
        try:
            mem_mb = job.resources.get("mem_mb")
        except Exception:  # a resource function that cannot be evaluated yet: no figure
            mem_mb = None
        planned.append(
            PlannedJob(
                rule=job.rule.name,
                seconds=seconds_of(job),
                threads=max(1, int(job.threads or 1)),
                priority=job.priority if isinstance(job.priority, (int, float)) else 0,
                mem_mb=int(mem_mb) if isinstance(mem_mb, (int, float)) and not math.isnan(mem_mb) else None,
                waits_for=[index[d] for d in dag.dependencies[job] if d in index],
                submission=submission,
            )
        )
    return planned


def search_lines(plan) -> list[str]:
    """The cost block's lines of an adaptive search: its rungs, and the estimated training of the
    whole search, of which the jobs above are only the part known before its rungs decide."""
    if plan.search is None:
        return []
    search = plan.search
    expected, most = plan.search_estimate()
    sizes = ", ".join(f"{n} at {e}" for n, e in zip(search.rung_sizes(), search.rungs))
    return [
        f"  search {search.name}: {plural(len(search.candidates), 'candidate')} x {plural(len(search.seeds), 'seed')}, "
        f"candidates at epochs: {sizes}",
        f"  the whole search: about {duration(expected * TRAINING_EXPECTED_FRACTION)} of training "
        f"(at most {duration(most * TRAINING_EXPECTED_FRACTION)}); each rung's jobs are known once "
        "the rung before has decided",
    ]
