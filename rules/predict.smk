# Classify new images: `snakemake --cores 4 predict --config predict_dir=PATH` runs the model
# file of each headline run (or of each run named in predict_runs) on every image under PATH,
# into results/predictions/<folder name>-<hash>/<run>/. It never trains: the runs must exist.


rule predict:
    input:
        predict_targets,


rule predict_images:
    input:
        unpack(predict_inputs),
    output:
        predictions=f"{PREDICTION_DIR}/predictions.csv",
        rejected=f"{PREDICTION_DIR}/rejected.csv",
        markdown=f"{PREDICTION_DIR}/evaluation.md",
        metrics=f"{PREDICTION_DIR}/evaluation.json",
    log:
        f"{PREDICTION_DIR}/predict.log",
    benchmark:
        f"{PREDICTION_DIR}/predict.benchmark.tsv"
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        predict_dir=lambda wildcards: str(predict_dir()),
        strict=config["predict_strict"],
    script:
        "../scripts/predict_images.py"
