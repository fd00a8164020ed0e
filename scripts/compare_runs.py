"""Rule compare_runs: every sweep value against its baseline, seed by seed, image by image on
the shared test set (exact McNemar test, Agresti-Min interval of the difference, Holm over the
sweep's values): results/tables/comparisons.csv."""

from pathlib import Path

from pcann.io import load_npz, save_csv
from pcann.workflow.rule import run_rule
from pcann.results.tables import compare_runs, plan_frame, read_plan


def main(smk):
    predictions = {str(Path(path).parent): load_npz(path) for path in smk.input.predictions}
    save_csv(smk.output[0], compare_runs(plan_frame(read_plan(smk.input.plan)), predictions))


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
