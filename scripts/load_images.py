"""Rule load_images: read the training and test image folders into one array file."""

import logging

from pcann.data.images import load_dataset, save_dataset
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.load_images")


def main(smk):
    if smk.params.data_label:
        logger.warning("*** %s ***", smk.params.data_label)
    train, test = load_dataset(
        smk.params.data_dir,
        train_folder=smk.params.train_folder,
        test_folder=smk.params.test_folder,
        mode=smk.params.read_mode,
        threads=smk.threads,
    )
    logger.info(
        "%d training and %d test images of shape %s (%d features), classes: %s",
        len(train.y), len(test.y), train.image_shape, train.n_features, ", ".join(train.classes),
    )
    save_dataset(smk.output[0], train, test, data_label=smk.params.data_label or "")


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
