"""The study a results folder holds: ``results/study.yaml``.

Snakemake re-runs whatever its inputs say changed. That is right for a pipeline author and a trap
for a user who forgets one flag: a follow-up ``predict`` without ``data_dir`` would load the demo
images and retrain the real runs on them. So the workflow records, when a run starts, which data
and which study files and ``--config`` values made ``results/``, and

- a later command without ``--configfile`` uses the recorded study files and ``--config`` values
  again (values it gives itself still win), so follow-up commands need no repeated flags;
- a command whose data differs from the recorded data (another folder, changed images, another
  read mode, other demo settings) stops before any job, naming both and the ways on.

The record is YAML a person can read; only the workflow writes it, atomically.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
from pathlib import Path

import yaml

from pcann import PcannError
from pcann.study.paths import RESULTS
from pcann.workflow.config import load_config_file

#: The record's file name inside the results folder.
RECORD_NAME = "study.yaml"
#: Config keys that belong to one command, not to the study: never recorded or reused.
PER_COMMAND_KEYS = (
    "predict_dir", "predict_runs", "predict_strict", "replace_results", "slurm_job_minutes",
)
#: Config keys whose values replace the shipped ones as a whole when a study file or --config
#: gives them, instead of being merged key by key: a study file lists the networks it wants.
REPLACED_KEYS = ("networks", "search")
#: Config keys renamed since: the old name is still read, with a notice (old -> new).
RENAMED_KEYS = {"plot_runs": "per_run_outputs"}
#: Recorded fields that identify the data; any difference stops the run.
DATA_FIELDS = ("folder", "train_folder", "test_folder", "read_mode", "demo", "fingerprint")


class StudyMismatch(PcannError):
    """The command asks for other data than the results folder holds."""


def merge_study(base: dict, given: dict) -> dict:
    """``base`` updated with ``given``: mappings merge key by key (``demo``, ``training``), except
    :data:`REPLACED_KEYS`, which ``given`` replaces whole; everything else is replaced."""
    merged = dict(base)
    for key, value in renamed(given).items():
        if key not in REPLACED_KEYS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_study(merged[key], value)
        else:
            merged[key] = value
    return merged


def renamed(config: dict) -> dict:
    """``config`` with every renamed key under its new name (:data:`RENAMED_KEYS`)."""
    return {RENAMED_KEYS.get(key, key): value for key, value in config.items()}


def deprecation_notices(layers) -> list[str]:
    """One line for each renamed key that a study file or --config value still uses."""
    used = sorted({key for layer in layers for key in layer if key in RENAMED_KEYS})
    return [f"config key {key} is now called {RENAMED_KEYS[key]}; the old name still works "
            "for now: rename it in your study file or command" for key in used]


def read_record(results: str | os.PathLike) -> dict | None:
    """The record of ``results``, or None when it has none."""
    path = Path(results) / RECORD_NAME
    if not path.exists():
        return None
    record = load_config_file(path)
    if not isinstance(record.get("data"), dict) or not isinstance(record.get("config"), dict):
        raise StudyMismatch(
            f"{path} is not a pcann study record (no data or config section); it is written by "
            "the workflow: move it away and run again"
        )
    return record


def resolve_config(shipped: dict, given_files, given_values: dict, record: dict | None):
    """The effective configuration, and the study files and --config values to record.

    A command that gives study files states its study: they apply over the shipped config.yaml
    (recorded --config values beneath them, so a data folder given once need not be repeated).
    A command without study files repeats the recorded study: its files, then its values. The
    command's own --config values always apply last.
    """
    # Snakemake reads --config key=true as the text 'true'; the schema's booleans are meant
    given_values = {k: {"true": True, "false": False}.get(v, v) if isinstance(v, str) else v
                    for k, v in given_values.items()}
    recorded_values = dict(record.get("config_values") or {}) if record else {}
    command_values = {k: v for k, v in given_values.items() if k not in PER_COMMAND_KEYS}
    config = dict(shipped)
    if given_files or not record:
        study_files = [str(Path(f).resolve()) for f in given_files]
        config = merge_study(config, recorded_values)
        config = _merge_files(config, study_files)
    else:
        study_files = list(record.get("study_files") or [])
        config = _merge_files(config, study_files, recorded=True)
        config = merge_study(config, recorded_values)
    config = merge_study(config, given_values)
    return config, study_files, {**recorded_values, **command_values}


def _merge_files(config: dict, files, recorded: bool = False) -> dict:
    for path in files:
        if recorded and not Path(path).is_file():
            raise StudyMismatch(
                f"study file {path}, recorded in {RESULTS}/{RECORD_NAME}, does not exist any more; "
                "expected it back, or give the study again with --configfile FILE"
            )
        config = merge_study(config, load_config_file(path))
    return config


def data_identity(config: dict, data_dir, fingerprint: str | None, counts: dict) -> dict:
    """What identifies the study's data: the folder (absolute) and its images' fingerprint, or
    the demo generator's settings; the read mode; the split folders; and, for people, counts."""
    identity = {
        "folder": str(Path(data_dir).resolve()) if config["data_dir"] is not None else "demo",
        "train_folder": config["train_folder"],
        "test_folder": config["test_folder"],
        "read_mode": config["read_mode"],
        "demo": dict(config["demo"]) if config["data_dir"] is None else None,
        "fingerprint": fingerprint,
    }
    identity.update(counts)
    return identity


def describe_data(data: dict) -> str:
    """One phrase naming a dataset, e.g. ``/data/fruits (1470 training and 498 test images, read mode color)``."""
    if data["folder"] == UNRECORDED_FOLDER:
        name = "the embedded demo data" if data["demo"] is not None else "a data folder (not recorded)"
        return f"{name} ({data['n_train']} training and {data['n_test']} test images)"
    if data["folder"] == "demo":
        demo = data.get("demo") or {}
        parts = [f"{demo.get('n_classes')} classes", f"{demo.get('image_size')} px",
                 f"seed {demo.get('seed')}"] if demo else []
        name = "the embedded demo data"
    else:
        parts = []
        if data.get("n_train") is not None:
            parts.append(f"{data['n_train']} training and {data['n_test']} test images")
        name = data["folder"]
    parts.append(f"read mode {data['read_mode']}")
    return f"{name} ({', '.join(parts)})"


def data_differences(recorded: dict, current: dict) -> list[str]:
    """What differs between two datasets, in words: the folder if it differs, else each field.
    Of a study made before the record existed (:func:`earlier_record`) only the kind of data
    (demo or a folder) and the image counts are known, and compared."""
    if recorded.get("folder") == UNRECORDED_FOLDER:
        if (current["folder"] == "demo") != (recorded["demo"] is not None):
            was = "demo" if recorded["demo"] is not None else "a data folder"
            return [f"data {was} -> {current['folder']}"]
        return [f"{key} {recorded[key]} -> {current.get(key)}" for key in ("n_train", "n_test")
                if recorded[key] != current.get(key)]
    if recorded.get("folder") != current.get("folder"):
        return [f"data folder {recorded.get('folder')} -> {current.get('folder')}"]
    differences = []
    for field in DATA_FIELDS:
        if recorded.get(field) == current.get(field):
            continue
        if field == "fingerprint":
            differences.append("the images in the folder changed (added, removed, replaced or touched)")
        else:
            differences.append(f"{field} {recorded.get(field)} -> {current.get(field)}")
    return differences


#: The folder of a study made before results/study.yaml existed: not known.
UNRECORDED_FOLDER = "a folder not recorded (results/ made by an earlier pcann)"


def earlier_record() -> dict | None:
    """What a ``results/`` made by an earlier pcann (no study.yaml) says of its data: demo or a
    folder, and the image counts, from the loaded images' file; None when there is none."""
    import numpy as np

    from pcann.study.paths import IMAGES

    if not Path(IMAGES).is_file():
        return None
    with np.load(IMAGES, allow_pickle=False) as archive:
        demo = bool(str(archive["data_label"]))
        counts = {"n_train": len(archive["y_train_folder"]), "n_test": len(archive["y_test"])}
    data = {"folder": UNRECORDED_FOLDER, "demo": {} if demo else None, "read_mode": None, **counts}
    return {"data": data, "written": "by an earlier pcann"}


def check_same_data(record: dict, current: dict, results: str = RESULTS) -> None:
    """Stop, naming both datasets and the ways on, when ``current`` is not the recorded data."""
    recorded = record["data"]
    differences = data_differences(recorded, current)
    if not differences:
        return
    repeat = (
        "run the study on the embedded demo data again: drop data_dir"
        if recorded["folder"] == "demo" or recorded.get("demo") is not None
        else "give the same data_dir as that study"
        if recorded["folder"] == UNRECORDED_FOLDER
        else f"repeat --config data_dir={_shell_path(recorded['folder'])}"
        + (f" read_mode={recorded['read_mode']}" if recorded["read_mode"] != current["read_mode"] else "")
    )
    raise StudyMismatch(
        f"{results}/ holds the study of {describe_data(recorded)}, made {record.get('written', '?')}; "
        f"this command asks for {describe_data(current)} ({'; '.join(differences)}). Nothing was changed. "
        f"Ways on: to continue that study, {repeat}; to keep both studies, run this one in "
        "another folder (snakemake --directory OTHER_FOLDER ..., see the README); to start "
        f"anew here, move the old results aside first (mv {results} {results}-old); to retrain "
        "this study on the new data, overwriting its finished runs, say so: --config replace_results=True"
    )


def _shell_path(path: str) -> str:
    return path if re.fullmatch(r"[\w@%+=:,./-]+", path) else "'" + path.replace("'", "'\\''") + "'"


def record_text(data: dict, study_files, config_values: dict, config: dict) -> str:
    """The record as YAML with a header saying what it is."""
    record = {
        "written": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "data": data,
        "study_files": list(study_files),
        "config_values": {k: v for k, v in config_values.items() if k not in PER_COMMAND_KEYS},
        "config": {k: v for k, v in config.items() if k not in PER_COMMAND_KEYS},
    }
    header = (
        "# The study this results folder holds, written by the pcann workflow when a run starts.\n"
        "# A command without --configfile uses study_files and config_values again; a command\n"
        "# asking for other data stops before any job (README, 'Your own study').\n"
    )
    return header + yaml.safe_dump(record, sort_keys=False, default_flow_style=False, width=100)


def write_record(results: str | os.PathLike, text: str) -> Path:
    """Write the record atomically, unless it would say the same (its time aside)."""
    from pcann.io import save_text

    path = Path(results) / RECORD_NAME
    if path.exists() and _without_time(path.read_text()) == _without_time(text):
        return path
    save_text(path, text)
    return path


def _without_time(text: str) -> str:
    return re.sub(r"(?m)^written: .*$", "", text)


def folder_key(folder: str | os.PathLike) -> str:
    """The name of a classified folder's predictions folder: its name and a short hash of its
    absolute path, so two folders never share one and the same folder always gets the same."""
    path = Path(folder).resolve()
    name = re.sub(r"[^\w.+-]", "_", path.name) or "root"
    return f"{name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
