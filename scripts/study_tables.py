"""Rule study_tables: the study's tables as CSV (numbers), Markdown (GitHub) and HTML (report)."""

import pandas as pd

from pcann.io import save_csv, save_text
from pcann.rule import run_rule
from pcann.tables import markdown_table, plan_frame, study_tables


def main(smk):
    runs = pd.read_csv(smk.input[0])
    tables = study_tables(plan_frame(smk.params.plan), runs)
    for name, csv, markdown, html in zip(smk.params.names, smk.output.csv, smk.output.markdown, smk.output.html):
        title, summary, display = tables[name]
        save_csv(csv, summary)
        save_text(markdown, f"### {title}\n\n{markdown_table(display)}")
        save_text(
            html,
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h3>{title}</h3>\n{display.to_html(index=False, border=1, na_rep='—')}\n</body></html>\n",
        )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
