"""Checkpoint search_rung: rank one rung's candidates on validation accuracy and write which go
on to the next rung, and why (``rung_<k>.csv``; pcann.search.halving)."""

import json
import logging
from pathlib import Path

from pcann.io import save_records_csv
from pcann.search.halving import RUNG_COLUMNS, decide_rung, score
from pcann.search.space import Candidate
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.search_rung")


def main(smk):
    rung = int(smk.wildcards.rung)
    by_candidate: dict[Candidate, list[dict]] = {}
    for path in smk.input.metrics:
        metrics = json.loads(Path(path).read_text())
        candidate = Candidate(tuple(metrics["hidden"]), float(metrics["lr"]), int(metrics["batch_size"]))
        by_candidate.setdefault(candidate, []).append(metrics)
    scores = [score(candidate, runs) for candidate, runs in by_candidate.items()]
    rows = decide_rung(list(smk.params.rungs), smk.params.reduction_factor, rung, scores)
    save_records_csv(smk.output.table, RUNG_COLUMNS, rows)
    kept = [row for row in rows if row["decision"] != "stopped"]
    logger.info(
        "rung %d (%d epochs): %d candidates, %d go on: %s",
        rung, smk.params.rungs[rung], len(rows), len(kept), ", ".join(r["candidate"] for r in kept),
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
