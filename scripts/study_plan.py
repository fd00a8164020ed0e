"""Rule study_plan: the study plan's rows (pcann.study.plan.StudyPlan.records) as one JSON file,
which the aggregation rules read as an input instead of each carrying the whole plan as params."""

from pcann.io import save_text
from pcann.results.tables import plan_file_text
from pcann.workflow.rule import run_rule


def main(smk):
    save_text(smk.output[0], plan_file_text(smk.params.plan))


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
