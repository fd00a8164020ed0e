# pcann: PCA + from-scratch neural networks on a folder of labelled images.
#
#   snakemake --cores 4                                # the embedded demo data
#   snakemake --cores 4 --config data_dir=PATH         # real data: PATH/Data_train, PATH/Data_test
#
# This file validates the configuration and includes one rules file per concern.


from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pca.smk"


rule all:
    default_target: True
    input:
        pca_outputs(config["protocol"], config["n_components"]),
