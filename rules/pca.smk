# Preprocessing: z-score normalisation and PCA, per protocol and number of components.


rule standardise:
    input:
        images="results/data/images.npz",
        split="results/data/split.npz",
    output:
        zscore="results/features/{protocol}/zscore.npz",
    log:
        "results/logs/standardise/{protocol}.log",
    benchmark:
        "results/benchmarks/standardise/{protocol}.tsv"
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
        images="results/data/images.npz",
        split="results/data/split.npz",
        zscore="results/features/{protocol}/zscore.npz",
    output:
        features="results/features/{protocol}/pca{n_components}/features.npz",
        spectrum="results/features/{protocol}/pca{n_components}/spectrum.csv",
        transform="results/features/{protocol}/pca{n_components}/transform.npz",
    log:
        "results/logs/fit_pca/{protocol}-pca{n_components}.log",
    benchmark:
        "results/benchmarks/fit_pca/{protocol}-pca{n_components}.tsv"
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
        features="results/features/{protocol}/pca{n_components}/features.npz",
        spectrum="results/features/{protocol}/pca{n_components}/spectrum.csv",
    output:
        explained_variance=[
            report(
                "results/figures/pca/{protocol}-pca{n_components}/explained_variance.png",
                caption="../report/pca.rst",
                category="PCA",
                labels={
                    "protocol": "{protocol}",
                    "components": "{n_components}",
                    "figure": "explained variance",
                },
            ),
            "results/figures/pca/{protocol}-pca{n_components}/explained_variance.svg",
        ],
        projection=[
            report(
                "results/figures/pca/{protocol}-pca{n_components}/projection.png",
                caption="../report/pca.rst",
                category="PCA",
                labels={
                    "protocol": "{protocol}",
                    "components": "{n_components}",
                    "figure": "projection",
                },
            ),
            "results/figures/pca/{protocol}-pca{n_components}/projection.svg",
        ],
    log:
        "results/logs/plot_pca/{protocol}-pca{n_components}.log",
    localrule: True
    conda:
        "../envs/pcann.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/plot_pca.py"
