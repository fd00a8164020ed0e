"""The decision-region figure: scikit-learn's grid, colours pinned to classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.inspection import DecisionBoundaryDisplay

from pcann.nn.estimator import MLPClassifier
from pcann.nn.weights_file import load_network
from pcann.results.plots import decision_grid, decision_regions_figure


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    X, y = make_blobs(n_samples=150, centers=[(-4, -4), (0, 4), (4, -4)], random_state=0)
    model = MLPClassifier(hidden=[8], epochs=30, lr=0.1).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "weights.npz"
    model.save_weights(path)
    return X, y, model, load_network(path)[0]


def test_grid_is_scikit_learns(fitted):
    X, _, model, network = fitted
    display = DecisionBoundaryDisplay.from_estimator(
        model, X, response_method="predict", grid_resolution=60, eps=0.5
    )
    xx0, xx1, predicted = decision_grid(network.predict, X, resolution=60, eps=0.5)
    np.testing.assert_array_equal(xx0, display.xx0)
    np.testing.assert_array_equal(xx1, display.xx1)
    np.testing.assert_array_equal(predicted, display.response)
    assert len(np.unique(predicted)) == 3


def test_colours_stay_with_their_class_when_a_class_wins_nowhere(fitted):
    X, y, _, _ = fitted
    only_classes_1_and_2 = lambda points: np.where(points[:, 0] > 0, 2, 1)  # noqa: E731
    fig = decision_regions_figure(only_classes_1_and_2, X, y, ("a", "b", "c"), "title")
    regions = fig.axes[0].images[0]
    colours = regions.cmap(regions.norm(np.array([1, 2])))
    expected = regions.cmap(np.array([1, 2]) / 2)  # the colours of classes 1 and 2 among 3
    np.testing.assert_allclose(colours, expected)


def test_regions_need_two_features():
    with pytest.raises(ValueError, match="2-D points.*shape \\(4, 3\\)"):
        decision_grid(lambda p: np.zeros(len(p)), np.zeros((4, 3)))


def test_regions_image_puts_each_prediction_at_its_grid_node(fitted):
    X, y, _, _ = fitted
    left_bottom_is_0 = lambda p: np.where((p[:, 0] < 0) & (p[:, 1] < 0), 0, 1)  # noqa: E731
    fig = decision_regions_figure(left_bottom_is_0, X, y, ("a", "b", "c"), "title")
    regions = fig.axes[0].images[0]
    xx0, xx1, predicted = decision_grid(left_bottom_is_0, X)
    np.testing.assert_array_equal(regions.get_array(), predicted)
    assert regions.origin == "lower"  # row 0 of the grid (smallest PC2) at the bottom
    left, right, bottom, top = regions.get_extent()
    assert left < xx0.min() < xx0.max() < right and bottom < xx1.min() < xx1.max() < top
    # one cell per node: the extent is the node range widened by half a cell on each side
    assert right - left == pytest.approx((xx0.max() - xx0.min()) * xx0.shape[1] / (xx0.shape[1] - 1))


def test_sweep_error_bars_are_the_intervals_and_stars_mark_significant_values():
    import pandas as pd

    from pcann.results.plots import interval_errors, sweep_accuracy_figure

    summary = pd.DataFrame({
        "value": ["a", "b"], "is_baseline": [True, False], "diverged": [0, 0], "significant": [False, True],
        **{f"{m}_{k}": v for m in ("train_accuracy", "val_accuracy", "test_accuracy")
           for k, v in (("mean", [0.8, 0.6]), ("low", [0.75, float("nan")]), ("high", [0.86, 0.7]))},
    })
    np.testing.assert_allclose(interval_errors(summary, "test_accuracy"), [[0.05, 0.0], [0.06, 0.1]])
    fig = sweep_accuracy_figure({"x": summary}, "title")
    stars = [c for c in fig.axes[0].collections if c.get_label().startswith("test differs")]
    assert len(stars) == 1 and stars[0].get_offsets().shape == (1, 2)


def test_headline_curves_shade_the_range_over_seeds():
    import pandas as pd

    from pcann.results.plots import curves_figure

    epochs = np.arange(1, 6)
    histories = [
        pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs + s, "val_loss": 1 / epochs,
                      "train_accuracy": 0.5 + 0.01 * s, "val_accuracy": 0.6 - 0.01 * s})
        for s in range(3)
    ]
    fig = curves_figure(histories[0], "t", seed_histories=histories)
    bands = fig.axes[1].collections
    assert len(bands) == 2  # training and validation accuracy
    assert "range over 3 seeds" in bands[0].get_label()
    assert not curves_figure(histories[0], "t").axes[1].collections  # one seed: no band
