"""Rule summary: results/summary.md, the study's tables and figures on one page."""

import html
import json
import os
import re
from pathlib import Path

import pandas as pd

from pcann.results.findings import findings
from pcann.io import save_text
from pcann.workflow.rule import run_rule


def _link(path, start):
    return os.path.relpath(path, start)


def main(smk):
    out_dir = Path(smk.output[0]).parent
    runs = pd.read_csv(smk.input.runs)
    spectrum = pd.read_csv(smk.input.spectrum)
    kept = spectrum[spectrum["kept"]]
    lines = ["# pcann study summary", ""]
    if smk.params.data_label:
        lines += [f"> **{smk.params.data_label}.** No `data_dir` was configured, so every number below "
                  "comes from the embedded demo images. Real data: "
                  "`snakemake --cores 4 --config data_dir=PATH`.", ""]
    lines += [f"Data: {smk.params.data}. The study's files and its whole configuration are "
              "recorded in `study.yaml`.", ""]
    diverged = int(runs["diverged"].sum())
    lines += [
        f"- {len(runs)} training runs; {diverged} diverged.",
        f"- Protocol `{smk.params.protocol}`; {smk.params.n_components} PCA components keep "
        f"{kept['explained_variance_ratio'].sum():.1%} of the variance "
        f"(ratios {', '.join(f'{v:.4f}' for v in kept['explained_variance_ratio'])}).",
        *search_overview(smk.input.get("search", [])),
        "",
    ]
    order = [n for n in smk.params.names if not n.startswith("sweep")] + [
        n for n in smk.params.names if n.startswith("sweep")
    ]
    tables = dict(zip(smk.params.names, smk.input.tables))
    sweeps = {name: pd.read_csv(path) for name, path in zip(smk.params.names, smk.input.table_csvs)
              if name.startswith("sweep")}
    overview = lines[2:]
    sentences = findings(sweeps, pd.read_csv(smk.input.seed_spread_csv), smk.params.protocol)
    lines += ["## What holds up", ""]
    lines += sentences
    lines += ["", "## Tables", ""]
    for name in order:
        lines += [Path(tables[name]).read_text(), ""]
    lines += [Path(smk.input.seed_spread).read_text(), ""]
    lines += ["## Figures", ""]
    figures = [Path(p) for p in smk.input.figures if str(p).endswith(".png")]
    for figure in figures:
        lines.append(f"![{figure.stem}]({_link(figure, out_dir)})")
        lines.append("")
    lines += evaluation_section(smk.input.get("evaluation", []), out_dir)
    lines += search_section(smk.input.get("search", []), out_dir)
    save_text(smk.output[0], "\n".join(lines))
    headline = [path for path in smk.input.tables_html if Path(path).stem == order[0]] if order else []
    save_text(smk.output.front, report_front(overview, sentences, headline))


def search_overview(files):
    """The overview's line on the adaptive search: its winner and test accuracy."""
    if not files:
        return []
    result = json.loads(Path(files[2]).read_text())
    return [f"- Search `{result['search']}`: {len(result['rungs'])} rungs from "
            f"{result['rungs'][0]['candidates']} candidates; winner `{result['winner']}` at "
            f"{result['epochs']} epochs, test accuracy {result['test_accuracy']['text']} "
            f"({result['reference']['label']}: {result['reference']['test_accuracy']['text']})."]


def search_section(files, out_dir):
    """The adaptive search's page (its search.md), its figure linked from here."""
    if not files:
        return []
    markdown, figure = map(Path, files[:2])
    text = markdown.read_text().replace(f"]({figure.name})", f"]({_link(figure, out_dir)})")
    return ["", text]


def _markdown_line(text):
    """One line of the summary's Markdown as HTML: its bold, code and list marks."""
    text = html.escape(text.strip().removeprefix("> "))
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return text


def report_front(overview, sentences, headline_tables):
    """The report's first page: the summary's overview, the first table (the headline runs)
    taken from its HTML file, and the summary's sentences."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Results</title></head><body>"]
    paragraphs = [line for line in overview if line and not line.startswith("- ")]
    bullets = [line[2:] for line in overview if line.startswith("- ")]
    parts += [f"<p>{_markdown_line(line)}</p>" for line in paragraphs]
    for path in headline_tables:
        table = re.search(r"<h3>.*?</table>", Path(path).read_text(), re.S)
        if table:
            parts.append(table.group(0))
    parts += ["<ul>", *[f"<li>{_markdown_line(line)}</li>" for line in bullets + [
        s[2:] if s.startswith("- ") else s for s in sentences if s.strip()]], "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def evaluation_section(paths, out_dir):
    """The model-file table and the headline runs' confusion matrices and misclassified images."""
    if not paths:
        return []
    lines = [
        "## Model files and test-set evaluation", "",
        "Each run's `model.npz` classifies new images (`snakemake --cores 4 predict --config "
        "predict_dir=PATH`, or `scripts/predict.py`). It scales every image with the training "
        "statistics; under the `study` protocol the test set was z-scored with its own, so the "
        "model file's test accuracy differs from the reported one:", "",
    ]
    for path in map(Path, paths):
        if path.suffix == ".md":
            lines += [path.read_text(), ""]
        else:
            lines += [f"![{path.parent.name} {path.stem}]({_link(path, out_dir)})", ""]
    return lines


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
