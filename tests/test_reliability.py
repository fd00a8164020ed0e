"""Reliability: bad input fails early and clearly, faults lose nothing, results repeat exactly.

Workflow tests run Snakemake in temporary copies of the workflow (tests/conftest.py) on small
image folders made by make_dataset(): 3 classes x 10 training images (24 training, 6 validation
rows), so the tiny study's batch sizes (8, 16) fit.
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import (
    REPO,
    copy_workflow,
    make_dataset,
    run_snakemake,
    snakemake_command,
    tiny_study_config,
    write_image,
)

from pcann import PcannError
from pcann.io import OutputError, atomic_path, load_npz, save_csv, save_json, save_npz, save_text

TRACEBACK = "Traceback (most recent call last)"
#: The header Snakemake prints when it starts a job of rule train (with PCANN_VERBOSE=1 only).
TRAIN_JOB_STARTED = re.compile(r"^\s*(?:local)?rule train:", re.M)
#: Temporary files of pcann.io.atomic_path: hidden, with ".tmp" before the suffix.
TEMP_FILE = re.compile(r"^\..+\.tmp(\.[^.]+)?$")


# --- helpers ---------------------------------------------------------------------------------


def output_of(result) -> str:
    return result.stdout + result.stderr


def metrics_files(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "runs").glob("**/metrics.json"))


def planned_jobs(workdir: Path) -> Counter:
    """Jobs a dry-run would execute now, by rule (empty when there is nothing to do)."""
    output = output_of(run_snakemake(workdir, "--dry-run", "--quiet", "rules", "--cores", "1", verbose=True))
    if "Nothing to be done" in output:
        return Counter()
    table = output.split("Job stats:", 1)[1]
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"})


def incomplete_files(results: Path) -> list[str]:
    """Files under ``results`` that look complete by name but are not (truncated, unparsable).

    Logs and benchmarks are Snakemake's and pcann's diaries, not results; atomic_path's hidden
    temporary files do not look complete and are skipped.
    """
    problems = []
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        if TEMP_FILE.match(path.name) or path.suffix in (".log", ".tsv"):
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".csv":
                assert len(pd.read_csv(path).columns) > 0
            elif path.suffix == ".npz":
                load_npz(path)
            elif path.suffix == ".png":
                assert path.read_bytes().endswith(b"IEND\xaeB`\x82")
            elif path.suffix == ".svg":
                assert path.read_text().rstrip().endswith("</svg>")
            elif path.suffix in (".md", ".html"):
                assert path.read_text().strip()
        except Exception as exc:  # noqa: BLE001 - any failure means the file is not complete
            problems.append(f"{path.relative_to(results)}: {type(exc).__name__} {exc}")
    return problems


def file_state(root: Path, skip=("results", ".snakemake")) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``root`` outside ``skip``.

    ``__pycache__`` folders are skipped: Python's bytecode cache, written by the interpreter when
    a rule script imports the library, is not a file any rule writes.
    """
    state = {}
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if parts[0] in skip or "__pycache__" in parts or not path.is_file():
            continue
        info = path.stat()
        state[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return state


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def deep_update(config: dict, edits: dict) -> dict:
    """A copy of ``config`` with nested ``edits`` applied (dicts merge, other values replace)."""
    config = copy.deepcopy(config)
    for key, value in edits.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = deep_update(config[key], value)
        else:
            config[key] = value
    return config


# --- bad input: each stops before any training job with a message naming what is wrong ---------

#: ``name -> prepare(data, config, tmp_path) -> (config, extra snakemake args, expected fragments)``
BAD_INPUT = {}


def bad_input(name, **dataset):
    def register(prepare):
        BAD_INPUT[name] = (prepare, dataset)
        return prepare

    return register


def _replace_image(path: Path, shape) -> Path:
    return write_image(path, np.full(shape, 127, dtype=np.uint8))


@bad_input("corrupt-png")
def _corrupt_png(data, config, tmp):
    path = data / "Data_train/banana/banana_003.png"
    raw = bytearray(path.read_bytes())
    raw[40:60] = bytes(20)  # signature and header intact, image data destroyed
    path.write_bytes(bytes(raw))
    return config, [], [f"{path} is not a readable image (corrupt, truncated or not an image file)"]


@bad_input("truncated-png")
def _truncated_png(data, config, tmp):
    path = data / "Data_train/cherry/cherry_004.png"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # an interrupted copy
    return config, [], [f"{path} is not a readable image (corrupt, truncated"]


@bad_input("image-of-another-size")
def _other_size(data, config, tmp):
    path = _replace_image(data / "Data_test/cherry/cherry_001.png", (9, 8, 4))
    return config, [], [
        f"{path} has shape 9x8 with 3 channels but the training images have 8x8 with 3 channels",
        "all images of a dataset must share size and channel count",
    ]


@bad_input("image-with-another-channel-count")
def _other_channels(data, config, tmp):
    path = _replace_image(data / "Data_train/banana/banana_005.png", (8, 8, 3))
    first = data / "Data_train/apple/apple_000.png"
    return {**config, "read_mode": "unchanged"}, [], [
        f"{path} has shape 8x8 with 3 channels but the first image {first} has 8x8 with 4 channels",
    ]


@bad_input("empty-class-folder")
def _empty_class(data, config, tmp):
    (data / "Data_train/durian").mkdir()
    return config, [], [f"class folder {data / 'Data_train/durian'} contains no images (looked for "]


@bad_input("missing-test-folder")
def _missing_test_folder(data, config, tmp):
    shutil.rmtree(data / "Data_test")
    return config, [], [
        f"config key test_folder: '{data / 'Data_test'}' does not exist or is not a folder; "
        "expected one sub-folder per class inside it"
    ]


@bad_input("test-class-absent-from-training")
def _unknown_test_class(data, config, tmp):
    _replace_image(data / "Data_test/durian/durian_000.png", (8, 8, 4))
    return config, [], [
        f"{data / 'Data_test'} has class folder(s) durian that the training folder does not have "
        "(training classes: apple, banana, cherry)"
    ]


# 25 images so that the batch sizes fit and the error can only be the class count
@bad_input("single-class", classes=("apple",), n_train=25)
def _single_class(data, config, tmp):
    return config, [], [f"{data / 'Data_train'} has 1 class folder (apple); a classifier needs at least 2 classes"]


@bad_input("data-dir-does-not-exist")
def _no_data_dir(data, config, tmp):
    missing = tmp / "no-such-folder"
    return {**config, "data_dir": str(missing)}, [], [
        f"config key data_dir: '{missing}' does not exist or is not a folder; expected a folder holding"
    ]


@bad_input("lr-zero")
def _lr_zero(data, config, tmp):
    return deep_update(config, {"networks": {"two_layer": {"baseline": {"lr": 0}}}}), [], [
        "config key networks.two_layer.baseline.lr: 0 is less than or equal to the minimum of 0; "
        "expected number, > 0"
    ]


@bad_input("lr-negative-in-a-sweep")
def _lr_negative(data, config, tmp):
    return deep_update(config, {"networks": {"three_layer": {"sweep": {"lr": [0.1, -0.01]}}}}), [], [
        "config key networks.three_layer.sweep.lr.1: -0.01 is less than or equal to the minimum of 0; "
        "expected number, > 0"
    ]


@bad_input("batch-size-zero")
def _batch_zero(data, config, tmp):
    return deep_update(config, {"networks": {"two_layer": {"baseline": {"batch_size": 0}}}}), [], [
        "config key networks.two_layer.baseline.batch_size: 0 is less than the minimum of 1; "
        "expected integer, >= 1"
    ]


@bad_input("batch-size-larger-than-training-split")
def _batch_too_large(data, config, tmp):
    return deep_update(config, {"networks": {"two_layer": {"sweep": {"batch_size": [16, 64]}}}}), [], [
        "config key networks.two_layer.sweep.batch_size: 64 is larger than the training split (24 of the 30 training-folder images); "
        "expected at most 24"
    ]


@bad_input("hidden-layer-of-size-zero")
def _hidden_zero(data, config, tmp):
    return deep_update(config, {"networks": {"two_layer": {"baseline": {"hidden": [0]}}}}), [], [
        "config key networks.two_layer.baseline.hidden.0: 0 is less than the minimum of 1; expected integer, >= 1"
    ]


@bad_input("empty-hidden-list")
def _hidden_empty(data, config, tmp):
    return deep_update(config, {"networks": {"three_layer": {"baseline": {"hidden": []}}}}), [], [
        "config key networks.three_layer.baseline.hidden: [] should be non-empty; expected array, at least 1 items"
    ]


@bad_input("unknown-config-key")
def _unknown_key(data, config, tmp):
    return deep_update(config, {"training": {"lr_shedule": "step"}}), [], [
        "config key training.lr_shedule: ",
        "unknown key; known keys here: continue_shorter_runs, dtype, eval_every, exp_backend,"
        " lr_decay_every, lr_decay_rate, lr_schedule, plot_training_points",
    ]


@bad_input("n-components-more-than-training-samples")
def _components_samples(data, config, tmp):
    return {**config, "n_components": 40}, [], [
        "config key n_components: 40 is more than PCA can keep under protocol study: "
        "at most min(samples=30, features=192) = 30"
    ]


@bad_input("n-components-more-than-features", shape=(4, 4))
def _components_features(data, config, tmp):
    return {**config, "read_mode": "grey", "n_components": 20, "components_sweep": []}, [], [
        "config key n_components: 20 is more than PCA can keep under protocol study: "
        "at most min(samples=30, features=16) = 16"
    ]


@bad_input("components-sweep-more-than-training-samples")
def _components_sweep(data, config, tmp):
    # the value comes from components_sweep, so that is the key the message must name
    return {**config, "components_sweep": [2, 3, 50]}, [], [
        "config key components_sweep: 50 is more than PCA can keep under protocol study: "
        "at most min(samples=30, features=192) = 30"
    ]


BROKEN_YAML = "networks:\n  two_layer: {baseline: {hidden: [8], epochs: 20\nseeds: [1]\n"  # unclosed {


@bad_input("yaml-syntax-error-in-configfile")
def _yaml_syntax(data, config, tmp):
    broken = tmp / "broken.yaml"
    broken.write_text(BROKEN_YAML)
    return config, ["--configfile", str(broken)], ["not valid JSON or YAML"]


@bad_input("non-numeric-string-for-a-number")
def _non_numeric(data, config, tmp):
    return deep_update(config, {"networks": {"two_layer": {"baseline": {"epochs": "twenty"}}}}), [], [
        "config key networks.two_layer.baseline.epochs: 'twenty' is not of type 'integer'; expected integer, >= 1"
    ]


def _run_bad_input(case: str, tmp: Path):
    """Prepare ``case`` in ``tmp`` and run the workflow on it: ``(workdir, expected, result)``."""
    prepare, dataset = BAD_INPUT[case]
    data = make_dataset(tmp / "data", **{"n_train": 10, "n_test": 4, **dataset})
    config, args, expected = prepare(data, tiny_study_config(data_dir=str(data)), tmp)
    workdir = copy_workflow(tmp / "wf", config)
    return workdir, expected, run_snakemake(workdir, "--cores", "2", *args, check=False, verbose=True)


@pytest.fixture(scope="module")
def bad_input_runs(request, tmp_path_factory):
    """The runs of the BAD_INPUT cases this session selected, two at a time (each snakemake
    stops within seconds, mostly on one core): ``{case: future of _run_bad_input's result}``;
    a case whose preparation or run raised raises again in its own test."""
    selected = sorted({
        item.callspec.params["case"] for item in request.session.items
        if getattr(item, "originalname", None) == "test_bad_input_stops_before_training_and_names_the_problem"
    })  # fmt: skip
    folders = {case: tmp_path_factory.mktemp(f"bad-input-{case}") for case in selected}
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {case: pool.submit(_run_bad_input, case, folders[case]) for case in selected}


@pytest.mark.workflow
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_stops_before_training_and_names_the_problem(bad_input_runs, case):
    workdir, expected, result = bad_input_runs[case].result()

    output = output_of(result)
    assert result.returncode != 0, output[-3000:]
    for fragment in expected:
        assert fragment in output, f"expected {fragment!r} in:\n{output[-4000:]}"
    assert TRACEBACK not in output, output[-4000:]
    assert not TRAIN_JOB_STARTED.search(output), "a training job started"
    assert not metrics_files(workdir)
    load_log = workdir / "results/logs/load_images.log"
    if load_log.exists():  # the loading job ran and failed: one clear line, no traceback
        assert TRACEBACK not in load_log.read_text()
        assert not (workdir / "results/data/images.npz").exists()


@pytest.mark.workflow
@pytest.mark.xfail(
    strict=True,
    reason="Snakemake parses --configfile in its CLI, before the workflow runs, and reports only "
    "'Config file is not valid JSON or YAML' (snakemake/common/configfile.py); the workflow's own "
    "config.yaml gets file, line and column (tests/test_config.py)",
)
def test_yaml_syntax_error_in_a_configfile_names_the_file_and_line(tmp_path):
    """Which file, and where: the part of the message the workflow's own config.yaml gets."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_YAML)
    workdir = copy_workflow(tmp_path / "wf", tiny_study_config())
    result = run_snakemake(workdir, "--cores", "1", "--configfile", str(broken), check=False)
    assert result.returncode != 0
    assert re.search(rf"{re.escape(str(broken))}.*line 3", output_of(result)), output_of(result)


# --- one small study, run twice: determinism, divergence, junk files, no writes outside results/ --

DIVERGING_LR = 1000.0  # the loss of these nets exceeds 100 x log(3) in the first epoch
JUNK = {
    "Data_train/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "Data_train/apple/Thumbs.db": b"\xd0\xcf\x11\xe0",
    "Data_train/banana/desktop.ini": b"[.ShellClassInfo]\r\n",
    "Data_train/cherry/notes.txt": b"picked on Monday\n",
    "Data_train/cherry/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "Data_test/README.txt": b"test images\n",
}


def reliability_config(data: Path) -> dict:
    """Two settings per protocol, one of them diverging, in sweeps, headline and comparisons."""
    return tiny_study_config(
        data_dir=str(data),
        networks={
            "two_layer": {
                "baseline": {"hidden": [8], "epochs": 20, "lr": 0.05, "batch_size": 8},
                "sweep": {"lr": [DIVERGING_LR]},
            }
        },
        headline=[{"network": "two_layer"}, {"network": "two_layer", "lr": DIVERGING_LR}],
        compare_protocols=["study", "train-only"],
        components_sweep=[],
    )


@pytest.fixture(scope="module")
def twice_run_study(tmp_path_factory):
    """The same study in two fresh copies, with ``--cores 1`` and ``--cores 4``, run concurrently.

    The image folder lives inside each copy, so the snapshot of everything outside results/
    covers it too. Returns ``{cores: (workdir, result, files before, files after)}``.
    """
    runs = {}
    for cores in ("1", "4"):
        workdir = tmp_path_factory.mktemp(f"study-cores{cores}")
        data = make_dataset(workdir / "data", n_train=10, n_test=4)
        for name, content in JUNK.items():
            (data / name).write_bytes(content)
        copy_workflow(workdir, reliability_config(data))
        before = file_state(workdir)
        log = open(workdir.parent / f"{workdir.name}.out", "w+")
        process = subprocess.Popen(
            [*snakemake_command(), "--cores", cores], cwd=workdir, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        runs[cores] = (workdir, process, log, before)
    finished = {}
    try:
        for cores, (workdir, process, log, before) in runs.items():
            returncode = process.wait(timeout=900)
            log.seek(0)
            result = subprocess.CompletedProcess(process.args, returncode, stdout=log.read(), stderr="")
            if returncode != 0:
                pytest.fail(f"snakemake --cores {cores} exited {returncode}:\n{result.stdout[-6000:]}")
            finished[cores] = (workdir, result, before, file_state(workdir))
    finally:
        for _, process, log, _ in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
            log.close()
    return finished


def _result_files(workdir: Path, patterns) -> dict[str, bytes]:
    results = workdir / "results"
    return {str(p.relative_to(results)): p.read_bytes() for pattern in patterns for p in results.glob(pattern)}


@pytest.mark.workflow
def test_same_config_gives_byte_identical_metrics_and_histories_with_any_core_count(twice_run_study):
    one, four = twice_run_study["1"][0], twice_run_study["4"][0]
    patterns = ("runs/**/metrics.json", "runs/**/history.csv", "tables/*.csv")
    first, second = _result_files(one, patterns), _result_files(four, patterns)
    assert sum(name.endswith("metrics.json") for name in first) == 4
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"differ between --cores 1 and --cores 4: {differing}"


@pytest.mark.workflow
def test_diverging_setting_is_marked_and_the_study_completes(twice_run_study):
    workdir, result, _, _ = twice_run_study["1"]
    results = workdir / "results"
    assert "keep-going" not in (workdir / "profiles/default/config.yaml").read_text()
    assert "--keep-going" not in result.args
    metrics = {p.parent.name: json.loads(p.read_text()) for p in metrics_files(workdir)}
    for run_id, record in metrics.items():
        diverging = f"_lr={DIVERGING_LR!r}_" in run_id
        assert record["diverged"] is diverging, run_id
        if diverging:
            assert record["diverged_epoch"] >= 1 and record["test_accuracy"] is None
        else:
            assert record["diverged_epoch"] is None and 0 <= record["test_accuracy"] <= 1
    # every table row of the diverging setting says so, and no other row does
    diverging_value = re.compile(rf"\b{re.escape(repr(DIVERGING_LR))}\b")
    tables = sorted((results / "tables").glob("*.md"))
    rows = [line for table in tables for line in table.read_text().splitlines() if line.startswith("| ")]
    marked = [row for row in rows if diverging_value.search(row)]
    assert marked and all("DIVERGED" in row.rsplit("|", 2)[-2] for row in marked), marked
    assert not [row for row in rows if "DIVERGED" in row and not diverging_value.search(row)]
    assert "2 diverged" in (results / "summary.md").read_text()
    # the figures are still drawn, the diverged runs' included
    figures = [
        "figures/sweeps/two_layer_accuracy", "figures/sweeps/two_layer_lr_curves",
        "figures/headline/2_two_layer_curves", "figures/headline/2_two_layer_decision_regions",
        "figures/protocols",
        f"runs/study/pca2/hidden=8_epochs=20_lr={DIVERGING_LR!r}_batch=8_seed=1/curves",
        f"runs/train-only/pca2/hidden=8_epochs=20_lr={DIVERGING_LR!r}_batch=8_seed=1/decision_regions",
    ]
    for figure in figures:
        for ext in ("png", "svg"):
            assert (results / f"{figure}.{ext}").stat().st_size > 1000, f"{figure}.{ext}"
    assert not incomplete_files(results)


@pytest.mark.workflow
def test_non_image_files_are_skipped_with_a_warning(twice_run_study):
    workdir, result, _, _ = twice_run_study["1"]
    log = (workdir / "results/logs/load_images.log").read_text()
    data = workdir / "data"
    assert re.search(
        rf"WARNING .*skipped 5 non-image entries in {re.escape(str(data / 'Data_train'))}: "
        r"\.DS_Store, apple/Thumbs\.db, banana/desktop\.ini, cherry/\.DS_Store, cherry/notes\.txt",
        log,
    ), log
    test_folder = re.escape(str(data / "Data_test"))
    assert re.search(rf"WARNING .*skipped 1 non-image entries in {test_folder}: README\.txt", log), log
    assert "ERROR" not in log
    assert "skipped 5 non-image entries" in result.stdout  # on the terminal too, not only in the log
    images = load_npz(workdir / "results/data/images.npz")
    assert len(images["y_train_folder"]) == 30 and len(images["y_test"]) == 12
    assert not any(Path(f).suffix != ".png" for f in [*images["train_files"], *images["test_files"]])


@pytest.mark.workflow
def test_no_rule_writes_outside_results(twice_run_study):
    for cores, (workdir, _, before, after) in twice_run_study.items():
        assert any(name.startswith("data/Data_train/") for name in before)
        assert after == before, f"--cores {cores}: files outside results/ changed"
        leftovers = [p for p in (workdir / "results").rglob("*") if TEMP_FILE.match(p.name)]
        assert not leftovers, f"temporary files left behind: {leftovers}"


@pytest.mark.workflow
def test_result_files_are_readable_like_any_other_file(twice_run_study):
    umask = os.umask(0o022)
    os.umask(umask)  # snakemake and its jobs inherited this process's umask
    workdir = twice_run_study["1"][0]
    modes = Counter(stat.S_IMODE(p.stat().st_mode) for p in (workdir / "results").rglob("*") if p.is_file())
    assert set(modes) == {0o666 & ~umask}, {oct(mode): count for mode, count in modes.items()}


# --- faults: a killed training job loses nothing and is the only job re-run --------------------

SLOW_EPOCHS = 60000  # several seconds on any machine: long enough to be caught mid-run


def kill_config(data: Path) -> dict:
    return tiny_study_config(
        data_dir=str(data),
        networks={
            "two_layer": {
                "baseline": {"hidden": [8], "epochs": 20, "lr": 0.05, "batch_size": 8},
                "sweep": {"lr": [0.1], "epochs": [SLOW_EPOCHS]},
            }
        },
        headline=[],
        components_sweep=[],
        per_run_outputs="headline",  # no per-run figures: fewer jobs around the one that matters
        training={"eval_every": 100},
    )


def _processes_in(workdir: Path) -> list[tuple[int, list[str]]]:
    """``(pid, argv)`` of every live process whose working directory is ``workdir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) != workdir:
                continue
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        found.append((int(entry.name), argv))
    return found


def _training_process(workdir: Path) -> int | None:
    """The python process of the (only) running train job in ``workdir``."""
    pids = [
        pid for pid, argv in _processes_in(workdir)
        if len(argv) > 1 and "python" in Path(argv[0]).name and argv[1].endswith(".train.py")
    ]
    return pids[0] if len(pids) == 1 else None


class KillStudy:
    """Runs the kill scenario stage by stage and records what each stage left behind."""

    def __init__(self, workdir: Path):
        self.workdir = workdir.resolve()
        self.run_dir = workdir / f"results/runs/study/pca2/hidden=8_epochs={SLOW_EPOCHS}_lr=0.05_batch=8_seed=1"
        self.stages: dict[str, dict] = {}

    def start(self, name: str) -> subprocess.Popen:
        out = open(self.workdir.parent / f"{self.workdir.name}-{name}.out", "w+")
        process = subprocess.Popen(
            [*snakemake_command(), "--cores", "2"], cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )
        process.out = out
        return process

    def wait_until_slow_job_trains(self, since: float, timeout: float = 300) -> int:
        log = self.run_dir / "train.log"

        def running():
            # the log is rewritten when the job starts; its "training" line follows data loading
            fresh = log.exists() and log.stat().st_mtime > since
            fresh = fresh and "training study/pca2/hidden=" in log.read_text()
            return fresh and _training_process(self.workdir)

        return wait_for(running, timeout, f"the training job writing {log}")

    def finish(self, name: str, process: subprocess.Popen) -> None:
        try:
            process.wait(timeout=180)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
        process.out.seek(0)
        self.stages[name] = {
            "returncode": process.returncode,
            "output": process.out.read(),
            "run_dir_files": sorted(p.name for p in self.run_dir.iterdir()) if self.run_dir.exists() else [],
            "incomplete": incomplete_files(self.workdir / "results"),
            "metrics": [str(p.relative_to(self.workdir)) for p in metrics_files(self.workdir)],
            "planned": planned_jobs(self.workdir),
        }
        process.out.close()

    def wait_for_no_processes(self, timeout: float = 30) -> list[tuple[int, list[str]]]:
        """Processes still running in the workdir ``timeout`` seconds after a kill (none, normally)."""
        deadline = time.monotonic() + timeout
        while (left := _processes_in(self.workdir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left


@pytest.fixture(scope="module")
def kill_study(tmp_path_factory):
    """A study whose slow training job is killed twice, then completed by a normal run.

    1. every other training job finishes (explicit targets);
    2. a full run is started and the slow job's own python process gets SIGKILL;
    3. a full run is started and its whole process group (snakemake and the job) gets SIGKILL;
    4. plain ``snakemake`` again, after ``--unlock`` if Snakemake asks for it.
    """
    root = tmp_path_factory.mktemp("kill")
    data = make_dataset(root / "data", n_train=10, n_test=4)
    workdir = copy_workflow(root / "wf", kill_config(data))
    study = KillStudy(workdir)
    fast = [
        f"results/runs/study/pca2/hidden=8_epochs=20_lr={lr}_batch=8_seed=1/metrics.json" for lr in (0.05, 0.1)
    ]
    run_snakemake(workdir, "--cores", "2", *fast)

    since = time.time()
    process = study.start("job-killed")
    try:
        os.kill(study.wait_until_slow_job_trains(since), signal.SIGKILL)
    finally:
        study.finish("job-killed", process)

    since = time.time()
    process = study.start("snakemake-killed")
    try:
        study.wait_until_slow_job_trains(since)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        study.finish("snakemake-killed", process)
    study.stages["snakemake-killed"]["survivors"] = survivors = study.wait_for_no_processes()
    for pid, _ in survivors:  # ours: a job that outlived its snakemake
        os.kill(pid, signal.SIGKILL)

    rerun = run_snakemake(workdir, "--cores", "2", check=False, verbose=True)
    study.stages["rerun"] = {"first": output_of(rerun), "unlocked": False}
    if rerun.returncode != 0 and "--unlock" in output_of(rerun):
        run_snakemake(workdir, "--unlock")
        rerun = run_snakemake(workdir, "--cores", "2", check=False, verbose=True)
        study.stages["rerun"]["unlocked"] = True
    study.stages["rerun"].update(
        returncode=rerun.returncode,
        output=output_of(rerun),
        planned_after=planned_jobs(workdir) if rerun.returncode == 0 else None,
    )
    return study


@pytest.mark.workflow
@pytest.mark.parametrize("stage", ["job-killed", "snakemake-killed"])
def test_killed_training_job_leaves_no_output_that_looks_complete(kill_study, stage):
    observed = kill_study.stages[stage]
    assert observed["returncode"] != 0
    assert "metrics.json" not in observed["run_dir_files"], (
        f"the slow job finished before it was killed ({observed['run_dir_files']}): raise SLOW_EPOCHS"
    )
    assert not observed["incomplete"], observed["incomplete"]
    assert len(observed["metrics"]) == 2  # the two fast runs, untouched
    assert not observed.get("survivors"), f"processes outlived the killed snakemake: {observed['survivors']}"
    if stage == "job-killed":  # snakemake itself saw the job die and says so
        assert "Error in rule train" in observed["output"]


@pytest.mark.workflow
@pytest.mark.parametrize("stage", ["job-killed", "snakemake-killed"])
def test_after_a_kill_only_the_killed_training_job_is_planned(kill_study, stage):
    planned = kill_study.stages[stage]["planned"]
    assert planned["train"] == 1, planned
    # besides the killed run: the jobs that had not started yet (which small job had the other
    # core when the kill came is arbitrary, study_plan among them)
    assert set(planned) <= {"train", "run_outputs", "plot_pca", "collect_metrics", "compare_runs", "study_tables",
                            "study_figures", "summary", "plot_samples", "model_files_table", "explorer",
                            "study_plan", "all"}, planned


@pytest.mark.workflow
def test_next_run_after_a_kill_reruns_only_that_job_and_finishes(kill_study):
    rerun = kill_study.stages["rerun"]
    assert rerun["returncode"] == 0, rerun["output"][-4000:]
    assert len(TRAIN_JOB_STARTED.findall(rerun["output"])) == 1
    assert rerun["planned_after"] == Counter()
    metrics = json.loads((kill_study.run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == SLOW_EPOCHS and not metrics["diverged"]


@pytest.mark.workflow
def test_a_stale_lock_after_killing_snakemake_says_how_to_unlock(kill_study):
    """Snakemake keeps its lock when it is SIGKILLed (it cannot tell a dead run from a live one);
    the next run must say what to do (README: `snakemake --unlock`), and then finish."""
    rerun = kill_study.stages["rerun"]
    if rerun["unlocked"]:
        assert "--unlock" in rerun["first"], rerun["first"][-1500:]
    assert rerun["returncode"] == 0, rerun["output"][-1500:]


# --- atomic writes ---------------------------------------------------------------------------


class Crash(Exception):
    pass


@pytest.mark.parametrize("exception", [Crash("boom"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_atomic_path_failure_leaves_neither_target_nor_temp_file(tmp_path, exception):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(type(exception)):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target  # same folder: rename is atomic
            tmp.write_text('{"half": ')
            raise exception
    assert list(target.parent.iterdir()) == []


def test_atomic_path_failure_leaves_an_existing_target_untouched(tmp_path):
    target = tmp_path / "history.csv"
    target.write_text("epoch,loss\n1,0.5\n")
    stamp = target.stat().st_mtime_ns
    with pytest.raises(Crash):
        with atomic_path(target) as tmp:
            tmp.write_text("epoch,loss\n1,0.4\n2,")
            raise Crash
    assert target.read_text() == "epoch,loss\n1,0.5\n" and target.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_atomic_path_success_replaces_the_target_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible until the block succeeds
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT])
def test_atomic_path_turns_a_full_or_read_only_disk_into_a_clear_error(tmp_path, code):
    target = tmp_path / "weights.npz"
    with pytest.raises(OutputError, match=rf"^cannot write {re.escape(str(target))}: {os.strerror(code)}$"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"PK")
            raise OSError(code, os.strerror(code))
    assert list(tmp_path.iterdir()) == []
    assert issubclass(OutputError, PcannError)  # run_rule prints it as one line


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_mode_a_plain_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        save_text(tmp_path / "summary.md", "results\n")
        (tmp_path / "plain.md").write_text("results\n")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "summary.md").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.md").stat().st_mode) == 0o666 & ~umask


def _dies_writing(destination):
    """What a serialiser killed half-way leaves: some bytes at its destination, then an error."""
    if hasattr(destination, "write"):
        destination.write(b"partial")
    else:
        Path(destination).write_bytes(b"partial")
    raise Crash


def _writers():
    """``name -> (object, attribute, replacement that dies half-way, call, target suffix)``."""
    import matplotlib.figure

    from pcann.results.plots import save_figure

    return {
        "save_npz": (np, "savez", lambda file, *a, **k: _dies_writing(file),
                     lambda target: save_npz(target, x=np.arange(3)), ".npz"),
        "save_json": (Path, "write_text", lambda self, *a, **k: _dies_writing(self),
                      lambda target: save_json(target, {"a": 1}), ".json"),
        "save_text": (Path, "write_text", lambda self, *a, **k: _dies_writing(self),
                      lambda target: save_text(target, "text"), ".md"),
        "save_csv": (pd.DataFrame, "to_csv", lambda self, path, *a, **k: _dies_writing(path),
                     lambda target: save_csv(target, pd.DataFrame({"a": [1]})), ".csv"),
        "save_figure": (matplotlib.figure.Figure, "savefig", lambda self, path, *a, **k: _dies_writing(path),
                        lambda target: save_figure(matplotlib.figure.Figure(), target), ".png"),
    }


@pytest.mark.parametrize("writer", ["save_npz", "save_json", "save_text", "save_csv", "save_figure"])
def test_every_writer_is_atomic(tmp_path, monkeypatch, writer):
    owner, attribute, dies, call, suffix = _writers()[writer]
    target = tmp_path / f"out{suffix}"
    target.write_bytes(b"complete")
    monkeypatch.setattr(owner, attribute, dies)
    with pytest.raises(Crash):
        call(target)
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# --- a read-only or full results/ ------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(folder, options)``: a tmpfs on ``folder``, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs on results/ needs root (CI runs as root)")
    mounted = []

    def mount(folder: Path, options: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "pcann-test", str(folder)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _read_only_empty(mount, results):
    mount(results, "ro,size=1m")


def _read_only_with_folders(mount, results):
    mount(results, "size=1m")
    for folder in ("data", "logs", "benchmarks"):  # left by an earlier run
        (results / folder).mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(results)], check=True)


def _full(mount, results):
    mount(results, "size=256k")
    fd = os.open(results / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def restored_logging():
    """run_rule reconfigures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        try:
            handler.close()
        except OSError:
            pass  # the unwritable log file's last flush
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.mark.parametrize(
    "log, cause",
    [("/dev/full", "No space left on device"), ("missing/folder/rule.log", "No such file or directory")],
    ids=["log-on-a-full-disk", "log-folder-missing"],
)
def test_rule_with_an_unwritable_log_fails_with_one_clear_line(tmp_path, capsys, restored_logging, log, cause):
    from types import SimpleNamespace

    from pcann.workflow.rule import run_rule

    log = log if log.startswith("/") else str(tmp_path / log)

    def main(smk):
        logging.getLogger("pcann.test").info("loaded 42 images")
        raise OutputError("cannot write results/data/images.npz: No space left on device")

    with pytest.raises(SystemExit) as stopped:
        run_rule(SimpleNamespace(log=[log], threads=1, rule="load_images"), main)
    assert stopped.value.code == 1
    stderr = capsys.readouterr().err
    assert f"cannot write the log file {log}: {cause}" in stderr
    assert "ERROR pcann: cannot write results/data/images.npz: No space left on device" in stderr
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr


@pytest.mark.workflow
@pytest.mark.parametrize(
    "make, cause",
    [
        (_read_only_empty, "Read-only file system"),
        (_read_only_with_folders, "Read-only file system"),
        (_full, "No space left on device"),
    ],
    ids=["read-only", "read-only-with-folders", "full"],
)
def test_unwritable_results_folder_gives_a_clear_error(tmp_path, tmpfs, make, cause):
    data = make_dataset(tmp_path / "data", n_train=10, n_test=4)
    workdir = copy_workflow(tmp_path / "wf", tiny_study_config(data_dir=str(data)))
    make(tmpfs, workdir / "results")

    result = run_snakemake(workdir, "--cores", "1", check=False, verbose=True)

    output = output_of(result)
    assert result.returncode != 0
    assert TRACEBACK not in output and "Logging error" not in output, output[-5000:]
    lines = [line for line in output.splitlines() if cause in line and re.search(r"\bresults\b", line)]
    assert lines, f"no line names the results/ path and {cause!r}:\n{output[-3000:]}"
    assert not TRAIN_JOB_STARTED.search(output)


# --- no pickle anywhere --------------------------------------------------------------------------

UNSAFE = [
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"\b(?:c?pickle|dill|cloudpickle|joblib|torch)\.loads?\s*\("), "unpickling call"),
    (re.compile(r"\bread_pickle\s*\("), "pandas.read_pickle"),
    (re.compile(r"\byaml\.(?:unsafe_load|full_load|unsafe_load_all|full_load_all)\s*\("), "unsafe YAML loader"),
    (re.compile(r"^\s*(?:import|from)\s+(?:c?pickle|dill|cloudpickle)\b", re.M), "pickle import"),
]
#: Calls whose arguments must say how they load: (pattern, required text, what it means).
GUARDED_CALLS = [
    (
        re.compile(r"\b(?:np|numpy)\.load\s*\("),
        re.compile(r"allow_pickle\s*=\s*False"),
        "np.load without allow_pickle=False",
    ),
    (
        re.compile(r"\byaml\.load(?:_all)?\s*\("),
        re.compile(r"Loader\s*=\s*(?:yaml\.)?C?SafeLoader"),
        "yaml.load without SafeLoader",
    ),
]


def _call_text(text: str, open_paren: int) -> str:
    depth = 0
    for index in range(open_paren, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return text[open_paren : index + 1]
    return text[open_paren:]


def unpickling_problems(text: str) -> list[str]:
    problems = [f"{what}: {m.group(0).strip()!r}" for pattern, what in UNSAFE for m in pattern.finditer(text)]
    for pattern, required, what in GUARDED_CALLS:
        for match in pattern.finditer(text):
            call = match.group(0) + _call_text(text, match.end() - 1)[1:]
            if not required.search(call):
                problems.append(f"{what}: {call!r}")
    return problems


def workflow_sources() -> list[Path]:
    return [
        REPO / "Snakefile",
        *sorted((REPO / "rules").glob("*.smk")),
        *sorted(p for p in (REPO / "scripts").rglob("*.py") if "__pycache__" not in p.parts),
    ]


def test_no_source_file_can_unpickle():
    sources = workflow_sources()
    assert len(sources) > 10
    problems = {str(p.relative_to(REPO)): unpickling_problems(p.read_text()) for p in sources}
    assert not {name: found for name, found in problems.items() if found}
    loads = sum(len(GUARDED_CALLS[0][0].findall(p.read_text())) for p in sources)
    assert loads >= 1  # the scan does see np.load calls, each with allow_pickle=False


@pytest.mark.parametrize(
    "snippet",
    [
        "arrays = np.load(path)",
        "arrays = np.load(\n    path,\n    mmap_mode='r',\n)",
        "np.load(path, allow_pickle=True)",
        "import pickle",
        "model = pickle.load(handle)",
        "frame = pd.read_pickle(path)",
        "config = yaml.load(handle)",
        "config = yaml.load(handle, Loader=yaml.Loader)",
        "config = yaml.full_load(handle)",
    ],
)
def test_pickle_scan_catches_unsafe_loading(snippet):
    assert unpickling_problems(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "np.load(path, allow_pickle=False)",
        "with np.load(\n    path, allow_pickle=False\n) as archive:",
        "yaml.load(handle, Loader=yaml.SafeLoader)",
        "yaml.safe_load(handle)",
        '"""Write arrays without pickle; never unpickles anything."""',
    ],
)
def test_pickle_scan_accepts_safe_loading(snippet):
    assert not unpickling_problems(snippet)


def test_mapped_npz_arrays_equal_the_read_ones_and_are_read_only(tmp_path):
    """``load_npz(..., mmap=True)`` maps the numeric arrays save_npz stored (C and Fortran
    order, any itemsize) and reads the rest (strings, empty arrays, compressed members), with
    the same values either way; a mapped array cannot be written through."""
    import zipfile

    rng = np.random.default_rng(0)
    arrays = {
        "images": rng.integers(0, 256, size=(5, 7), dtype=np.uint8),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
        "wide": rng.integers(0, 2**16, size=(6,), dtype=np.uint16),
        "names": np.asarray(["a", "bb"]),
        "empty": np.zeros((0, 3)),
        "scalar": np.asarray(2.5),
    }
    save_npz(tmp_path / "plain.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "packed.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w") as member:
            np.lib.format.write_array(member, arrays["images"])
    for name in ("plain.npz", "packed.npz"):
        mapped = load_npz(tmp_path / name, mmap=True)
        read = load_npz(tmp_path / name)
        assert mapped.keys() == read.keys()
        for key, value in read.items():
            assert mapped[key].dtype == value.dtype and mapped[key].shape == value.shape
            np.testing.assert_array_equal(mapped[key], value)
    mapped = load_npz(tmp_path / "plain.npz", ["images", "fortran"], mmap=True)
    assert isinstance(mapped["images"].base, np.memmap) and mapped["fortran"].flags.f_contiguous
    with pytest.raises(ValueError, match="read-only"):
        mapped["images"][0, 0] = 1
