"""Rule search_result: the search's winner, its test accuracy (the first use of the test set), its
comparison with the study's reference run, and the figure of every candidate's validation accuracy
(``result.json``, ``search.md``, ``search.{png,svg}``)."""

import json
import logging
import re
from pathlib import Path

import numpy as np

from pcann.io import load_columns_csv, load_npz, save_json, save_text
from pcann.results.markdown import markdown_table
from pcann.results.plots import save_figure, search_figure
from pcann.results.stats import accuracy_summary, compare_paired, paired_t
from pcann.search.halving import read_rung_table
from pcann.search.space import Candidate
from pcann.study.grid import RUN_ID_TEMPLATE, WILDCARD_PATTERNS
from pcann.study.paths import RUNS_ROOT
from pcann.workflow.rule import run_rule

logger = logging.getLogger("pcann.search_result")
#: A run folder's name, its values captured (pcann.study.grid's own template and patterns).
RUN_FOLDER = re.compile(RUN_ID_TEMPLATE.format(**{k: f"(?P<{k}>{v})" for k, v in WILDCARD_PATTERNS.items()}))


def candidate_of(path) -> str:
    """The candidate a run folder belongs to (its setting without epochs and seed)."""
    values = RUN_FOLDER.fullmatch(Path(path).parent.name)
    hidden = tuple(int(h) for h in values["hidden"].split("-"))
    return Candidate(hidden, float(values["lr"]), int(values["batch_size"])).name


def run_name(path) -> str:
    return str(Path(path).parent.relative_to(RUNS_ROOT))


def mean_curves(history_files) -> dict:
    """candidate -> (epochs, validation accuracy averaged over its seeds)."""
    grouped = {}
    for path in history_files:
        grouped.setdefault(candidate_of(path), []).append(load_columns_csv(path))
    curves = {}
    for name, histories in grouped.items():
        epochs = histories[0]["epoch"]
        accuracy = np.mean([h["val_accuracy"] for h in histories], axis=0)
        known = np.isfinite(accuracy)  # eval_every > 1 scores some epochs only
        curves[name] = (epochs[known], accuracy[known])
    return curves


def correct(path) -> np.ndarray:
    predictions = load_npz(path, ["test_predicted", "test_true"])
    return predictions["test_predicted"] == predictions["test_true"]


def main(smk):
    rungs = [read_rung_table(path) for path in smk.input.rungs]
    winner_row = next(row for row in rungs[-1] if row["decision"] == "winner")
    winner = winner_row["candidate"]
    winner_metrics = [json.loads(Path(p).read_text()) for p in smk.input.winner_metrics]
    reference_metrics = [json.loads(Path(p).read_text()) for p in smk.input.reference_metrics]
    seeds = [m["seed"] for m in winner_metrics]
    test = accuracy_summary([m["test_accuracy"] for m in winner_metrics], [m["n_test"] for m in winner_metrics])
    reference_test = accuracy_summary(
        [m["test_accuracy"] for m in reference_metrics], [m["n_test"] for m in reference_metrics]
    )
    by_seed = []
    for seed, winner_file, reference_file in zip(seeds, smk.input.winner_predictions, smk.input.reference_predictions):
        comparison = compare_paired(correct(reference_file), correct(winner_file))
        by_seed.append({"seed": seed, **comparison.as_record()})
    difference, low, high, p_value = paired_t(
        [m["test_accuracy"] for m in reference_metrics], [m["test_accuracy"] for m in winner_metrics]
    )
    n_candidates = len(rungs[0])
    epochs = [int(r[0]["epochs"]) for r in rungs]
    # epochs trained per seed: each candidate as far as it went (continuing, not retraining)
    trained = sum(int(row["epochs"]) for rows in rungs for row in rows if row["decision"] != "kept")
    result = {
        "search": smk.params.name,
        "description": smk.params.search,
        "winner": winner,
        "hidden": winner_row["hidden"],
        "lr": float(winner_row["lr"]),
        "batch_size": int(winner_row["batch_size"]),
        "epochs": epochs[-1],
        "seeds": seeds,
        "runs": [run_name(p) for p in smk.input.winner_metrics],
        "val_accuracy": winner_row["val_accuracy_text"],
        "test_accuracy": {k: v for k, v in test.items()},
        "test_accuracy_by_seed": [m["test_accuracy"] for m in winner_metrics],
        "reference": {
            "label": smk.params.reference,
            "runs": [run_name(p) for p in smk.input.reference_metrics],
            "test_accuracy": reference_test,
        },
        "winner_minus_reference": {
            "by_seed": by_seed,
            "over_seeds": {"difference": difference, "low": low, "high": high, "p_value": p_value},
        },
        "rungs": [
            {"epochs": e, "candidates": len(rows), "kept": sum(r["decision"] != "stopped" for r in rows)}
            for e, rows in zip(epochs, rungs)
        ],
        "candidate_epochs_trained": trained,
        "candidate_epochs_of_the_grid": n_candidates * epochs[-1],
    }
    save_json(smk.output.result, _finite(result))
    save_text(smk.output.markdown, markdown(result, rungs, smk.output.figure[0], smk.params.data_label))
    figure = search_figure(mean_curves(smk.input.histories), epochs, winner,
                           f"Search {smk.params.name}: validation accuracy by epochs", smk.params.data_label)
    save_figure(figure, *smk.output.figure)
    logger.info("winner %s: test accuracy %s", winner, test["text"])


def _finite(value):
    """JSON without NaN (not JSON): missing numbers are null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def markdown(result, rungs, figure, data_label) -> str:
    name = result["search"]
    lines = [f"## Search {name}", ""]
    if data_label:
        lines += [f"> **{data_label}**", ""]
    lines += [
        result["description"] + ".",
        "",
        f"**Winner: {result['winner']}** at {result['epochs']} epochs: validation accuracy "
        f"{result['val_accuracy']}; test accuracy {result['test_accuracy']['text']} "
        "(the test set's only use in the search).",
        "",
    ]
    reference = result["reference"]
    comparison = result["winner_minus_reference"]
    rows = [
        [r["seed"], f"{r['difference']:+.4f}", f"[{r['low']:+.3f}, {r['high']:+.3f}]", f"{r['p_value']:.3g}"]
        for r in comparison["by_seed"]
    ]
    lines += [
        f"Against the {reference['label']} (test accuracy {reference['test_accuracy']['text']}), "
        "paired on the same test images (winner minus reference, exact McNemar test):",
        "",
        markdown_table(["seed", "difference", "95% interval", "p"], rows),
        "",
    ]
    over = comparison["over_seeds"]
    if np.isfinite(over["p_value"]):
        lines += [f"Over seeds (paired t-test): {over['difference']:+.4f} "
                  f"[{over['low']:+.3f}, {over['high']:+.3f}], p = {over['p_value']:.3g}.", ""]
    lines += [
        f"Training: {result['candidate_epochs_trained']:,} candidate-epochs per seed, "
        f"{result['candidate_epochs_trained'] / result['candidate_epochs_of_the_grid']:.1%} of the "
        f"{result['candidate_epochs_of_the_grid']:,} of every candidate at {result['epochs']} epochs.",
        "",
        f"Its runs: {', '.join(result['runs'])}; classify new images with them: "
        f"`snakemake --cores 4 predict --config predict_dir=PATH 'predict_runs=[{result['runs'][0]}]'`.",
        "",
        f"![search]({Path(figure).name})",
        "",
    ]
    for rows in rungs:
        lines += [
            f"### Rung {rows[0]['rung']}: {rows[0]['epochs']} epochs, {len(rows)} candidate{'s' * (len(rows) != 1)}",
            "",
            markdown_table(
                ["rank", "candidate", "validation accuracy", "decision", "why"],
                [[r["rank"], r["candidate"], r["val_accuracy_text"], r["decision"], r["reason"]] for r in rows],
            ),
            "",
        ]
    return "\n".join(lines)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
