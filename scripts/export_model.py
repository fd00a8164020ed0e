"""Rule export_model: one run as a portable model file (see pcann.model.model_file for the format)."""

import logging

import numpy as np

from pcann.data.images import load_saved_dataset
from pcann.model.model_file import export_model
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.export_model")


def main(smk):
    _, test, data_label = load_saved_dataset(smk.input.images, splits=["test"], mmap=True)
    model = export_model(
        weights_path=smk.input.weights, transform_path=smk.input.transform,
        metrics_path=smk.input.metrics, read_mode=smk.params.read_mode, run=smk.params.run,
        data_label=data_label,
    )
    # the same test images, through the model file: what a user of the file would measure
    predicted = np.argmax(model.logits(test.X.reshape(len(test.y), *test.image_shape)), axis=1)
    model.metadata["test_accuracy_model_file"] = (
        None if model.metadata["diverged"] else float(np.mean(predicted == test.y))
    )
    logger.info(
        "%s: test accuracy %s reported by the run, %s through the model file (protocol %s)",
        smk.params.run, model.metadata["test_accuracy_reported"],
        model.metadata["test_accuracy_model_file"], model.metadata["protocol"],
    )
    model.save(smk.output[0])


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
