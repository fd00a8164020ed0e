# Helpers of rules/model.smk (model files, test-set evaluation) and rules/predict.smk
# (classifying new images with them).

import re


def run_name(run_dir):
    """A run as tables, reports and predict_runs name it: <protocol>/pca<n>/<run id>."""
    return run_dir[len(RUNS_ROOT) + 1 :]


def run_label(wildcards):
    return run_name(Setting.from_wildcards(wildcards).run_dir)


PREDICTIONS_ROOT = "results/predictions"
PREDICTION_DIR = (
    f"{PREDICTIONS_ROOT}/{{protocol}}/pca{{n_components}}/{RUN_ID_TEMPLATE}"
)
#: A run as predict_runs names it: <protocol>/pca<n>/<run id> (a results/runs/ prefix is allowed).
RUN_NAME = re.compile(
    r"(?:results/runs/)?("
    + "|".join(map(re.escape, PROTOCOLS))
    + r")/pca[1-9][0-9]*/"
    + RUN_ID_TEMPLATE.format(**{k: f"(?:{v})" for k, v in WILDCARD_PATTERNS.items()})
)


def predict_run_names():
    """The runs the predict target uses: predict_runs, or the headline runs."""
    names = config["predict_runs"] or [
        run_name(row.setting.run_dir) for row in PLAN.headline
    ]
    for name in names:
        if not RUN_NAME.fullmatch(name):
            raise ValueError(
                f"config key predict_runs: {name!r} is not a run; expected "
                "<protocol>/pca<n>/hidden=<h>_epochs=<e>_lr=<lr>_batch=<b>_seed=<s>, as under "
                "results/runs/"
            )
    return [name.removeprefix("results/runs/") for name in dict.fromkeys(names)]


def predict_dir():
    if config["predict_dir"] is None:
        raise ValueError(
            "the predict target needs the images to classify: "
            "snakemake --cores 4 predict --config predict_dir=PATH"
        )
    return config["predict_dir"]


def predict_targets(wildcards):
    predict_dir()
    return [
        f"{PREDICTIONS_ROOT}/{name}/{kind}"
        for name in predict_run_names()
        for kind in ("predictions.csv", "evaluation.md")
    ]


def predict_inputs(wildcards):
    """The run's model file and every image under predict_dir (a new or edited image re-runs
    the prediction); an empty or missing folder stops here, naming it."""
    from pcann.model import ModelError, find_images  # here: OpenCV only when predicting

    try:
        images = find_images(predict_dir())
    except ModelError as exc:
        raise ValueError(f"config key predict_dir: {exc}") from None
    return {
        "model": f"{Setting.from_wildcards(wildcards).run_dir}/model.npz",
        "images": [str(p) for p in images],
    }
