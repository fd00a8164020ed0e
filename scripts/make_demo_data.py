"""Rule make_demo_data: write the embedded demo image set."""

from pathlib import Path

from pcann.data.demo import generate_demo_dataset
from pcann.workflow.rule import run_rule


def main(smk):
    generate_demo_dataset(
        Path(smk.output[0]).parent,
        train_folder=smk.params.train_folder,
        test_folder=smk.params.test_folder,
        **smk.params.demo,
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
