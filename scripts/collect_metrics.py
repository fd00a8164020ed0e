"""Rule collect_metrics: one table row per training run, from every run's metrics.json."""

from pcann.io import save_csv
from pcann.workflow.rule import run_rule
from pcann.results.tables import collect_metrics


def main(smk):
    save_csv(smk.output[0], collect_metrics(smk.input))


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
