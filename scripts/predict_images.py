"""Rule predict_images: classify every image under predict_dir with one run's model file."""

import logging

from pcann.model.model_file import load
from pcann.model.prediction import classify, write_outputs
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.predict_images")


def main(smk):
    model = load(smk.input.model)
    result = classify(model, [smk.params.predict_dir], strict=smk.params.strict)
    record = write_outputs(
        model, result, smk.output.predictions, smk.output.markdown, smk.output.metrics,
        source=smk.params.predict_dir, rejected=smk.output.rejected,
    )
    logger.info("%d images classified with %s", record["n_images"], smk.input.model)
    if result.rejected:
        logger.warning(
            "%d files left out (not images, unreadable or of another shape); each with its "
            "reason in %s (predict_strict: true stops instead)", len(result.rejected), smk.output.rejected,
        )
    if "accuracy" in record:
        logger.info("accuracy %.4f over %d labelled images", record["accuracy"], record["n_labelled"])
    logger.warning("scaling: %s", model.protocol_note)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
