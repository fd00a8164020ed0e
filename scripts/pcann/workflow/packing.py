"""Training runs packed into Slurm jobs by their estimated time, so that every job fits (issue #23).

Each ``train`` job of the plan is given a Snakemake group (the rule's ``group:`` is a function of
the run): runs of the same group go to Slurm as one group job, in which they run side by side,
``cpus`` at a time. Groups are filled from the plan's estimates, not by a fixed count: short runs
share a job up to ``target_minutes``, a long run gets a job of its own, and no job asks for more
than the partition's MaxTime. A fixed count (Snakemake's ``group-components``) cannot serve both
3-class runs of seconds and Fruits-360 runs of hours.

The time limit Snakemake asks of a group job is not ours to set: it computes it from the members
(``snakemake.resources.GroupResources.basic_layered``, Snakemake 9.27). For each level of the
group's dependencies, it sorts the members by time limit, longest first, fills rows of ``cpus``
one-CPU members, and adds up each row's longest limit; the levels add up too. :func:`group_minutes`
repeats that arithmetic, so that a group is only filled as far as the limit Snakemake will
compute for it stays within bounds (tests/test_packing.py checks it against Snakemake's own).

Runs that continue a shorter run (the epochs sweep) depend on it. Snakemake refuses a group that
a dependency path leaves and enters again, so a tree of continued runs is packed whole into one
job when it fits, and otherwise cut into consecutive pieces of its order (shortest first), each a
job of its own: a path between two runs of one piece never leaves it. The packing is a pure
function of the plan and the settings: the same configuration gives the same jobs.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass

from pcann import PcannError
from pcann.study.grid import Setting

#: The name of every training group job starts with this (what `snakemake` and `squeue` show).
GROUP_PREFIX = "training"
#: The main process puts the partition's MaxTime (minutes; empty: none) here: the Snakemake in
#: every job (sbatch --export=ALL) then plans the same split runs without asking scontrol.
MAX_MINUTES_VARIABLE = "PCANN_SLURM_MAX_MINUTES"


@dataclass(frozen=True)
class TrainingRequest:
    """What Slurm is asked for one training run, and its own estimated seconds."""

    run_dir: str
    minutes: int  # the train job's time limit (runtime)
    mem_mb: int
    seconds: float  # estimated single-core seconds of the job's own epochs
    continues: str | None = None  # run_dir of the run it continues, if any
    epochs: int = 0  # orders the runs of a tree of continued runs


@dataclass(frozen=True)
class PackedJob:
    """One Slurm submission of training runs: a group job, as Snakemake will size it."""

    name: str
    members: tuple[TrainingRequest, ...]
    cpus: int
    minutes: int
    mem_mb: int

    @property
    def estimate_seconds(self) -> float:
        return sum(member.seconds for member in self.members)

    @property
    def cpu_hours(self) -> float:
        """CPU-hours requested: CPUs held for the whole time limit."""
        return self.cpus * self.minutes / 60


def _levels(members) -> list[list[TrainingRequest]]:
    """The members by dependency level inside the group (a run whose continued run is in the
    group comes one level after it), as Snakemake toposorts a group job."""
    by_run = {m.run_dir: m for m in members}
    depth: dict[str, int] = {}

    def level(member: TrainingRequest) -> int:
        if member.run_dir not in depth:
            parent = by_run.get(member.continues)
            depth[member.run_dir] = 0 if parent is None else level(parent) + 1
        return depth[member.run_dir]

    levels: list[list[TrainingRequest]] = []
    for member in members:
        d = level(member)
        levels.extend([] for _ in range(d + 1 - len(levels)))
        levels[d].append(member)
    return levels


def _rows(level: list[TrainingRequest], cpus: int) -> list[list[TrainingRequest]]:
    ordered = sorted(level, key=lambda m: m.minutes, reverse=True)
    return [ordered[i : i + cpus] for i in range(0, len(ordered), cpus)]


def group_minutes(members, cpus: int) -> int:
    """The time limit Snakemake computes for a group job of one-CPU ``members`` with ``cpus``
    CPUs: per dependency level, rows of ``cpus`` members (longest first), each row as long as
    its longest member, the rows and levels one after another."""
    return sum(row[0].minutes for level in _levels(members) for row in _rows(level, cpus))


def group_mem_mb(members, cpus: int) -> int:
    """Memory of such a group job: the most that one row holds at once (an upper bound of
    Snakemake's, which may order members of equal time limit differently)."""
    return max(
        (
            sum(sorted((m.mem_mb for m in level), reverse=True)[:cpus])
            for level in _levels(members)
        ),
        default=0,
    )


def _trees(requests: list[TrainingRequest]) -> list[list[TrainingRequest]]:
    """The trees of continued runs (a run alone is a tree of one), each in its order: shorter
    runs first, so that every run comes after the run it continues."""
    by_run = {r.run_dir: r for r in requests}

    def root(request: TrainingRequest) -> str:
        while request.continues in by_run:
            request = by_run[request.continues]
        return request.run_dir

    trees: dict[str, list[TrainingRequest]] = {}
    for request in requests:
        trees.setdefault(root(request), []).append(request)
    return [sorted(tree, key=lambda r: (r.epochs, r.run_dir)) for tree in trees.values()]


def _pieces(tree: list[TrainingRequest], cpus: int, bound: int) -> list[list[TrainingRequest]]:
    """A tree of runs too long for one job, cut into consecutive pieces of its order that each
    fit ``bound`` (a run longer than ``bound`` alone is a piece of its own)."""
    pieces: list[list[TrainingRequest]] = [[]]
    for run in tree:
        if pieces[-1] and group_minutes(pieces[-1] + [run], cpus) > bound:
            pieces.append([])
        pieces[-1].append(run)
    return pieces


def pack_trainings(
    requests: list[TrainingRequest],
    cpus: int,
    target_minutes: int,
    max_minutes: int | None = None,
) -> list[PackedJob]:
    """The Slurm jobs of the training runs ``requests``: trees of continued runs that fit
    ``target_minutes`` packed together, first fit from the longest, up to ``target_minutes`` a
    job; longer ones in jobs of their own. No job is longer than ``max_minutes`` (the
    partition's MaxTime) unless one of its runs alone is."""
    if cpus < 1 or target_minutes < 1:
        raise PcannError(f"packing training jobs: cpus {cpus} and target {target_minutes} min: expected at least 1")
    # A run longer than max_minutes has been split by the plan (StudyPlan's segments) unless it
    # is finished: it then goes alone and is never submitted (the check before sbatch stays).
    bound = target_minutes if max_minutes is None else min(target_minutes, max_minutes)
    alone: list[list[TrainingRequest]] = []
    bins: list[list[TrainingRequest]] = []
    trees = sorted(
        _trees(requests), key=lambda t: (-group_minutes(t, cpus), t[0].run_dir)
    )
    for tree in trees:
        if group_minutes(tree, cpus) > bound:
            alone.extend(_pieces(tree, cpus, bound))
            continue
        for members in bins:
            if group_minutes(members + tree, cpus) <= bound:
                members.extend(tree)
                break
        else:
            bins.append(list(tree))
    return [
        packed_job(f"{GROUP_PREFIX}{index}", members, cpus)
        for index, members in enumerate(alone + bins, 1)
    ]


def packed_job(name: str, members, cpus: int) -> PackedJob:
    """A group job of ``members`` with at most ``cpus`` CPUs, sized as Snakemake sizes it."""
    width = max(len(level) for level in _levels(members))
    return PackedJob(
        name, tuple(members), min(cpus, width), group_minutes(members, cpus), group_mem_mb(members, cpus)
    )


def _hours(minutes: float) -> str:
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{math.ceil(minutes)} min"


def submissions_text(jobs: list[PackedJob], other_jobs: int, where: str) -> str:
    """The Slurm submissions of a run, as the dry run prints them: the training jobs with their
    runs, CPUs, memory and time limits; how many other jobs (preprocessing) go beside them; and
    the CPU-hours the trainings ask for against their estimate."""
    requested = sum(job.cpu_hours for job in jobs)
    estimate = sum(job.estimate_seconds for job in jobs) / 3600
    runs = sum(len(job.members) for job in jobs)
    lines = [
        f"Slurm submissions ({where}): {runs} training runs in {len(jobs)} job{'s' * (len(jobs) != 1)}"
        + (f", and {other_jobs} other jobs" if other_jobs else "")
    ]
    for job in jobs:
        # protocol/pcaN/run folder: runs of other protocols or components share folder names
        names = [m.run_dir.split("/", 2)[-1] for m in job.members]
        shown = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
        lines.append(
            f"  {job.name}: {len(names)} run{'s' * (len(names) > 1)}, {job.cpus} "
            f"CPU{'s' * (job.cpus > 1)}, {job.mem_mb} MB, "
            f"limit {_hours(job.minutes)}: {shown}"
        )
    if jobs:
        lines.append(
            f"  the trainings ask for {requested:.1f} CPU-hours, estimated to use {estimate:.1f}"
            " (a run's limit is 3x its estimate, at least 5 min; a job holds its CPUs to its end)"
        )
    return "\n".join(lines)


# --- the workflow's side ----------------------------------------------------------------------


def requested_partition(workflow) -> tuple[bool, str | None]:
    """``(for Slurm, partition)``: whether this run names a ``slurm_partition`` for its
    training jobs (profiles/slurm does, as a default resource), and which one (None: the
    cluster's default). A dry run has no Slurm executor to ask, so the resources tell."""
    settings = workflow.resource_settings
    train = settings.overwrite_resources.get("train", {})
    if "slurm_partition" in train:
        return True, str(train["slurm_partition"]) or None
    defaults = settings.default_resources.args if settings.default_resources else []
    for arg in defaults:
        key, _, value = arg.partition("=")
        if key.strip() == "slurm_partition":
            return True, value.strip().strip("'\"") or None
    return False, None


def publish_max_minutes(partition: str | None) -> None:
    """Read the partition's MaxTime once (main process) and hand it to every job's Snakemake."""
    from pcann.workflow.cluster import slurm_partitions

    partitions, default = slurm_partitions()
    found = partitions.get(partition or default)
    minutes = found.max_minutes if found else None
    os.environ[MAX_MINUTES_VARIABLE] = "" if minutes is None else str(minutes)


def max_minutes_published(environ=os.environ) -> int | None:
    value = environ.get(MAX_MINUTES_VARIABLE, "")
    return int(value) if value.isdigit() else None


def needed_jobs(jobs: list[PackedJob], needed: set[str], cpus: int) -> list[PackedJob]:
    """The packed jobs as they are submitted: with only their runs that need to run (finished
    ones are not trained again), sized as Snakemake sizes them for the cluster."""
    kept = []
    for job in jobs:
        members = [m for m in job.members if m.run_dir in needed]
        if members:
            kept.append(packed_job(job.name, members, cpus))
    return kept


class SubmissionsReport(logging.Handler):
    """Prints the Slurm submissions once, when Snakemake has planned the jobs (its first
    RUN_INFO event, in a dry run too). The sizes are computed here, as Snakemake computes them
    for a cluster: in a dry run its own group sizes are those of a local run."""

    def __init__(self, workflow, packing, cpus: int, where: str):
        super().__init__()
        self.workflow, self.packing, self.cpus, self.where = workflow, packing, cpus, where
        self.done = False

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if self.done or str(getattr(event, "value", event)).lower() != "run_info":
            return
        self.done = True
        try:
            needed, others = set(), 0
            for job in self.workflow.dag.needrun_jobs():
                if job.rule.name == "train":
                    needed.add(Setting.from_wildcards(job.wildcards).run_dir)
                elif not (job.rule.norun or job.rule.name in self.workflow._localrules):
                    others += 1  # (workflow.is_local says "local" for every job of a dry run)
            jobs = needed_jobs(self.packing(), needed, self.cpus)
            sys.stderr.write(submissions_text(jobs, others, self.where) + "\n")
        except Exception as error:  # a report must never stop the run
            sys.stderr.write(f"Slurm submissions: not shown ({type(error).__name__}: {error})\n")


def install_report(workflow, packing, cpus: int, where: str) -> None:
    """Print the Slurm submissions of this run once they are planned (``packing()``: the
    plan's packed jobs)."""
    from snakemake.logging import logger

    logger.addHandler(SubmissionsReport(workflow, packing, cpus, where))
