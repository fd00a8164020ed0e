"""Figures, written as PNG (for reading) and SVG (vector, for papers), byte-reproducibly."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pcann.io import atomic_path  # noqa: E402

# fixed ids in SVGs and no timestamps: the same data gives byte-identical figures
matplotlib.rcParams["svg.hashsalt"] = "pcann"
matplotlib.rcParams["figure.dpi"] = 100
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
FIGURE_FORMATS = ("png", "svg")
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


#: Legends name at most this many classes; a figure of more says how many it leaves out.
LEGEND_CLASSES = 20
#: The sample figure shows at most this many classes, spread over all of them.
SAMPLE_CLASSES = 20


def legend_label(index: int, name: str, n_classes: int) -> str:
    """A class's legend entry: its name for the first :data:`LEGEND_CLASSES` - 1 classes of a
    large set (all of a small one), no entry for the rest (see :func:`class_legend`)."""
    return name if n_classes <= LEGEND_CLASSES or index < LEGEND_CLASSES - 1 else "_nolegend_"


def class_legend(ax, n_classes: int, **kwargs) -> None:
    """The legend of a figure coloured by class, with one entry for the classes it leaves out."""
    handles, labels = ax.get_legend_handles_labels()
    if n_classes > LEGEND_CLASSES:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], linestyle="none"))
        labels.append(f"... {n_classes - (LEGEND_CLASSES - 1)} more classes (colours repeat)")
    ax.legend(handles, labels, **kwargs)


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
        ax.scatter(xs, ys, s=14, alpha=0.7, edgecolors="none",
                   label=legend_label(index, name, len(classes)), **class_style(index))
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2" if X.shape[1] >= 2 else "class")
    class_legend(ax, len(classes), title="class", markerscale=1.5,
                 fontsize="small" if len(classes) > 10 else None)
    ax.set_title(titled(title, data_label))
    return fig


def curves_figure(history, title: str, data_label: str | None = None, diverged_epoch=None,
                  seed_histories=()):
    """Loss and accuracy per epoch, training and validation, side by side; with
    ``seed_histories`` (the same setting's runs of every seed), a band spans their range."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    seeds = None
    if len(seed_histories) > 1:
        import pandas as pd  # only here: run_outputs jobs draw one run and start faster without it

        seeds = pd.concat(list(seed_histories))
    for part, style in (("train", "-"), ("val", "--")):
        name = "training" if part == "train" else "validation"
        lines = {}
        lines["loss"], = loss_ax.plot(history["epoch"], history[f"{part}_loss"], style, label=name)
        lines["accuracy"], = acc_ax.plot(history["epoch"], history[f"{part}_accuracy"], style, label=name)
        if seeds is not None:
            for ax, kind in ((loss_ax, "loss"), (acc_ax, "accuracy")):
                spread = seeds.groupby("epoch")[f"{part}_{kind}"].agg(["min", "max"])
                ax.fill_between(spread.index, spread["min"], spread["max"], color=lines[kind].get_color(),
                                alpha=0.2, lw=0, label=f"{name}, range over {len(seed_histories)} seeds")
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1.02)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        if diverged_epoch is not None:
            ax.axvline(diverged_epoch, color="red", linestyle=":", label="diverged")
    if diverged_epoch is not None:
        title += f" — DIVERGED at epoch {diverged_epoch}"
    fig.suptitle(titled(title, data_label))
    fig.tight_layout()
    return fig


#: Grid nodes per ``predict`` call of :func:`decision_grid`.
PREDICT_BLOCK = 8192


def decision_grid(predict, points: np.ndarray, resolution: int = 250, eps: float = 0.5):
    """``(xx0, xx1, classes)``: ``predict`` at every node of a ``resolution`` x ``resolution``
    grid over the bounding box of the 2-D ``points``, widened by ``eps`` on every side.

    The grid of scikit-learn's ``DecisionBoundaryDisplay.from_estimator`` (tested to be equal);
    computing it here keeps scikit-learn's import out of the per-run plotting jobs.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"decision regions need 2-D points; got an array of shape {points.shape}")
    axes = [
        np.linspace(points[:, i].min() - eps, points[:, i].max() + eps, resolution) for i in (0, 1)
    ]
    xx0, xx1 = np.meshgrid(*axes)
    nodes = np.c_[xx0.ravel(), xx1.ravel()]
    # in blocks whose hidden activations stay in the CPU cache: several times faster than one
    # call over the 62,500 nodes of the default grid
    classes = np.concatenate(
        [np.asarray(predict(nodes[i : i + PREDICT_BLOCK])) for i in range(0, len(nodes), PREDICT_BLOCK)]
    )
    return xx0, xx1, classes.reshape(xx0.shape)


def decision_regions_figure(
    predict, X_test, y_test, classes, title: str, data_label: str | None = None,
    X_train=None, y_train=None,
):
    """The predicted class over the PCA plane, with the test points (and training points).

    ``predict`` maps ``(n, 2)`` features to class indices into ``classes`` (e.g.
    ``pcann.nn.training.FittedNetwork.predict``, or the ``predict`` of an estimator fitted on indices).
    """
    from matplotlib.colors import ListedColormap

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    points = X_test if X_train is None else np.concatenate([X_train, X_test])
    xx0, xx1, predicted = decision_grid(predict, points)
    # colours pinned to class indices (vmin/vmax), so a class that wins nowhere on the grid does
    # not shift the colours of the others
    # one cell per grid node, as pcolormesh would draw it, but as an image: a 250 x 250 mesh
    # of quads takes seconds to draw and to place the legend around
    half_x, half_y = (xx0[0, 1] - xx0[0, 0]) / 2, (xx1[1, 0] - xx1[0, 0]) / 2
    ax.imshow(
        predicted, origin="lower", aspect="auto", interpolation="nearest", alpha=0.3,
        extent=(xx0[0, 0] - half_x, xx0[0, -1] + half_x, xx1[0, 0] - half_y, xx1[-1, 0] + half_y),
        cmap=ListedColormap([class_style(i)["color"] for i in range(len(classes))]),
        vmin=-0.5, vmax=len(classes) - 0.5,
    )
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    sets = [("test", X_test, y_test, 26, "black")]
    if X_train is not None:
        sets.insert(0, ("train", X_train, y_train, 10, "none"))
    for split, X, y, size, edge in sets:
        for index, name in enumerate(classes):
            rows = X[y == index]
            style = class_style(index)
            label = legend_label(index, f"{name} ({split})", len(classes))
            ax.scatter(rows[:, 0], rows[:, 1], s=size, c=[style["color"]], marker=style["marker"],
                       edgecolors=edge, linewidths=0.4, alpha=0.8 if split == "test" else 0.35,
                       label=label)
    class_legend(ax, len(classes), fontsize="small" if len(classes) <= 10 else "x-small",
                 loc="best", markerscale=1.2)
    ax.set_title(titled(title, data_label))
    return fig


def note_figure(text: str, title: str):
    """A figure that only says why there is no figure (e.g. decision regions of 5-D features)."""
    fig, ax = plt.subplots(figsize=(6.4, 2.0))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_title(title)
    return fig


ACCURACY_STYLES = {
    "train_accuracy": ("training", "tab:blue", "o"),
    "val_accuracy": ("validation", "tab:orange", "s"),
    "test_accuracy": ("test", "tab:green", "^"),
}


def lr_comparison_figure(histories: dict, title: str, data_label: str | None = None):
    """Training loss and validation accuracy per epoch, one line per learning rate."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(1, len(histories))))
    for colour, (label, history) in zip(colours, histories.items()):
        loss_ax.plot(history["epoch"], history["train_loss"], color=colour, label=label)
        acc_ax.plot(history["epoch"], history["val_accuracy"], color=colour, label=label)
    loss_ax.set_ylabel("training loss")
    loss_ax.set_yscale("log")
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.set_ylim(0, 1.02)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    acc_ax.legend(title="learning rate", fontsize="small")
    fig.suptitle(titled(title, data_label))
    fig.tight_layout()
    return fig


def sweep_accuracy_figure(summaries: dict, title: str, data_label: str | None = None):
    """Accuracy against each swept value (one panel per parameter) with its 95% interval (one
    seed: Wilson over the images; several: t interval over seeds); a star above a value whose
    test accuracy differs from the baseline's (Holm-adjusted p < 0.05)."""
    n = len(summaries)
    cols = 2 if n > 1 else 1
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 3.8 * rows), squeeze=False)
    for ax, (parameter_title, summary) in zip(axes.flat, summaries.items()):
        positions = np.arange(len(summary))
        for metric, (name, colour, marker) in ACCURACY_STYLES.items():
            ax.errorbar(positions, summary[f"{metric}_mean"], yerr=interval_errors(summary, metric),
                        color=colour, marker=marker, capsize=3, label=name)
        if "significant" in summary:
            marked = summary["significant"].fillna(False).to_numpy(dtype=bool)
            ax.scatter(positions[marked], np.full(marked.sum(), 0.97), marker="*", color="black", s=70,
                       label="test differs from baseline (Holm p < 0.05)", zorder=5)
        diverged = summary["diverged"].to_numpy() > 0
        if diverged.any():
            ax.scatter(positions[diverged], np.zeros(diverged.sum()) + 0.02, marker="x", color="red",
                       s=60, label="diverged", zorder=5)
        labels = [f"{v}\n(baseline)" if b else str(v) for v, b in zip(summary["value"], summary["is_baseline"])]
        ax.set_xticks(positions, labels, fontsize="small")
        ax.set_xlabel(parameter_title)
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small", loc="lower right")
    fig.suptitle(titled(title, data_label))
    fig.tight_layout()
    return fig


def interval_errors(summary, metric: str) -> np.ndarray:
    """Error-bar lengths (below, above the mean) of a summary's 95% intervals; 0 where none."""
    mean = summary[f"{metric}_mean"].to_numpy(dtype=float)
    below = mean - summary[f"{metric}_low"].to_numpy(dtype=float)
    above = summary[f"{metric}_high"].to_numpy(dtype=float) - mean
    return np.nan_to_num(np.vstack([below, above]), nan=0.0).clip(min=0)


def seed_spread_figure(spread, differences: dict, title: str, data_label: str | None = None):
    """Left: every seed's test accuracy of each baseline and headline run, the range as a bar.
    Right: each network's sweep differences from its baseline with their intervals (filled:
    significant after Holm), over a grey band of the baseline's range over seeds."""
    n_effects = sum(len(summary) for summary in differences.values())
    height = max(3.5, 0.5 * len(spread) + 2, 0.2 * n_effects + 1.5)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, height),
                                      gridspec_kw={"width_ratios": [1, 1.4]})
    for row, entry in enumerate(spread.itertuples(index=False)):
        values = np.array([float(v) for v in entry.test_accuracies.split()] or [np.nan])
        left.plot([np.nanmin(values), np.nanmax(values)], [row, row], color="tab:green", lw=6, alpha=0.3)
        left.scatter(values, np.full(values.size, row), color="tab:green", zorder=3)
    left.set_yticks(np.arange(len(spread)), [f"{r}\n({n} seeds)" for r, n in zip(spread["run"], spread["seeds"])],
                    fontsize="small")
    left.invert_yaxis()
    left.set_xlabel("test accuracy")
    left.set_title("test accuracy by seed")
    left.grid(axis="x", alpha=0.3)
    labels, position = [], 0
    for network, summary in differences.items():
        baseline = spread[(spread["network"] == network) & spread["run"].str.endswith("baseline")]
        half = float(baseline["test_range"].iloc[0]) if len(baseline) and baseline["seeds"].iloc[0] > 1 else 0.0
        start = position
        for entry in summary.itertuples(index=False):
            low, high = entry.difference - entry.difference_low, entry.difference_high - entry.difference
            right.errorbar(entry.difference, position, xerr=[[np.nan_to_num(low)], [np.nan_to_num(high)]],
                           fmt="o", color="tab:blue", mfc="tab:blue" if entry.significant else "white", capsize=2)
            labels.append(f"{network}: {entry.label}")
            position += 1
        if half:
            right.fill_betweenx([start - 0.5, position - 0.5], -half, half, color="grey", alpha=0.25,
                                label="baseline's range over seeds" if start == 0 else None)
    right.axvline(0, color="black", lw=0.8)
    right.set_yticks(np.arange(len(labels)), labels, fontsize="x-small")
    right.invert_yaxis()
    right.set_xlabel("test accuracy minus baseline's (95% interval)")
    right.set_title("sweep effects (filled: Holm p < 0.05)")
    right.grid(axis="x", alpha=0.3)
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize="small", loc="lower right")
    fig.suptitle(titled(title, data_label))
    fig.tight_layout()
    return fig


def comparison_figure(summary, title: str, data_label: str | None = None):
    """Grouped bars of training, validation and test accuracy, one group per table row."""
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(summary) + 2), 4.5))
    positions = np.arange(len(summary))
    width = 0.26
    for offset, (metric, (name, colour, _)) in zip((-1, 0, 1), ACCURACY_STYLES.items()):
        ax.bar(positions + offset * width, summary[f"{metric}_mean"].fillna(0), width,
               yerr=interval_errors(summary, metric), color=colour, label=name, capsize=2)
    ax.set_xticks(positions, [str(v).replace(" / ", "\n") for v in summary["value"]], fontsize="small")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(titled(title, data_label))
    fig.tight_layout()
    return fig


def samples_figure(images, per_class: int = 8, data_label: str | None = None):
    """The first ``per_class`` training images of each class, one row per class; of a set of
    more than :data:`SAMPLE_CLASSES` classes, that many spread over them."""
    shown = np.unique(np.linspace(0, len(images.classes) - 1, SAMPLE_CLASSES).round().astype(int))
    n_classes = len(shown)
    fig, axes = plt.subplots(n_classes, per_class, figsize=(per_class * 0.9, n_classes * 1.0 + 0.6),
                             squeeze=False)
    for row, class_index in enumerate(shown):
        name = images.classes[class_index]
        picks = np.flatnonzero(images.y == class_index)[:per_class]
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(picks):
                show_image(ax, images.X[picks[col]].reshape(images.image_shape))
            if col == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
    title = "Training images by class"
    if n_classes < len(images.classes):
        title += f" ({n_classes} of {len(images.classes)} classes)"
    fig.suptitle(titled(title, data_label))
    return fig


def show_image(ax, image: np.ndarray) -> None:
    """Draw an image as OpenCV decoded it (BGR(A) shown as RGB, one channel as grey)."""
    if image.ndim == 3 and image.shape[2] >= 3:  # OpenCV's BGR(A) to RGB for display
        image = image[:, :, 2::-1]
    ax.imshow(image.squeeze(), cmap="gray", vmin=0, vmax=np.iinfo(image.dtype).max
              if np.issubdtype(image.dtype, np.integer) else None)


#: Up to this many classes, the confusion matrix figure labels every class and writes counts.
CONFUSION_LABEL_LIMIT = 30


def confusion_figure(matrix: np.ndarray, classes: Sequence[str], title: str,
                     data_label: str | None = None):
    """The confusion matrix as a heat map of row shares (the recall of each true class), with
    the counts written in the cells. Beyond ``CONFUSION_LABEL_LIMIT`` classes the cells are too
    small for text: only the shares are drawn, with every k-th class named."""
    matrix = np.asarray(matrix)
    n = len(classes)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = min(12.0, max(4.8, 0.55 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    step = 1 if n <= CONFUSION_LABEL_LIMIT else int(np.ceil(n / CONFUSION_LABEL_LIMIT))
    ticks = np.arange(0, n, step)
    labels = [classes[i] for i in ticks]
    ax.set_xticks(ticks, labels, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center",
                  fontsize="small" if n <= CONFUSION_LABEL_LIMIT else "x-small")
    ax.set_yticks(ticks, labels, fontsize="small" if n <= CONFUSION_LABEL_LIMIT else "x-small")
    if n <= CONFUSION_LABEL_LIMIT:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize="small" if n <= 10 else 6,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(matrix) / max(1, matrix.sum())
    note = "" if n <= CONFUSION_LABEL_LIMIT else f"\n{n} classes: every {step}th named; counts in confusion.csv"
    ax.set_title(titled(f"{title}\ntest accuracy {accuracy:.4f}{note}", data_label))
    return fig


def misclassified_figure(images: np.ndarray, true: Sequence[str], predicted: Sequence[str],
                         n_total: int, title: str, data_label: str | None = None,
                         columns: int = 6):
    """A gallery of misclassified images, each captioned with its true and predicted class;
    ``n_total`` is how many were misclassified in all (the gallery may show fewer)."""
    n = len(images)
    if n == 0:
        return note_figure("No test image is misclassified.", titled(title, data_label))
    columns = min(columns, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.75 * columns, 1.95 * rows + 0.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p in zip(axes.flat, images, true, predicted):
        show_image(ax, image)
        ax.set_title(f"true {t}\npred. {p}", fontsize=7)
    shown = f"all {n}" if n == n_total else f"{n} of {n_total}"
    fig.suptitle(titled(f"{title}\nmisclassified test images: {shown}", data_label), fontsize="medium")
    fig.tight_layout()
    return fig


def search_figure(curves: dict, rungs: Sequence[int], winner: str, title: str, data_label: str | None = None):
    """Validation accuracy against epochs of every candidate of a search (``curves``: name ->
    (epochs, mean validation accuracy over seeds), each ending at the last rung it reached),
    rungs as dotted lines, the winner drawn on top and named."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for epoch in rungs:
        ax.axvline(epoch, color="0.6", linestyle=":", lw=1)
    for name, (epochs, accuracy) in curves.items():
        if name != winner:
            ax.plot(epochs, accuracy, color="0.45", lw=0.8, alpha=0.5)
            ax.plot(epochs[-1:], accuracy[-1:], "x", color="0.35", ms=4)
    epochs, accuracy = curves[winner]
    ax.plot(epochs, accuracy, color="C3", lw=2, label=f"winner: {winner}")
    ax.plot([], [], color="0.45", lw=0.8, label=f"the other {len(curves) - 1} candidates (x: stopped)")
    ax.set_xscale("log")
    ax.set_xlabel("epoch (dotted: rungs at " + ", ".join(map(str, rungs)) + ")")
    ax.set_ylabel("validation accuracy (mean over seeds)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.suptitle(titled(title, data_label))
    fig.tight_layout()
    return fig
