"""Cluster execution: the workflow through profiles/slurm on a REAL single-node Slurm on localhost.

The session fixture starts slurmctld + slurmd + munged with tests/slurm/start-slurm.sh (root;
installs the Debian packages if missing) and stops exactly those daemons, by recorded PID, at the
end. It skips only when that is impossible here (not root, not Linux, no apt-get, packages cannot
be installed, daemons do not come up), with the reason; set PCANN_REQUIRE_SLURM=1 to turn such a
skip into a failure (CI does, so a broken setup cannot pass silently).

Job status is polled with `squeue` (the test cluster has no accounting database): see
docs/cluster.md. Every snakemake call is wrapped in `timeout -s KILL`, so a hang fails, never
blocks the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

#: The configuration every run here uses. It REPLACES config.yaml in the temporary copy (rather
#: than extending it with --configfile, which would deep-merge and keep the shipped networks and
#: sweeps); the schema fills in every key not given. Small on purpose: a few seconds of work.
TEST_CONFIG = {
    "demo": {"n_train_per_class": 20, "n_test_per_class": 8, "image_size": 16, "seed": 0},
    "networks": {
        "tiny": {
            "baseline": {"hidden": [4], "epochs": 5, "lr": 0.05, "batch_size": 8},
            "sweep": {"lr": [0.5]},  # a second training job, so the group has two members
        }
    },
    "headline": [{"network": "tiny"}],
    "seeds": [1],
    "compare_protocols": ["study"],
    "components_sweep": [],
    "plot_runs": "headline",
}

#: What the two runs must produce byte for byte (relative to results/).
COMPARED = ("**/metrics.json", "**/history.csv", "features/**/*.npz", "features/**/*.csv")

SLURM_DIR = REPO / "tests" / "slurm"
#: Fixed, so that a later session's start-slurm.sh stops daemons a killed session left behind.
STATE_DIR = Path(os.environ.get("PCANN_SLURM_STATE_DIR", "/tmp/pcann-slurm"))

#: Flags added to `--workflow-profile profiles/slurm` for this test cluster, and why:
SLURM_TEST_FLAGS = [
    # no accounting database here: poll squeue (the plugin's sacct default would wait forever)
    "--slurm-status-command", "squeue",
    # first status poll after 2 s instead of 40 s: keeps each job at ~14 s instead of ~50 s
    "--slurm-init-seconds-before-status-checks", "2",
    # the test node has 2 CPUs: a group job may use at most 2 (the profile assumes bigger nodes)
    "--cores", "2",
    # local disk, nothing to wait for
    "--latency-wait", "5",
]  # fmt: skip

START_TIMEOUT = 900  # seconds; includes apt-get install on a fresh CI machine
RUN_TIMEOUT = 300  # seconds for one whole snakemake run (the Slurm run takes ~1.5 min)


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
    env = {**os.environ, "SLURM_STATE_DIR": str(STATE_DIR)}
    stop = [str(SLURM_DIR / "stop-slurm.sh")]
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["timeout", "-s", "KILL", str(START_TIMEOUT), str(SLURM_DIR / "start-slurm.sh")],
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


def run(workdir: Path, *args: str, timeout: int = RUN_TIMEOUT) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        snakemake_argv(*args, timeout=timeout), cwd=workdir, capture_output=True, text=True, timeout=timeout + 30
    )
    return result, time.monotonic() - started


def describe(result: subprocess.CompletedProcess, seconds: float) -> str:
    killed = " (SIGKILLed by timeout: it hung)" if result.returncode in (-9, 137) else ""
    return (
        f"snakemake exited {result.returncode}{killed} after {seconds:.0f} s\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-12000:]}"
    )


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


def has_rule(name: str) -> bool:
    return any(f"rule {name}:" in p.read_text() for p in (REPO / "rules").glob("*.smk"))


# --- the tests -----------------------------------------------------------------------------------


def test_profile_is_accepted_without_a_cluster(tmp_path):
    """The profile parses and plans the workflow (dry run): needs the plugin, not Slurm or root."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    workdir = make_workdir(tmp_path, "dry")
    result, seconds = run(workdir, "--workflow-profile", "profiles/slurm", "--dry-run", timeout=120)
    assert result.returncode == 0, describe(result, seconds)
    assert "Using workflow specific profile profiles/slurm" in result.stderr, result.stderr[-3000:]


def test_slurm_run_matches_local_run(slurm_cluster, tmp_path):
    local = make_workdir(tmp_path, "local")
    result, local_seconds = run(local, "--cores", "2")
    assert result.returncode == 0, describe(result, local_seconds)

    cluster = make_workdir(tmp_path, "slurm")
    result, slurm_seconds = run(cluster, "--workflow-profile", "profiles/slurm", *SLURM_TEST_FLAGS)
    assert result.returncode == 0, describe(result, slurm_seconds)
    print(f"\nlocal run {local_seconds:.0f} s, Slurm run {slurm_seconds:.0f} s")

    # the jobs really went through Slurm, and the training jobs as ONE group job
    submissions = submitted_logs(result.stderr)
    assert any("/rule_make_demo_data/" in log for log in submissions), result.stderr[-3000:]
    if has_rule("train"):
        grouped = [log for log in submissions if "/group_training" in log]
        single = [log for log in submissions if "/rule_train/" in log]
        assert len(grouped) == 1 and not single, submissions
    jobs = [j for j in _queue() if j["workdir"] == str(cluster)]
    assert jobs and all(j["state"] == "COMPLETED" and j["partition"] == "debug" for j in jobs), jobs

    expected, produced = compared_files(local), compared_files(cluster)
    assert expected, "the local run produced none of the compared files"
    assert sorted(produced) == sorted(expected)
    differing = [name for name in expected if produced[name] != expected[name]]
    assert not differing, f"differ between the local and the Slurm run: {differing}"


@pytest.mark.parametrize("retries", ["profile", "0"])
def test_cancelled_job_is_retried_or_reported(slurm_cluster, tmp_path, retries):
    """scancel a RUNNING job: with the profile's retries it is resubmitted and the run completes;
    with --retries 0 snakemake exits non-zero naming the rule and the Slurm job. Never hangs.
    Also checks the documented per-run partition override (start-slurm.sh defines "short")."""
    workdir = make_workdir(tmp_path, f"cancel-{retries}")
    extra = [] if retries == "profile" else ["--retries", retries]
    extra += ["--default-resources", "slurm_partition=short", "mem_mb=1000", "runtime=30"]
    argv = snakemake_argv(
        "make_demo_data", "--workflow-profile", "profiles/slurm", *SLURM_TEST_FLAGS, *extra, timeout=180
    )
    output = tmp_path / "snakemake.log"
    started = time.monotonic()
    with open(output, "w") as sink:
        process = subprocess.Popen(argv, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT, text=True)
        cancelled = None
        try:
            while cancelled is None and process.poll() is None and time.monotonic() - started < 120:
                for job in _queue():
                    if job["workdir"] == str(workdir) and job["state"] == "RUNNING":
                        assert job["comment"] == "rule_make_demo_data", job
                        assert job["partition"] == "short", job
                        _slurm("scancel", job["id"])
                        cancelled = job["id"]
                        break
                time.sleep(0.2)
            returncode = process.wait(timeout=200)
        finally:
            if process.poll() is None:
                process.kill()
    seconds = time.monotonic() - started
    log = output.read_text()
    report = f"exit {returncode} after {seconds:.0f} s\n{log[-10000:]}"
    assert cancelled, f"never saw the job RUNNING to cancel it\n{report}"
    assert returncode not in (-9, 137), f"hung: killed by timeout\n{report}"
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in log, report
    print(f"\ncancelled Slurm job {cancelled}; snakemake exit {returncode} after {seconds:.0f} s")
    if retries == "profile":
        assert returncode == 0, report
        assert len(submitted_logs(log)) == 2, report  # the first attempt and the retry
        assert any((workdir / "results/demo_data").rglob("*.png")), report
    else:
        assert returncode != 0, report
        assert "Error in rule make_demo_data" in log, report
        assert len(submitted_logs(log)) == 1, report
