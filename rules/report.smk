# Aggregation: the study's tables, comparison figures, the summary (and the report's first page) and
# the results explorer. All run locally.


rule study_plan:
    # The plan in one file, written only when it changes (its params): the aggregation rules
    # read it instead of each carrying the whole plan as params, which Snakemake would evaluate,
    # compare and record for each of their many outputs.
    output:
        PLAN_FILE,
    log:
        f"{LOGS}/study_plan.log",
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        plan=PLAN.records(),
    script:
        "../scripts/study_plan.py"


rule collect_metrics:
    input:
        PLAN.metrics_files(),
    output:
        RUNS_TABLE,
    log:
        f"{LOGS}/collect_metrics.log",
    benchmark:
        f"{BENCHMARKS}/collect_metrics.tsv"
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/collect_metrics.py"


rule compare_runs:
    input:
        predictions=PLAN.predictions_files(),
        plan=PLAN_FILE,
    output:
        PLAN.comparisons_file(),
    log:
        f"{LOGS}/compare_runs.log",
    benchmark:
        f"{BENCHMARKS}/compare_runs.tsv"
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/compare_runs.py"


rule study_tables:
    input:
        runs=RUNS_TABLE,
        comparisons=PLAN.comparisons_file(),
        plan=PLAN_FILE,
    output:
        csv=PLAN.table_files("csv"),
        markdown=PLAN.table_files("md"),
        html=[
            report(
                path,
                caption="../report/table.rst",
                category=report_category(name),
                labels=report_labels(name),
            )
            for name, path in zip(PLAN.table_names, PLAN.table_files("html"))
        ],
        seed_spread_csv=PLAN.seed_spread_files()["csv"],
        seed_spread_md=PLAN.seed_spread_files()["md"],
        seed_spread_html=report(
            PLAN.seed_spread_files()["html"],
            caption="../report/seed_spread.rst",
            category="sweeps",
            labels={"network": "all networks", "content": "table: seed spread"},
        ),
    log:
        f"{LOGS}/study_tables.log",
    benchmark:
        f"{BENCHMARKS}/study_tables.tsv"
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        names=PLAN.table_names,
    script:
        "../scripts/study_tables.py"


rule study_figures:
    input:
        runs=RUNS_TABLE,
        comparisons=PLAN.comparisons_file(),
        plan=PLAN_FILE,
        lr_histories=[
            path
            for figure in PLAN.lr_figures().values()
            for path in figure["histories"].values()
        ],
        headline=[
            f"{figures.row.setting.run_dir}/{name}"
            for figures in PLAN.headline_figures()
            for name in ("history.csv", "weights.npz", "metrics.json")
        ],
        features=sorted({record["features"] for record in PLAN.headline_records()}),
    output:
        sweeps=reported_figures(
            PLAN.sweep_figures(),
            "../report/sweep_accuracy.rst",
            "sweeps",
            lambda network: {
                "network": network,
                "content": "figure: accuracy by value",
            },
        ),
        lr=reported_figures(
            {
                network: figure["files"]
                for network, figure in PLAN.lr_figures().items()
            },
            "../report/lr_curves.rst",
            "sweeps",
            lambda network: {
                "network": network,
                "content": "figure: learning-rate curves",
            },
        ),
        headline=reported_figures(
            headline_figure_files(),
            "../report/headline.rst",
            "runs",
            lambda label: {"network": label[0], "content": f"figure: {label[1]}"},
        ),
        comparisons=reported_figures(
            PLAN.comparison_figures(),
            "../report/comparison.rst",
            "runs",
            lambda name: {"network": "headline runs", "content": f"figure: {name}"},
        ),
        seed_spread=reported_figures(
            {"seed spread": PLAN.seed_spread_files()["figure"]},
            "../report/seed_spread_figure.rst",
            "sweeps",
            lambda name: {"network": "all networks", "content": f"figure: {name}"},
        ),
    log:
        f"{LOGS}/study_figures.log",
    benchmark:
        f"{BENCHMARKS}/study_figures.tsv"
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sweep_figures=PLAN.sweep_figures(),
        lr_figures=PLAN.lr_figures(),
        headline_figures=PLAN.headline_records(),
        comparison_figures=PLAN.comparison_figures(),
        seed_spread_figure=PLAN.seed_spread_files()["figure"],
        plot_training_points=config["training"]["plot_training_points"],
        data_label=DATA_LABEL,
    script:
        "../scripts/study_figures.py"


rule summary:
    input:
        runs=RUNS_TABLE,
        comparisons=PLAN.comparisons_file(),
        tables=PLAN.table_files("md"),
        table_csvs=PLAN.table_files("csv"),
        seed_spread=PLAN.seed_spread_files()["md"],
        seed_spread_csv=PLAN.seed_spread_files()["csv"],
        spectrum=PLAN.spectrum_file(),
        figures=rules.study_figures.output,
        evaluation=PLAN.evaluation_summary_files(),
        tables_html=PLAN.table_files("html"),
        search=(
            [
                PLAN.search_files()["markdown"],
                PLAN.search_files()["figure"][0],
                PLAN.search_files()["result"],
            ]
            if PLAN.search
            else []
        ),
    output:
        SUMMARY,
        front=report(
            REPORT_FRONT,
            caption="../report/front.rst",
            category="results",
            labels={"content": "summary"},
        ),
    log:
        f"{LOGS}/summary.log",
    benchmark:
        f"{BENCHMARKS}/summary.tsv"
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        names=PLAN.table_names,
        data_label=DATA_LABEL,
        data=describe_data(STUDY_DATA),
        protocol=config["protocol"],
        n_components=config["n_components"],
    script:
        "../scripts/summary.py"


rule explorer:
    input:
        runs=RUNS_TABLE,
        comparisons=PLAN.comparisons_file(),
        figures=[
            path
            for files in PLAN.explorer_figures().values()
            for path in files.values()
        ],
    output:
        report(
            PLAN.explorer_file(),
            caption="../report/explorer.rst",
            category="results",
            labels={"content": "explorer: every run"},
        ),
    log:
        f"{LOGS}/explorer.log",
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        plan=PLAN.records(),
        figures=PLAN.explorer_figures(),
        headline=[row.setting.run_dir for row in PLAN.headline],
    script:
        "../scripts/explorer.py"
