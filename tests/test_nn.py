"""Unit tests of the network modules (pcann.nn.network, .sgd, .training, .weights_file): gradients,
the fast trainer against the readable network, numerical safety, determinism, schedules,
validation, saving, and scikit-learn compatibility."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from pcann.nn import network, sgd, training, weights_file
from pcann.nn.estimator import MLPClassifier


def sgd_step(trainer: sgd.SGDTrainer, x, y, lr: float) -> None:
    """One SGD step of ``trainer`` on the batch ``x`` (``(n_features, B)``) with class indices
    ``y``, built from the trainer's own parts as :meth:`sgd.SGDTrainer.train` builds each step."""
    batch = x.shape[1]
    x = np.vstack([x, np.ones((1, batch))]).astype(trainer.dtype)
    y_scaled = network.one_hot(y, trainer.n_classes, trainer.dtype) * trainer.dtype.type(lr / batch)
    buffers = sgd._BatchBuffers(trainer.products, batch, trainer.dtype, trainer.exp)
    buffers.output.set_learning_rate(lr)
    with np.errstate(**sgd.TRAINING_ERRSTATE):
        for op in trainer.tape(buffers, x, y_scaled):
            op()


@pytest.fixture(autouse=True)
def floating_point_warnings_are_errors():
    """Any overflow/invalid/divide warning anywhere in these tests fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


def random_problem(n_features=3, m=37, n_classes=3, seed=0):
    """Samples-as-columns inputs and integer labels, every class present."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n_features, m)
    y = np.arange(m) % n_classes
    rng.shuffle(y)
    return X, y


def separable_blobs(n_samples=300, std=1.0):
    return make_blobs(
        n_samples=n_samples, centers=[(-5, -5), (0, 5), (5, -5)], cluster_std=std, random_state=0
    )


def readable_sgd(X, y, hidden, epochs, lrs, batch_size, seed):
    """Mini-batch SGD written with the readable network: the specification of the fast trainer."""
    rng = np.random.RandomState(seed)
    sizes = network.layer_sizes(X.shape[0], hidden, int(y.max()) + 1)
    weights, biases = network.init_parameters(sizes, rng)
    m = X.shape[1]
    for epoch in range(epochs):
        order = rng.permutation(m)
        for start in range(0, m, batch_size):
            batch = order[start : start + batch_size]
            _, dWs, dbs = network.loss_and_gradients(weights, biases, X[:, batch], y[batch])
            weights = [W - lrs[epoch] * dW for W, dW in zip(weights, dWs)]
            biases = [b - lrs[epoch] * db for b, db in zip(biases, dbs)]
    return weights, biases


# -- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hidden", [[5], [4, 6], [3, 5, 4]], ids=["1-hidden", "2-hidden", "3-hidden"]
)
def test_gradients_match_finite_differences(hidden):
    X, y = random_problem(m=11)
    rng = np.random.RandomState(1)
    sizes = network.layer_sizes(X.shape[0], hidden, 3)
    # larger than the study's 0.01 so that every layer's gradient is far from zero
    weights = [rng.randn(n_out, n_in) * 0.7 for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [rng.randn(n_out, 1) * 0.3 for n_out in sizes[1:]]
    _, dWs, dbs = network.loss_and_gradients(weights, biases, X, y)

    def loss():
        return network.loss_and_gradients(weights, biases, X, y)[0]

    analytic, numeric = [], []
    eps = 1e-6
    for params, grads in ((weights, dWs), (biases, dbs)):
        for P, dP in zip(params, grads):
            for index in np.ndindex(P.shape):
                saved = P[index]
                P[index] = saved + eps
                plus = loss()
                P[index] = saved - eps
                minus = loss()
                P[index] = saved
                numeric.append((plus - minus) / (2 * eps))
                analytic.append(dP[index])
    analytic, numeric = np.array(analytic), np.array(numeric)
    relative_error = np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic + numeric)
    assert relative_error < 1e-6
    assert np.linalg.norm(analytic) > 1e-2  # a real gradient, not a trivially matching zero


@pytest.mark.parametrize(
    "hidden",
    [[5], [4, 6], [3, 5, 4], [96, 90]],
    ids=["1-hidden", "2-hidden", "3-hidden", "gemm-route"],
)
@pytest.mark.parametrize("batch, n_classes", [(8, 3), (5, 3), (8, 2), (9, 6), (7, 20)])
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("exp_backend", training.OPTIONS_BY_NAME["exp_backend"].choices)
def test_fast_step_equals_readable_step(hidden, batch, n_classes, dtype, tolerance, exp_backend):
    """One step of the trainer is W <- W - lr * dW with the readable network's gradients."""
    X, y = random_problem(m=batch, n_classes=n_classes)
    rng = np.random.RandomState(2)
    sizes = network.layer_sizes(X.shape[0], hidden, n_classes)
    weights = [rng.randn(n_out, n_in) * 0.5 for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [rng.randn(n_out, 1) * 0.5 for n_out in sizes[1:]]
    if hidden == [96, 90]:  # the middle layer is large enough for the direct-BLAS route
        assert 90 * 97 >= sgd.GEMM_MIN_WEIGHTS
    lr = 0.3
    trainer = sgd.SGDTrainer(weights, biases, batch, dtype, exp_backend)
    sgd_step(trainer, X, y, lr)

    _, dWs, dbs = network.loss_and_gradients(weights, biases, X, y)
    new_weights, new_biases = trainer.parameters(dtype=np.float64)
    for W, dW, W_new in zip(weights, dWs, new_weights):
        np.testing.assert_allclose(W_new, W - lr * dW, rtol=tolerance, atol=tolerance)
    for b, db, b_new in zip(biases, dbs, new_biases):
        np.testing.assert_allclose(b_new, (b - lr * db).reshape(-1), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("hidden", [[6], [5, 4]])
@pytest.mark.parametrize("schedule", ["constant", "step", "exponential"])
def test_training_equals_readable_sgd(hidden, schedule):
    """Seeding, initialisation, shuffling, the short last batch and the schedule, end to end."""
    X, y = random_problem(m=37)
    epochs, batch_size = 4, 8
    model = MLPClassifier(
        hidden=hidden,
        epochs=epochs,
        lr=0.5,
        batch_size=batch_size,
        seed=3,
        lr_schedule=schedule,
        lr_decay_rate=0.5,
        lr_decay_every=2,
        dtype="float64",
    ).fit(X.T, y)
    lrs = [model.learning_rate_at(epoch) for epoch in range(1, epochs + 1)]
    weights, biases = readable_sgd(X, y, hidden, epochs, lrs, batch_size, seed=3)
    for W_fast, W in zip(model.coefs_, weights):
        np.testing.assert_allclose(W_fast, W, rtol=1e-10, atol=1e-13)
    for b_fast, b in zip(model.intercepts_, biases):
        np.testing.assert_allclose(b_fast, b.reshape(-1), rtol=1e-10, atol=1e-13)
    assert model.n_steps_ == epochs * math.ceil(37 / batch_size)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_class_index_labels_train_as_one_hot_labels_bit_for_bit(monkeypatch, dtype):
    """Many classes shuffle class indices instead of one-hot rows: the same run, to the bit
    (37 samples in batches of 8: a short last batch; a step schedule changes the labels' scale)."""
    X, y = random_problem(m=37, n_classes=20)
    X_val, y_val = random_problem(m=11, n_classes=20, seed=1)

    def train(one_hot_classes):
        monkeypatch.setattr(sgd, "ONE_HOT_CLASSES", one_hot_classes)
        return training.train_network(
            X.T, y, 20, X_val.T, y_val, hidden=[7], epochs=4, lr=0.8, batch_size=8, seed=2,
            lr_schedule="step", lr_decay_rate=0.5, lr_decay_every=2, dtype=dtype,
        )

    by_index, by_one_hot = train(one_hot_classes=19), train(one_hot_classes=20)
    for a, b in zip(by_index.weights + by_index.biases, by_one_hot.weights + by_one_hot.biases):
        assert a.tobytes() == b.tobytes()
    assert by_index.result.history == by_one_hot.result.history


@pytest.mark.parametrize("n_classes", [3, 6, 20])  # each way of scoring: by rows, by columns
def test_history_losses_match_log_loss(n_classes):
    X, y = make_blobs(n_samples=300, centers=n_classes, cluster_std=3.0, random_state=0)
    model = MLPClassifier(hidden=[8], epochs=3, lr=0.05, dtype="float64").fit(
        X[:200], y[:200], X[200:], y[200:]
    )
    assert len(model.classes_) == n_classes
    assert model.history_["train_loss"][-1] == pytest.approx(
        model.log_loss(X[:200], y[:200]), rel=1e-9
    )
    assert model.history_["val_loss"][-1] == pytest.approx(
        model.log_loss(X[200:], y[200:]), rel=1e-9
    )
    assert model.history_["val_accuracy"][-1] == pytest.approx(model.score(X[200:], y[200:]))


# -- learning -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_learns_separable_blobs(dtype):
    X, y = separable_blobs()
    model = MLPClassifier(hidden=[16], epochs=50, lr=0.1, dtype=dtype).fit(X[::2], y[::2])
    assert model.score(X[1::2], y[1::2]) >= 0.99
    assert model.history_["train_loss"][-1] < model.history_["train_loss"][0]
    assert not model.diverged_


def test_learns_with_string_labels():
    X, y = separable_blobs()
    names = np.array(["pear", "apple", "lychee"])[y]
    model = MLPClassifier(hidden=[16], epochs=30, lr=0.1).fit(X, names)
    assert list(model.classes_) == ["apple", "lychee", "pear"]
    assert model.score(X, names) >= 0.99
    assert set(model.predict(X)) <= set(names)


# -- determinism --------------------------------------------------------------------------------


def fitted(seed, **params):
    X, y = separable_blobs(std=3.0)
    return MLPClassifier(hidden=[8, 6], epochs=5, lr=0.05, seed=seed, **params).fit(
        X[:200], y[:200], X[200:], y[200:]
    )


def test_same_seed_is_bit_identical():
    first, second = fitted(seed=4), fitted(seed=4)
    for a, b in zip(first.coefs_ + first.intercepts_, second.coefs_ + second.intercepts_):
        assert np.array_equal(a, b)
    assert first.history_ == second.history_


def test_different_seed_differs():
    first, second = fitted(seed=4), fitted(seed=5)
    assert not np.array_equal(first.coefs_[0], second.coefs_[0])
    assert first.history_["train_loss"] != second.history_["train_loss"]


def test_initial_weights_follow_the_study():
    """W_l = randn(n_out, n_in) * 0.01 from RandomState(seed), drawn layer by layer."""
    rng = np.random.RandomState(1)
    weights, biases = network.init_parameters([2, 256, 512, 3], rng)
    expected = np.random.RandomState(1)
    for W, shape in zip(weights, [(256, 2), (512, 256), (3, 512)]):
        assert np.array_equal(W, expected.randn(*shape) * 0.01)
    assert all(not b.any() for b in biases)


# -- numerical safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_pieces_on_extreme_inputs(dtype):
    z = np.array([-1e30, -1e6, -100.0, 0.0, 100.0, 1e6, 1e30], dtype=dtype)
    s = network.sigmoid(z)
    assert s.dtype == dtype and np.all(np.isfinite(s))
    tiny = np.finfo(dtype).tiny  # the smallest normal number: anything below is 0 for all purposes
    assert 0 <= s[0] < tiny and 0 <= s[1] < tiny and s[3] == 0.5 and s[-1] == 1 and s[-2] == 1
    assert s[2] == pytest.approx(math.exp(-100), rel=1e-5) if dtype == np.float64 else s[2] < tiny
    logits = np.array([[1e30, -1e30], [-1e30, 1e30], [0.0, 0.0]], dtype=dtype)
    assert np.all(np.isfinite(network.log_softmax(logits)))
    np.testing.assert_allclose(network.softmax(logits)[:, 0], [1, 0, 0])
    loss = network.cross_entropy(logits.astype(np.float64), np.array([2, 0]))
    assert math.isfinite(loss) and loss > 1e29  # confidently wrong: huge but finite


@pytest.mark.parametrize("scale", [1.0, 1e6])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_floating_point_warnings_at_lr_0_1(scale, dtype):
    """Training and prediction at lr 0.1, also on inputs a million times larger."""
    X, y = separable_blobs(std=2.0)
    X = X * scale  # at 1e6 every hidden unit saturates: exp(-z) would overflow unguarded
    model = MLPClassifier(hidden=[16], epochs=30, lr=0.1, dtype=dtype).fit(X, y, X, y)
    assert not model.diverged_
    assert np.all(np.isfinite(model.predict_proba(X)))
    assert math.isfinite(model.log_loss(X, y))
    assert model.score(X, y) > 0.9


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_absurd_learning_rate_is_recorded_as_divergence(dtype):
    X, y = separable_blobs(std=4.0)  # overlapping classes: a huge step leaves a huge loss
    model = MLPClassifier(hidden=[16], epochs=20, lr=1e4, dtype=dtype).fit(X, y)
    assert model.diverged_
    assert model.diverged_epoch_ == 1
    assert model.n_epochs_run_ == 1
    assert model.history_["epoch"] == [1]
    assert model.history_["train_loss"][-1] > sgd.DIVERGENCE_FACTOR * math.log(3)


def test_nan_in_training_stops_the_run_at_once():
    """Output weights so large that the logits overflow: inf - inf is NaN in the first step."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(2, 40), rng.randint(0, 3, 40)
    weights, biases = [np.ones((4, 2)), np.full((3, 4), 3e38)], [np.zeros(4), np.zeros(3)]
    trainer = sgd.SGDTrainer(weights, biases, batch_size=8, dtype="float32")
    result = trainer.train(X, y, epochs=5, rng=rng, lr_at_epoch=lambda epoch: 0.1)
    assert result.diverged and result.diverged_epoch == 1
    assert result.n_steps == 0  # stopped inside the first step
    assert result.history["epoch"] == [1]
    assert not math.isfinite(result.history["train_loss"][0])


def test_saturated_sigmoids_are_not_divergence():
    """Pre-activations beyond float32's range saturate the sigmoid; training goes on."""
    rng = np.random.RandomState(0)
    X, y = rng.randn(2, 40) * 1e10, rng.randint(0, 3, 40)
    weights, biases = [np.full((4, 2), 1e30), np.ones((3, 4))], [np.zeros(4), np.zeros(3)]
    trainer = sgd.SGDTrainer(weights, biases, batch_size=8, dtype="float32")
    result = trainer.train(X, y, epochs=5, rng=rng, lr_at_epoch=lambda epoch: 0.1)
    assert not result.diverged and result.n_epochs_run == 5
    assert all(math.isfinite(loss) for loss in result.history["train_loss"])


# -- schedules and evaluation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("constant", [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
        ("step", [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
        ("exponential", [0.1 * 0.5 ** (e / 2) for e in range(6)]),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    rates = [training.learning_rate(schedule, 0.1, 0.5, 2, epoch) for epoch in range(1, 7)]
    np.testing.assert_allclose(rates, expected, rtol=1e-15)
    X, y = separable_blobs()
    model = MLPClassifier(
        hidden=[4], epochs=6, lr=0.1, lr_schedule=schedule, lr_decay_rate=0.5, lr_decay_every=2
    ).fit(X, y)
    np.testing.assert_allclose(model.history_["lr"], expected, rtol=1e-15)


def test_decayed_learning_rate_slows_learning():
    """With a rate that vanishes after the first epoch, later epochs leave the weights alone."""
    X, y = separable_blobs(std=3.0)
    params = dict(hidden=[8], lr=0.1, lr_schedule="step", lr_decay_rate=1e-30, lr_decay_every=1)
    one_epoch = MLPClassifier(epochs=1, **params).fit(X, y)
    five_epochs = MLPClassifier(epochs=5, **params).fit(X, y)
    constant = MLPClassifier(hidden=[8], lr=0.1, epochs=5).fit(X, y)
    assert not five_epochs.diverged_
    assert five_epochs.history_["lr"][-1] == pytest.approx(0.1 * 1e-120)
    np.testing.assert_allclose(five_epochs.coefs_[0], one_epoch.coefs_[0], rtol=1e-6)
    assert not np.allclose(constant.coefs_[0], one_epoch.coefs_[0], rtol=1e-3)


# -- continuing a shorter run ---------------------------------------------------------------


def _blob_run(epochs, tmp_path=None, **params):
    """A network trained on blobs (with a validation set); saved and read back with ``tmp_path``."""
    X, y = separable_blobs(std=3.0)
    params = {"hidden": (8,), "lr": 0.05, "batch_size": 16, **params}
    network = training.train_network(X[:200], y[:200], 3, X[200:], y[200:], epochs=epochs, **params)
    if tmp_path is None:
        return network
    path = tmp_path / f"run{epochs}.npz"
    weights_file.save_network(path, network, params=params, classes=[0, 1, 2], n_features_in=2)
    return weights_file.load_network(path)[0]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"hidden": (8, 5), "eval_every": 4},  # the shorter run's last epoch is off the grid
        {"lr_schedule": "step", "lr_decay_every": 3, "eval_every": 2},
        {"dtype": "float64", "exp_backend": "numpy", "batch_size": 7},
    ],
    ids=["study", "3-layer-eval-every-4", "step-decay", "float64-numpy-exp"],
)
def test_continuing_a_shorter_run_gives_the_run_from_the_start_bit_for_bit(tmp_path, params):
    from_start = _blob_run(17, **params)
    shorter = _blob_run(7, tmp_path, **params)  # through the .npz file, as the workflow does
    X, y = separable_blobs(std=3.0)
    continued = training.train_network(
        X[:200], y[:200], 3, X[200:], y[200:], epochs=17, continue_from=shorter,
        **{"hidden": (8,), "lr": 0.05, "batch_size": 16, **params},
    )
    for a, b in zip(from_start.weights + from_start.biases, continued.weights + continued.biases):
        assert np.array_equal(a, b)
    assert continued.result.history == from_start.result.history
    assert continued.result.n_steps == from_start.result.n_steps
    assert continued.result.n_epochs_run == 17 and not continued.result.diverged


def test_a_run_that_cannot_be_continued_says_why(tmp_path):
    X, y = separable_blobs(std=3.0)
    shorter = _blob_run(5, tmp_path)
    base = {"hidden": (8,), "lr": 0.05, "batch_size": 16}

    def continue_to(epochs=10, network=shorter, X_train=X[:200], **changes):
        return training.train_network(
            X_train, y[:200], 3, X[200:], y[200:], epochs=epochs, continue_from=network,
            **{**base, **changes},
        )

    with pytest.raises(ValueError, match="other parameters, data or code"):
        continue_to(lr=0.06)
    with pytest.raises(ValueError, match="other parameters, data or code"):
        continue_to(X_train=X[:200] + 1e-9)
    with pytest.raises(ValueError, match="ran 5 epochs, not fewer than 5"):
        continue_to(epochs=5)
    diverged = training.train_network(X[:200], y[:200], 3, epochs=5, hidden=(8,), lr=1e4)
    assert diverged.result.diverged
    same_run = {"hidden": (8,), "lr": 1e4, "epochs": 9}
    problem = training.continuation_problem(diverged, 3, X[:200], y[:200], **same_run)
    assert problem.startswith("it diverged (epoch")
    estimator_network = MLPClassifier(hidden=[8], epochs=5, lr=0.05).fit(X, y)._network()
    problem = training.continuation_problem(estimator_network, 3, X[:200], y[:200], **same_run)
    assert "saved without the state" in problem


@pytest.mark.parametrize(
    "epochs, every, expected",
    [(10, 1, list(range(1, 11))), (10, 3, [3, 6, 9, 10]), (10, 5, [5, 10]), (4, 10, [4])],
)
def test_eval_every(epochs, every, expected):
    X, y = separable_blobs()
    model = MLPClassifier(hidden=[4], epochs=epochs, lr=0.05, eval_every=every).fit(X, y)
    assert model.history_["epoch"] == expected
    assert {len(values) for values in model.history_.values()} == {len(expected)}
    assert all(math.isnan(v) for v in model.history_["val_loss"] + model.history_["val_accuracy"])
    assert model.n_epochs_run_ == epochs


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "param, value",
    [
        ("batch_size", 0),
        ("batch_size", -4),
        ("batch_size", 2.5),
        ("lr", 0),
        ("lr", -0.1),
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("lr", "fast"),
        ("hidden", []),
        ("hidden", [0]),
        ("hidden", [256, 0]),
        ("hidden", [256, -3]),
        ("hidden", [2.5]),
        ("hidden", None),
        ("epochs", 0),
        ("eval_every", 0),
        ("seed", -1),
        ("lr_schedule", "cosine"),
        ("lr_decay_rate", 0),
        ("lr_decay_rate", 1.5),
        ("lr_decay_every", 0),
        ("dtype", "float16"),
        ("exp_backend", "numba"),
    ],
)
def test_invalid_parameters_are_named(param, value):
    X, y = separable_blobs()
    model = MLPClassifier(epochs=1).set_params(**{param: value})
    with pytest.raises(ValueError, match=param):
        model.fit(X, y)


def test_batch_larger_than_training_set():
    X, y = separable_blobs(n_samples=12)
    with pytest.raises(ValueError, match=r"batch_size=16 .*\(n_samples = 12\)"):
        MLPClassifier(epochs=1).fit(X, y)


def test_single_class_is_refused():
    X, _ = separable_blobs(n_samples=30)
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier(epochs=1).fit(X, np.zeros(30))


@pytest.mark.parametrize(
    "X_val, y_val, message",
    [
        ("X", None, "together"),
        (None, "y", "together"),
        ("X3", "y", "features"),
        ("X", "unknown", "not in y"),
    ],
)
def test_invalid_validation_set(X_val, y_val, message):
    X, y = separable_blobs(n_samples=60)
    choices = {
        "X": X,
        "X3": np.hstack([X, X[:, :1]]),
        "y": y,
        "unknown": np.where(y == 0, 7, y),
        None: None,
    }
    with pytest.raises(ValueError, match=message):
        MLPClassifier(epochs=1).fit(X, y, choices[X_val], choices[y_val])


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(np.zeros((2, 2)))


# -- saving -------------------------------------------------------------------------------------


def test_save_and_load_weights(tmp_path):
    X, y = separable_blobs(std=3.0)
    names = np.array(["carambula", "lychee", "pear"])[y]
    model = MLPClassifier(hidden=(8, 5), epochs=3, lr=0.05, eval_every=2).fit(X, names, X, names)
    path = tmp_path / "model.npz"
    model.save_weights(path)
    assert os.listdir(tmp_path) == ["model.npz"]  # the temporary file was renamed, not left
    with np.load(path, allow_pickle=False) as archive:  # readable without pickle
        assert archive["W2"].shape == (5, 8)
    loaded = MLPClassifier.from_npz(path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.history_ == model.history_
    assert (loaded.diverged_, loaded.n_steps_) == (model.diverged_, model.n_steps_)


def test_save_unfitted_model_fails(tmp_path):
    with pytest.raises(NotFittedError):
        MLPClassifier().save_weights(tmp_path / "model.npz")


# -- scikit-learn compatibility -----------------------------------------------------------------


@parametrize_with_checks([MLPClassifier(hidden=[8], epochs=20, batch_size=4, lr=0.1)])
def test_scikit_learn_estimator_checks(estimator, check):
    """scikit-learn's own estimator checks (all of those that apply to a classifier)."""
    check(estimator)


# -- the exp backends ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", training.OPTIONS_BY_NAME["exp_backend"].choices)
def test_exp_backends_are_accurate(backend, dtype):
    """Within 2 ulp of the true exp wherever the result is a normal number; inf beyond, NaN kept."""
    exp = sgd.EXP_FUNCTIONS[backend]
    limit = network.exp_limit(dtype)
    z = np.linspace(-limit, limit, 400_000).astype(dtype).reshape(400, -1)
    out = np.empty_like(z)
    exp(z, out)
    true = np.exp(z.astype(np.longdouble))
    normal = true > np.finfo(dtype).tiny
    ulps = np.abs(out[normal] - true[normal]) / (true[normal] * np.finfo(dtype).eps)
    assert ulps.max() <= 2
    with np.errstate(over="ignore"):
        special = np.array([[limit + 1, np.inf, -np.inf, np.nan]], dtype)
        exp(special, special)
    assert np.isposinf(special[0, 0]) and np.isposinf(special[0, 1])
    assert special[0, 2] == 0 and np.isnan(special[0, 3])


def test_exp_backends_reach_the_same_model():
    X, y = separable_blobs(std=3.0)
    fits = {
        backend: MLPClassifier(hidden=[16], epochs=40, lr=0.1, exp_backend=backend).fit(X, y, X, y)
        for backend in training.OPTIONS_BY_NAME["exp_backend"].choices
    }
    opencv, numpy_only = fits["opencv"], fits["numpy"]
    np.testing.assert_allclose(opencv.history_["train_loss"], numpy_only.history_["train_loss"], rtol=1e-4)
    assert abs(opencv.score(X, y) - numpy_only.score(X, y)) <= 0.01
    for W_opencv, W_numpy in zip(opencv.coefs_, numpy_only.coefs_):
        np.testing.assert_allclose(W_opencv, W_numpy, rtol=1e-3, atol=1e-4)


def test_unknown_training_parameter_is_named():
    with pytest.raises(ValueError, match="unknown training parameters.*'momentum'"):
        training.check_params(momentum=0.9)
