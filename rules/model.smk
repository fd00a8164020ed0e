# Using what was trained: a portable model file per run, its test-set evaluation (per-image
# predictions, confusion matrix, per-class precision and recall, misclassified images), and the
# table comparing each run's reported test accuracy with its model file's.


rule export_model:
    input:
        weights=f"{RUN_DIR}/weights.npz",
        metrics=f"{RUN_DIR}/metrics.json",
        transform=rules.fit_pca.output.transform,
        images=IMAGES,
    output:
        f"{RUN_DIR}/model.npz",
    log:
        f"{RUN_DIR}/export_model.log",
    benchmark:
        f"{RUN_DIR}/export_model.benchmark.tsv"
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        read_mode=config["read_mode"],
        run=run_label,
    script:
        "../scripts/export_model.py"


rule evaluate_run:
    input:
        features=rules.fit_pca.output.features,
        images=IMAGES,
        weights=f"{RUN_DIR}/weights.npz",
        metrics=f"{RUN_DIR}/metrics.json",
        model=f"{RUN_DIR}/model.npz",
    output:
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
        f"{RUN_DIR}/evaluate_run.log",
    benchmark:
        f"{RUN_DIR}/evaluate_run.benchmark.tsv"
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        run=run_label,
        gallery_limit=config["misclassified_limit"],
    script:
        "../scripts/evaluate_run.py"


rule model_files_table:
    input:
        [f"{s.run_dir}/model.npz" for s in PLAN.plotted],
    output:
        csv=MODEL_FILES_TABLE["csv"],
        markdown=MODEL_FILES_TABLE["md"],
    log:
        f"{LOGS}/model_files_table.log",
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
