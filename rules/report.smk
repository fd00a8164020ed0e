# Aggregation: the study's tables, comparison figures, and the summary. All run locally.


rule collect_metrics:
    input:
        [f"{s.run_dir}/metrics.json" for s in SETTINGS],
    output:
        "results/tables/runs.csv",
    log:
        "results/logs/collect_metrics.log",
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


rule study_tables:
    input:
        "results/tables/runs.csv",
    output:
        csv=expand("results/tables/{name}.csv", name=TABLE_NAMES),
        markdown=expand("results/tables/{name}.md", name=TABLE_NAMES),
        html=[
            report(
                f"results/tables/{name}.html",
                caption="../report/table.rst",
                category=report_category(name),
                labels=report_labels(name),
            )
            for name in TABLE_NAMES
        ],
    log:
        "results/logs/study_tables.log",
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=STUDY_CONFIG,
        names=TABLE_NAMES,
    script:
        "../scripts/study_tables.py"


rule study_figures:
    input:
        runs="results/tables/runs.csv",
        lr_histories=[
            f"{row.setting.run_dir}/history.csv"
            for row in PLAN
            if row.study == "sweep" and row.parameter == "lr"
        ],
        headline=[
            f"{row.setting.run_dir}/{name}"
            for row in HEADLINE
            for name in ("history.csv", "weights.npz", "metrics.json")
        ],
        features=sorted(
            {
                f"results/features/{r.setting.protocol}/pca{r.setting.n_components}/features.npz"
                for r in HEADLINE
            }
        ),
    output:
        sweeps=[
            report(
                f"results/figures/sweeps/{network}_accuracy.png",
                caption="../report/sweep_accuracy.rst",
                category="sweeps",
                labels={"network": network, "content": "figure: accuracy by value"},
            )
            for network in SWEEP_NETWORKS
        ]
        + [
            f"results/figures/sweeps/{network}_accuracy.svg"
            for network in SWEEP_NETWORKS
        ],
        lr=[
            report(
                f"results/figures/sweeps/{network}_lr_curves.png",
                caption="../report/lr_curves.rst",
                category="sweeps",
                labels={"network": network, "content": "figure: learning-rate curves"},
            )
            for network in LR_SWEEP_NETWORKS
        ]
        + [
            f"results/figures/sweeps/{network}_lr_curves.svg"
            for network in LR_SWEEP_NETWORKS
        ],
        headline=[
            report(
                f"{prefix}_{kind}.png",
                caption="../report/headline.rst",
                category="runs",
                labels={
                    "network": prefix.rsplit("/", 1)[-1],
                    "content": f"figure: {kind.replace('_', ' ')}",
                },
            )
            for prefix in headline_figure_prefixes()
            for kind in ("curves", "decision_regions")
        ]
        + [
            f"{prefix}_{kind}.svg"
            for prefix in headline_figure_prefixes()
            for kind in ("curves", "decision_regions")
        ],
        comparisons=[
            report(
                f"results/figures/{name}.png",
                caption="../report/comparison.rst",
                category="runs",
                labels={"network": "headline runs", "content": f"figure: {name}"},
            )
            for name in COMPARISONS
        ]
        + [f"results/figures/{name}.svg" for name in COMPARISONS],
    log:
        "results/logs/study_figures.log",
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        study=STUDY_CONFIG,
        plot_training_points=config["training"]["plot_training_points"],
        data_label=DATA_LABEL,
    script:
        "../scripts/study_figures.py"


rule summary:
    input:
        runs="results/tables/runs.csv",
        tables=expand("results/tables/{name}.md", name=TABLE_NAMES),
        spectrum=f"results/features/{config['protocol']}/pca{config['n_components']}/spectrum.csv",
        figures=rules.study_figures.output,
        evaluation=EVALUATION_SUMMARY_INPUTS,
    output:
        "results/summary.md",
    log:
        "results/logs/summary.log",
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        names=TABLE_NAMES,
        data_label=DATA_LABEL,
        data_dir=config["data_dir"],
        protocol=config["protocol"],
        n_components=config["n_components"],
    script:
        "../scripts/summary.py"
