"""Cluster execution: the workflow through profiles/slurm on a REAL single-node Slurm on localhost.

The session fixture starts slurmctld + slurmd + munged with tests/slurm/start-slurm.sh (root;
installs the Debian packages if missing) and stops exactly those daemons, by recorded PID, at the
end. It skips only when that is impossible here (not root, not Linux, no apt-get, packages cannot
be installed, daemons do not come up), with the reason; set PCANN_REQUIRE_SLURM=1 to turn such a
skip into a failure (CI does, so a broken setup cannot pass silently).

The test cluster has no accounting database (no sacct) unless PCANN_SLURM_ACCOUNTING=1; the
profile polls job status with squeue, which works either way (docs/slurm.md). Every snakemake
call is wrapped in `timeout -s KILL`, so a hang fails, never blocks the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow
from pcann.workflow.cluster import batch_minutes_needed, parse_slurm_minutes

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

#: Epochs of every training run: about 4 s on one core of the 2-core Xeon VM (docs/slurm.md,
#: "Many short training jobs"), long beside the ~1 s start of a member inside a group job.
TRAINING_EPOCHS = 40000
#: The configuration every run here uses. It REPLACES config.yaml in the temporary copy (rather
#: than extending it with --configfile, which would deep-merge and keep the shipped networks and
#: sweeps); the schema fills in every key not given. Small on purpose: a few seconds of work.
TEST_CONFIG = {
    "demo": {"n_train_per_class": 20, "n_test_per_class": 8, "image_size": 16, "seed": 0},
    "networks": {
        "tiny": {
            # a few seconds each on one core, and four of them: two rounds on the 2-CPU group job
            "baseline": {"hidden": [4], "epochs": TRAINING_EPOCHS, "lr": 0.05, "batch_size": 8},
            "sweep": {"lr": [0.5, 0.1, 0.2]},
        }
    },
    "headline": [{"network": "tiny"}],
    "seeds": [1],
    "compare_protocols": ["study"],
    "components_sweep": [],
    "per_run_outputs": "headline",
}

#: The comparison runs stop after these rules (snakemake --until): everything the compared files
#: need is built, the figures and report (local rules, a minute of plotting) are not.
UNTIL = ("--until", "train")

#: What the two runs must produce byte for byte (relative to results/).
COMPARED = ("**/metrics.json", "**/history.csv", "features/**/*.npz", "features/**/*.csv")

SLURM_DIR = REPO / "tests" / "slurm"
#: Fixed, so that a later session's start-slurm.sh stops daemons a killed session left behind.
STATE_DIR = Path(os.environ.get("PCANN_SLURM_STATE_DIR", "/tmp/pcann-slurm"))

#: PCANN_SLURM_ACCOUNTING=1 also runs slurmdbd + MariaDB (sacct works, as on most production
#: clusters). Off by default: those Debian packages took minutes to install on a 2-core machine,
#: and the profile polls with squeue, which needs no accounting (profiles/slurm/config.yaml).
ACCOUNTING = os.environ.get("PCANN_SLURM_ACCOUNTING") == "1"

#: Flags added to `--profile profiles/slurm` (otherwise used as shipped), and why:
SLURM_TEST_FLAGS = [
    # first status poll after 1 s (the least the plugin accepts) instead of 40 s; while no job
    # ends, the plugin waits 10 s longer each time: a job of a few seconds is seen done after
    # ~12 s instead of ~50 s (after ~14 s with 2 s)
    "--slurm-init-seconds-before-status-checks", "1",
    # the test node may have 2 CPUs: a group job asks for at most --cores CPUs (profile: 8)
    "--cores", "2",
    # one local disk, nothing to wait for
    "--latency-wait", "5",
]  # fmt: skip

START_TIMEOUT = 900  # seconds; includes apt-get install on a fresh CI machine
RUN_TIMEOUT = 420  # seconds for one snakemake run (the Slurm run took 1.5-2.5 min on 2 busy cores)


# --- the cluster ---------------------------------------------------------------------------------


def _not_here(reason: str):
    if os.environ.get("PCANN_REQUIRE_SLURM") == "1":
        pytest.fail(f"PCANN_REQUIRE_SLURM=1 but no local Slurm: {reason}")
    pytest.skip(f"no local Slurm: {reason}")


def _slurm(*args: str, timeout: int = 30) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _queue() -> list[dict]:
    """Every job slurmctld still knows (MinJobAge=300 s keeps finished ones listed)."""
    out = _slurm("squeue", "--states=all", "--noheader", "--format=%i|%T|%P|%k|%Z").stdout
    keys = ("id", "state", "partition", "comment", "workdir")
    return [dict(zip(keys, line.split("|", len(keys) - 1))) for line in out.splitlines()]


def _cancel_all_jobs():
    """Cancel what the tests left in the test cluster (all of its jobs are theirs), by job id."""
    try:
        live = [j["id"] for j in _queue() if j["state"] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")]
        if live:
            _slurm("scancel", *live)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(
                j["state"] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") for j in _queue()
            ):
                time.sleep(0.5)
    except (OSError, subprocess.SubprocessError):
        pass


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node Slurm on localhost; stopped (by recorded PIDs) after the session."""
    if not sys.platform.startswith("linux"):
        _not_here(f"needs Linux, this is {sys.platform}")
    if os.geteuid() != 0:
        _not_here("needs root (it installs Debian packages and starts munged/slurmctld/slurmd)")
    if shutil.which("timeout") is None:
        _not_here("coreutils `timeout` is missing")
    env = {**os.environ, "SLURM_STATE_DIR": str(STATE_DIR), "SLURM_ACCOUNTING": "1" if ACCOUNTING else "0"}
    stop = ["bash", str(SLURM_DIR / "stop-slurm.sh")]
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["timeout", "-s", "KILL", str(START_TIMEOUT), "bash", str(SLURM_DIR / "start-slurm.sh")],
            capture_output=True,
            text=True,
            env=env,
            timeout=START_TIMEOUT + 30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        subprocess.run(stop, env=env, timeout=120)
        _not_here(f"start-slurm.sh could not run: {exc}")
    if result.returncode != 0:
        subprocess.run(stop, env=env, timeout=120)
        why = "cannot run here" if result.returncode == 77 else f"failed (exit {result.returncode})"
        _not_here(f"tests/slurm/start-slurm.sh {why}:\n{result.stderr[-3000:]}")
    print(f"\nlocal Slurm up in {time.monotonic() - started:.1f} s:\n{result.stdout}{result.stderr}")
    try:
        yield STATE_DIR
    finally:
        _cancel_all_jobs()
        subprocess.run(stop, env=env, timeout=120)


# --- running the workflow ------------------------------------------------------------------------


def make_workdir(parent: Path, name: str) -> Path:
    workdir = copy_workflow(parent / name)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TEST_CONFIG, sort_keys=False))
    return workdir


def snakemake_argv(*args: str, timeout: int = RUN_TIMEOUT) -> list[str]:
    """A snakemake call that is SIGKILLed after ``timeout`` s, whatever it is doing."""
    return ["timeout", "-s", "KILL", str(timeout), sys.executable, "-m", "snakemake", *args]


class Snakemake:
    """One snakemake process in the background, its output (stdout and stderr) in a file."""

    def __init__(self, workdir: Path, *args: str, timeout: int = RUN_TIMEOUT, env: dict | None = None):
        self.workdir, self.timeout = workdir, timeout
        self.logfile = workdir.parent / f"{workdir.name}.snakemake.log"
        self.started = time.monotonic()
        with open(self.logfile, "w") as sink:
            self.process = subprocess.Popen(
                snakemake_argv(*args, timeout=timeout),
                cwd=workdir,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so kill() reaches snakemake too
                # these tests read Snakemake's per-job output (resources, group members, retries)
                env={**os.environ, "PCANN_VERBOSE": "1", **(env or {})},
            )

    def kill(self):
        """SIGKILL the process group this object started (`timeout` and the snakemake under it)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def wait(self) -> "Snakemake":
        try:
            self.returncode = self.process.wait(timeout=self.timeout + 30)
        except BaseException:  # `timeout` stuck (cannot happen) or the test interrupted: never hang
            self.kill()
            self.returncode = self.process.wait()
            raise
        self.seconds = time.monotonic() - self.started
        self.output = self.logfile.read_text(errors="replace")
        return self

    def __str__(self) -> str:
        killed = " (SIGKILLed by `timeout`: it hung)" if self.returncode in (-9, 137) else ""
        return f"snakemake exited {self.returncode}{killed} after {self.seconds:.0f} s\n{self.output[-12000:]}"

    def __repr__(self) -> str:  # pytest prints an assertion's message object with repr
        return str(self) if hasattr(self, "output") else f"snakemake running in {self.workdir}"


def compared_files(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    return {
        str(path.relative_to(results)): path.read_bytes()
        for pattern in COMPARED
        for path in sorted(results.glob(pattern))
        if path.is_file()
    }


def submitted_logs(log: str) -> list[str]:
    """The Slurm log path of every job snakemake submitted (its folder names the rule or group)."""
    return re.findall(r"has been submitted with SLURM jobid \d+ \(log: (.*?)\)", log)


def cancel_first_running_job(run: Snakemake, within: float, settle: float = 0) -> dict | None:
    """scancel the first Slurm job of ``run`` seen RUNNING in its first ``within`` s, ``settle`` s
    after seeing it; that job (as _queue() lists it), or None. Waits for ``run`` to end."""
    cancelled = None
    try:
        while cancelled is None and run.process.poll() is None and time.monotonic() - run.started < within:
            running = [j for j in _queue() if j["workdir"] == str(run.workdir) and j["state"] == "RUNNING"]
            if running:
                time.sleep(settle)
                _slurm("scancel", running[0]["id"])
                cancelled = running[0]
            time.sleep(0.2)
    except BaseException:
        run.kill()
        raise
    finally:
        run.wait()
    return cancelled


# --- the tests -----------------------------------------------------------------------------------


def test_profile_is_accepted_without_a_cluster(tmp_path):
    """The profile parses and plans the workflow (dry run): needs the plugin, not Slurm or root."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    run = Snakemake(make_workdir(tmp_path, "dry"), "--profile", "profiles/slurm", "--dry-run").wait()
    assert run.returncode == 0, run
    assert "Using profiles profiles/slurm" in run.output, run
    # the Slurm profile's default resources survive the workflow profile (profiles/default)
    assert "slurm_partition=" in run.output, run


@pytest.fixture(scope="module")
def slurm_and_local_runs(slurm_cluster, tmp_path_factory):
    """The test study up to its trainings, once through profiles/slurm and once locally; several
    tests read the two runs, as each takes a minute or two."""
    parent = tmp_path_factory.mktemp("runs")
    # both at once: the Slurm run mostly waits for status polls, the local run uses the CPUs
    cluster = Snakemake(
        make_workdir(parent, "slurm"), "--profile", "profiles/slurm", *SLURM_TEST_FLAGS, *UNTIL
    )
    try:
        local = Snakemake(make_workdir(parent, "local"), "--cores", "2", *UNTIL).wait()
    except BaseException:
        cluster.kill()
        raise
    cluster.wait()
    print(f"\nlocal run {local.seconds:.0f} s, Slurm run {cluster.seconds:.0f} s (side by side)")
    return cluster, local


def test_slurm_run_matches_local_run(slurm_and_local_runs):
    cluster, local = slurm_and_local_runs
    assert local.returncode == 0, local
    assert cluster.returncode == 0, cluster

    # the jobs really went through Slurm (default partition), the training jobs as ONE group job
    submissions = submitted_logs(cluster.output)
    assert any("/rule_make_demo_data/" in log for log in submissions), cluster
    grouped = [log for log in submissions if "/group_training" in log]
    single = [log for log in submissions if "/rule_train/" in log]
    assert len(grouped) == 1 and not single, submissions
    jobs = [j for j in _queue() if j["workdir"] == str(cluster.workdir)]
    assert len(jobs) == len(submissions), (jobs, submissions)
    assert all(j["state"] == "COMPLETED" and j["partition"] == "debug" for j in jobs), jobs

    expected, produced = compared_files(local.workdir), compared_files(cluster.workdir)
    assert any(name.endswith("metrics.json") for name in expected), sorted(expected)
    assert sorted(produced) == sorted(expected)
    differing = [name for name in expected if produced[name] != expected[name]]
    assert not differing, f"differ between the local and the Slurm run: {differing}"


def training_windows(workdir: Path) -> list[tuple[float, float]]:
    """(start, end) in seconds of every training run, from the first and last line of its log."""
    windows = []
    for log in sorted((workdir / "results" / "runs").rglob("train.log")):
        stamps = [
            datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for line in log.read_text().splitlines()
            if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", line)
        ]
        windows.append((stamps[0], stamps[-1]))
    return windows


def test_training_group_runs_its_members_side_by_side(slurm_and_local_runs):
    """Issue #17: the group job asks for 2 CPUs (--cores 2), so two of its four trainings run at a
    time; one at a time (the plugin's own behaviour) makes the span about the sum."""
    cluster, _ = slurm_and_local_runs
    assert cluster.returncode == 0, cluster
    windows = training_windows(cluster.workdir)
    assert len(windows) == len(TEST_CONFIG["networks"]["tiny"]["sweep"]["lr"]) + 1 >= 4, windows
    span = max(end for _, end in windows) - min(start for start, _ in windows)
    total = sum(end - start for start, end in windows)
    print(f"\n{len(windows)} trainings: span {span:.1f} s, sum {total:.1f} s ({span / total:.2f}x)")
    assert span <= 0.7 * total, (span, total, windows)


def scontrol_job(job_id: str) -> dict[str, str]:
    out = _slurm("scontrol", "show", "job", "--oneliner", job_id).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def test_training_group_requests_fit_how_its_members_run(slurm_and_local_runs):
    """The group job's CPUs, memory and time limit, as Slurm holds them, are those of its members
    running --cores (2) at a time: CPUs and memory of two, time of the rounds."""
    cluster, _ = slurm_and_local_runs
    assert cluster.returncode == 0, cluster
    (job_id,) = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/group_training", cluster.output)
    job = scontrol_job(job_id)
    # each member's resources, as snakemake printed them in the group's job listing
    members = re.findall(r"rule train:\n((?:.*\n)*?)\s+resources: (.*)", cluster.output)
    threads = [int(re.search(r"threads: (\d+)", block).group(1)) if "threads:" in block else 1 for block, _ in members]  # fmt: skip
    mem_mb = [int(re.search(r"\bmem_mb=(\d+)", resources).group(1)) for _, resources in members]
    minutes = [int(re.search(r"\bruntime=(\d+)", resources).group(1)) for _, resources in members]
    assert len(members) == 4 and set(threads) == {1}, members
    cores = int(SLURM_TEST_FLAGS[SLURM_TEST_FLAGS.index("--cores") + 1])
    side_by_side = min(cores, len(members))
    rounds = -(-len(members) // side_by_side)
    print(f"\ngroup job {job_id}: NumCPUs={job['NumCPUs']} MinMemoryNode={job['MinMemoryNode']} "
          f"TimeLimit={job['TimeLimit']}; members: mem_mb {mem_mb}, runtime {minutes} min")  # fmt: skip
    assert int(job["NumCPUs"]) == side_by_side
    assert job["MinMemoryNode"] == f"{side_by_side * max(mem_mb)}M"
    time_limit = parse_slurm_minutes(job["TimeLimit"])
    assert time_limit >= batch_minutes_needed(minutes, side_by_side)
    assert time_limit == rounds * max(minutes)  # Snakemake's estimate: the rounds, one after another


def training_only_workdir(local: Snakemake, parent: Path, name: str) -> Path:
    """A copy of the workflow with only the trainings left to run: the local run's results
    without its runs, copied with their times, so that Snakemake sees them up to date."""
    assert local.returncode == 0, local
    workdir = make_workdir(parent, name)
    shutil.copytree(local.workdir / "results", workdir / "results", ignore=shutil.ignore_patterns("runs"))
    return workdir


@pytest.fixture(scope="module")
def training_only_runs(slurm_and_local_runs, tmp_path_factory):
    """Two runs of only the trainings (training_only_workdir), side by side, as each mostly waits
    for Slurm's status polls: ``(plugin, cancel, cancelled job)``.

    ``plugin``: without pcann's group workaround (PCANN_SLURM_PLUGIN_GROUPS=1). ``cancel``: with
    it, its group job scancelled a few seconds after it starts RUNNING (so that the cancel ends
    running trainings); ``cancelled job`` as _queue() listed it, or None."""
    _, local = slurm_and_local_runs
    parent = tmp_path_factory.mktemp("training-only")
    cancel = Snakemake(
        training_only_workdir(local, parent, "cancel-group"),
        "--profile", "profiles/slurm", *SLURM_TEST_FLAGS, *UNTIL, timeout=240,
    )  # fmt: skip
    try:
        plugin = Snakemake(
            training_only_workdir(local, parent, "plugin-groups"),
            "--profile", "profiles/slurm", *SLURM_TEST_FLAGS, *UNTIL, timeout=240,
            env={"PCANN_SLURM_PLUGIN_GROUPS": "1"},
        )  # fmt: skip
    except BaseException:
        cancel.kill()
        cancel.wait()
        raise
    try:
        job = cancel_first_running_job(cancel, within=180, settle=3)
    finally:
        plugin.wait()
    return plugin, cancel, job


def test_plugin_alone_still_runs_group_members_one_at_a_time(training_only_runs):
    """The upstream defect that pcann.workflow.cluster works around (snakemake-executor-plugin-slurm#469):
    without the workaround, the same group job runs its trainings one after another. When this
    fails, a plugin version runs them side by side itself: check whether the workaround can go
    (docs/slurm.md)."""
    run, _, _ = training_only_runs
    assert run.returncode == 0, run
    windows = training_windows(run.workdir)
    span = max(end for _, end in windows) - min(start for start, _ in windows)
    total = sum(end - start for start, end in windows)
    print(f"\nwithout the workaround, {len(windows)} trainings: span {span:.1f} s, sum {total:.1f} s ({span / total:.2f}x)")
    overlaps = [a for a, b in zip(sorted(windows), sorted(windows)[1:]) if b[0] < a[1]]
    assert not overlaps, f"members overlap without pcann's workaround: upstream fixed? {windows}"


def test_cancelled_training_group_is_retried(slurm_and_local_runs, training_only_runs):
    """scancel the RUNNING group job: with the profile's retries it is resubmitted, and the runs
    it then trains are still those of the local run, byte for byte. Only the training is left
    to do (training_only_workdir)."""
    _, local = slurm_and_local_runs
    _, run, job = training_only_runs
    workdir = run.workdir
    assert job, f"never saw the group job RUNNING to cancel it\n{run}"
    assert job["comment"] == "rule_training1_train", job  # the one packed training job
    cancelled = job["id"]
    print(f"\ncancelled group job {cancelled}; snakemake exit {run.returncode} after {run.seconds:.0f} s")
    assert run.returncode == 0, run
    # for a group, snakemake prints its own line, not the plugin's "SLURM status is" message
    assert "Error in group training" in run.output and "Trying to restart job" in run.output, run
    assert {j["id"]: j["state"] for j in _queue()}[cancelled] == "CANCELLED"
    submissions = submitted_logs(run.output)
    assert len(submissions) == 2 and all("/group_training" in log for log in submissions), run
    expected, produced = compared_files(local.workdir), compared_files(workdir)
    runs = [name for name in expected if name.startswith("runs/")]
    assert runs and all(produced.get(name) == expected[name] for name in runs), run


# --- errors at submission (issue #28): the run stops with the reason, never hangs ---------------

#: How long a job that is not submitted may keep snakemake running: a retry (the profile's
#: `retries: 1`) and the shutdown take seconds; a hang is SIGKILLed at the test's timeout.
STOP_SECONDS = 60

#: A job of its own beside the workflow's, RUNNING while the trainings' group job is submitted:
#: it ends when the test creates NEIGHBOUR_RELEASE (once the run printed what it waits for), or
#: after NEIGHBOUR_SECONDS at the latest.
NEIGHBOUR_SECONDS = 60
NEIGHBOUR_RELEASE = "neighbour.release"
NEIGHBOUR_SNAKEFILE = f"""include: "Snakefile"


rule neighbour:
    output:
        "neighbour.txt",
    resources:
        runtime=5,
        mem_mb=100,
    shell:
        "for i in $(seq {NEIGHBOUR_SECONDS * 10}); do [ -e {NEIGHBOUR_RELEASE} ] && break; sleep 0.1; done; "
        "touch {{output}}"
"""


def release_neighbour_once_printed(run: Snakemake, line: str):
    """Create NEIGHBOUR_RELEASE in ``run``'s folder once ``run`` has printed ``line`` (or ended,
    or NEIGHBOUR_SECONDS after its start): the neighbour job stops waiting, as if its sleep
    ended there. Until then it runs, as a fixed sleep of NEIGHBOUR_SECONDS would."""
    try:
        while run.process.poll() is None and time.monotonic() - run.started < NEIGHBOUR_SECONDS:
            if line in run.logfile.read_text(errors="replace"):
                break
            time.sleep(0.2)
    finally:
        (run.workdir / NEIGHBOUR_RELEASE).touch()


def preprocessed_workdir(parent: Path, name: str, until: str, config: dict | None = None) -> Path:
    """A copy of the workflow (with ``config``, else TEST_CONFIG) with its preprocessing run
    locally up to rule ``until``."""
    workdir = make_workdir(parent, name)
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    local = Snakemake(workdir, "--cores", "2", "--until", until, timeout=180).wait()
    assert local.returncode == 0, local
    return workdir


#: TEST_CONFIG with trainings of a tenth of the epochs (well under a second each): for a test
#: whose point is which jobs go to Slurm and when, not how long the trainings take. Still four
#: runs, packed into one group job.
SHORT_TRAININGS_CONFIG = {
    **TEST_CONFIG,
    "networks": {
        "tiny": {
            **TEST_CONFIG["networks"]["tiny"],
            "baseline": {**TEST_CONFIG["networks"]["tiny"]["baseline"], "epochs": TRAINING_EPOCHS // 10},
        }
    },
}


def jobs_of(run: Snakemake) -> list[dict]:
    return [j for j in _queue() if j["workdir"] == str(run.workdir)]


def assert_stopped_naming(run: Snakemake, reason: str):
    """The run ended on its own (no SIGKILL), non-zero, with ``reason`` on one line of its own."""
    assert run.returncode not in (-9, 137), run
    assert run.returncode != 0, run
    lines = [line.strip() for line in run.output.splitlines()]
    assert any(line.startswith(reason) for line in lines), f"no line starting {reason!r}\n{run}"


def test_group_job_over_max_time_stops_the_run_while_another_job_runs(slurm_cluster, tmp_path):
    """Issue #28, as the shipped profile runs it (retries: 1, no override): the trainings' group
    job asks for more time than its partition allows, and is ready while another Slurm job runs.
    Snakemake stops with one line naming the group, lets the running job finish, submits nothing
    of the group; re-run without the cause, it continues with the group only. Hung for ever
    (SIGKILLed at the timeout here) when the check raised inside the plugin's submission thread."""
    workdir = preprocessed_workdir(tmp_path, "group-too-long", until="standardise", config=SHORT_TRAININGS_CONFIG)
    (workdir / "Snakefile.neighbour").write_text(NEIGHBOUR_SNAKEFILE)
    # fit_pca and the neighbour go out first; the group job is ready once fit_pca ends
    targets = ("-s", "Snakefile.neighbour", "neighbour.txt", "all", "--until", "train", "neighbour")
    slurm = ("--profile", "profiles/slurm", *SLURM_TEST_FLAGS)
    # 4 trainings, 2 side by side (--cores 2): 2 rounds of 40 min, over short's MaxTime of 60
    too_long = ("--set-resources", "train:slurm_partition=short", "train:runtime=40")
    reason = "group job training1: time limit 80 min exceeds the MaxTime of partition 'short' (60 min)"
    run = Snakemake(workdir, *targets, *slurm, *too_long, timeout=NEIGHBOUR_SECONDS + 180)
    try:
        release_neighbour_once_printed(run, reason)
    finally:
        run.wait()
    print(f"\ngroup job over MaxTime: snakemake exit {run.returncode} after {run.seconds:.0f} s")
    assert_stopped_naming(run, reason)
    assert "slurm_job_minutes" in run.output, run  # what to change
    # the group was refused while the neighbour ran; the neighbour then finished and was kept
    output = run.output
    assert output.index("rule_neighbour/") < output.index(reason) < output.index("(Rule: neighbour)"), run
    assert (workdir / "neighbour.txt").exists(), run
    assert run.seconds < NEIGHBOUR_SECONDS + STOP_SECONDS, run
    assert not [log for log in submitted_logs(output) if "/group_training" in log], run
    jobs = {j["comment"].split("_wildcards_")[0]: j["state"] for j in jobs_of(run)}
    assert jobs == {"rule_neighbour": "COMPLETED", "rule_fit_pca": "COMPLETED"}, jobs_of(run)

    rerun = Snakemake(workdir, *targets, *slurm, timeout=RUN_TIMEOUT).wait()
    assert rerun.returncode == 0, rerun
    submissions = submitted_logs(rerun.output)
    assert len(submissions) == 1 and "/group_training" in submissions[0], rerun
    assert len(list((workdir / "results" / "runs").rglob("metrics.json"))) == 4, rerun


@pytest.mark.parametrize(
    "resources, reason",
    [
        (
            ("make_demo_data:slurm_partition=short", "make_demo_data:runtime=90"),
            "job make_demo_data: time limit 90 min exceeds the MaxTime of partition 'short' (60 min)",
        ),
        (  # Slurm would leave it pending for ever (reason MaxMemPerLimit; start-slurm.sh)
            ("make_demo_data:slurm_partition=short", "make_demo_data:mem_mb=5000"),
            "job make_demo_data: memory 5000 MB exceeds the MaxMemPerNode of partition 'short' (4000 MB)",
        ),
        (  # sbatch would refuse it ("Memory specification can not be satisfied")
            ("make_demo_data:mem_mb=100000000",),
            "job make_demo_data: memory 100000000 MB exceeds the largest node of partition 'debug'",
        ),
        (  # Slurm would leave it pending for ever (reason PartitionConfig)
            ("make_demo_data:cpus_per_task=1000",),
            "job make_demo_data: 1000 CPUs exceed the largest node of partition 'debug'",
        ),
    ],
    ids=["max-time", "max-mem-per-node", "node-memory", "node-cpus"],
)
def test_job_over_its_partitions_limits_stops_before_submission(slurm_cluster, tmp_path, resources, reason):
    """A single job whose limits its partition does not allow stops the run, with the shipped
    retries, in seconds, with one line naming it and what is over; nothing reaches sbatch."""
    run = Snakemake(
        make_workdir(tmp_path, "over-limit"),
        "make_demo_data", "--profile", "profiles/slurm", *SLURM_TEST_FLAGS,
        "--set-resources", *resources, timeout=STOP_SECONDS + 60,
    ).wait()  # fmt: skip
    print(f"\n{reason}: snakemake exit {run.returncode} after {run.seconds:.0f} s")
    assert_stopped_naming(run, reason)
    assert run.seconds < STOP_SECONDS, run
    assert not submitted_logs(run.output), run
    assert not jobs_of(run), run


def test_group_job_that_sbatch_refuses_stops_the_run(slurm_cluster, tmp_path):
    """A group job that sbatch refuses for a reason pcann does not check (here: a node feature no
    node has) stops the run, with the shipped retries, in seconds, with Slurm's reason on one line
    naming the group (Snakemake prints no message for a failed group job)."""
    workdir = preprocessed_workdir(tmp_path, "group-refused", until="fit_pca")
    run = Snakemake(
        workdir, "--profile", "profiles/slurm", *SLURM_TEST_FLAGS, *UNTIL,
        "--set-resources", "train:constraint=nosuchfeature", timeout=STOP_SECONDS + 60,
    ).wait()  # fmt: skip
    print(f"\nsbatch refused the group job: snakemake exit {run.returncode} after {run.seconds:.0f} s")
    refused = "sbatch: error: Batch job submission failed: Invalid feature specification"
    assert_stopped_naming(run, f"group job training1: sbatch refused it: {refused}")
    assert run.seconds < STOP_SECONDS, run
    assert not jobs_of(run), run


#: The retry settings of test_cancelled_job_is_retried_or_reported: the profile's, and none.
CANCEL_RETRIES = ("profile", "0")


@pytest.fixture(scope="module")
def cancelled_jobs(slurm_cluster, tmp_path_factory):
    """One run per CANCEL_RETRIES value, side by side (each mostly waits for Slurm's status
    polls, and its make_demo_data job needs one of the node's CPUs): the first of its Slurm jobs
    seen RUNNING scancelled. ``{retries: (run, cancelled job as _queue() listed it, or None)}``."""
    parent = tmp_path_factory.mktemp("cancel")
    runs = {}
    try:
        for retries in CANCEL_RETRIES:
            extra = [] if retries == "profile" else ["--retries", retries]
            extra += ["--default-resources", "slurm_partition=short", "mem_mb=1000", "runtime=30"]
            runs[retries] = Snakemake(
                make_workdir(parent, f"cancel-{retries}"),
                "make_demo_data", "--profile", "profiles/slurm", *SLURM_TEST_FLAGS, *extra,
                timeout=180,
            )  # fmt: skip
    except BaseException:
        for run in runs.values():
            run.kill()
            run.wait()
        raise
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {retries: pool.submit(cancel_first_running_job, run, within=120) for retries, run in runs.items()}
        return {retries: (runs[retries], future.result()) for retries, future in futures.items()}


@pytest.mark.parametrize("retries", CANCEL_RETRIES)
def test_cancelled_job_is_retried_or_reported(cancelled_jobs, retries):
    """scancel a RUNNING job: with the profile's retries it is resubmitted and the run completes;
    with --retries 0 snakemake exits non-zero naming the rule and the Slurm job. Never hangs.
    Also checks the documented per-run partition override (start-slurm.sh defines "short")."""
    run, job = cancelled_jobs[retries]
    assert job, f"never saw the job RUNNING to cancel it\n{run}"
    assert (job["comment"], job["partition"]) == ("rule_make_demo_data", "short"), job
    cancelled = job["id"]
    assert run.returncode not in (-9, 137), run
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in run.output, run
    print(f"\ncancelled Slurm job {cancelled}; snakemake exit {run.returncode} after {run.seconds:.0f} s")
    if retries == "profile":
        assert run.returncode == 0, run
        assert len(submitted_logs(run.output)) == 2, run  # the first attempt and the retry
        assert any((run.workdir / "results/demo_data").rglob("*.png")), run
    else:
        assert run.returncode != 0, run
        assert "Error in rule make_demo_data" in run.output, run
        assert len(submitted_logs(run.output)) == 1, run


# --- training runs packed by their estimated time, a run over MaxTime as a chain (issue #23) ----

#: Short runs and one long one. PCANN_ESTIMATE_SCALE (rules/common.smk) gives these runs of
#: seconds the time limits of runs of minutes: 200x makes a 4000-epoch run's limit 15 min and
#: the 80000-epoch run's 106 min, over the MaxTime of the partition "short" (60 min).
PACKING_CONFIG = {
    **TEST_CONFIG,
    "networks": {
        "tiny": {
            "baseline": {"hidden": [4], "epochs": 4000, "lr": 0.05, "batch_size": 8},
            "sweep": {"lr": [0.5, 0.1, 0.2], "epochs": [80000]},
        }
    },
    "slurm_job_minutes": 30,
}
PACKING_SCALE = "200"
#: The whole run on the partition "short" (start-slurm.sh: MaxTime=60), as docs/slurm.md shows.
SHORT_PARTITION = ("--default-resources", "slurm_partition=short", "mem_mb=1000", "runtime=30")


def test_trainings_are_packed_by_estimated_time_and_a_long_run_is_a_chain_of_jobs(
    slurm_cluster, tmp_path, monkeypatch
):
    """On a partition of 60 min with jobs of about 30: the four short runs (15 min limits) go as
    one job, two side by side (2 CPUs, 30 min), and the 80000-epoch run (106 min) as a chain of
    two jobs of 58 min, the second continuing the first's weights. Slurm holds every job as the
    dry run printed it; no job is over MaxTime; the runs are byte for byte those of a local run
    (where the long run is trained in one go)."""
    from pcann.workflow.packing import MAX_MINUTES_VARIABLE

    monkeypatch.setenv("PCANN_ESTIMATE_SCALE", PACKING_SCALE)
    monkeypatch.delenv(MAX_MINUTES_VARIABLE, raising=False)
    workdir = make_workdir(tmp_path, "packing")
    (workdir / "config.yaml").write_text(yaml.safe_dump(PACKING_CONFIG, sort_keys=False))
    local = Snakemake(workdir, "--cores", "2", "--until", "fit_pca", timeout=180).wait()
    assert local.returncode == 0, local
    reference = make_workdir(tmp_path, "packing-local")
    (reference / "config.yaml").write_text(yaml.safe_dump(PACKING_CONFIG, sort_keys=False))
    # the runs as targets: --until train would stop before the runs that continue another run
    runs = [f"results/runs/study/pca2/hidden=4_epochs={e}_lr={lr}_batch=8_seed=1/metrics.json"
            for e, lr in ((4000, 0.05), (4000, 0.5), (4000, 0.1), (4000, 0.2), (80000, 0.05))]  # fmt: skip
    slurm = (*runs, "--profile", "profiles/slurm", *SLURM_TEST_FLAGS, *SHORT_PARTITION)

    dry = Snakemake(workdir, *slurm, "--dry-run", timeout=120).wait()
    assert dry.returncode == 0, dry
    printed = dict(re.findall(r"^  (training\d+): (.*)$", dry.output, re.M))
    assert "Slurm submissions (partition short, jobs of up to 30 min): 6 training runs in 3 jobs" in dry.output, dry
    sizes = {name: re.match(r"(\d+) runs?, (\d+) CPUs?, (\d+) MB, limit (\d+) min: (.*)", line).groups() for name, line in printed.items()}  # fmt: skip
    assert sorted(size[:4] for size in sizes.values()) == [
        ("1", "1", "500", "58"), ("1", "1", "500", "58"), ("4", "2", "1000", "30")
    ], dry.output  # fmt: skip
    alone = sorted(size[4] for size in sizes.values() if size[0] == "1")
    assert alone == [f"study/pca2/hidden=4_epochs={e}_lr=0.05_batch=8_seed=1" for e in (40000, 80000)]

    cluster = Snakemake(workdir, *slurm, timeout=RUN_TIMEOUT)
    try:
        plain = Snakemake(reference, "--cores", "2", *runs).wait()
    finally:
        cluster.wait()
    assert plain.returncode == 0, plain
    assert cluster.returncode == 0, cluster
    print(f"\npacked Slurm run {cluster.seconds:.0f} s")
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/group_(training\d+)_train/", cluster.output)
    assert sorted(name for _, name in submitted) == sorted(printed), cluster
    for job_id, name in submitted:
        job = scontrol_job(job_id)
        held = f"{job['NumCPUs']} CPUs, {job['MinMemoryNode']}, {parse_slurm_minutes(job['TimeLimit'])} min"
        print(f"  {name} (Slurm job {job_id}): {held}; printed: {printed[name]}")
        _, cpus, mem, minutes, _ = sizes[name]
        assert (job["NumCPUs"], job["MinMemoryNode"], parse_slurm_minutes(job["TimeLimit"])) == (
            cpus, f"{mem}M", int(minutes)
        ), (name, job)
        assert parse_slurm_minutes(job["TimeLimit"]) <= 60 and job["Partition"] == "short", job
        assert job["JobState"] == "COMPLETED", job
    # the long run continued its segment's weights, and equals the run trained in one go
    long_run = "runs/study/pca2/hidden=4_epochs=80000_lr=0.05_batch=8_seed=1"
    log = (workdir / "results" / long_run / "train.log").read_text()
    assert "continuing results/runs/study/pca2/hidden=4_epochs=40000" in log and "after its epoch 40000" in log, log
    expected, produced = compared_files(reference), compared_files(workdir)
    assert any(long_run in name for name in expected), sorted(expected)
    segment = "runs/study/pca2/hidden=4_epochs=40000_lr=0.05_batch=8_seed=1/"
    assert sorted(n for n in produced if not n.startswith(segment)) == sorted(expected)
    differing = [name for name in expected if produced[name] != expected[name]]
    assert not differing, f"differ between the local and the packed Slurm run: {differing}"
    # the chain stays the run's inputs: nothing to redo, on Slurm or locally (no MaxTime there)
    for again in (slurm, (*runs, "--cores", "2")):
        check = Snakemake(workdir, *again, "--dry-run", timeout=120).wait()
        assert check.returncode == 0 and "Nothing to be done" in check.output, check


def test_the_fruits_360_sized_study_plans_for_a_four_hour_partition(slurm_cluster, tmp_path):
    """Issue #23: the shipped study on a Fruits-360-sized demo folder (131 classes, 100 x 100,
    517 training images a class), through profiles/slurm on a partition of 4 hours and nothing
    else: it plans (dry run), every job within MaxTime, its 5.8-hour run as a chain of jobs."""
    workdir = copy_workflow(tmp_path / "fruits")  # the shipped config.yaml
    fruits = {"demo": {"n_classes": 131, "n_train_per_class": 517, "n_test_per_class": 173, "image_size": 100}}
    (workdir / "fruits.yaml").write_text(yaml.safe_dump(fruits))
    run = Snakemake(
        workdir, "--profile", "profiles/slurm", "--configfile", "fruits.yaml",
        "--default-resources", "slurm_partition=long", "mem_mb=1000", "runtime=30", "--dry-run",
        timeout=180,
    ).wait()  # fmt: skip
    assert run.returncode == 0, run
    jobs = re.findall(r"^  (training\d+): (\d+) runs?, \d+ CPUs?, \d+ MB, limit ([\d.]+) (min|h): (.*)$", run.output, re.M)
    assert re.search(rf"^Slurm submissions \(partition long, jobs of up to 60 min\): \d+ training runs in {len(jobs)} jobs", run.output, re.M), run  # fmt: skip
    minutes = [float(value) * (60 if unit == "h" else 1) for _, _, value, unit, _ in jobs]
    print(f"\n{len(jobs)} training jobs, limits {min(minutes):.0f}-{max(minutes):.0f} min")
    assert max(minutes) <= 240, jobs
    # the longest run ([512, 1024], 1000 epochs, batch 16: 346 min) is two jobs of 500 epochs
    long_run = "study/pca2/hidden=512-1024_epochs={}_lr=0.005_batch=16_seed=1"
    assert {long_run.format(500), long_run.format(1000)} <= {members for *_, members in jobs}, jobs


# --- the adaptive search on Slurm (issue #24) ----------------------------------------------------

#: A search of the test network: 3 candidates, rungs at 2 and 6 epochs keeping 3 and 1 (one
#: round of two Slurm jobs at a time, then one); its reference is the headline run the module's
#: runs already trained.
SEARCH = {
    "name": "slurm",
    "network": "tiny",
    "candidates": {"grid": {"lr": [0.3, 1.0, 2.0]}},
    "min_epochs": 2,
    "max_epochs": 6,
    "seeds": [1],
}


def search_workdir(source: Path, parent: Path, name: str) -> Path:
    """A copy of a finished run's folder (its preprocessing and reference run done) with the
    search added to its configuration."""
    workdir = parent / name
    shutil.copytree(source, workdir, symlinks=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump({**TEST_CONFIG, "search": SEARCH}, sort_keys=False))
    return workdir


def search_files(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    patterns = ("search/slurm/rung_*.csv", "search/slurm/result.json", "runs/**/metrics.json", "runs/**/history.csv")
    return {str(p.relative_to(results)): p.read_bytes() for pattern in patterns for p in sorted(results.glob(pattern))}


def test_a_search_on_slurm_with_a_job_cancelled_midway_decides_as_a_local_search(slurm_and_local_runs, tmp_path):
    """The search's trainings go through Slurm, one of them is cancelled while it runs (the
    profile's retry resubmits it), and the decisions and every run file equal a local search's."""
    cluster, local = slurm_and_local_runs
    assert cluster.returncode == 0 and local.returncode == 0
    run = Snakemake(
        search_workdir(cluster.workdir, tmp_path, "slurm-search"), "--profile", "profiles/slurm", *SLURM_TEST_FLAGS,
        "search", timeout=300,
    )
    # side by side: the Slurm run mostly waits for status polls
    local_search = Snakemake(search_workdir(local.workdir, tmp_path, "local-search"), "--cores", "2", "search")
    try:
        job = cancel_first_running_job(run, within=200, settle=0.5)
    finally:
        local_search.wait()
    assert local_search.returncode == 0, local_search
    assert job, f"never saw a search training RUNNING to cancel it\n{run}"
    assert run.returncode == 0, run
    assert "Trying to restart job" in run.output, run
    submissions = submitted_logs(run.output)
    # 3 candidates at 2 epochs, 1 at 6, and the cancelled one again: each its own Slurm job
    assert len([log for log in submissions if "/rule_train/" in log]) == 5, submissions
    expected, produced = search_files(local_search.workdir), search_files(run.workdir)
    assert any(name.startswith("search/") for name in expected)
    assert sorted(produced) == sorted(expected)
    assert [name for name in expected if produced[name] != expected[name]] == []
