# Helpers of rules/model.smk (model files, test-set evaluation) and rules/predict.smk
# (classifying new images with them).

import difflib
import re
from types import SimpleNamespace


def run_name(run_dir):
    """A run as tables, reports and predict_runs name it: <protocol>/pca<n>/<run id>."""
    return run_dir[len(RUNS_ROOT) + 1 :]


def run_label(wildcards):
    return run_name(Setting.from_wildcards(wildcards).run_dir)


#: One folder of predictions per classified folder (its name and a hash of its absolute path),
#: then one per run: classifying another folder never overwrites these.
PREDICTION_DIR = f"{PREDICTIONS_ROOT}/{{predict_folder}}/{{protocol}}/pca{{n_components}}/{RUN_ID_TEMPLATE}"
#: A run as predict_runs names it: <protocol>/pca<n>/<run id> (a results/runs/ prefix is allowed).
RUN_NAME = re.compile(
    rf"(?:{re.escape(RUNS_ROOT)}/)?(?P<protocol>"
    + "|".join(map(re.escape, PROTOCOLS))
    + r")/pca(?P<n_components>[1-9][0-9]*)/"
    + RUN_ID_TEMPLATE.format(
        **{k: f"(?P<{k}>{v})" for k, v in WILDCARD_PATTERNS.items()}
    )
)


def trained_runs():
    """Every run under results/runs/ whose training finished, as predict_runs names them."""
    return sorted(
        run_name(str(path.parent))
        for path in Path(RUNS_ROOT).glob("*/pca*/*/metrics.json")
    )


def canonical_run_name(name):
    """A predict_runs entry in the form its run folder has (lr=0.0050 is lr=0.005)."""
    match = RUN_NAME.fullmatch(name)
    if not match:
        raise PcannError(
            f"config key predict_runs: {name!r} is not a run; expected "
            "<protocol>/pca<n>/hidden=<h>_epochs=<e>_lr=<lr>_batch=<b>_seed=<s>, as under "
            f"{RUNS_ROOT}/"
        )
    return run_name(
        Setting.from_wildcards(SimpleNamespace(**match.groupdict())).run_dir
    )


def predict_run_names():
    """The runs the predict target uses: predict_runs, or the headline runs."""
    if config["predict_runs"]:
        return list(dict.fromkeys(map(canonical_run_name, config["predict_runs"])))
    return [run_name(row.setting.run_dir) for row in PLAN.headline]


def check_predict_runs_trained(names):
    """Stop unless every run to predict with has finished training: predict never trains."""
    trained = set(trained_runs())
    for name in names:
        if name in trained:
            continue
        if config["predict_runs"]:
            close = difflib.get_close_matches(name, sorted(trained), n=3, cutoff=0.0)
            raise PcannError(
                f"config key predict_runs: {name} is not a trained run under {RUNS_ROOT}/; "
                "predict uses finished runs and never trains one; closest trained runs: "
                + (
                    ", ".join(close)
                    if close
                    else "none (run the study first: snakemake --cores 4)"
                )
            )
        raise PcannError(
            f"predict uses the headline run {name}, which is not trained yet; run the study first "
            "(snakemake --cores 4), or name trained runs with --config predict_runs=..."
        )


def predict_dir():
    if config["predict_dir"] is None:
        stop(
            "the predict target needs the images to classify: "
            "snakemake --cores 4 predict --config predict_dir=PATH"
        )
    return config["predict_dir"]


def predict_targets(wildcards):
    folder = folder_key(predict_dir())
    return [
        f"{PREDICTIONS_ROOT}/{folder}/{name}/{kind}"
        for name in predict_run_names()
        for kind in ("predictions.csv", "evaluation.md")
    ]


def predict_inputs(wildcards):
    """The run's model file and every image under predict_dir (a new or edited image re-runs
    the prediction)."""
    return {
        "model": f"{Setting.from_wildcards(wildcards).run_dir}/model.npz",
        "images": [str(p) for p in PREDICT_FILES.images],
    }


# Checked once, when predict_dir is given (it belongs to one command): the folder, the runs to
# predict with, and in strict mode every image, before any job, so that nothing is trained and
# no earlier prediction is removed by a job that could only fail.
PREDICT_FILES = None
if config["predict_dir"] is not None:
    from pcann.model.prediction import check_images_readable, list_predict_files

    try:
        PREDICT_FILES = list_predict_files(
            config["predict_dir"], "config key predict_dir"
        )
        if workflow.is_main_process:
            _predict_runs = predict_run_names()
            check_predict_runs_trained(_predict_runs)
            if config["predict_strict"]:
                check_images_readable(
                    PREDICT_FILES,
                    [f"{RUNS_ROOT}/{name}/model.npz" for name in _predict_runs],
                )
    except PcannError as error:
        stop(error)
