"""Rule model_files_table: each evaluated run's reported test accuracy beside its model file's
on the same test images (they differ under the study protocol, see pcann.model.model_file)."""

from pcann.results.evaluation import write_rows
from pcann.model.model_file import load
from pcann.workflow.rule import run_rule


def _number(value):
    return "" if value is None else float(value)


def main(smk):
    header = ["run", "protocol", "test accuracy (reported)", "test accuracy (model file)",
              "difference"]
    rows = []
    for path in smk.input:
        meta = load(path).metadata
        reported, model_file = meta["test_accuracy_reported"], meta["test_accuracy_model_file"]
        difference = None if reported is None or model_file is None else model_file - reported
        rows.append([meta["run"], meta["protocol"], _number(reported), _number(model_file),
                     _number(difference)])
    write_rows(smk.output.csv, header, rows)
    write_rows(smk.output.markdown, header, rows)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
