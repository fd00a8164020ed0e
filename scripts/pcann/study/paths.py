"""Where every output of the workflow lives, written once: the results root and the files and
folders under it. The rules files, the plan and the study record take their paths from here (or
from another rule's ``output``), so that moving a file changes every side at once."""

from __future__ import annotations

#: Every output of the workflow goes under this folder (a command's working directory).
RESULTS = "results"
#: The embedded demo data set, generated when no data_dir is configured.
DEMO_DATA = f"{RESULTS}/demo_data"
DEMO_MANIFEST = f"{DEMO_DATA}/MANIFEST.sha256"
#: The decoded images of both split folders, and the train/validation split.
IMAGES = f"{RESULTS}/data/images.npz"
SPLIT = f"{RESULTS}/data/split.npz"
#: z-score statistics and PCA features, per protocol and number of components.
FEATURES_ROOT = f"{RESULTS}/features"
#: Trained runs, one folder each, named by their setting.
RUNS_ROOT = f"{RESULTS}/runs"
#: Predictions of new images: one folder per classified folder, then per run.
PREDICTIONS_ROOT = f"{RESULTS}/predictions"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
SUMMARY = f"{RESULTS}/summary.md"
#: The report's first page: the summary's sentences and the headline table (workflow.rst).
REPORT_FRONT = f"{RESULTS}/report_front.html"
#: Every run in one interactive, self-contained page (pcann.results.explorer).
EXPLORER = f"{RESULTS}/explorer.html"
#: Every run's metrics in one table, and the paired comparisons of the sweep values.
RUNS_TABLE = f"{TABLES}/runs.csv"
COMPARISONS_TABLE = f"{TABLES}/comparisons.csv"
#: The study plan's rows, which every table is made from: written by rule study_plan when the plan
#: changes and read by the aggregation rules, whose params then need not carry the whole plan.
PLAN_FILE = f"{TABLES}/plan.json"
MODEL_FILES_TABLE = {"csv": f"{TABLES}/model_files.csv", "md": f"{TABLES}/model_files.md"}


def zscore_file(protocol: str) -> str:
    return f"{FEATURES_ROOT}/{protocol}/zscore.npz"


def features_dir(protocol: str, n_components) -> str:
    """The folder of one protocol's PCA with ``n_components`` (a number, or a wildcard)."""
    return f"{FEATURES_ROOT}/{protocol}/pca{n_components}"


def features_file(protocol: str, n_components) -> str:
    return f"{features_dir(protocol, n_components)}/features.npz"


#: Adaptive searches: one folder each (rung decisions, the result, its figure).
SEARCH_ROOT = f"{RESULTS}/search"


def search_dir(name: str) -> str:
    return f"{SEARCH_ROOT}/{name}"
