"""pcann.workflow.cluster: Slurm time limits, partition limits, and the group-job workaround (issue #17).

No Slurm needed; tests/test_slurm.py runs the same code against a real scheduler.
"""

from types import SimpleNamespace

import pytest
from pcann import PcannError
from pcann.workflow.cluster import (
    SEQUENTIAL_JOBSTEP_ARGS,
    batch_minutes_needed,
    check_batch_time_limit,
    check_fits_partition,
    group_job_command,
    member_parallelism,
    parse_partitions,
    parse_slurm_minutes,
)


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("30", 30),
        ("00:10:00", 10),
        ("01:00:00", 60),
        ("1-00:00:00", 1440),
        ("2-03:04:05", 2 * 1440 + 3 * 60 + 4 + 1),  # seconds round up
        ("1-02:30", 1440 + 2 * 60 + 30),
        ("1-02", 1440 + 2 * 60),
        ("05:30", 6),  # minutes:seconds
        ("UNLIMITED", None),
        ("INFINITE", None),
    ],
)
def test_parse_slurm_minutes(text, minutes):
    assert parse_slurm_minutes(text) == minutes


def test_parse_slurm_minutes_rejects_what_slurm_does_not_print():
    with pytest.raises(PcannError, match=r"Slurm time limit 'an hour': expected \[days-\]"):
        parse_slurm_minutes("an hour")


def test_parse_partitions_reads_max_time_and_the_default():
    out = (
        "PartitionName=debug AllowGroups=ALL Default=YES MaxTime=UNLIMITED Nodes=localhost\n"
        "PartitionName=short AllowGroups=ALL Default=NO MaxTime=01:00:00 Nodes=localhost\n"
    )
    assert parse_partitions(out) == ({"debug": None, "short": 60}, "debug")


@pytest.mark.parametrize(
    "members, parallelism, needed",
    [
        ([5, 5, 5, 5], 2, 10),
        ([5] * 50, 8, 32),  # 250 min over 8 slots; Snakemake's 7 rounds of 5 min (35) is more
        ([30, 5, 5], 8, 30),  # never less than the longest member
        ([7, 7, 7], 1, 21),  # one at a time: the sum
        ([], 4, 0),
    ],
)
def test_batch_minutes_needed(members, parallelism, needed):
    assert batch_minutes_needed(members, parallelism) == needed


def test_batch_time_limit_shorter_than_its_members_need_is_refused():
    check_batch_time_limit("group job training", 10, [5, 5, 5, 5], 2)
    with pytest.raises(PcannError) as error:
        check_batch_time_limit("group job training", 10, [5, 5, 5, 5], 1)
    assert str(error.value) == (
        "group job training: time limit 10 min is shorter than its 4 members need 1 at a time "
        "(20 min); expected at least 20"
    )


def test_time_limit_over_the_partitions_max_time_is_refused_with_what_to_change():
    check_fits_partition("group job training", 60, "short", 60)
    check_fits_partition("group job training", 10**6, "debug", None)  # no MaxTime
    with pytest.raises(PcannError, match=(
        r"^group job training: time limit 90 min exceeds the MaxTime of partition 'short' "
        r"\(60 min\); expected at most 60: .*group-components"
    )):  # fmt: skip
        check_fits_partition("group job training", 90, "short", 60)


def test_member_parallelism_is_the_group_cpus_over_the_widest_member():
    assert member_parallelism(8, [1, 1, 1]) == 8
    assert member_parallelism(8, [2, 1]) == 4
    assert member_parallelism(1, [4]) == 1


def test_group_job_command_runs_members_with_the_local_executor_cpus_wide():
    command = f"python -m snakemake --target-jobs a b --cores 8 {SEQUENTIAL_JOBSTEP_ARGS} --mode 'remote'"
    assert group_job_command(command, 8) == (
        "python -m snakemake --target-jobs a b --cores 8 --cores 8 --mode 'remote'"
    )
    with pytest.raises(PcannError, match="no '--executor slurm-jobstep --jobs 1'"):
        group_job_command("python -m snakemake --executor slurm-jobstep --jobs 4", 8)


def _plugin_args():
    """What the installed snakemake-executor-plugin-slurm adds to every job's Snakemake."""
    slurm = pytest.importorskip("snakemake_executor_plugin_slurm")
    settings = SimpleNamespace(pass_command_as_script=False)
    return slurm.Executor.additional_general_args(
        SimpleNamespace(workflow=SimpleNamespace(executor_settings=settings))
    )


def test_workaround_targets_what_the_installed_plugin_adds():
    assert SEQUENTIAL_JOBSTEP_ARGS in _plugin_args()


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="upstream defect snakemake-executor-plugin-slurm#469 (snakemake#4223): group jobs run "
    "their members one at a time. When this passes, upstream has changed: check whether "
    "pcann.workflow.cluster.run_group_members_side_by_side can go (docs/slurm.md, 'Group jobs')",
)
def test_upstream_plugin_runs_group_members_side_by_side():
    jobstep = pytest.importorskip("snakemake_executor_plugin_slurm_jobstep")
    from snakemake_interface_executor_plugins.executors.base import AbstractExecutor

    # the two halves of the defect: at most one job at a time inside the job, and a jobstep
    # executor that waits for each job it starts (the base class's one-by-one run_jobs)
    assert "--jobs 1" not in _plugin_args()
    assert jobstep.Executor.run_jobs is not AbstractExecutor.run_jobs
