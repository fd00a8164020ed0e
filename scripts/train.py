"""Rule train: fit one network setting on the PCA features and record its results."""

import logging

from pcann.preprocessing.features import load_features
from pcann.study.grid import Setting
from pcann.workflow.rule import run_rule
from pcann.study.runs import continuable_run, save_run, train_run

logger = logging.getLogger("pcann.train")


def main(smk):
    setting = Setting.from_wildcards(smk.wildcards)
    features, data_label = load_features(smk.input.features)
    if data_label:
        logger.warning("*** %s ***", data_label)
    continue_from = None
    shorter_run = smk.input.get("shorter_run")
    if shorter_run:
        continue_from, problem = continuable_run(shorter_run, setting, features, smk.params.training)
        if problem:
            logger.warning("not continuing %s: %s; training from epoch 1", shorter_run, problem)
        else:
            logger.info(
                "continuing %s after its epoch %d (the result is the same as from epoch 1)",
                shorter_run, continue_from.result.n_epochs_run,
            )
    logger.info(
        "training %s/pca%d/%s on %d samples",
        setting.protocol, setting.n_components, setting.run_id, len(features.y_train),
    )
    run = train_run(setting, features, smk.params.training, continue_from)
    metrics, timing = run.metrics, run.timing
    if metrics["diverged"]:
        logger.warning(
            "diverged at epoch %s: loss NaN, infinite or over 100x that of a uniform guess",
            metrics["diverged_epoch"],
        )
    logger.info(
        "accuracy train %s, validation %s, test %s; %.1f s (%.0f steps/s)",
        metrics["train_accuracy"], metrics["val_accuracy"], metrics["test_accuracy"],
        timing["seconds"], timing["steps_per_second"],
    )
    save_run(
        {"history": smk.output.history, "weights": smk.output.weights,
         "timing": smk.output.timing, "predictions": smk.output.predictions,
         "metrics": smk.output.metrics},
        run,
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
