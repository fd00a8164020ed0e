"""Slurm group jobs whose members really run side by side, with time limits that fit (issue #17).

The upstream defect: snakemake-executor-plugin-slurm (2.8.0 and earlier) starts the Snakemake
inside every submitted job with ``--executor slurm-jobstep --jobs 1``, and the jobstep executor
waits for one member's ``srun`` to end before it starts the next
(snakemake-executor-plugin-slurm#469, snakemake#4223). A group job that asks for 8 CPUs thus
runs its members one at a time on one CPU, while its time limit, which Snakemake computes as if
they ran 8 wide, is too short for them one after another.

The workaround (:func:`run_group_members_side_by_side`): for group jobs only, the Snakemake
inside the job runs its members with Snakemake's own local executor, as many at a time as the
CPUs the group job asked for. That is how Snakemake runs group jobs for every executor that
does not replace the nested executor, and it is the parallelism that Snakemake already sized the
group job's CPUs, memory and time limit for. Single jobs keep the plugin's ``srun`` job step.

Before a job is submitted, its time limit is also checked against its partition's MaxTime: Slurm
would otherwise accept the job and leave it pending for ever (or reject it, by site policy).
"""

from __future__ import annotations

import functools
import math
import os
import re
import shlex
import subprocess

from pcann import PcannError

#: What the plugin adds to the Snakemake command of every job it submits (plugin 2.8.0). The
#: workaround replaces exactly this in group jobs; if a plugin version no longer adds it, the
#: workaround stops with an error rather than guess (tests/test_cluster.py and tests/test_slurm.py
#: tell when it can go).
SEQUENTIAL_JOBSTEP_ARGS = "--executor slurm-jobstep --jobs 1"
#: Set to 1 to submit group jobs as the plugin builds them (tests/test_slurm.py checks with it
#: whether the plugin still runs their members one at a time).
PLUGIN_GROUPS_VARIABLE = "PCANN_SLURM_PLUGIN_GROUPS"


def parse_slurm_minutes(text: str) -> int | None:
    """Minutes of a Slurm time value as scontrol prints it ([days-]hours:minutes:seconds, or
    minutes); None for no limit (UNLIMITED, INFINITE). Seconds round up."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise PcannError(
            f"Slurm time limit {text!r}: expected [days-]hours:minutes:seconds, minutes, "
            "or UNLIMITED"
        )
    days, first, second, third = match.groups()
    if second is None:  # days-hours, or plain minutes
        hours, minutes, seconds = (int(first), 0, 0) if days else (0, int(first), 0)
    elif third is None:  # days-hours:minutes, or minutes:seconds
        hours, minutes, seconds = (int(first), int(second), 0) if days else (0, int(first), int(second))
    else:
        hours, minutes, seconds = int(first), int(second), int(third)
    return int(days or 0) * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)


def batch_minutes_needed(member_minutes: list[int], parallelism: int) -> int:
    """The shortest time limit under which a batch's members all end when each keeps to its own
    limit and they run ``parallelism`` at a time: their sum spread over the parallel slots, and
    never less than the longest member."""
    if parallelism < 1:
        raise PcannError(f"batch parallelism {parallelism}: expected at least 1")
    if not member_minutes:
        return 0
    return max(max(member_minutes), math.ceil(sum(member_minutes) / parallelism))


def check_batch_time_limit(label: str, minutes: int, member_minutes: list[int], parallelism: int):
    """Stop when a batch asks for less time than its members need at its real parallelism."""
    needed = batch_minutes_needed(member_minutes, parallelism)
    if minutes < needed:
        raise PcannError(
            f"{label}: time limit {minutes} min is shorter than its {len(member_minutes)} members "
            f"need {parallelism} at a time ({needed} min); expected at least {needed}"
        )


def check_fits_partition(label: str, minutes: int, partition: str, max_minutes: int | None):
    """Stop before submitting a job whose time limit its partition does not allow."""
    if max_minutes is not None and minutes > max_minutes:
        raise PcannError(
            f"{label}: time limit {minutes} min exceeds the MaxTime of partition {partition!r} "
            f"({max_minutes} min); expected at most {max_minutes}: for a group job lower "
            "group-components (fewer members per job) or raise cores (more side by side), or "
            "choose a partition with a longer MaxTime (slurm_partition)"
        )


def parse_partitions(scontrol_output: str) -> tuple[dict[str, int | None], str | None]:
    """MaxTime in minutes of every partition in `scontrol show partition --oneliner`, and the
    name of the default partition."""
    max_minutes, default = {}, None
    for line in scontrol_output.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "PartitionName" not in fields:
            continue
        name = fields["PartitionName"]
        max_minutes[name] = parse_slurm_minutes(fields.get("MaxTime", "UNLIMITED"))
        if fields.get("Default") == "YES":
            default = name
    return max_minutes, default


@functools.lru_cache(maxsize=1)
def slurm_partitions() -> tuple[dict[str, int | None], str | None]:
    """The cluster's partitions (see parse_partitions); empty when scontrol cannot tell."""
    try:
        result = subprocess.run(
            ["scontrol", "show", "partition", "--oneliner"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}, None  # no scontrol here: Slurm itself judges the time limit
    return parse_partitions(result.stdout)


def group_job_command(command: str, cpus: int) -> str:
    """The Snakemake command of a group job with its members run ``cpus`` at a time by the local
    executor, instead of one at a time by slurm-jobstep (the last --cores given counts)."""
    if SEQUENTIAL_JOBSTEP_ARGS not in command:
        raise PcannError(
            f"Slurm group job command has no {SEQUENTIAL_JOBSTEP_ARGS!r}: this version of "
            "snakemake-executor-plugin-slurm is not the one pcann's workaround for its sequential "
            "group jobs was made for; expected the version pinned in requirements-cluster.txt"
        )
    return command.replace(SEQUENTIAL_JOBSTEP_ARGS, f"--cores {cpus}")


def member_parallelism(group_cpus: int, member_threads: list[int]) -> int:
    """How many members of a group job run at a time: its CPUs over the widest member's threads."""
    return max(1, group_cpus // max(member_threads, default=1))


def run_group_members_side_by_side():
    """Make the Slurm executor submit group jobs whose members run side by side, after checking
    every job's time limit (see the module docstring). Call once, in the main Snakemake process;
    does nothing where the Slurm executor plugin is not installed, or with
    PCANN_SLURM_PLUGIN_GROUPS=1 (the plugin's own group jobs, to see whether it still needs this)."""
    if os.environ.get(PLUGIN_GROUPS_VARIABLE) == "1":
        return
    try:
        from snakemake_executor_plugin_slurm import Executor
    except ImportError:
        return
    if getattr(Executor, "_pcann_group_workaround", False):
        return
    # The plugin has no setting or hook for the command of a group job, so the method that builds
    # every job's command (the executor interface's format_job_exec, called just before sbatch)
    # is wrapped; the tests in tests/test_cluster.py pin what it must find there.
    plugin_format_job_exec = Executor.format_job_exec

    def format_job_exec(self, job):
        command = plugin_format_job_exec(self, job)
        label = f"group job {job.name}" if job.is_group() else f"job {job.name}"
        minutes = job.resources.get("runtime")
        if minutes:
            max_minutes, default = slurm_partitions()
            # the partition the plugin will submit to (it may pick one by itself), e.g. " -p short"
            partition_arg = shlex.split(self.get_partition_arg(job))
            partition = partition_arg[-1] if partition_arg else default
            check_fits_partition(label, minutes, partition, max_minutes.get(partition))
        if not job.is_group():
            return command
        members = list(job.jobs)
        parallelism = member_parallelism(job.threads, [m.threads for m in members])
        if minutes:
            member_minutes = [m.resources.get("runtime") or 0 for m in members]
            check_batch_time_limit(label, minutes, member_minutes, parallelism)
        return group_job_command(command, job.threads)

    Executor.format_job_exec = format_job_exec
    Executor._pcann_group_workaround = True
