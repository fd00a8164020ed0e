"""The results explorer: every run of a study in one self-contained, offline HTML page.

The views are Vega-Lite charts built with Altair (one brushable axis per setting and accuracy,
and a scatter of any two columns), drawn by the Vega bundle that vl-convert ships, inlined in
the page: it makes no network request, opens from the file system and inside the single-file
Snakemake report. A small script beside them lists the brushed runs in a sortable table and
shows the selected run's figures. docs/explorer.md says why this library and what it weighs.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pcann.results.stats import ALPHA, accuracy_interval
from pcann.results.tables import SIGNIFICANT_MARK, read_comparisons
from pcann.study.paths import RUNS_ROOT

#: Chromium shows a report item only while its data URI stays under about 2 MB (2.0 M characters
#: shown, 2.2 M blank); base64 makes 4 characters of 3 bytes, so a page stays under 1.5 MB.
MAX_PAGE_BYTES = 1_500_000
#: The setting columns that identify a run apart from its seed (its seeds are shown together).
SETTING_COLUMNS = ("protocol", "n_components", "hidden", "epochs", "lr", "batch_size")
ACCURACY_COLUMNS = ("train_accuracy", "val_accuracy", "test_accuracy")
#: The brushable axes, in order: column -> (title, scale type).
AXES = {
    "n_components": ("components", "log"),
    "hidden_units": ("hidden units", "log"),
    "epochs": ("epochs", "log"),
    "lr": ("learning rate", "log"),
    "batch_size": ("batch size", "log"),
    "seed": ("seed", "linear"),
    "train_accuracy": ("train", "linear"),
    "val_accuracy": ("validation", "linear"),
    "test_accuracy": ("test", "linear"),
    "difference": ("Δ test", "linear"),
}
#: The axes of settings, whose few values are their ticks.
AXIS_TICKS_AT_VALUES = ("n_components", "hidden_units", "epochs", "lr", "batch_size", "seed")
#: Thumbnail widths tried in turn until the page fits MAX_PAGE_BYTES (curves; confusion half).
THUMBNAIL_WIDTHS = (360, 280, 200, 150)


def explorer_runs(runs: pd.DataFrame, comparisons: pd.DataFrame, plan: list[dict]) -> pd.DataFrame:
    """One row per run: its setting, network and studies, accuracies with their 95% Wilson
    intervals, the test difference to its sweep's baseline with the significance mark, and the
    range of its setting's test accuracies over seeds."""
    frame = runs.copy()
    frame["hidden"] = frame["hidden"].astype(str)
    studies = {}
    networks = {}
    baselines = set()
    for record in plan:
        label = record["table"] + ("" if record["table"] != "sweep" else f" {record['parameter']}")
        studies.setdefault(record["run_dir"], [])
        if label not in studies[record["run_dir"]]:
            studies[record["run_dir"]].append(label)
        networks.setdefault(record["run_dir"], record["network"])
        if record["table"] == "sweep" and record["is_baseline"]:
            baselines.add(record["run_dir"])
    frame["network"] = frame["run_dir"].map(networks).fillna("")
    frame["studies"] = frame["run_dir"].map(lambda run: ", ".join(studies.get(run, [])))
    frame["hidden_units"] = frame["hidden"].map(lambda text: sum(int(h) for h in text.split("-")))
    frame["diverged"] = frame["diverged"].fillna(False).astype(bool)
    for column in ACCURACY_COLUMNS:
        count = column.replace("_accuracy", "")
        intervals = [
            accuracy_interval(value, n) if value is not None and np.isfinite(value) else (math.nan, math.nan)
            for value, n in zip(frame[column], frame[f"n_{count}"])
        ]
        frame[f"{column}_low"] = [low for low, _ in intervals]
        frame[f"{column}_high"] = [high for _, high in intervals]

    # each run's comparison with its sweep's baseline (its seed's, as compare_runs pairs them)
    compared = comparisons.drop_duplicates("run_dir").set_index("run_dir").reindex(frame["run_dir"])
    for column, source in (("difference", "difference"), ("difference_low", "low"),
                           ("difference_high", "high"), ("p_holm", "p_holm")):
        frame[column] = compared[source].to_numpy(dtype=float)
    frame["significant"] = frame["p_holm"].lt(ALPHA)
    frame["baseline"] = frame["run_dir"].isin(baselines)

    groups = frame.groupby(list(SETTING_COLUMNS), sort=False)["test_accuracy"]
    frame["setting_seeds"] = groups.transform("size")
    frame["setting_test_min"] = groups.transform("min")
    frame["setting_test_max"] = groups.transform("max")
    frame["setting"] = groups.ngroup()
    frame["folder"] = frame["run_dir"].map(lambda run: os.path.relpath(run, RUNS_ROOT))
    # Seeds of one setting side by side: the plan's order of settings, then the seed.
    frame = frame.sort_values(["setting", "seed"], kind="stable").reset_index(drop=True)
    columns = [
        "run_dir", "folder", "network", "studies", *SETTING_COLUMNS, "hidden_units", "seed",
        *[f"{c}{part}" for c in ACCURACY_COLUMNS for part in ("", "_low", "_high")],
        "difference", "difference_low", "difference_high", "p_holm", "significant", "baseline",
        "diverged", "setting", "setting_seeds", "setting_test_min", "setting_test_max",
    ]
    return frame[columns]


def thumbnail(path, width: int) -> str:
    """A figure scaled to ``width`` pixels as a WebP data URI: a figure drawn for print weighs
    tens of kilobytes, and a page of a hundred runs must stay under MAX_PAGE_BYTES."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", quality=55, method=6)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _axis_scale(kind: str):
    """An axis's scale: log or linear, the extreme runs a few pixels inside its ends, where a
    brush dragged from beyond the end takes them in."""
    import altair as alt

    if kind == "log":
        return alt.Scale(type="log", nice=False, padding=8)
    return alt.Scale(zero=False, nice=False, padding=8)


def _axis(frame, column):
    """Ticks at the values a setting takes, when it takes a few: a log axis of epochs 10-20
    otherwise labels 11, 12, ... 19, which no run has."""
    import altair as alt

    values = sorted(frame[column].dropna().unique()) if frame is not None and column in AXIS_TICKS_AT_VALUES else []
    if 0 < len(values) <= 12:
        return alt.Axis(values=[_clean(value) for value in values], format="~g")
    return alt.Axis(format="~g")


def explorer_chart(frame: pd.DataFrame | None = None):
    """The Altair chart: one brushable vertical axis per column of AXES (an interval brush each;
    brushes on several axes intersect), and a scatter whose two columns are chosen in the page."""
    import altair as alt

    data = alt.Data(name="runs")
    brushes = {column: alt.selection_interval(encodings=["y"], name=f"brush_{column}") for column in AXES}
    all_brushed = None
    for brush in brushes.values():
        all_brushed = brush if all_brushed is None else all_brushed & brush
    color = alt.condition(all_brushed, alt.Color("network:N", legend=alt.Legend(orient="bottom")), alt.value("#dddddd"))
    axes = []
    for column, (title, scale) in AXES.items():
        axes.append(
            alt.Chart(data, name=f"axis_{column}", width=46, height=260)
            .mark_tick(thickness=2, size=18)
            .encode(
                y=alt.Y(f"{column}:Q", title=title, scale=_axis_scale(scale), axis=_axis(frame, column)),
                color=color,
                tooltip=[alt.Tooltip("folder:N"), alt.Tooltip(f"{column}:Q")],
            )
            .add_params(brushes[column])
        )
    choices = [column for column in AXES]
    x_field = alt.param(name="scatter_x", value="val_accuracy",
                        bind=alt.binding_select(options=choices, name="scatter x "))
    y_field = alt.param(name="scatter_y", value="test_accuracy",
                        bind=alt.binding_select(options=choices, name="scatter y "))
    scatter = (
        alt.Chart(data, name="scatter", width=300, height=260)
        .mark_circle(size=50, opacity=0.8)
        .transform_calculate(scatter_x_value="datum[scatter_x]", scatter_y_value="datum[scatter_y]")
        .encode(
            x=alt.X("scatter_x_value:Q", title="x: the column chosen below", scale=alt.Scale(zero=False)),
            y=alt.Y("scatter_y_value:Q", title="y: the column chosen below", scale=alt.Scale(zero=False)),
            color=color,
            tooltip=[alt.Tooltip("folder:N"), alt.Tooltip("test_accuracy:Q")],
        )
        .add_params(x_field, y_field)
    )
    chart = alt.hconcat(alt.hconcat(*axes, spacing=14), scatter, spacing=40).configure_view(stroke=None, fill="white")
    return chart


def _json(value) -> str:
    """JSON for a <script> element: NaN as null, and no '</' that could close the element."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("</", "<\\/")


def _clean(value):
    if isinstance(value, (float, np.floating)):
        # six significant digits: a page of 1,000 runs stays small, every shown digit is kept
        return None if not np.isfinite(value) else float(f"{value:.6g}")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def page_columns(frame: pd.DataFrame) -> dict:
    """The runs by column (``columns``, then one list of values per run): the page makes one
    object per run of them, and the names are written once instead of once per run."""
    return {
        "columns": list(frame.columns),
        "values": [[_clean(value) for value in row] for row in frame.itertuples(index=False)],
    }


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed in one script, as vl-convert ships them (no download)."""
    import vl_convert

    return vl_convert.javascript_bundle().replace("</script", "<\\/script")


def render_page(frame: pd.DataFrame, figures: dict[str, dict[str, str]], title: str, note: str = "") -> str:
    """The whole page: the chart's spec and runs as JSON, the inlined Vega bundle, the table
    script, and ``figures`` (run folder -> {"curves", "confusion"} data URIs)."""
    spec = explorer_chart(frame).to_dict()
    template = (Path(__file__).with_name("explorer.html")).read_text()
    replacements = {
        "{{TITLE}}": html.escape(title),
        "{{NOTE}}": html.escape(note),
        "{{BUNDLE}}": vega_bundle(),
        "{{SPEC}}": _json(spec),
        "{{ROWS}}": _json(page_columns(frame)),
        "{{FIGURES}}": _json(figures),
        "{{MARK}}": html.escape(SIGNIFICANT_MARK),
    }
    for key, value in replacements.items():
        template = template.replace(key, value)
    return template


def build_explorer(runs_csv, comparisons_csv, plan: list[dict], figure_files: dict[str, dict[str, str]],
                   headline: list[str], title: str = "pcann results explorer",
                   max_bytes: int = MAX_PAGE_BYTES) -> str:
    """The explorer page of a finished study. ``figure_files``: run folder -> {"curves",
    "confusion"} PNG paths (the runs with per-run outputs). Thumbnails shrink until the page
    fits ``max_bytes``; if even the smallest do not fit, only the ``headline`` runs keep theirs,
    and then none."""
    runs = pd.read_csv(runs_csv)
    comparisons = read_comparisons(comparisons_csv)
    frame = explorer_runs(runs, comparisons, plan)
    bare = render_page(frame, {}, title)
    budget = max_bytes - len(bare.encode()) - 2_000
    candidates = [figure_files, {run: files for run, files in figure_files.items() if run in set(headline)}]
    for chosen in candidates:
        for width in THUMBNAIL_WIDTHS:
            figures = {
                run: {kind: thumbnail(path, width if kind == "curves" else width // 2) for kind, path in files.items()}
                for run, files in chosen.items()
            }
            size = sum(len(uri) for files in figures.values() for uri in files.values()) + 60 * len(figures)
            if size <= budget:
                note = "" if chosen is figure_files else (
                    f"figures of the {len(chosen)} headline runs only: all would not fit the page's size limit")
                return render_page(frame, figures, title, note)
    return render_page(frame, {}, title, "no figures: they would not fit the page's size limit")
