# The configuration, the study plan built from it, and the helpers the other rules files use.
# Snakemake shares one namespace between included files; what the rules files take from here:
#   paths        RESULTS, DEMO_DATA, DEMO_MANIFEST, IMAGES, SPLIT, LOGS, BENCHMARKS, FIGURES,
#                RUNS_TABLE, SUMMARY, REPORT_FRONT, MODEL_FILES_TABLE, PLAN_FILE, RUN_DIR,
#                FEATURES_DIR, PREDICTION_DIR, zscore_file, features_file (pcann.study.paths)
#   the study    PLAN, DATA_SIZE, PCA_SOLVER, DATA_DIR, IMAGE_SCAN, DATA_LABEL, TRAINING_PARAMS
#   inputs       data_inputs, shorter_run_input, predict_targets, predict_inputs, predict_dir,
#                search_rung_inputs, search_result_inputs (a search's rungs, read as they are decided)
#   resources    training_priority, training_runtime_minutes, training_mem_mb, AGGREGATION_PRIORITY
#   Slurm        SLURM_RUN, SLURM_PARTITION, training_group, slurm_training_jobs
#   the report   for_report, reported_figures, headline_figure_files, report_category,
#                report_labels, run_label
#   hooks        check_predict_trains_nothing, record_study (the Snakefile's onstart)
import difflib
import functools
import json
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

from snakemake.logging import logger

sys.path.insert(0, os.path.join(workflow.basedir, "scripts"))
from pcann import PcannError  # noqa: E402
from pcann.workflow.config import (  # noqa: E402
    canonical_config,
    check_config,
    check_data_dir,
    check_plan_fits_data,
    check_results_writable,
    load_config_file,
    load_schema,
)
from pcann.data.images import read_image, scan_image_folders  # noqa: E402
from pcann.data.demo import DEMO_BANNER  # noqa: E402
from pcann.preprocessing.features import PROTOCOLS  # noqa: E402
from pcann.study.grid import RUN_ID_TEMPLATE  # noqa: E402
from pcann.study.grid import WILDCARD_PATTERNS, Setting  # noqa: E402
from pcann.study.paths import (  # noqa: E402
    BENCHMARKS,
    DEMO_DATA,
    DEMO_MANIFEST,
    FIGURES,
    IMAGES,
    LOGS,
    MODEL_FILES_TABLE,
    PLAN_FILE,
    PREDICTIONS_ROOT,
    REPORT_FRONT,
    RESULTS,
    RUNS_ROOT,
    RUNS_TABLE,
    SPLIT,
    SUMMARY,
    features_dir,
    features_file,
    zscore_file,
)
from pcann.study.plan import PER_RUN_OUTPUTS_AUTO_LIMIT, StudyPlan  # noqa: E402
from pcann.search.halving import kept_names, read_rung_table  # noqa: E402
from pcann.study.resources import (  # noqa: E402
    DataSize,
    load_images_mem_mb,
    load_images_runtime,
    pca_solver,
    preprocessing_mem_mb,
    preprocessing_runtime,
)
from pcann.workflow.study_record import (  # noqa: E402
    check_same_data,
    data_identity,
    deprecation_notices,
    describe_data,
    earlier_record,
    folder_key,
    read_record,
    record_text,
    resolve_config,
    write_record,
)
from pcann.nn.training import shared_params  # noqa: E402
from pcann.workflow.packing import (  # noqa: E402
    max_minutes_published,
    pack_trainings,
    publish_max_minutes,
    requested_partition,
)


# --- configuration ----------------------------------------------------------------------------
def stop(error):
    """End the run with the one-line message of an error the user can fix: no traceback frame,
    no job started, nothing written."""
    logger.error(f"Error: {error}")
    raise SystemExit(1)


# config.yaml is read here rather than with `configfile:` so that a YAML error names the file and
# line, and so that a command without --configfile can repeat the study recorded in results/
# (pcann.workflow.study_record): follow-up commands need no repeated flags. A study file given with
# --configfile replaces the shipped networks instead of merging into them.
try:
    STUDY_RECORD = read_record(RESULTS)
    _resolved, STUDY_FILES, STUDY_VALUES = resolve_config(
        load_config_file(os.path.join(workflow.basedir, "config.yaml")),
        workflow.config_settings.configfiles,
        dict(workflow.config_settings.config),
        STUDY_RECORD,
    )
    config.clear()
    config.update(_resolved)
    if workflow.is_main_process:
        for _notice in deprecation_notices(
            [workflow.config_settings.config]
            + [load_config_file(path) for path in STUDY_FILES]
        ):
            logger.warning(_notice)

    CONFIG_SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")
    # Our check first, for one readable line per problem; then Snakemake's, which fills defaults.
    check_config(config, CONFIG_SCHEMA)
except PcannError as error:
    stop(error)
validate(config, CONFIG_SCHEMA)
# Keys in the schema's order and numbers as numbers: the same values, however they are written
# or ordered, give the same rule params, so they re-run nothing.
_canonical = canonical_config(config, load_schema(CONFIG_SCHEMA))
config.clear()
config.update(_canonical)
try:
    check_results_writable(RESULTS)
except PcannError as error:
    stop(error)

# --- data -------------------------------------------------------------------------------------
USE_DEMO = config["data_dir"] is None
DATA_LABEL = DEMO_BANNER if USE_DEMO else None
if USE_DEMO:
    DATA_DIR = Path(DEMO_DATA)
    IMAGE_SCAN = None
    N_CLASSES = config["demo"]["n_classes"]
    N_TRAIN_FOLDER = N_CLASSES * config["demo"]["n_train_per_class"]
    N_TEST = N_CLASSES * config["demo"]["n_test_per_class"]
    N_FEATURES = config["demo"]["image_size"] ** 2 * {"grey": 1, "color": 3}.get(
        config["read_mode"], 4
    )
    ITEMSIZE = 1
    logger.warning(
        f"\n*** {DEMO_BANNER} ***\n"
        "*** No data_dir configured: running on the embedded demo data set.\n"
        "*** For real data: snakemake --cores 4 --config data_dir=PATH\n"
    )
else:
    try:
        DATA_DIR = check_data_dir(config)
    except PcannError as error:
        stop(error)
    # One stat per image, no decoding: the sizes the plan is checked against, and a fingerprint
    # that re-runs the loading when an image is added, removed or changed.
    IMAGE_SCAN = scan_image_folders(
        DATA_DIR, [config["train_folder"], config["test_folder"]]
    )
    N_TRAIN_FOLDER = IMAGE_SCAN.counts[config["train_folder"]]
    N_TEST = IMAGE_SCAN.counts[config["test_folder"]]
    N_CLASSES = IMAGE_SCAN.n_classes
    _first = (
        read_image(IMAGE_SCAN.first_image, config["read_mode"])
        if IMAGE_SCAN.first_image
        else None
    )
    N_FEATURES = _first.size if _first is not None else 0
    ITEMSIZE = _first.itemsize if _first is not None else 1

#: What identifies the data; a command asking for other data than results/ holds stops here.
STUDY_DATA = data_identity(
    config,
    DATA_DIR,
    IMAGE_SCAN.fingerprint if IMAGE_SCAN else None,
    {"n_train": N_TRAIN_FOLDER, "n_test": N_TEST, "n_classes": N_CLASSES},
)
if workflow.is_main_process and not config["replace_results"]:
    try:
        # results/ of an earlier pcann has no record: what its images file tells is checked
        _made_by = STUDY_RECORD or earlier_record()
        if _made_by:
            check_same_data(_made_by, STUDY_DATA, RESULTS)
    except PcannError as error:
        stop(error)

#: The data's size, from which the preprocessing jobs' solver, memory and time limits follow.
DATA_SIZE = DataSize(N_TRAIN_FOLDER, N_TEST, N_FEATURES, N_CLASSES, ITEMSIZE)
PCA_SOLVER = pca_solver(config["pca_solver"], DATA_SIZE)

# --- the study plan ---------------------------------------------------------------------------
# On Slurm (the run names a slurm_partition, as profiles/slurm does), a run longer than the
# partition's MaxTime is trained as a chain of shorter runs; the main process reads MaxTime once
# and every job's Snakemake gets it from the environment (pcann.workflow.packing).
SLURM_RUN, SLURM_PARTITION = requested_partition(workflow)


def trained_from(setting):
    """The epoch a finished run continued from (0: from the start; its timing.json says), or
    None for an unfinished one: a finished run keeps the chain it was trained with."""
    if not os.path.exists(f"{setting.run_dir}/metrics.json"):
        return None
    try:
        with open(f"{setting.run_dir}/timing.json") as timing:
            return int(json.load(timing)["first_epoch"]) - 1
    except (OSError, ValueError, KeyError):
        return 0


if workflow.is_main_process and SLURM_RUN:
    publish_max_minutes(SLURM_PARTITION)
PLAN = StudyPlan(
    config,
    N_TRAIN_FOLDER,
    N_CLASSES,
    max_job_minutes=max_minutes_published(),
    trained_from=trained_from,
    # tests/test_slurm.py only: runs of seconds get the time limits of runs of minutes
    estimate_scale=float(os.environ.get("PCANN_ESTIMATE_SCALE", "1")),
)
# Impossible batch sizes or component counts stop the run here, before any job.
try:
    check_plan_fits_data(
        PLAN.settings + PLAN.search_settings, config, N_TRAIN_FOLDER, N_FEATURES
    )
except PcannError as error:
    stop(error)
#: The training options shared by every run; changing one re-runs every training job.
TRAINING_PARAMS = shared_params(config["training"])
RUN_DIR = f"{RUNS_ROOT}/{{protocol}}/pca{{n_components}}/{RUN_ID_TEMPLATE}"
#: The folder of one protocol's PCA, as a wildcard pattern.
FEATURES_DIR = features_dir("{protocol}", "{n_components}")

# Once, from the main process: every job's own process parses this file again.
if (
    workflow.is_main_process
    and config["per_run_outputs"] == "auto"
    and PLAN.per_run_outputs == "headline"
):
    logger.warning(
        f"per_run_outputs: auto: {len(PLAN.settings)} training runs, more than {PER_RUN_OUTPUTS_AUTO_LIMIT}: "
        "per-run curves and decision regions are drawn for the headline runs only "
        f"({len(PLAN.plotted)} of {len(PLAN.settings)}); per_run_outputs: all draws them for every run"
    )


wildcard_constraints:
    **WILDCARD_PATTERNS,
    protocol="|".join(map(re.escape, PROTOCOLS)),
    n_components=r"[1-9][0-9]*",
    predict_folder=r"[^/]+-[0-9a-f]{8}",


# --- helpers ----------------------------------------------------------------------------------
def record_study():
    """Write results/study.yaml as a run starts (not in a dry run): every later command, and
    every job submitted from this one, then finds the study results/ holds."""
    write_record(RESULTS, record_text(STUDY_DATA, STUDY_FILES, STUDY_VALUES, config))


def check_predict_trains_nothing(dag, targets):
    """Stop a predict command that would retrain finished runs (their code or settings changed
    since they were trained): a prediction never replaces a finished run."""
    if "predict" not in targets:
        return
    retrained = sorted(
        run_name(Setting.from_wildcards(job.wildcards).run_dir)
        for job in dag.needrun_jobs()
        if job.rule.name == "train"
    )
    if retrained:
        stop(
            f"predict would retrain {len(retrained)} finished runs whose code or settings changed "
            f"since they were trained (e.g. {retrained[0]}); nothing was changed. Bring the study "
            "up to date first (snakemake --cores 4), then predict"
        )


def data_inputs(wildcards):
    """The demo set's manifest; real image folders are followed by their fingerprint (a param of
    the loading), not listed as inputs: 90,000 inputs would slow planning and fill the terminal.
    """
    return {"demo": DEMO_MANIFEST} if USE_DEMO else {}


def shorter_run_input(wildcards):
    """The weights of the shorter run this one continues, if any. Not `ancient`: Snakemake then
    skips a job whose params changed when the producer of such an input re-runs too (a changed
    shared training option left the continuing runs stale; tests/test_grid.py)."""
    shorter = PLAN.continued_run(Setting.from_wildcards(wildcards))
    return {"shorter_run": f"{shorter.run_dir}/weights.npz"} if shorter else {}


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
    return (
        AGGREGATION_PRIORITY
        + 1
        + int(PLAN.training_estimate(Setting.from_wildcards(wildcards))[1])
    )


def training_runtime_minutes(wildcards):
    return PLAN.training_minutes(Setting.from_wildcards(wildcards))


def training_mem_mb(wildcards):
    return PLAN.training_mem_mb(Setting.from_wildcards(wildcards))


@functools.cache
def slurm_training_jobs():
    """The plan's training runs packed into Slurm jobs by their estimated time
    (pcann.workflow.packing), with the CPUs of a job (--cores) and the configured target,
    never over the partition's MaxTime."""
    return pack_trainings(
        PLAN.training_requests(),
        workflow.resource_settings.cores,
        config["slurm_job_minutes"],
        max_minutes_published(),
    )


@functools.cache
def slurm_training_groups():
    """run folder -> its Slurm group job (slurm_training_jobs)."""
    jobs = slurm_training_jobs()
    # Snakemake makes a group job of each connected set of a group's jobs unless its
    # group-components allow more: a packed job's runs are mostly independent of each other.
    workflow.group_settings.group_components = {
        **workflow.group_settings.group_components,
        **{job.name: len(job.members) for job in jobs},
    }
    return {member.run_dir: job.name for job in jobs for member in job.members}


def training_group(wildcards):
    """The Slurm group job of a training run (Snakemake asks only for cluster runs and dry
    runs); none for runs outside the plan, for runs not on Slurm, with slurm_job_minutes 0, and
    inside a job: the Snakemake there runs the members it was given, and grouping them again
    would hide how the plugin runs them (tests/test_slurm.py)."""
    if not (workflow.is_main_process and SLURM_RUN and config["slurm_job_minutes"]):
        return None
    return slurm_training_groups().get(Setting.from_wildcards(wildcards).run_dir)


# Snakemake's report() under another name: in plain code at the start of a line, the word
# `report` reads to Snakemake's parser as its `report:` directive.
from snakemake.io import report as for_report  # noqa: E402


def reported_figures(figures, caption, category, labels):
    """The figures' PNGs marked for the report (``figures``: label -> (png, svg); ``labels``
    makes a figure's report labels from its label), then their SVGs."""
    return [
        for_report(png, caption=caption, category=category, labels=labels(label))
        for label, (png, svg) in figures.items()
    ] + [svg for png, svg in figures.values()]


def headline_figure_files():
    """label -> (png, svg) of every headline run's curves and decision regions."""
    return {
        (Path(figures.stem).name, kind): files
        for figures in PLAN.headline_figures()
        for kind, files in (
            ("curves", figures.curves),
            ("decision regions", figures.regions),
        )
    }


def report_category(table_name):
    return "sweeps" if table_name.startswith("sweep_") else "runs"


def report_labels(table_name):
    """Labels of a table in the HTML report: the same two columns as the figures beside it."""
    for network in config["networks"]:
        prefix = f"sweep_{network}_"
        if table_name.startswith(prefix):
            return {"network": network, "content": f"table: {table_name[len(prefix):]}"}
    return {"network": "headline runs", "content": f"table: {table_name}"}


# --- the adaptive search (rules/search.smk) ---------------------------------------------------
def rung_rows(rung):
    """The decisions of a rung, once its checkpoint has run (Snakemake re-plans from here)."""
    return read_rung_table(checkpoints.search_rung.get(rung=rung).output.table)


def rung_candidates(rung):
    """The candidates a rung trains: all at the first, those the rung before kept after it."""
    search = PLAN.search
    if rung == 0:
        return list(search.candidates)
    return [search.candidate_named(name) for name in kept_names(rung_rows(rung - 1))]


def run_files(settings, name):
    return [f"{setting.run_dir}/{name}" for setting in settings]


def search_rung_inputs(wildcards):
    rung = int(wildcards.rung)
    if rung >= len(PLAN.search.rungs):
        stop(
            f"search {PLAN.search.name} has rungs 0 to {len(PLAN.search.rungs) - 1}; "
            f"there is no rung {rung}"
        )
    runs = [run for c in rung_candidates(rung) for run in PLAN.search.runs(c, rung)]
    return {"metrics": run_files(runs, "metrics.json")}


def search_result_inputs(wildcards):
    """Every rung's table, each candidate's longest runs' histories (the figure), the winner's
    runs with their model files and evaluations, and the reference runs it is compared with.
    """
    search = PLAN.search
    last_rung = {}
    for rung in range(len(search.rungs)):
        for row in rung_rows(rung):
            last_rung[row["candidate"]] = rung
    winner = search.candidate_named(kept_names(rung_rows(len(search.rungs) - 1))[0])
    winner_runs = search.runs(winner, len(search.rungs) - 1)
    reference_runs = PLAN.search_reference()[1]
    return {
        "rungs": SEARCH_FILES["rungs"],
        "histories": [
            path
            for name, rung in last_rung.items()
            for path in run_files(
                search.runs(search.candidate_named(name), rung), "history.csv"
            )
        ],
        "winner_metrics": run_files(winner_runs, "metrics.json"),
        "winner_predictions": run_files(winner_runs, "predictions.npz"),
        "winner_outputs": [
            path
            for run in winner_runs
            for path in (*PLAN.run_figures(run), *PLAN.evaluation_files(run))
        ],
        "reference_metrics": run_files(reference_runs, "metrics.json"),
        "reference_predictions": run_files(reference_runs, "predictions.npz"),
    }


# --- model files and predictions (rules/model.smk, rules/predict.smk) ------------------------
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
