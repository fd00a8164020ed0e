# Preprocessing: z-score normalisation and PCA, per protocol and number of components.


rule standardise:
    input:
        images=IMAGES,
        split=SPLIT,
    output:
        zscore=zscore_file("{protocol}"),
    log:
        f"{LOGS}/standardise/{{protocol}}.log",
    benchmark:
        f"{BENCHMARKS}/standardise/{{protocol}}.tsv"
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=preprocessing_mem_mb(DATA_SIZE, PCA_SOLVER),
        runtime=preprocessing_runtime(DATA_SIZE, "exact"),
    params:
        data_size=asdict(DATA_SIZE),
        solver=PCA_SOLVER,
    script:
        "../scripts/standardise.py"


rule fit_pca:
    input:
        images=IMAGES,
        split=SPLIT,
        zscore=rules.standardise.output.zscore,
    output:
        features=features_file("{protocol}", "{n_components}"),
        spectrum=f"{FEATURES_DIR}/spectrum.csv",
        transform=f"{FEATURES_DIR}/transform.npz",
    log:
        f"{LOGS}/fit_pca/{{protocol}}-pca{{n_components}}.log",
    benchmark:
        f"{BENCHMARKS}/fit_pca/{{protocol}}-pca{{n_components}}.tsv"
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=preprocessing_mem_mb(
            DATA_SIZE, PCA_SOLVER, config["spectrum_components"]
        ),
        runtime=preprocessing_runtime(
            DATA_SIZE, PCA_SOLVER, config["spectrum_components"]
        ),
    params:
        spectrum_components=config["spectrum_components"],
        data_size=asdict(DATA_SIZE),
        solver=PCA_SOLVER,
    script:
        "../scripts/fit_pca.py"


rule plot_pca:
    input:
        features=rules.fit_pca.output.features,
        spectrum=rules.fit_pca.output.spectrum,
    output:
        explained_variance=[
            report(
                f"{FIGURES}/pca/{{protocol}}-pca{{n_components}}/explained_variance.png",
                caption="../report/pca.rst",
                category="PCA",
                labels={
                    "protocol": "{protocol}",
                    "components": "{n_components}",
                    "figure": "explained variance",
                },
            ),
            f"{FIGURES}/pca/{{protocol}}-pca{{n_components}}/explained_variance.svg",
        ],
        projection=[
            report(
                f"{FIGURES}/pca/{{protocol}}-pca{{n_components}}/projection.png",
                caption="../report/pca.rst",
                category="PCA",
                labels={
                    "protocol": "{protocol}",
                    "components": "{n_components}",
                    "figure": "projection",
                },
            ),
            f"{FIGURES}/pca/{{protocol}}-pca{{n_components}}/projection.svg",
        ],
    log:
        f"{LOGS}/plot_pca/{{protocol}}-pca{{n_components}}.log",
    benchmark:
        f"{BENCHMARKS}/plot_pca/{{protocol}}-pca{{n_components}}.tsv"
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_pca.py"
