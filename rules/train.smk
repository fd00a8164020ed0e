# Training: one job per setting; the run folder's name encodes every value that defines it. What
# a reader gets of a run beyond its metrics (figures, model file, evaluation) is rule run_outputs
# (rules/model.smk).


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
