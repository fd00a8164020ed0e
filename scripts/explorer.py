"""Rule explorer: every run of the study in one self-contained, offline HTML page."""

from pcann.io import save_text
from pcann.results.explorer import build_explorer
from pcann.workflow.rule import run_rule


def main(smk):
    save_text(
        smk.output[0],
        build_explorer(
            smk.input.runs,
            smk.input.comparisons,
            smk.params.plan,
            smk.params.figures,
            smk.params.headline,
        ),
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
