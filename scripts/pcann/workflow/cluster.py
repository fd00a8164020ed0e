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

Before a job is submitted, its time limit, memory and CPUs are also checked against its
partition: Slurm would otherwise accept the job and leave it pending for ever (MaxTime,
MaxMemPerNode) or reject it with a message that names neither the job nor what to change.

Errors at submission (issue #28): the plugin submits from a thread of its own, and its handler
for an error there reads ``job.rule``, which a group job does not have; the handler then fails,
the error is lost with the thread's future, the scheduler is never told and waits for ever.
pcann therefore runs its checks, and catches whatever the plugin's submission raises, in that
thread itself, and reports each error to the scheduler through the executor interface
(``report_job_error``), as the plugin does for a failed sbatch: Snakemake then fails the job as
it fails any other (docs/slurm.md, "Errors at submission").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
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
            f"({max_minutes} min); expected at most {max_minutes}: for a training group job lower "
            "slurm_job_minutes (--config; runs per job) or raise cores (more side by side), "
            "lower a runtime you set, or choose a partition with a longer MaxTime (slurm_partition)"
        )


def check_memory_fits_partition(label: str, mem_mb: int, partition: "Partition"):
    """Stop before submitting a job that asks for more memory than one node of its partition may
    give a job: Slurm leaves it pending for ever over MaxMemPerNode, and refuses it over the
    largest node's RealMemory."""
    for limit, what in (
        (partition.max_mem_per_node_mb, "the MaxMemPerNode of"),
        (partition.largest_node_mb, "the largest node of"),
    ):
        if limit is not None and mem_mb > limit:
            raise PcannError(
                f"{label}: memory {mem_mb} MB exceeds {what} partition {partition.name!r} "
                f"({limit} MB); expected at most {limit}: for a group job lower cores (fewer "
                "members side by side), for a single job its mem_mb (--set-resources), or choose "
                "a partition with more memory per node (slurm_partition)"
            )


def check_cpus_fit_partition(label: str, cpus: int, partition: "Partition"):
    """Stop before submitting a job that asks for more CPUs than the partition's largest node has:
    Slurm would leave it pending for ever (reason PartitionConfig)."""
    if partition.largest_node_cpus is not None and cpus > partition.largest_node_cpus:
        raise PcannError(
            f"{label}: {cpus} CPUs exceed the largest node of partition {partition.name!r} "
            f"({partition.largest_node_cpus} CPUs); expected at most {partition.largest_node_cpus}: "
            "lower cores (the CPUs of a group job) or choose a partition with larger nodes "
            "(slurm_partition)"
        )


@dataclass(frozen=True)
class Partition:
    """What a Slurm partition allows one job; None where it sets no limit (or scontrol is silent)."""

    name: str
    max_minutes: int | None = None
    max_mem_per_node_mb: int | None = None
    largest_node_mb: int | None = None
    largest_node_cpus: int | None = None


def _scontrol_records(output: str, key: str) -> list[dict[str, str]]:
    """The records of `scontrol show ... --oneliner` that have ``key``, as field dictionaries."""
    records = (dict(f.split("=", 1) for f in line.split() if "=" in f) for line in output.splitlines())
    return [record for record in records if key in record]


def _megabytes(text: str | None) -> int | None:
    """A Slurm memory value as scontrol prints it (MB, or with a K/M/G/T unit); None for
    UNLIMITED or anything else."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", text or "")
    if not match:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[match.group(2)]
    return int(int(match.group(1)) * scale)


def parse_partitions(
    partitions_output: str, nodes_output: str = ""
) -> tuple[dict[str, Partition], str | None]:
    """Every partition of `scontrol show partition --oneliner` with its limits, and the name of the
    default one; the largest node of each from `scontrol show node --oneliner`."""
    nodes: dict[str, list[tuple[int | None, int | None]]] = {}
    for node in _scontrol_records(nodes_output, "NodeName"):
        cpus = node.get("CPUTot", "")
        size = (_megabytes(node.get("RealMemory")), int(cpus) if cpus.isdigit() else None)
        for name in node.get("Partitions", "").split(","):
            nodes.setdefault(name, []).append(size)
    partitions, default = {}, None
    for fields in _scontrol_records(partitions_output, "PartitionName"):
        name = fields["PartitionName"]
        memory = [mb for mb, _ in nodes.get(name, []) if mb is not None]
        cpus = [n for _, n in nodes.get(name, []) if n is not None]
        partitions[name] = Partition(
            name,
            max_minutes=parse_slurm_minutes(fields.get("MaxTime", "UNLIMITED")),
            max_mem_per_node_mb=_megabytes(fields.get("MaxMemPerNode")),
            largest_node_mb=max(memory, default=None),
            largest_node_cpus=max(cpus, default=None),
        )
        if fields.get("Default") == "YES":
            default = name
    return partitions, default


def _scontrol(what: str) -> str:
    command = ["scontrol", "show", what, "--oneliner"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout


@functools.lru_cache(maxsize=1)
def slurm_partitions() -> tuple[dict[str, Partition], str | None]:
    """The cluster's partitions (see parse_partitions); empty when scontrol cannot tell."""
    try:
        return parse_partitions(_scontrol("partition"), _scontrol("node"))
    except (OSError, subprocess.SubprocessError):
        return {}, None  # no scontrol here: Slurm itself judges the limits


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


def job_label(job) -> str:
    """How errors name a job: its rule, or its group (as `groups:` names it; a group job's name
    also holds its rules, e.g. training_train)."""
    return f"group job {job.groupid}" if job.is_group() else f"job {job.name}"


def check_submission(executor, job, plugin_command: str):
    """Everything pcann checks before a job goes to sbatch (see the module docstring); raises
    PcannError naming the job, what is over, and what to change. ``plugin_command`` is the
    Snakemake command that the plugin built for the job."""
    label = job_label(job)
    partitions, default = slurm_partitions()
    # the partition the plugin will submit to (it may pick one by itself), e.g. " -p short"
    partition_arg = shlex.split(executor.get_partition_arg(job))
    partition = partitions.get(partition_arg[-1] if partition_arg else default)
    minutes = job.resources.get("runtime")
    if partition is not None:
        if minutes:
            check_fits_partition(label, minutes, partition.name, partition.max_minutes)
        if job.resources.get("mem_mb"):
            check_memory_fits_partition(label, job.resources.get("mem_mb"), partition)
        # the CPUs the plugin asks for: cpus_per_task if set, else the job's threads
        check_cpus_fit_partition(label, job.resources.get("cpus_per_task") or job.threads, partition)
    if job.is_group():
        members = list(job.jobs)
        parallelism = member_parallelism(job.threads, [m.threads for m in members])
        if minutes:
            member_minutes = [m.resources.get("runtime") or 0 for m in members]
            check_batch_time_limit(label, minutes, member_minutes, parallelism)
        if os.environ.get(PLUGIN_GROUPS_VARIABLE) != "1":
            group_job_command(plugin_command, job.threads)


def submission_error_reason(job, error: Exception) -> str:
    """The one line that says why ``job`` was not submitted."""
    if isinstance(error, PcannError):
        return str(error)
    return f"{job_label(job)}: could not be submitted to Slurm: {type(error).__name__}: {error}"


def sbatch_refusal(job, message: str | None) -> str | None:
    """One line naming the job for the plugin's report of a refused sbatch ("SLURM sbatch failed.
    The error message was '...'"); None for any other message."""
    match = re.match(r"SLURM sbatch failed\. The error message was '(.*?)'\.\n", message or "", re.S)
    if not match:
        return None
    said = " ".join(line.strip() for line in match.group(1).splitlines() if line.strip())
    return f"{job_label(job)}: sbatch refused it: {said}"


def run_group_members_side_by_side():
    """Make the Slurm executor check every job's limits before sbatch, report every error at
    submission to the scheduler, and submit group jobs whose members run side by side (see the
    module docstring). Call once, in the main Snakemake process; does nothing where the Slurm
    executor plugin is not installed. With PCANN_SLURM_PLUGIN_GROUPS=1 group jobs are submitted
    as the plugin builds them (to see whether it still needs the workaround); the checks stay."""
    try:
        from snakemake_executor_plugin_slurm import Executor
        from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
    except ImportError:
        return
    if getattr(Executor, "_pcann_group_workaround", False):
        return
    # The plugin has no setting or hook for the command of a group job, so the method that builds
    # every job's command (the executor interface's format_job_exec, called just before sbatch)
    # is wrapped; the tests in tests/test_cluster.py pin what it must find there.
    plugin_format_job_exec = Executor.format_job_exec
    plugin_run_job = Executor.run_job
    plugin_report_job_error = Executor.report_job_error

    def format_job_exec(self, job):
        command = plugin_format_job_exec(self, job)
        if not job.is_group() or os.environ.get(PLUGIN_GROUPS_VARIABLE) == "1":
            return command
        return group_job_command(command, job.threads)

    def run_job(self, job):
        # Runs in the plugin's submission thread, where an exception that escapes is lost and the
        # scheduler waits for ever (module docstring): every error is reported from here.
        try:
            check_submission(self, job, plugin_format_job_exec(self, job))
        except Exception as error:
            reason = submission_error_reason(job, error)
        else:
            try:
                plugin_run_job(self, job)
                return
            except Exception as error:  # the plugin's own handler failed; the first error counts
                reason = submission_error_reason(job, error.__context__ or error)
        # printed here too: Snakemake prints no message for a failed group job, only its members
        self.logger.error(reason)
        self.report_job_error(SubmittedJobInfo(job), msg=reason)

    def report_job_error(self, job_info, msg=None, **kwargs):
        refusal = sbatch_refusal(job_info.job, msg)
        if refusal:  # the plugin reports it, but Snakemake drops the message of a group job
            self.logger.error(refusal)
        plugin_report_job_error(self, job_info, msg=msg, **kwargs)

    Executor.format_job_exec = format_job_exec
    Executor.run_job = run_job
    Executor.report_job_error = report_job_error
    Executor._pcann_group_workaround = True
