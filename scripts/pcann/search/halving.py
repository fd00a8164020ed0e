"""Successive halving's decisions: rank a rung's candidates and say which go on, and why.

A rung's candidates are ranked by validation accuracy only (the mean over their seeds); the test
set plays no part until the winner is chosen. Ties, common on a few hundred validation images,
break by a fixed rule that depends on nothing but the runs' results and the candidates' values:

1. higher mean validation accuracy (a candidate with a diverged seed has none and ranks last);
2. lower mean validation loss;
3. the candidate's name in sorted order (``hidden=..._lr=..._batch=...``), so that the order in
   which candidates were listed or finished never matters.

The best ``ceil(n / reduction_factor)`` go on to the next rung; at the last rung the first is the
winner. Every row says why, in words, against the last candidate that went on.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

from pcann.search.space import Candidate, survivors

#: The columns of a rung's table (``rung_<k>.csv``), in order.
RUNG_COLUMNS = (
    "rung", "epochs", "rank", "candidate", "hidden", "lr", "batch_size", "seeds",
    "val_accuracy", "val_low", "val_high", "val_loss", "val_accuracy_text", "decision", "reason",
    "next_epochs",
)
KEPT, STOPPED, WINNER = "kept", "stopped", "winner"


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's validation results at one rung, over its seeds."""

    candidate: Candidate
    seeds: int
    val_accuracy: float  # mean over seeds; NaN when a seed diverged
    val_low: float
    val_high: float
    val_text: str
    val_loss: float  # mean over seeds; NaN when a seed diverged
    diverged: str  # "" or which seed diverged when

    def sort_key(self) -> tuple:
        finite = math.isfinite(self.val_accuracy)
        return (
            not finite,
            -self.val_accuracy if finite else 0.0,
            self.val_loss if math.isfinite(self.val_loss) else math.inf,
            self.candidate.name,
        )


def score(candidate: Candidate, metrics: list[dict]) -> CandidateScore:
    """A candidate's score from the ``metrics.json`` records of its runs at one rung."""
    # here, not at the top: the workflow reads rung tables with this module when it plans, and
    # scipy (behind the intervals) would add most of a second to every parse
    from pcann.results.stats import accuracy_summary

    diverged = [m for m in metrics if m["diverged"] or m["val_accuracy"] is None]
    summary = accuracy_summary([m["val_accuracy"] for m in metrics], [m["n_val"] for m in metrics])
    if diverged:
        first = diverged[0]
        return CandidateScore(
            candidate, len(metrics), math.nan, math.nan, math.nan, "—", math.nan,
            f"seed {first['seed']} diverged at epoch {first['diverged_epoch']}",
        )
    loss = sum(m["val_loss"] for m in metrics) / len(metrics)
    return CandidateScore(
        candidate, len(metrics), summary["mean"], summary["low"], summary["high"], summary["text"],
        loss, "",
    )


def _against(row: CandidateScore, reference: CandidateScore, reference_rank: int) -> str:
    """Why ``row`` ranks below ``reference`` (of rank ``reference_rank``)."""
    if row.diverged:
        return f"{row.diverged}: no validation accuracy"
    if row.val_accuracy < reference.val_accuracy:
        return (
            f"validation accuracy {row.val_accuracy:.4f} < {reference.val_accuracy:.4f} "
            f"of rank {reference_rank}"
        )
    if row.val_loss > reference.val_loss:
        return (
            f"tied with rank {reference_rank} at validation accuracy {row.val_accuracy:.4f}; "
            f"validation loss {row.val_loss:.4f} > {reference.val_loss:.4f}"
        )
    return (
        f"tied with rank {reference_rank} in validation accuracy and loss; the tie goes to the "
        f"name first in sorted order ({reference.candidate.name})"
    )


def decide_rung(rungs: list[int], reduction_factor: int, rung: int, scores: list[CandidateScore]) -> list[dict]:
    """The rows of ``rung_<rung>.csv`` (``rungs``: every rung's epochs, :attr:`Search.rungs`):
    every candidate of the rung, best first, with its rank, whether it goes on (``kept``),
    stops (``stopped``) or wins (``winner``, last rung), and why."""
    final = rung == len(rungs) - 1
    ranked = sorted(scores, key=CandidateScore.sort_key)
    n = len(ranked)
    eta = reduction_factor
    keep = 1 if final else min(n, survivors(n, eta))
    rows = []
    for rank, row in enumerate(ranked, 1):
        if final:
            decision = WINNER if rank == 1 else STOPPED
            reason = (
                f"rank 1 of {n} at the maximum epochs ({rungs[rung]}): the best validation accuracy"
                if rank == 1
                else f"rank {rank} of {n} at the maximum epochs, behind the winner: "
                + _against(row, ranked[0], 1)
            )
        elif rank <= keep:
            decision = KEPT
            reason = f"rank {rank} of {n}, in the top {keep} = ceil({n}/{eta}): continues to {rungs[rung + 1]} epochs"
        else:
            decision = STOPPED
            reason = f"rank {rank} of {n}, below the top {keep} = ceil({n}/{eta}): " + _against(
                row, ranked[keep - 1], keep
            )
        rows.append({
            "rung": rung,
            "epochs": rungs[rung],
            "rank": rank,
            "candidate": row.candidate.name,
            **row.candidate.as_record(),
            "seeds": row.seeds,
            "val_accuracy": _number(row.val_accuracy),
            "val_low": _number(row.val_low),
            "val_high": _number(row.val_high),
            "val_loss": _number(row.val_loss),
            "val_accuracy_text": row.val_text,
            "decision": decision,
            "reason": reason,
            "next_epochs": rungs[rung + 1] if decision == KEPT else "",
        })
    return rows


def _number(value: float) -> str:
    """A rung table's number: six decimals, empty where there is none (byte-stable text)."""
    return f"{value:.6f}" if math.isfinite(value) else ""


def read_rung_table(path) -> list[dict]:
    """The rows of a rung's table (``rung_<k>.csv``) as written, text values by column."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def kept_names(rows: list[dict]) -> list[str]:
    """The candidates a rung's table sends on (or its winner), best first."""
    return [row["candidate"] for row in rows if row["decision"] in (KEPT, WINNER)]
