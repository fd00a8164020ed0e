# Data: the embedded demo set, image loading, and the train/validation split.


rule make_demo_data:
    output:
        DEMO_MANIFEST,
    log:
        f"{LOGS}/make_demo_data.log",
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        demo=config["demo"],
        train_folder=config["train_folder"],
        test_folder=config["test_folder"],
    script:
        "../scripts/make_demo_data.py"


rule load_images:
    input:
        unpack(data_inputs),
    output:
        IMAGES,
    log:
        f"{LOGS}/load_images.log",
    benchmark:
        f"{BENCHMARKS}/load_images.tsv"
    conda:
        "../envs/pcann.yaml"
    # decoding is most of the loading, and OpenCV decodes on several threads at once
    threads: 2
    resources:
        mem_mb=load_images_mem_mb(DATA_SIZE),
        runtime=load_images_runtime(DATA_SIZE, threads=2),
    params:
        data_dir=str(DATA_DIR),
        train_folder=config["train_folder"],
        test_folder=config["test_folder"],
        read_mode=config["read_mode"],
        data_label=DATA_LABEL,
        images_fingerprint=IMAGE_SCAN.fingerprint if IMAGE_SCAN else None,
    script:
        "../scripts/load_images.py"


rule split_train_val:
    input:
        IMAGES,
    output:
        SPLIT,
    log:
        f"{LOGS}/split_train_val.log",
    benchmark:
        f"{BENCHMARKS}/split_train_val.tsv"
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        val_fraction=config["val_fraction"],
        method=config["split"],
        seed=config["split_seed"],
    script:
        "../scripts/split_train_val.py"


rule plot_samples:
    input:
        IMAGES,
    output:
        report(
            f"{FIGURES}/data/samples.png",
            caption="../report/samples.rst",
            category="data",
        ),
        f"{FIGURES}/data/samples.svg",
    log:
        f"{LOGS}/plot_samples.log",
    benchmark:
        f"{BENCHMARKS}/plot_samples.tsv"
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_samples.py"
