"""Results that stay the user's: results/study.yaml records the study, follow-up commands reuse it,
a command asking for other data stops before any job, and predict never trains or overwrites.

The workflow tests run a study file (the tiny study of .test/config.yaml) with --configfile and
--config data_dir=..., as a user would, then the README's follow-up commands without those flags.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, TEST_CONFIG_PATH, copy_workflow, make_dataset, run_snakemake, write_image

from pcann.workflow.study_record import (
    StudyMismatch,
    check_same_data,
    folder_key,
    merge_study,
    resolve_config,
)

#: A traceback frame as Python prints it: user errors must not show one.
FRAME = re.compile(r'File ".*", line \d+|Traceback \(most recent call last\)|InputFunctionException')

SHIPPED = {
    "data_dir": None,
    "read_mode": "color",
    "demo": {"n_classes": 3, "seed": 0},
    "networks": {"two_layer": {"baseline": {"epochs": 1000}}, "three_layer": {"baseline": {"epochs": 1000}}},
    "seeds": [1],
    "predict_dir": None,
}


# --- the configuration a command resolves to ----------------------------------------------------


def test_a_study_file_replaces_the_networks_and_merges_settings_key_by_key():
    merged = merge_study(SHIPPED, {"networks": {"mine": {"baseline": {"epochs": 5}}}, "demo": {"seed": 3}})
    assert list(merged["networks"]) == ["mine"]
    assert merged["demo"] == {"n_classes": 3, "seed": 3}
    assert SHIPPED["demo"] == {"n_classes": 3, "seed": 0}  # the shipped values are not touched


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_command_without_study_files_repeats_the_recorded_study(tmp_path):
    study = _write(tmp_path / "study.yaml", {"networks": {"mine": {}}, "data_dir": "/in/file"})
    config, files, values = resolve_config(SHIPPED, [study], {"data_dir": "/data", "predict_dir": "/p"}, None)
    assert config["data_dir"] == "/data" and list(config["networks"]) == ["mine"]
    assert files == [str(study.resolve())]
    assert values == {"data_dir": "/data"}  # predict_dir belongs to one command
    record = {"study_files": files, "config_values": values}

    follow_up, _, _ = resolve_config(SHIPPED, [], {"predict_dir": "/q"}, record)
    assert follow_up["data_dir"] == "/data" and list(follow_up["networks"]) == ["mine"]
    assert follow_up["predict_dir"] == "/q"

    # a new study file states the study; the data given once still applies beneath it
    other = _write(tmp_path / "other.yaml", {"seeds": [1, 2]})
    config, files, _ = resolve_config(SHIPPED, [other], {}, record)
    assert config["data_dir"] == "/data" and list(config["networks"]) == ["two_layer", "three_layer"]
    assert config["seeds"] == [1, 2] and files == [str(other.resolve())]
    # and a value in the new file wins over the remembered one
    moved = _write(tmp_path / "moved.yaml", {"data_dir": "/elsewhere"})
    assert resolve_config(SHIPPED, [moved], {}, record)[0]["data_dir"] == "/elsewhere"


def test_a_recorded_study_file_that_is_gone_is_named(tmp_path):
    record = {"study_files": [str(tmp_path / "gone.yaml")], "config_values": {}}
    with pytest.raises(StudyMismatch, match=r"gone\.yaml, recorded in results/study\.yaml, does not exist"):
        resolve_config(SHIPPED, [], {}, record)


def test_the_old_name_of_a_renamed_key_still_works_with_a_notice(tmp_path):
    from pcann.workflow.study_record import deprecation_notices

    study = _write(tmp_path / "old.yaml", {"plot_runs": "all"})
    config, _, _ = resolve_config({**SHIPPED, "per_run_outputs": "auto"}, [study], {}, None)
    assert config["per_run_outputs"] == "all" and "plot_runs" not in config
    assert deprecation_notices([{"plot_runs": "all"}, {}]) == [
        "config key plot_runs is now called per_run_outputs; the old name still works for now: "
        "rename it in your study file or command"]


def test_true_and_false_on_the_command_line_are_booleans():
    config, _, _ = resolve_config(SHIPPED, [], {"predict_strict": "true", "full_factorial": "false"}, None)
    assert config["predict_strict"] is True and config["full_factorial"] is False


DATA = {"folder": "/data/fruits", "train_folder": "Data_train", "test_folder": "Data_test",
        "read_mode": "color", "demo": None, "fingerprint": "abc", "n_train": 1470, "n_test": 498, "n_classes": 3}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"folder": "demo", "demo": {"n_classes": 3, "image_size": 32, "seed": 0}, "fingerprint": None},
         r"asks for the embedded demo data .*data folder /data/fruits -> demo"),
        ({"fingerprint": "abd"}, r"the images in the folder changed"),
        ({"read_mode": "grey"}, r"read_mode color -> grey.*repeat --config data_dir=/data/fruits read_mode=color"),
    ],
)
def test_other_data_than_the_recorded_stops_naming_both_and_the_ways_on(change, expected):
    record = {"data": DATA, "written": "2026-12-06T10:00:00+00:00"}
    check_same_data(record, dict(DATA))  # the same data passes
    with pytest.raises(StudyMismatch) as error:
        check_same_data(record, {**DATA, **change})
    message = str(error.value)
    assert re.search(expected, message), message
    assert "results/ holds the study of /data/fruits (1470 training and 498 test images, read mode color)" in message
    assert "Nothing was changed" in message
    assert "snakemake --directory OTHER_FOLDER" in message and "mv results results-old" in message


def test_each_classified_folder_has_its_own_predictions_folder(tmp_path):
    (tmp_path / "a" / "new").mkdir(parents=True)
    (tmp_path / "b" / "new").mkdir(parents=True)
    first, second = folder_key(tmp_path / "a" / "new"), folder_key(tmp_path / "b" / "new")
    assert first != second and first.startswith("new-") and second.startswith("new-")
    assert folder_key(tmp_path / "a" / ".." / "a" / "new") == first
    assert re.fullmatch(r"[^/]+-[0-9a-f]{8}", folder_key(tmp_path / "with space"))


# --- end to end -------------------------------------------------------------------------------


def run_hashes(workdir: Path, under: str = "results/runs") -> dict[str, str]:
    root = workdir / under
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def output_of(result) -> str:
    return result.stdout + result.stderr


def readme_command(*words: str) -> list[str]:
    """The README's snakemake command holding every one of ``words``, as arguments (after
    `.venv/bin/snakemake`); the test fails when the README no longer shows it."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line.split("#")[0] for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`(\.venv/bin/snakemake [^`]*)`", text)  # commands inside sentences
    for line in lines:
        args = shlex.split(line)
        if args[:1] == [".venv/bin/snakemake"] and all(word in args for word in words):
            return args[1:]
    raise AssertionError(f"README.md shows no snakemake command with {words}")


def fill(args: list[str], **values: str) -> list[str]:
    """The README's placeholders (/path/to/my-images, /path/to/new-images, studies/quick.yaml)
    replaced by this test's folders and files."""
    replacements = {"/path/to/my-images": "data", "/path/to/new-images": "images", "studies/quick.yaml": "study"}
    for placeholder, key in replacements.items():
        if key in values:
            args = [a.replace(placeholder, str(values[key])) for a in args]
    return args


def study_by_file(tmp_path: Path, data_dir: Path) -> Path:
    """The shipped workflow, and a study of one's own given by file with the data on the command
    line, by the README's command (the tiny study of .test/config.yaml as the study file, its
    per-run figures for the headline runs only: the tests here read none of them)."""
    workdir = copy_workflow(tmp_path / "workflow")
    study = workdir / "my-study.yaml"
    shutil.copy(TEST_CONFIG_PATH, study)
    with open(study, "a") as extra:
        extra.write("per_run_outputs: headline\n")
    args = readme_command("--configfile", "studies/quick.yaml", "--config")
    run_snakemake(workdir, *fill(args, study=study, data=data_dir))
    return workdir


def predict_command(folder: Path, *config: str) -> list[str]:
    """The README's predict command for ``folder``, with more --config values."""
    return [*fill(readme_command("predict"), images=folder), *config]


@pytest.mark.workflow
@pytest.mark.realdata
def test_the_readmes_follow_up_commands_after_a_real_data_study_change_no_run(fruits_dir, tmp_path):
    """The data-loss scenario: predict without data_dir retrained the real runs on demo data."""
    workdir = study_by_file(tmp_path, fruits_dir)
    before = run_hashes(workdir)
    record = yaml.safe_load((workdir / "results/study.yaml").read_text())
    assert record["data"]["folder"] == str(fruits_dir.resolve()) and record["data"]["n_train"] == 1470
    assert record["study_files"] == [str(workdir / "my-study.yaml")]
    assert list(record["config"]["networks"]) == ["two_layer", "three_layer"]

    predict = run_snakemake(workdir, *predict_command(fruits_dir / "Data_test"))
    assert "DEMO" not in output_of(predict)
    predictions = sorted((workdir / "results/predictions").glob("Data_test-*/study/pca2/*/predictions.csv"))
    assert len(predictions) == 2 and all(len(p.read_text().splitlines()) == 1 + 498 for p in predictions)
    run_snakemake(workdir, *readme_command("--report"))
    report = (workdir / "results/report.html").read_text()
    assert str(fruits_dir) in report and "DEMO DATA" not in report and "make_demo_data" not in report
    assert "Nothing to be done" in output_of(run_snakemake(workdir, "--cores", "2"))
    assert run_hashes(workdir) == before
    summary = (workdir / "results/summary.md").read_text()
    assert f"Data: {fruits_dir.resolve()} (1470 training and 498 test images, read mode color)" in summary
    assert "recorded in `study.yaml`" in summary


@pytest.fixture(scope="module")
def own_study(tmp_path_factory):
    """A study by file on a small image folder (3 classes x 10 training, 4 test images)."""
    root = tmp_path_factory.mktemp("own-study")
    data = make_dataset(root / "data", n_train=10, n_test=4, shape=(8, 8, 3))
    workdir = study_by_file(root, data)
    return workdir, data


@pytest.mark.workflow
@pytest.mark.parametrize("args", [
    ["--config", "data_dir="],  # the demo data
    ["--config", "read_mode=grey"],
    ["--configfile", "{study}"],  # a study file without the data still has it from the record
    ["--config", "data_dir={other}"],
])
def test_a_command_asking_for_other_data_stops_before_any_job(own_study, tmp_path, args):
    workdir, data = own_study
    other = make_dataset(tmp_path / "other", n_train=10, n_test=4, shape=(8, 8, 3), seed=5)
    args = [a.format(study=workdir / "my-study.yaml", other=other) for a in args]
    before = run_hashes(workdir, "results")
    result = run_snakemake(workdir, "--cores", "2", *args, check=False)
    if args[0] == "--configfile":
        assert result.returncode == 0 and "Nothing to be done" in output_of(result)
    else:
        assert result.returncode == 1, output_of(result)[-3000:]
        message = output_of(result)
        assert f"Error: results/ holds the study of {data} (30 training and 12 test images" in message
        assert "Ways on" in message and not FRAME.search(message), message[-3000:]
    assert run_hashes(workdir, "results") == before


@pytest.mark.workflow
def test_results_of_an_earlier_pcann_are_guarded_by_what_their_images_file_says(own_study, tmp_path):
    workdir, data = own_study
    earlier = tmp_path / "earlier"
    shutil.copytree(workdir, earlier, ignore=shutil.ignore_patterns(".snakemake"))
    (earlier / "results/study.yaml").unlink()
    result = run_snakemake(earlier, "--dry-run", "--cores", "1", "--configfile", str(earlier / "my-study.yaml"),
                           check=False)
    message = output_of(result)
    assert result.returncode == 1 and "results/ holds the study of a data folder (not recorded) (30 training " \
        "and 12 test images), made by an earlier pcann" in message, message[-3000:]
    assert "give the same data_dir as that study" in message and not FRAME.search(message)
    result = run_snakemake(earlier, "--dry-run", "--cores", "1", "--configfile", str(earlier / "my-study.yaml"),
                           "--config", f"data_dir={data}")
    assert "Error" not in output_of(result)


@pytest.mark.workflow
def test_changed_images_stop_the_run_and_another_folder_keeps_both_studies(own_study, tmp_path):
    workdir, data = own_study
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    study = tmp_path / "study"
    shutil.copytree(workdir, study, ignore=shutil.ignore_patterns(".snakemake"))
    record = study / "results/study.yaml"
    record.write_text(record.read_text().replace(str(data), str(changed)))
    run_snakemake(study, "--dry-run", "--cores", "1")  # the copy's images as recorded: runs
    write_image(changed / "Data_train/apple/added.png", np.zeros((8, 8, 3), np.uint8))
    result = run_snakemake(study, "--dry-run", "--cores", "1", check=False)
    assert result.returncode == 1 and "the images in the folder changed" in output_of(result)

    # the changed images as a second study beside the first, in another folder
    other = tmp_path / "other-study"
    result = run_snakemake(workdir, "--directory", str(other), "--dry-run", "--cores", "1",
                           "--configfile", str(workdir / "my-study.yaml"), "--config", f"data_dir={changed}")
    assert "jobs would run" in output_of(result) and not (other / "results").exists()


def _predict(workdir, folder, *config, check=True):
    return run_snakemake(workdir, *predict_command(folder, *config), check=check)


@pytest.mark.workflow
def test_predictions_are_kept_per_folder_and_bad_files_are_listed_not_fatal(own_study, tmp_path):
    workdir, data = own_study
    runs = run_hashes(workdir)
    first, second = tmp_path / "a" / "new", tmp_path / "b" / "new"
    shutil.copytree(data / "Data_test", first)
    shutil.copytree(data / "Data_test" / "apple", second / "apple")
    (second / "apple" / "x.png").write_text("a text file named like an image")
    write_image(second / "big.png", np.zeros((64, 64, 3), np.uint8))
    (second / "notes.txt").write_text("not an image")

    _predict(workdir, first)
    result = _predict(workdir, second)
    assert "3 files left out" in output_of(result)
    predictions = workdir / "results/predictions"
    out_first = sorted(predictions.glob(f"{folder_key(first)}/study/pca2/*"))
    out_second = sorted(predictions.glob(f"{folder_key(second)}/study/pca2/*"))
    assert len(out_first) == len(out_second) == 2
    assert len((out_first[0] / "predictions.csv").read_text().splitlines()) == 1 + 12
    assert len((out_second[0] / "predictions.csv").read_text().splitlines()) == 1 + 4
    rejected = (out_second[0] / "rejected.csv").read_text()
    assert rejected.startswith("file,reason\n") and len(rejected.splitlines()) == 4
    assert "notes.txt,\"not an image file" in rejected and "apple/x.png" in rejected
    assert "big.png" in rejected and "has shape 64x64 with 3 channels" in rejected
    kept = run_hashes(workdir, "results/predictions")

    # strict: stops at the first bad file before any job; nothing earlier is lost
    result = _predict(workdir, second, "predict_strict=true", check=False)
    assert result.returncode == 1 and "not an image file" in output_of(result)
    assert not FRAME.search(output_of(result)), output_of(result)[-3000:]
    (second / "notes.txt").unlink()
    result = _predict(workdir, second, "predict_strict=true", check=False)
    assert result.returncode == 1 and "x.png is not a readable image" in output_of(result)
    assert run_hashes(workdir, "results/predictions") == kept
    assert run_hashes(workdir) == runs


@pytest.mark.workflow
def test_predict_uses_trained_runs_only_and_their_canonical_names(own_study, tmp_path):
    workdir, data = own_study
    folder = data / "Data_test"
    run = "study/pca2/hidden=8_epochs=20_lr=0.05_batch=8_seed=1"
    _predict(workdir, folder, f"predict_runs=[{run}]")
    same = _predict(workdir, folder, f"predict_runs=[{run.replace('0.05', '0.0500')}]")
    assert "Nothing to be done" in output_of(same)
    assert [p.name for p in (workdir / "results/predictions").glob(f"{folder_key(folder)}/study/pca2/*")] == [
        run.rsplit("/", 1)[1]]

    typo = _predict(workdir, folder, f"predict_runs=[{run.replace('hidden=8', 'hidden=999')}]", check=False)
    message = output_of(typo)
    assert typo.returncode == 1 and "hidden=999_epochs=20_lr=0.05_batch=8_seed=1 is not a trained run" in message
    assert f"closest trained runs: {run}" in message
    assert not (workdir / "results/runs/study/pca2/hidden=999_epochs=20_lr=0.05_batch=8_seed=1").exists()


@pytest.mark.workflow
def test_predict_never_retrains_a_run_whose_settings_changed(own_study):
    workdir, data = own_study
    before = run_hashes(workdir)
    config = workdir / "config.yaml"
    shipped = config.read_text()
    try:
        config.write_text(shipped.replace("eval_every: 1 ", "eval_every: 2 "))
        result = _predict(workdir, data / "Data_test", check=False)
    finally:
        config.write_text(shipped)
    assert result.returncode == 1, output_of(result)[-3000:]
    assert re.search(r"Error: predict would retrain \d+ finished runs", output_of(result))
    assert run_hashes(workdir) == before


@pytest.mark.workflow
@pytest.mark.parametrize(
    "config, expected",
    [
        ([], "Error: the predict target needs the images to classify: snakemake --cores 4 predict --config predict_dir=PATH"),
        (["predict_dir={missing}"], "Error: config key predict_dir: {missing} does not exist; expected a folder of images"),
        (["predict_dir={empty}"], "Error: config key predict_dir: {empty} contains no images"),
        (["predict_dir={empty}/..", "predict_runs=[two_layer]"], "Error: config key predict_runs: 'two_layer' is not a run"),
    ],
)
def test_predict_errors_are_one_line_without_a_traceback(own_study, tmp_path, config, expected):
    workdir, _ = own_study
    empty, missing = tmp_path / "empty", tmp_path / "missing"
    empty.mkdir()
    write_image(tmp_path / "one.png", np.zeros((8, 8, 3), np.uint8))
    args = [c.format(empty=empty, missing=missing) for c in config]
    result = run_snakemake(workdir, "--cores", "1", "predict", *(["--config", *args] if args else []), check=False)
    output = output_of(result)
    assert result.returncode == 1
    assert expected.format(empty=empty, missing=missing) in output, output[-3000:]
    assert not FRAME.search(output), output[-3000:]


def test_the_record_is_not_a_file_a_user_edits_into_a_traceback(tmp_path):
    from pcann.workflow.study_record import read_record

    (tmp_path / "study.yaml").write_text("written: today\n")
    with pytest.raises(StudyMismatch, match="is not a pcann study record"):
        read_record(tmp_path)
    assert read_record(tmp_path / "nothing") is None


@pytest.mark.workflow
def test_the_readmes_study_file_dry_run_plans_only_its_own_network(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    shutil.copytree(REPO / "studies", workdir / "studies")
    result = run_snakemake(workdir, *readme_command("--configfile", "studies/quick.yaml", "--dry-run"))
    output = output_of(result)
    assert re.search(r"\btrain 9\b", output), output[-3000:]  # the cost block's jobs by rule
    assert "hidden=8-" not in output and not re.search(r"hidden=\d+-\d+", output)  # two_layer only
