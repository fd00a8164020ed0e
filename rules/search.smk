# Adaptive search (config key search, docs/search.md): successive halving over epochs. Rung k
# trains its candidates for the rung's epochs (each continuing its run of the rung before, rule
# train), then checkpoint search_rung ranks them on validation accuracy and writes rung_<k>.csv:
# which go on and why. The next rung's runs follow from that file, so one `snakemake --cores N`
# runs the whole search, and a search started again trains nothing it finished.
import csv  # noqa: E402

from pcann.search.halving import kept_names  # noqa: E402


def read_rung(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def rung_rows(rung):
    """The decisions of a rung, once its checkpoint has run (Snakemake re-plans from here)."""
    return read_rung(checkpoints.search_rung.get(rung=rung).output.table)


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
    runs with their model files and evaluations, and the reference runs it is compared with."""
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
            for path in run_files(search.runs(search.candidate_named(name), rung), "history.csv")
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


if PLAN.search:
    SEARCH_DIR = PLAN.search.folder
    SEARCH_FILES = PLAN.search_files()

    checkpoint search_rung:
        input:
            unpack(search_rung_inputs),
        output:
            table=f"{SEARCH_DIR}/rung_{{rung}}.csv",
        log:
            f"{SEARCH_DIR}/logs/rung_{{rung}}.log",
        wildcard_constraints:
            rung=r"[0-9]+",
        priority: AGGREGATION_PRIORITY + 1
        localrule: True
        conda:
            "../envs/pcann.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        params:
            rungs=PLAN.search.rungs,
            reduction_factor=PLAN.search.reduction_factor,
        script:
            "../scripts/search_rung.py"

    rule search_result:
        input:
            unpack(search_result_inputs),
        output:
            result=SEARCH_FILES["result"],
            markdown=SEARCH_FILES["markdown"],
            figure=reported_figures(
                {"search": SEARCH_FILES["figure"]},
                "../report/search.rst",
                "search",
                lambda name: {"content": "figure: validation accuracy by epochs"},
            ),
        log:
            f"{SEARCH_DIR}/logs/search_result.log",
        priority: AGGREGATION_PRIORITY
        localrule: True
        conda:
            "../envs/pcann.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            search=PLAN.search.describe(),
            name=PLAN.search.name,
            reference=PLAN.search_reference()[0],
            data_label=DATA_LABEL,
        script:
            "../scripts/search_result.py"

    rule search:
        # snakemake --cores 4 search: the search alone, without the study's sweeps
        input:
            PLAN.search_outputs(),

else:

    rule search:
        input:
            lambda wildcards: stop(
                "the search target needs a search: block in the configuration; "
                "see studies/search.yaml (snakemake --cores 4 search --configfile studies/search.yaml)"
            ),
