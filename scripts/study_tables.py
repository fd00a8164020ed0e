"""Rule study_tables: the study's tables as CSV (numbers), Markdown (GitHub) and HTML (report)."""

import pandas as pd

from pcann.io import save_csv, save_text
from pcann.workflow.rule import run_rule
from pcann.results.tables import (
    SEED_SPREAD_TITLE,
    frame_markdown,
    plan_frame,
    read_comparisons,
    read_plan,
    seed_spread,
    seed_spread_display,
    study_tables,
)

#: Under every table: what its intervals and marks mean.
TABLE_NOTE = (
    "Accuracies: one seed, the value and its 95% Wilson interval over the images; several "
    "seeds, mean ± standard deviation and the 95% t interval over seeds. Δ test: the value's "
    "test accuracy minus the baseline's with its 95% interval (one seed: exact McNemar test on "
    "the shared test images, Agresti-Min interval; several: paired t-test over seeds); p: "
    "Holm-adjusted over the sweep's values; * = differs from the baseline at 0.05."
)


def write_table(csv, markdown, html, title, summary, display, note=TABLE_NOTE):
    save_csv(csv, summary)
    save_text(markdown, f"### {title}\n\n{frame_markdown(display)}\n_{note}_\n")
    save_text(
        html,
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h3>{title}</h3>\n{display.to_html(index=False, border=1, na_rep='—')}\n"
        f"<p><small>{note}</small></p>\n</body></html>\n",
    )


def main(smk):
    runs = pd.read_csv(smk.input.runs)
    plan = plan_frame(read_plan(smk.input.plan))
    tables = study_tables(plan, runs, read_comparisons(smk.input.comparisons))
    for name, csv, markdown, html in zip(smk.params.names, smk.output.csv, smk.output.markdown, smk.output.html):
        write_table(csv, markdown, html, *tables[name])
    spread = seed_spread(plan, runs, tables)
    write_table(
        smk.output.seed_spread_csv, smk.output.seed_spread_md, smk.output.seed_spread_html,
        SEED_SPREAD_TITLE, spread, seed_spread_display(spread),
        note="A sweep effect smaller than the range over seeds is within what the seed alone "
        "changes; one seed shows no range.",
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
