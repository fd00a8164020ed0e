# Training: one job per setting; the run folder's name encodes every value that defines it.


rule train:
    input:
        unpack(shorter_run_input),
        features=rules.fit_pca.output.features,
    output:
        history=f"{RUN_DIR}/history.csv",
        metrics=f"{RUN_DIR}/metrics.json",
        weights=f"{RUN_DIR}/weights.npz",
        timing=f"{RUN_DIR}/timing.json",
        predictions=f"{RUN_DIR}/predictions.npz",
    log:
        f"{RUN_DIR}/train.log",
    benchmark:
        f"{RUN_DIR}/train.benchmark.tsv"
    priority: training_priority
    # on Slurm: packed into group jobs by estimated time (common.smk, slurm_training_groups)
    group:
        training_group
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=training_mem_mb,
        disk_mb=100,
        runtime=lambda wildcards: training_runtime_minutes(wildcards),
    params:
        training=TRAINING_PARAMS,
    script:
        "../scripts/train.py"


rule plot_run:
    input:
        features=rules.fit_pca.output.features,
        history=f"{RUN_DIR}/history.csv",
        weights=f"{RUN_DIR}/weights.npz",
        metrics=f"{RUN_DIR}/metrics.json",
    output:
        curves=multiext(f"{RUN_DIR}/curves", ".png", ".svg"),
        regions=multiext(f"{RUN_DIR}/decision_regions", ".png", ".svg"),
    log:
        f"{RUN_DIR}/plot_run.log",
    benchmark:
        f"{RUN_DIR}/plot_run.benchmark.tsv"
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        disk_mb=100,
        runtime=5,
    params:
        plot_training_points=config["training"]["plot_training_points"],
    script:
        "../scripts/plot_run.py"
