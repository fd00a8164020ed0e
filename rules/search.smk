# Adaptive search (config key search, docs/search.md): successive halving over epochs. Rung k
# trains its candidates for the rung's epochs (each continuing its run of the rung before, rule
# train), then checkpoint search_rung ranks them on validation accuracy and writes rung_<k>.csv:
# which go on and why. The next rung's runs follow from that file, so one `snakemake --cores N`
# runs the whole search, and a search started again trains nothing it finished.
if PLAN.search:
    SEARCH_DIR = PLAN.search.folder
    SEARCH_FILES = PLAN.search_files()

    checkpoint search_rung:
        input:
            unpack(search_rung_inputs),
        output:
            table=report(
                f"{SEARCH_DIR}/rung_{{rung}}.csv",
                caption="../report/search_rung.rst",
                category="search",
                labels={"content": "table: rung {rung}"},
            ),
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
