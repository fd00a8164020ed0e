# Using what was trained: per run (rule run_outputs) its curves and decision regions, a portable
# model file and its test-set evaluation (per-image predictions, confusion matrix, per-class
# precision and recall, misclassified images); and the table comparing each run's reported test
# accuracy with its model file's.


rule run_outputs:
    # One job per run for its figures, model file and evaluation: three processes importing
    # numpy, matplotlib and the library cost more than what they drew and wrote.
    input:
        features=rules.fit_pca.output.features,
        transform=rules.fit_pca.output.transform,
        images=IMAGES,
        history=f"{RUN_DIR}/history.csv",
        weights=f"{RUN_DIR}/weights.npz",
        metrics=f"{RUN_DIR}/metrics.json",
    output:
        curves=multiext(f"{RUN_DIR}/curves", ".png", ".svg"),
        regions=multiext(f"{RUN_DIR}/decision_regions", ".png", ".svg"),
        model=f"{RUN_DIR}/model.npz",
        predictions=f"{RUN_DIR}/test_predictions.csv",
        confusion=f"{RUN_DIR}/confusion.csv",
        per_class=f"{RUN_DIR}/per_class.csv",
        markdown=f"{RUN_DIR}/evaluation.md",
        confusion_figure=[
            report(
                f"{RUN_DIR}/confusion.png",
                caption="../report/confusion.rst",
                category="evaluation",
                labels={
                    "run": f"{{protocol}}/pca{{n_components}}/{RUN_ID_TEMPLATE}",
                    "figure": "confusion matrix",
                },
            ),
            f"{RUN_DIR}/confusion.svg",
        ],
        misclassified_figure=[
            report(
                f"{RUN_DIR}/misclassified.png",
                caption="../report/misclassified.rst",
                category="evaluation",
                labels={
                    "run": f"{{protocol}}/pca{{n_components}}/{RUN_ID_TEMPLATE}",
                    "figure": "misclassified test images",
                },
            ),
            f"{RUN_DIR}/misclassified.svg",
        ],
    log:
        f"{RUN_DIR}/run_outputs.log",
    benchmark:
        f"{RUN_DIR}/run_outputs.benchmark.tsv"
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        disk_mb=100,
        runtime=10,
    params:
        plot_training_points=config["training"]["plot_training_points"],
        read_mode=config["read_mode"],
        run=run_label,
        gallery_limit=config["misclassified_limit"],
    script:
        "../scripts/run_outputs.py"


rule model_files_table:
    input:
        [f"{s.run_dir}/model.npz" for s in PLAN.plotted],
    output:
        csv=MODEL_FILES_TABLE["csv"],
        markdown=MODEL_FILES_TABLE["md"],
    log:
        f"{LOGS}/model_files_table.log",
    benchmark:
        f"{BENCHMARKS}/model_files_table.tsv"
    priority: AGGREGATION_PRIORITY
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/model_files_table.py"
