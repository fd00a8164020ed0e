"""Figures, written as PNG (for reading) and SVG (vector, for papers), byte-reproducibly."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import atomic_path  # noqa: E402

# fixed ids in SVGs and no timestamps: the same data gives byte-identical figures
matplotlib.rcParams["svg.hashsalt"] = "pcann"
matplotlib.rcParams["figure.dpi"] = 100
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
FIGURE_FORMATS = ("png", "svg")
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def class_style(index: int) -> dict:
    """Colour and marker of class ``index``: both differ, so figures survive greyscale printing."""
    return {"color": plt.get_cmap("tab10")(index % 10), "marker": MARKERS[index % len(MARKERS)]}


def save_figure(fig, *paths: str | Path) -> None:
    """Save ``fig`` atomically to each path (its suffix picks the format), then close it."""
    for path in map(Path, paths):
        fmt = path.suffix.lstrip(".")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata=_METADATA.get(fmt), bbox_inches="tight")
    plt.close(fig)


def titled(title: str, data_label: str | None) -> str:
    return f"{title}\n[{data_label}]" if data_label else title


def explained_variance_figure(spectrum: np.ndarray, n_kept: int, data_label: str | None = None):
    """Bars of each component's explained-variance ratio, its cumulative sum on a second axis."""
    spectrum = np.asarray(spectrum, dtype=float)
    components = np.arange(1, len(spectrum) + 1)
    cumulative = np.cumsum(spectrum)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = ["tab:blue" if c <= n_kept else "lightsteelblue" for c in components]
    ax.bar(components, spectrum, color=colours, label="per component")
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained-variance ratio")
    ax.set_xticks(components)
    twin = ax.twinx()
    twin.plot(components, cumulative, color="tab:red", marker="o", label="cumulative")
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("cumulative explained-variance ratio")
    kept = cumulative[n_kept - 1]
    twin.axvline(n_kept + 0.5, color="grey", linestyle="--", linewidth=1)
    twin.annotate(
        f"{n_kept} kept: {kept:.1%}", xy=(n_kept + 0.5, kept), xytext=(6, -14),
        textcoords="offset points", color="grey",
    )
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, ["per component (dark: kept)", "cumulative"], loc="upper center")
    ax.set_title(titled("PCA explained variance", data_label))
    return fig


def projection_figure(
    X: np.ndarray, y: np.ndarray, classes: Sequence[str], data_label: str | None = None,
    title: str = "Training data on the first two principal components",
):
    """Scatter of PCA coordinates by class (PC1 against class rows when only one is kept)."""
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    for index, name in enumerate(classes):
        rows = X[y == index]
        if X.shape[1] >= 2:
            xs, ys = rows[:, 0], rows[:, 1]
        else:  # one component: spread the classes on separate rows
            xs, ys = rows[:, 0], np.full(len(rows), index, dtype=float)
        ax.scatter(xs, ys, s=14, alpha=0.7, edgecolors="none", label=name, **class_style(index))
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2" if X.shape[1] >= 2 else "class")
    ax.legend(title="class", markerscale=1.5)
    ax.set_title(titled(title, data_label))
    return fig
