"""pcann.workflow.cluster: Slurm time limits, partition limits, and the group-job workaround (issue #17).

No Slurm needed; tests/test_slurm.py runs the same code against a real scheduler.
"""

from types import SimpleNamespace

import pytest
from pcann import PcannError
from pcann.workflow.cluster import (
    SEQUENTIAL_JOBSTEP_ARGS,
    Partition,
    batch_minutes_needed,
    check_batch_time_limit,
    check_cpus_fit_partition,
    check_fits_partition,
    check_memory_fits_partition,
    group_job_command,
    member_parallelism,
    parse_partitions,
    parse_slurm_minutes,
    sbatch_refusal,
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


def test_parse_partitions_reads_their_limits_the_default_and_their_largest_node():
    partitions = (
        "PartitionName=debug AllowGroups=ALL Default=YES MaxTime=UNLIMITED MaxMemPerNode=UNLIMITED "
        "Nodes=localhost\n"
        "PartitionName=short AllowGroups=ALL Default=NO MaxTime=01:00:00 MaxMemPerNode=4000 Nodes=n[1-2]\n"
    )
    nodes = (
        "NodeName=n1 CPUTot=2 RealMemory=24151 Partitions=debug,short\n"
        "NodeName=n2 CPUTot=16 RealMemory=64G Partitions=short\n"
    )
    assert parse_partitions(partitions, nodes) == (
        {
            "debug": Partition("debug", None, None, 24151, 2),
            "short": Partition("short", 60, 4000, 65536, 16),
        },
        "debug",
    )
    # without the nodes (scontrol show node silent): no node limits, the partition's still count
    assert parse_partitions(partitions)[0]["short"] == Partition("short", 60, 4000, None, None)


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
        r"\(60 min\); expected at most 60: .*slurm_job_minutes"
    )):  # fmt: skip
        check_fits_partition("group job training", 90, "short", 60)


def test_memory_over_what_a_node_of_the_partition_gives_is_refused_with_what_to_change():
    short = Partition("short", 60, max_mem_per_node_mb=4000, largest_node_mb=24151)
    check_memory_fits_partition("job fit_pca", 4000, short)
    check_memory_fits_partition("job fit_pca", 10**9, Partition("anything"))  # no limits known
    with pytest.raises(PcannError, match=(
        r"^group job training: memory 5000 MB exceeds the MaxMemPerNode of partition 'short' "
        r"\(4000 MB\); expected at most 4000: for a group job lower cores"
    )):  # fmt: skip
        check_memory_fits_partition("group job training", 5000, short)
    with pytest.raises(PcannError, match=(
        r"^job fit_pca: memory 30000 MB exceeds the largest node of partition 'debug' "
        r"\(24151 MB\); expected at most 24151: .*mem_mb"
    )):  # fmt: skip
        check_memory_fits_partition("job fit_pca", 30000, Partition("debug", largest_node_mb=24151))


def test_cpus_over_the_partitions_largest_node_are_refused_with_what_to_change():
    check_cpus_fit_partition("group job training", 2, Partition("debug", largest_node_cpus=2))
    with pytest.raises(PcannError, match=(
        r"^group job training: 8 CPUs exceed the largest node of partition 'debug' \(2 CPUs\); "
        r"expected at most 2: lower cores"
    )):  # fmt: skip
        check_cpus_fit_partition("group job training", 8, Partition("debug", largest_node_cpus=2))


def test_sbatch_refusal_is_one_line_naming_the_job():
    group = SimpleNamespace(groupid="training", name="training_train", is_group=lambda: True)
    message = (  # as snakemake-executor-plugin-slurm 2.8.0 reports a failed sbatch
        "SLURM sbatch failed. The error message was 'sbatch: error: Invalid feature specification\n"
        "sbatch: error: Batch job submission failed: Invalid feature specification'.\n"
        "    sbatch call:\n        sbatch --job-name x --constraint nosuch\n"
    )
    assert sbatch_refusal(group, message) == (
        "group job training: sbatch refused it: sbatch: error: Invalid feature specification "
        "sbatch: error: Batch job submission failed: Invalid feature specification"
    )
    assert sbatch_refusal(group, "SLURM-job '12' failed, SLURM status is: 'CANCELLED'") is None
    assert sbatch_refusal(group, None) is None


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


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="upstream defect (docs/slurm.md, 'Errors at submission'): the plugin's handler for an "
    "error at submission reads job.rule, which a group job lacks, so the error is lost and the run "
    "hangs. When this passes, upstream has changed: check whether pcann.workflow.cluster's run_job wrapper "
    "can go",
)
def test_upstream_plugin_reports_errors_at_submission_of_group_jobs():
    import inspect

    slurm = pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake.jobs import GroupJob

    handler = inspect.getsource(slurm.Executor.run_job).split("except Exception")[-1]
    assert hasattr(GroupJob, "rule") or "job.rule." not in handler


class _Recorder:
    """Stands in for the plugin's executor: what pcann's wrappers report through it."""

    def __init__(self):
        self.errors, self.reports = [], []
        self.logger = SimpleNamespace(error=self.errors.append)

    def get_partition_arg(self, job):
        return ""

    def report_job_error(self, job_info, msg=None, **kwargs):
        self.reports.append((job_info.job, msg))


@pytest.fixture
def wrapped_plugin(monkeypatch):
    """The installed plugin's Executor with pcann's wrappers around stand-ins for its own
    format_job_exec and run_job (restored after the test); no partitions known."""
    slurm = pytest.importorskip("snakemake_executor_plugin_slurm")
    import pcann.workflow.cluster as cluster

    plugin = SimpleNamespace(command="python -m snakemake --executor slurm-jobstep --jobs 1", run_job=None)
    monkeypatch.delenv(cluster.PLUGIN_GROUPS_VARIABLE, raising=False)
    monkeypatch.setattr(cluster, "slurm_partitions", lambda: ({}, None))
    monkeypatch.setattr(slurm.Executor, "_pcann_group_workaround", False, raising=False)
    monkeypatch.setattr(slurm.Executor, "format_job_exec", lambda self, job: plugin.command)
    monkeypatch.setattr(slurm.Executor, "run_job", lambda self, job: plugin.run_job(job))
    monkeypatch.setattr(slurm.Executor, "report_job_error", slurm.Executor.report_job_error)
    cluster.run_group_members_side_by_side()
    return slurm.Executor, plugin


def _group_job():
    member = SimpleNamespace(threads=1, resources={"runtime": 5})
    return SimpleNamespace(
        groupid="training", name="training_train", is_group=lambda: True, threads=2,
        resources={"runtime": 10, "mem_mb": 1000}, jobs=[member, member],
    )  # fmt: skip


def test_a_group_job_the_workaround_cannot_build_is_reported_not_raised(wrapped_plugin):
    """Issue #28: an error raised in the plugin's submission thread is lost and the run hangs;
    pcann reports it to the scheduler (report_job_error) with one line instead."""
    executor, plugin = wrapped_plugin
    plugin.command = "python -m snakemake --executor slurm-jobstep --jobs 4"  # a newer plugin
    plugin.run_job = lambda job: pytest.fail("submitted although its command is unknown")
    recorder, job = _Recorder(), _group_job()
    executor.run_job(recorder, job)
    reason = recorder.errors[0]
    assert reason.startswith("Slurm group job command has no '--executor slurm-jobstep --jobs 1'")
    assert recorder.reports == [(job, reason)]


def test_an_error_escaping_the_plugins_own_handler_is_reported_with_its_cause(wrapped_plugin):
    """The plugin's handler reads job.rule, which a group job lacks: the AttributeError it
    raises hides the real error, which is what pcann reports."""
    executor, plugin = wrapped_plugin

    def plugin_run_job(job):
        try:
            raise OSError("sbatch: command not found")
        except OSError:
            job.rule  # noqa: B018 - as the plugin's handler does
    plugin.run_job = plugin_run_job
    recorder, job = _Recorder(), _group_job()
    executor.run_job(recorder, job)
    reason = "group job training: could not be submitted to Slurm: OSError: sbatch: command not found"
    assert recorder.errors == [reason] and recorder.reports == [(job, reason)]


def test_a_job_that_passes_the_checks_is_left_to_the_plugin(wrapped_plugin):
    executor, plugin = wrapped_plugin
    submitted = []
    plugin.run_job = submitted.append
    recorder, job = _Recorder(), _group_job()
    executor.run_job(recorder, job)
    assert submitted == [job] and not recorder.reports and not recorder.errors
    assert executor.format_job_exec(recorder, job) == "python -m snakemake --cores 2"
