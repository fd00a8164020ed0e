# Configuration checks, the study plan, and helpers shared by every rules file.
import math
import os
import sys
from pathlib import Path

import snakemake.utils
from snakemake.logging import logger

sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))
from pcann.config import (  # noqa: E402
    check_config,
    check_plan_fits_data,
    load_config_file,
)
from pcann.data import image_files, read_image  # noqa: E402
from pcann.demo import DEMO_BANNER, DEMO_CLASSES  # noqa: E402
from pcann.grid import (  # noqa: E402
    PLOT_RUNS_AUTO_LIMIT,
    RUN_ID_TEMPLATE,
    RUNS_ROOT,
    WILDCARD_PATTERNS,
    Setting,
    estimated_seconds,
    plot_runs_mode,
    plotted_settings,
    schedule_estimates,
    shorter_runs,
    study_plan,
    swept_epochs,
    unique_settings,
)

# config.yaml is read here rather than with `configfile:` so that a YAML error names the file
# and line; values given with --configfile or --config (already in `config`) take precedence.
_overrides = dict(config)
config.clear()
config.update(load_config_file("config.yaml"))
snakemake.utils.update_config(config, _overrides)

CONFIG_SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")
# Our check first, for one readable line per problem; then Snakemake's, which fills defaults.
check_config(config, CONFIG_SCHEMA)
validate(config, CONFIG_SCHEMA)


def check_data_dir():
    """Stop before any job when the configured data folder cannot be the study's input."""
    data_dir = Path(config["data_dir"])
    if not data_dir.is_dir():
        raise ValueError(
            f"config key data_dir: {str(data_dir)!r} does not exist or is not a folder; "
            "expected a folder holding the sub-folders "
            f"{config['train_folder']!r} and {config['test_folder']!r}"
        )
    for key in ("train_folder", "test_folder"):
        if not (data_dir / config[key]).is_dir():
            raise ValueError(
                f"config key {key}: {str(data_dir / config[key])!r} does not exist or is "
                "not a folder; expected one sub-folder per class inside it"
            )
    return data_dir


def check_results_writable():
    """Stop with one line when results/ exists but cannot be written (read-only, no access)."""
    import tempfile

    if Path("results").is_dir():
        try:
            tempfile.TemporaryFile(dir="results").close()
        except OSError as exc:
            raise ValueError(
                f"cannot write to {Path('results').resolve()}: {exc.strerror}; "
                "every output of the workflow goes there"
            ) from None


check_results_writable()

USE_DEMO = config["data_dir"] is None
DATA_LABEL = DEMO_BANNER if USE_DEMO else None
if USE_DEMO:
    DATA_DIR = Path("results/demo_data")
    IMAGE_FILES = {}
    N_TRAIN_FOLDER = len(DEMO_CLASSES) * config["demo"]["n_train_per_class"]
    N_FEATURES = config["demo"]["image_size"] ** 2 * {"grey": 1, "color": 3}.get(
        config["read_mode"], 4
    )
    logger.warning(
        f"\n*** {DEMO_BANNER} ***\n"
        "*** No data_dir configured: running on the embedded demo data set.\n"
        "*** For real data: snakemake --cores 4 --config data_dir=PATH\n"
    )
else:
    DATA_DIR = check_data_dir()
    # Listed once at start: the loader's inputs, and the sizes the plan is checked against.
    IMAGE_FILES = {
        key: image_files(DATA_DIR / config[key])
        for key in ("train_folder", "test_folder")
    }
    N_TRAIN_FOLDER = len(IMAGE_FILES["train_folder"])
    N_FEATURES = (
        read_image(IMAGE_FILES["train_folder"][0], config["read_mode"]).size
        if IMAGE_FILES["train_folder"]
        else 0
    )

#: The part of the configuration that defines which runs exist (aggregation rules' params).
STUDY_CONFIG = {
    key: config[key]
    for key in (
        "protocol",
        "n_components",
        "networks",
        "headline",
        "seeds",
        "compare_protocols",
        "components_sweep",
        "full_factorial",
    )
}
PLAN = study_plan(STUDY_CONFIG)
SETTINGS = unique_settings(PLAN)
# Impossible batch sizes or component counts stop the run here, before any job.
check_plan_fits_data(SETTINGS, config, N_TRAIN_FOLDER, N_FEATURES)

#: Training keys that change how the workflow runs, not what a run computes.
WORKFLOW_TRAINING_KEYS = ("plot_training_points", "continue_shorter_runs")
#: Shared training details; changing one re-runs every training job (they are its params).
TRAINING_PARAMS = {
    k: v for k, v in config["training"].items() if k not in WORKFLOW_TRAINING_KEYS
}
RUN_DIR = f"{RUNS_ROOT}/{{protocol}}/pca{{n_components}}/{RUN_ID_TEMPLATE}"

#: run folder -> the folder of the shorter run it continues (epochs sweeps; see shorter_runs)
CONTINUED = (
    shorter_runs(SETTINGS, swept_epochs(config))
    if config["training"]["continue_shorter_runs"]
    else {}
)
SHORTER_RUN = {run.run_dir: shorter.run_dir for run, shorter in CONTINUED.items()}
#: run folder -> (own, critical path) estimated seconds of its training job
SCHEDULE = {
    run.run_dir: estimate
    for run, estimate in schedule_estimates(SETTINGS, CONTINUED, N_TRAIN_FOLDER).items()
}


wildcard_constraints:
    **WILDCARD_PATTERNS,
    protocol="study|train-only",
    n_components=r"[1-9][0-9]*",


def data_inputs(wildcards):
    """The image files the loader reads, so that editing one re-runs the loading."""
    if USE_DEMO:
        return {"demo": "results/demo_data/MANIFEST.sha256"}
    return {"images": [str(p) for files in IMAGE_FILES.values() for p in files]}


def pca_outputs(protocol, n_components):
    """Everything the PCA stage produces for one protocol and component count."""
    prefix = f"results/figures/pca/{protocol}-pca{n_components}"
    return [
        f"results/features/{protocol}/pca{n_components}/features.npz",
        *expand(
            "{prefix}/{name}.{ext}",
            prefix=prefix,
            name=["explained_variance", "projection"],
            ext=["png", "svg"],
        ),
    ]


def run_dir_of(wildcards):
    return f"{RUNS_ROOT}/{wildcards.protocol}/pca{wildcards.n_components}/" + (
        RUN_ID_TEMPLATE.format(**{k: wildcards[k] for k in WILDCARD_PATTERNS})
    )


def training_estimate(wildcards):
    """(own, critical path) estimated seconds of a training job; a run outside the plan has no
    continuations."""
    estimate = SCHEDULE.get(run_dir_of(wildcards))
    if estimate is None:
        seconds = estimated_seconds(Setting.from_wildcards(wildcards), N_TRAIN_FOLDER)
        estimate = (seconds, seconds)
    return estimate


def shorter_run_input(wildcards):
    """The weights of the shorter run this one continues, if any. `ancient`: a re-run of the
    shorter run (which gives the same weights) does not re-run this one."""
    shorter = SHORTER_RUN.get(run_dir_of(wildcards))
    return {"shorter_run": ancient(f"{shorter}/weights.npz")} if shorter else {}


#: Priority of the aggregation jobs (tables, study figures, summary), above the per-run figure
#: jobs (0): they start as soon as the last training ends and run beside the remaining figure
#: jobs, instead of after them at the end of the study, where only one core has work.
AGGREGATION_PRIORITY = 1


def training_priority(wildcards):
    """The longest chain of work first: with more jobs than cores, a long run (or a short run
    that longer runs continue) started last would leave the other cores idle at the end of the
    study (critical-path scheduling). Every training outranks the figure jobs and the
    aggregation, which waits for all of them: a short run left among the figure jobs would hold
    the aggregation up until the end.
    """
    return AGGREGATION_PRIORITY + 1 + int(training_estimate(wildcards)[1])


def training_runtime_minutes(wildcards):
    """Scheduler time limit of one training job: three times the estimate, at least 5 min."""
    return max(5, math.ceil(3 * training_estimate(wildcards)[0] / 60))


def run_figures(setting):
    run_dir = setting.run_dir
    return [
        f"{run_dir}/{name}.{ext}"
        for name in ("curves", "decision_regions")
        for ext in ("png", "svg")
    ]


# --- what the aggregation rules produce, derived once from the plan ---------------------------
HEADLINE = [row for row in PLAN if row.study == "headline"]
NETWORKS = list(config["networks"])
TABLE_NAMES = list(
    dict.fromkeys(
        f"sweep_{row.network}_{row.parameter}" if row.study == "sweep" else row.study
        for row in PLAN
    )
)
LR_SWEEP_NETWORKS = [
    n for n in NETWORKS if config["networks"][n].get("sweep", {}).get("lr")
]
SWEEP_NETWORKS = list(
    dict.fromkeys(row.network for row in PLAN if row.study == "sweep")
)
COMPARISONS = [s for s in ("protocols", "components") if s in TABLE_NAMES]


def headline_figure_prefixes():
    return [
        f"results/figures/headline/{i + 1}_{row.network}"
        for i, row in enumerate(HEADLINE)
    ]


PLOT_RUNS = plot_runs_mode(config["plot_runs"], len(SETTINGS))
PLOTTED_RUNS = plotted_settings(PLAN, PLOT_RUNS)
# Once, from the main process: every job's own process parses this file again.
if (
    workflow.is_main_process
    and config["plot_runs"] == "auto"
    and PLOT_RUNS == "headline"
):
    logger.warning(
        f"plot_runs: auto: {len(SETTINGS)} training runs, more than {PLOT_RUNS_AUTO_LIMIT}: "
        "per-run curves and decision regions are drawn for the headline runs only "
        f"({len(PLOTTED_RUNS)} of {len(SETTINGS)}); plot_runs: all draws them for every run"
    )


def figure_pair(prefix):
    return [f"{prefix}.png", f"{prefix}.svg"]


def study_outputs():
    """Every file of the finished study: what `rule all` asks for.

    Every run's metrics.json is left out: runs.csv needs them all already, and each path asked
    for twice is one more lookup per run when Snakemake plans. The figures are all listed, as
    Snakemake re-runs a job only for its missing outputs that some job asks for.
    """
    files = []
    for setting in PLOTTED_RUNS:
        files += run_figures(setting)
        files += evaluation_outputs(setting)  # rules/model_common.smk
    files += ["results/tables/model_files.csv", "results/tables/model_files.md"]
    files += pca_outputs(config["protocol"], config["n_components"])
    files += expand("results/tables/{name}.{ext}", name=TABLE_NAMES, ext=["csv", "md"])
    files += ["results/tables/runs.csv", "results/summary.md"]
    files += figure_pair("results/figures/data/samples")
    return files


def report_category(table_name):
    return "sweeps" if table_name.startswith("sweep_") else "runs"


def report_labels(table_name):
    """Labels of a table in the HTML report: the same two columns as the figures beside it."""
    for network in NETWORKS:
        prefix = f"sweep_{network}_"
        if table_name.startswith(prefix):
            return {"network": network, "content": f"table: {table_name[len(prefix):]}"}
    return {"network": "headline runs", "content": f"table: {table_name}"}
