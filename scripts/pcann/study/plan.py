"""The study plan: which runs a configuration asks for, which tables and figures come of them,
and where every file lives.

:class:`StudyPlan` is built once, when the workflow is parsed (``rules/common.smk``), from the
checked configuration. The rules take their inputs and outputs from it, and the aggregation
scripts receive what they need from it through ``snakemake.input`` and ``params`` (the plan's
rows as records, and each table and figure with its files), so that no script rebuilds the
plan or a path from the configuration, and renaming a file changes both sides at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pcann.study.grid import (
    HEADLINE_TABLES,
    PlanRow,
    Setting,
    shorter_runs,
    study_plan,
    swept_epochs,
    unique_settings,
)
from pcann.preprocessing.features import split_sizes
from pcann.search.space import Search, search_from_config
from pcann.study.resources import (
    estimated_seconds,
    schedule_estimates,
    training_job_mem_mb,
    training_runtime,
)
from pcann.workflow.packing import TrainingRequest
from pcann.study.paths import (
    COMPARISONS_TABLE,
    EXPLORER,
    FIGURES,
    MODEL_FILES_TABLE,
    search_dir,
    PLAN_FILE,
    REPORT_FRONT,
    RUNS_TABLE,
    SUMMARY,
    TABLES,
    features_dir,
    features_file,
)

#: Every figure is written twice: PNG for the report and the summary, SVG for print.
FIGURE_FORMATS = ("png", "svg")
#: The comparisons of the headline runs, when the plan has them: table name -> figure title.
COMPARISONS = {"protocols": "Preprocessing protocol", "components": "Number of PCA components"}


def _bounds(start: int, end: int, pieces: int) -> list[int]:
    """``pieces + 1`` epoch counts from ``start`` to ``end``, the pieces as equal as can be."""
    return [start + round(i * (end - start) / pieces) for i in range(pieces + 1)]


#: ``per_run_outputs: auto`` draws every run's figures for studies of up to this many training runs,
#: and only the headline runs' beyond: each figured run is a second job, and Snakemake's planning
#: time grows with the number of jobs (benchmarks/README.md, "Planning time").
PER_RUN_OUTPUTS_AUTO_LIMIT = 250


def per_run_outputs_mode(per_run_outputs: str, n_runs: int) -> str:
    """What ``per_run_outputs`` means for a study of ``n_runs`` training runs: ``all`` or ``headline``."""
    if per_run_outputs == "auto":
        return "all" if n_runs <= PER_RUN_OUTPUTS_AUTO_LIMIT else "headline"
    return per_run_outputs


def plotted_settings(rows: list[PlanRow], mode: str) -> list[Setting]:
    """The runs that get per-run figures under ``mode`` (``all`` or ``headline``)."""
    if mode == "all":
        return unique_settings(rows)
    return unique_settings([row for row in rows if row.table in HEADLINE_TABLES])


def figure_files(stem: str) -> list[str]:
    """The files of one figure: ``stem.png`` and ``stem.svg``."""
    return [f"{stem}.{ext}" for ext in FIGURE_FORMATS]


@dataclass(frozen=True)
class HeadlineFigures:
    """The curves and decision regions of one headline run."""

    row: PlanRow
    stem: str  # e.g. results/figures/headline/1_two_layer
    #: the run folders of the same headline run under every seed (its curves draw their range)
    seed_runs: tuple[str, ...] = ()

    @property
    def curves(self) -> list[str]:
        return figure_files(f"{self.stem}_curves")

    @property
    def regions(self) -> list[str]:
        return figure_files(f"{self.stem}_decision_regions")


class StudyPlan:
    """Everything a configuration asks for, derived once.

    ``config`` is the checked configuration; ``n_train_folder``, the number of images in the
    training folder, and ``n_classes`` size the training jobs' estimated run times (their
    priorities and time limits).
    """

    def __init__(
        self,
        config: dict,
        n_train_folder: int,
        n_classes: int = 3,
        max_job_minutes: int | None = None,
        trained_from=lambda setting: None,
        estimate_scale: float = 1.0,
    ):
        self.protocol = config["protocol"]
        self.n_components = config["n_components"]
        self.rows: list[PlanRow] = study_plan(config)
        self.settings: list[Setting] = unique_settings(self.rows)
        #: The adaptive search, if the configuration has one (its runs are decided as it goes).
        self.search: Search | None = search_from_config(config)
        self.per_run_outputs = per_run_outputs_mode(config["per_run_outputs"], len(self.settings))
        #: The runs that get per-run figures, a model file and a test-set evaluation.
        self.plotted: list[Setting] = plotted_settings(self.rows, self.per_run_outputs)
        #: run -> the shorter run it continues (epochs sweeps; see :func:`pcann.study.grid.shorter_runs`)
        self.continued: dict[Setting, Setting] = (
            shorter_runs(self.settings, swept_epochs(config))
            if config["training"]["continue_shorter_runs"]
            else {}
        )
        # the training split trains, and it is scored with the validation split every epoch
        n_train, n_val = split_sizes(n_train_folder, config["val_fraction"])
        self._sizes = {"n_train": n_train, "n_val": n_val, "n_classes": n_classes}
        self.n_train_folder = n_train_folder
        #: multiplies every training estimate (tests on a real scheduler give runs of seconds the
        #: time limits of runs of minutes; see common.smk)
        self.estimate_scale = estimate_scale
        #: Runs cut into a chain of shorter runs, each continuing the one before, so that every
        #: job fits ``max_job_minutes`` (a Slurm partition's MaxTime). A finished run keeps the
        #: chain it was trained with, whatever the MaxTime (``trained_from(setting)``: the epoch
        #: a finished run continued from, None for an unfinished one): Snakemake re-runs a job
        #: whose inputs change.
        self.segments: list[Setting] = []
        self._split_long_runs(max_job_minutes, trained_from)
        #: Every run the search may train (every candidate at every rung), beyond the study's.
        self.search_settings: list[Setting] = self._add_search_runs()
        #: run folder -> (own, critical path) estimated seconds of its training job
        self.estimates: dict[str, tuple[float, float]] = {
            run.run_dir: (own * estimate_scale, path * estimate_scale)
            for run, (own, path) in schedule_estimates(
                self.settings + self.segments + self.search_settings, self.continued, **self._sizes
            ).items()
        }
        self.headline: list[PlanRow] = [row for row in self.rows if row.table == "headline"]
        self.table_names: list[str] = list(
            dict.fromkeys(
                f"sweep_{row.network}_{row.parameter}" if row.table == "sweep" else row.table
                for row in self.rows
            )
        )
        self.sweep_networks: list[str] = list(
            dict.fromkeys(row.network for row in self.rows if row.table == "sweep")
        )
        #: The networks whose learning-rate sweep has values of its own (a curves figure each).
        self.lr_swept_networks: list[str] = [
            name for name, spec in config["networks"].items() if spec.get("sweep", {}).get("lr")
        ]

    # --- training runs ----------------------------------------------------------------------

    def _split_long_runs(self, max_minutes: int | None, trained_from) -> None:
        """Cut every unfinished run whose time limit exceeds ``max_minutes`` into the fewest
        segments that each fit: runs of the same setting at intermediate epochs, each continuing
        the one before, as an epochs sweep continues its shorter runs (byte for byte the same
        result as one uninterrupted run; tests/test_slurm.py). A finished run keeps the segments
        it was trained with (see __init__)."""
        continued = dict(self.continued)
        planned = set(self.settings)
        for setting in self.settings:
            start = continued[setting].epochs if setting in continued else 0
            epochs = setting.epochs - start
            if trained_from(setting) is not None:
                self._keep_trained_chain(setting, start, continued, planned, trained_from)
                continue
            if not max_minutes or self._limit(setting, epochs) <= max_minutes:
                continue
            # the estimate has a fixed start-up and a floor: more pieces may be needed
            pieces = math.ceil(self._limit(setting, epochs) / max_minutes)
            while True:
                bounds = _bounds(start, setting.epochs, pieces)
                longest = max(self._limit(setting, b - a) for a, b in zip(bounds, bounds[1:]))
                if longest <= max_minutes or pieces >= epochs:
                    break
                pieces += 1
            previous = continued.get(setting)
            for end in bounds[1:-1]:
                segment = replace(setting, epochs=end)
                if segment in planned:  # a planned run already ends there: continue it
                    previous = segment
                    continue
                if previous is not None:
                    continued[segment] = previous
                self.segments.append(segment)
                previous = segment
            continued[setting] = previous
        self.continued = continued

    def _add_search_runs(self) -> list[Setting]:
        """The search's runs that the study does not have, each continuing its candidate's run
        of the rung before. A run the study has keeps the study's way of training it (and so its
        inputs): a search added to a finished study re-runs none of it."""
        if self.search is None:
            return []
        known = set(self.settings) | set(self.segments)
        for later, earlier in self.search.continued().items():
            if later not in known:
                self.continued[later] = earlier
        runs = [
            run
            for candidate in self.search.candidates
            for rung in range(len(self.search.rungs))
            for run in self.search.runs(candidate, rung)
        ]
        return [run for run in dict.fromkeys(runs) if run not in known]

    def _keep_trained_chain(self, setting, start, continued, planned, trained_from) -> None:
        """Plan the segments a finished run was trained from, as their runs' records say."""
        chain, link = [], setting
        while (begun := trained_from(link)) is not None and begun > start:
            link = replace(setting, epochs=begun)
            chain.append(link)
        parent = continued.get(setting)
        for later, earlier in zip([setting] + chain, chain):
            continued[later] = earlier
            if earlier not in planned and earlier not in self.segments:
                self.segments.append(earlier)
        if chain and parent is not None:
            continued[chain[-1]] = parent

    def _limit(self, setting: Setting, epochs: int) -> int:
        seconds = estimated_seconds(setting, epochs=epochs, **self._sizes)
        return training_runtime(seconds * self.estimate_scale)

    def is_segment(self, setting: Setting) -> bool:
        """Whether ``setting`` is a segment of a run split for the partition's MaxTime."""
        return setting in self.segments

    def continued_run(self, setting: Setting) -> Setting | None:
        """The shorter run whose saved weights ``setting`` continues, if any."""
        return self.continued.get(setting)

    def training_estimate(self, setting: Setting) -> tuple[float, float]:
        """(own, critical path) estimated seconds of a training job; a run outside the plan
        continues no run and is continued by none."""
        estimate = self.estimates.get(setting.run_dir)
        if estimate is None:
            seconds = estimated_seconds(setting, **self._sizes) * self.estimate_scale
            estimate = (seconds, seconds)
        return estimate

    def training_minutes(self, setting: Setting) -> int:
        """The time limit of a training job, from its own estimate."""
        return training_runtime(self.training_estimate(setting)[0])

    def training_mem_mb(self, setting: Setting) -> int:
        return training_job_mem_mb(
            setting.hidden, setting.n_components, self.n_train_folder, self._sizes["n_classes"]
        )

    def training_requests(self) -> list[TrainingRequest]:
        """What every training job of the plan asks for, as the Slurm packing sees it."""
        return [
            TrainingRequest(
                setting.run_dir,
                self.training_minutes(setting),
                self.training_mem_mb(setting),
                self.training_estimate(setting)[0],
                self.continued[setting].run_dir if setting in self.continued else None,
                setting.epochs,
            )
            for setting in self.settings + self.segments
        ]

    def metrics_files(self) -> list[str]:
        return [f"{setting.run_dir}/metrics.json" for setting in self.settings]

    def predictions_files(self) -> list[str]:
        """Every run's per-image validation and test predictions, the inputs of the paired
        comparisons."""
        return [f"{setting.run_dir}/predictions.npz" for setting in self.settings]

    @staticmethod
    def comparisons_file() -> str:
        return COMPARISONS_TABLE

    @staticmethod
    def run_figures(setting: Setting) -> list[str]:
        return [
            path
            for name in ("curves", "decision_regions")
            for path in figure_files(f"{setting.run_dir}/{name}")
        ]

    @staticmethod
    def evaluation_files(setting: Setting) -> list[str]:
        """A run's model file and what its test-set evaluation draws and writes for a reader."""
        run_dir = setting.run_dir
        return [
            f"{run_dir}/model.npz",
            f"{run_dir}/evaluation.md",
            *figure_files(f"{run_dir}/confusion"),
            *figure_files(f"{run_dir}/misclassified"),
        ]

    def evaluation_summary_files(self) -> list[str]:
        """What the summary shows of the evaluations: the model-file table, and the headline
        runs' confusion matrices and misclassified images."""
        return [MODEL_FILES_TABLE["md"]] + [
            f"{row.setting.run_dir}/{name}.png"
            for row in self.headline
            for name in ("confusion", "misclassified")
        ]

    def explorer_figures(self) -> dict[str, dict[str, str]]:
        """run folder -> the figures the explorer shows of it (``curves``, ``confusion``), for
        the runs with per-run outputs."""
        return {
            setting.run_dir: {
                "curves": f"{setting.run_dir}/curves.png",
                "confusion": f"{setting.run_dir}/confusion.png",
            }
            for setting in self.plotted
        }

    @staticmethod
    def explorer_file() -> str:
        return EXPLORER

    # --- the adaptive search ----------------------------------------------------------------

    def search_files(self) -> dict:
        """The search's own files: ``rungs`` (one table per rung), ``result`` (JSON),
        ``markdown`` and ``figure`` (PNG, SVG)."""
        folder = search_dir(self.search.name)
        return {
            "rungs": [f"{folder}/rung_{k}.csv" for k in range(len(self.search.rungs))],
            "result": f"{folder}/result.json",
            "markdown": f"{folder}/search.md",
            "figure": figure_files(f"{folder}/search"),
        }

    def search_outputs(self) -> list[str]:
        """Every file of the finished search (the winner's model file and evaluation are inputs
        of its result)."""
        if self.search is None:
            return []
        files = self.search_files()
        return [*files["rungs"], files["result"], files["markdown"], *files["figure"]]

    def search_reference(self) -> tuple[str, list[Setting]]:
        """What the search's winner is compared with, paired by seed on the test images: the
        study's first headline run of the searched network (its baseline when no headline run
        has that network), at each of the search's seeds."""
        search = self.search
        for row in self.headline:
            if row.network == search.network:
                label, setting = f"headline run {row.value}", row.setting
                break
        else:
            label = f"{search.network} baseline"
            setting = next(r.setting for r in self.rows if r.network == search.network and r.is_baseline)
        return label, [replace(setting, seed=seed) for seed in search.seeds]

    def search_estimate(self) -> tuple[float, float]:
        """Estimated single-core seconds of the whole search's training: (expected, at most).
        Which candidates go on is not known before they run: expected is the rung's size times
        its candidates' mean cost, at most the cost of its most expensive candidates."""
        search = self.search
        expected = most = 0.0
        previous = 0
        for size, epochs in zip(search.rung_sizes(), search.rungs):
            costs = sorted(
                (
                    estimated_seconds(search.setting(candidate, epochs, 0), epochs=epochs - previous, **self._sizes)
                    for candidate in search.candidates
                ),
                reverse=True,
            )
            expected += size * sum(costs) / len(costs) * len(search.seeds)
            most += sum(costs[:size]) * len(search.seeds)
            previous = epochs
        return expected * self.estimate_scale, most * self.estimate_scale

    # --- tables -----------------------------------------------------------------------------

    def table_files(self, ext: str) -> list[str]:
        return [f"{TABLES}/{name}.{ext}" for name in self.table_names]

    @staticmethod
    def seed_spread_files() -> dict[str, str | list[str]]:
        """The seed-spread table (``csv``, ``md``, ``html``) and its ``figure`` (PNG, SVG)."""
        stem = f"{TABLES}/seed_spread"
        return {
            **{ext: f"{stem}.{ext}" for ext in ("csv", "md", "html")},
            "figure": figure_files(f"{FIGURES}/seed_spread"),
        }

    def records(self) -> list[dict]:
        """The plan's rows as plain records, in plan order (what the aggregation scripts get)."""
        return [row.as_record() for row in self.rows]

    # --- figures ----------------------------------------------------------------------------

    def sweep_figures(self) -> dict[str, list[str]]:
        """network -> files of its accuracy-by-swept-value figure."""
        return {
            network: figure_files(f"{FIGURES}/sweeps/{network}_accuracy")
            for network in self.sweep_networks
        }

    def lr_sweep(self, network: str) -> list[PlanRow]:
        """The learning-rate sweep's rows of ``network``, first seed only (one curve per value)."""
        rows = [r for r in self.rows if r.table == "sweep" and r.network == network and r.parameter == "lr"]
        return [r for r in rows if r.setting.seed == rows[0].setting.seed] if rows else []

    def lr_figures(self) -> dict[str, dict]:
        """network -> its learning-rate curves figure: ``files``, ``seed`` and ``histories``
        (value -> history.csv of each run)."""
        figures = {}
        for network in self.lr_swept_networks:
            rows = self.lr_sweep(network)
            if rows:
                figures[network] = {
                    "files": figure_files(f"{FIGURES}/sweeps/{network}_lr_curves"),
                    "seed": rows[0].setting.seed,
                    "histories": {r.value: f"{r.setting.run_dir}/history.csv" for r in rows},
                }
        return figures

    def headline_figures(self) -> list[HeadlineFigures]:
        seed_runs: dict[str, list[str]] = {}
        for row in self.headline:
            seed_runs.setdefault(row.value, []).append(row.setting.run_dir)
        return [
            HeadlineFigures(
                row, f"{FIGURES}/headline/{index}_{row.network}", tuple(seed_runs[row.value])
            )
            for index, row in enumerate(self.headline, 1)
        ]

    def headline_records(self) -> list[dict]:
        """What the study_figures script needs of each headline run's figures."""
        return [
            {
                "title": figures.row.value,
                "network": figures.row.network,
                "run_dir": figures.row.setting.run_dir,
                "features": features_file(figures.row.setting.protocol, figures.row.setting.n_components),
                "curves": figures.curves,
                "regions": figures.regions,
                "seed_histories": [f"{run}/history.csv" for run in figures.seed_runs],
            }
            for figures in self.headline_figures()
        ]

    def comparison_figures(self) -> dict[str, list[str]]:
        """table name -> files of its comparison figure, for the comparisons the plan has."""
        return {
            name: figure_files(f"{FIGURES}/{name}")
            for name in COMPARISONS
            if name in self.table_names
        }

    def pca_outputs(self, protocol: str | None = None, n_components: int | None = None) -> list[str]:
        """The features and PCA figures of one protocol and component count (default: the
        configured ones)."""
        protocol = protocol or self.protocol
        n_components = n_components or self.n_components
        prefix = f"{FIGURES}/pca/{protocol}-pca{n_components}"
        return [
            features_file(protocol, n_components),
            *figure_files(f"{prefix}/explained_variance"),
            *figure_files(f"{prefix}/projection"),
        ]

    def spectrum_file(self) -> str:
        return f"{features_dir(self.protocol, self.n_components)}/spectrum.csv"

    def outputs(self) -> list[str]:
        """Every file of the finished study: what ``rule all`` asks for.

        Every run's metrics.json is left out: runs.csv needs them all already, and each path
        asked for twice is one more lookup per run when Snakemake plans. The figures are all
        listed, as Snakemake re-runs a job only for its missing outputs that some job asks for.
        """
        files = [
            path
            for setting in self.plotted
            for path in (*self.run_figures(setting), *self.evaluation_files(setting))
        ]
        files += list(MODEL_FILES_TABLE.values())
        files += self.pca_outputs()
        files += [path for ext in ("csv", "md") for path in self.table_files(ext)]
        files += [RUNS_TABLE, COMPARISONS_TABLE, SUMMARY, REPORT_FRONT, EXPLORER, PLAN_FILE]
        spread = self.seed_spread_files()
        files += [spread["csv"], spread["md"], *spread["figure"]]
        files += figure_files(f"{FIGURES}/data/samples")
        files += self.search_outputs()
        return files

