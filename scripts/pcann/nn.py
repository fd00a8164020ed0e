"""Multilayer perceptrons written from scratch in numpy: the study's networks, made fast.

The network is the study's: sigmoid hidden layers, a softmax output, categorical cross-entropy,
plain mini-batch SGD. ``hidden=[256]`` is its 2-layer net and ``hidden=[256, 512]`` its 3-layer net.
Samples are *columns* inside this module (``X`` is ``(n_features, m)``), as in the study; the
scikit-learn estimator :class:`MLPClassifier` takes the usual ``(n_samples, n_features)``.

The module has three parts, each usable on its own:

1. **Numerically stable pieces** (:func:`sigmoid`, :func:`log_softmax`, :func:`softmax`,
   :func:`cross_entropy`): finite for any finite input, never an overflow warning.
2. **The readable network** (:class:`SigmoidLayer`, :class:`SoftmaxLayer`, :func:`forward`,
   :func:`backward`, :func:`loss_and_gradients`): forward and backward of each layer side by side,
   written to be read and to be checked against finite differences.
3. **The fast trainer** (:class:`SGDTrainer`): the same arithmetic on preallocated float32 buffers,
   tuned for the study's small batches, where numpy's cost per call matters more than the flops.
   Tests check that one of its steps equals a step of the readable network.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from scipy.linalg import blas as scipy_blas
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

#: Learning-rate schedules understood by :func:`learning_rate`.
LR_SCHEDULES = ("constant", "step", "exponential")
#: Compute precisions of the trainer.
DTYPES = ("float32", "float64")
#: A run has diverged once its training loss exceeds this many times the loss of a uniform guess.
DIVERGENCE_FACTOR = 100.0
#: The study's weight initialisation: ``randn(n_out, n_in) * INIT_SCALE``, biases zero.
INIT_SCALE = 0.01


# --------------------------------------------------------------------------------------------------
# 1. Numerically stable pieces
# --------------------------------------------------------------------------------------------------


def exp_limit(dtype) -> float:
    """Largest whole number whose ``exp`` is finite in ``dtype`` (88 for float32, 709 for float64).

    ``sigmoid`` clamps ``-z`` here: below it ``1 / (1 + exp(-z))`` is already 0 to the last bit of
    the precision, so the clamp changes no result, only removes the overflow of ``exp``.
    """
    return float(math.floor(math.log(np.finfo(dtype).max)))


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 / (1 + exp(-z))`` elementwise, without overflow for any ``z``.

    The plain formula overflows ``exp(-z)`` for very negative ``z`` (z < -88 in float32); clamping
    ``-z`` at :func:`exp_limit` avoids it and changes no result. ``out`` may be ``z`` itself.
    """
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    out = np.negative(z, out=out)
    np.minimum(out, exp_limit(out.dtype), out=out)
    np.exp(out, out=out)
    np.add(out, 1.0, out=out)
    return np.divide(1.0, out, out=out)


def log_softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """``log(softmax(logits))`` along ``axis``, finite for any finite logits.

    Softmax does not change when a constant is subtracted from every logit, so we subtract the
    largest: every ``exp`` is then at most 1 (no overflow) and their sum at least 1 (its log is
    finite), however far apart the logits are.
    """
    logits = np.asarray(logits)
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Class probabilities along ``axis`` (columns are samples by default); see :func:`log_softmax`."""
    logits = np.asarray(logits)
    exps = np.exp(logits - np.max(logits, axis=axis, keepdims=True))
    return exps / np.sum(exps, axis=axis, keepdims=True)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean categorical cross-entropy of ``(n_classes, m)`` logits against class indices ``y``.

    Computed from log-probabilities rather than probabilities, so a confidently wrong network has
    a large finite loss instead of ``log(0) = -inf``.
    """
    y = np.asarray(y)
    log_p = log_softmax(logits, axis=0)
    return float(-np.mean(log_p[y, np.arange(y.size)]))


def one_hot(y: np.ndarray, n_classes: int, dtype=np.float64) -> np.ndarray:
    """``(n_classes, m)`` indicator matrix of class indices ``y``."""
    y = np.asarray(y)
    Y = np.zeros((n_classes, y.size), dtype=dtype)
    Y[y, np.arange(y.size)] = 1
    return Y


# --------------------------------------------------------------------------------------------------
# 2. The readable network
# --------------------------------------------------------------------------------------------------


class SigmoidLayer:
    """A hidden layer: ``z = W a_prev + b``, ``a = sigmoid(z)``."""

    @staticmethod
    def forward(W, b, A_prev):
        return sigmoid(W @ A_prev + b)

    @staticmethod
    def backward(W, A_prev, A, dA):
        """Gradients ``(dW, db, dA_prev)`` given ``dA``, the gradient of the loss w.r.t. ``A``."""
        dZ = dA * A * (1 - A)  # sigmoid'(z) = sigmoid(z) (1 - sigmoid(z)): reuses the forward output
        return dZ @ A_prev.T, dZ.sum(axis=1, keepdims=True), W.T @ dZ


class SoftmaxLayer:
    """The output layer: ``z = W a_prev + b``, ``p = softmax(z)``, with the cross-entropy loss."""

    @staticmethod
    def forward(W, b, A_prev):
        return softmax(W @ A_prev + b, axis=0)

    @staticmethod
    def backward(W, A_prev, P, Y):
        """Gradients ``(dW, db, dA_prev)`` of the batch-mean cross-entropy against one-hot ``Y``."""
        # Softmax and cross-entropy together have the simple gradient p - y w.r.t. the logits;
        # dividing by the batch size here averages every gradient below over the batch.
        dZ = (P - Y) / Y.shape[1]
        return dZ @ A_prev.T, dZ.sum(axis=1, keepdims=True), W.T @ dZ


def layer_sizes(n_features: int, hidden, n_classes: int) -> list[int]:
    """``[n_features, *hidden, n_classes]``: the width of every layer, input first."""
    return [int(n_features), *(int(h) for h in hidden), int(n_classes)]


def init_parameters(sizes, rng: np.random.RandomState, dtype=np.float64):
    """The study's initialisation: ``W_l = randn(n_l, n_{l-1}) * 0.01`` in layer order, ``b_l = 0``.

    Draws from ``rng`` exactly as ``np.random.seed(seed)`` followed by ``np.random.randn`` did
    in the study, so the same seed gives the study's starting weights.
    """
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        weights.append((rng.randn(n_out, n_in) * INIT_SCALE).astype(dtype))
        biases.append(np.zeros((n_out, 1), dtype=dtype))
    return weights, biases


def forward(weights, biases, X) -> list[np.ndarray]:
    """Activations of every layer for samples-as-columns ``X``: ``[X, A_1, ..., P]``."""
    activations = [X]
    for l, (W, b) in enumerate(zip(weights, biases)):
        layer = SoftmaxLayer if l == len(weights) - 1 else SigmoidLayer
        activations.append(layer.forward(W, b, activations[-1]))
    return activations


def logits(weights, biases, X) -> np.ndarray:
    """Pre-softmax outputs ``(n_classes, m)``: the last layer's ``z`` (for stable losses)."""
    A = X
    for W, b in zip(weights[:-1], biases[:-1]):
        A = SigmoidLayer.forward(W, b, A)
    return weights[-1] @ A + biases[-1]


def backward(weights, activations, Y):
    """Gradients ``(dWs, dbs)`` of the batch-mean loss, given :func:`forward`'s activations."""
    n_layers = len(weights)
    dWs, dbs = [None] * n_layers, [None] * n_layers
    dW, db, dA = SoftmaxLayer.backward(weights[-1], activations[-2], activations[-1], Y)
    dWs[-1], dbs[-1] = dW, db
    for l in range(n_layers - 2, -1, -1):
        dWs[l], dbs[l], dA = SigmoidLayer.backward(
            weights[l], activations[l], activations[l + 1], dA
        )
    return dWs, dbs


def loss_and_gradients(weights, biases, X, y):
    """Batch-mean cross-entropy of ``(X, y)`` and its gradients ``(loss, dWs, dbs)``."""
    n_classes = weights[-1].shape[0]
    activations = forward(weights, biases, X)
    loss = cross_entropy(logits(weights, biases, X), y)
    dWs, dbs = backward(weights, activations, one_hot(y, n_classes, X.dtype))
    return loss, dWs, dbs


def learning_rate(schedule: str, lr: float, decay_rate: float, decay_every: int, epoch: int) -> float:
    """The learning rate of ``epoch`` (counted from 1).

    ``constant``: ``lr``. ``step``: ``lr * decay_rate ** ((epoch - 1) // decay_every)``, so the rate
    drops by ``decay_rate`` after every ``decay_every`` epochs. ``exponential``: the smooth
    version, ``lr * decay_rate ** ((epoch - 1) / decay_every)``; both reach ``lr * decay_rate`` at
    epoch ``decay_every + 1``.
    """
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * decay_rate ** ((epoch - 1) // decay_every)
    if schedule == "exponential":
        return lr * decay_rate ** ((epoch - 1) / decay_every)
    raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {schedule!r}")


# --------------------------------------------------------------------------------------------------
# 3. The fast trainer
#
# The study's nets take about 80 SGD steps per epoch on batches of 16, so a step of the 2-layer net
# is some twenty numpy calls on arrays of a few thousand numbers: the cost per *call* dominates.
# Everything below serves to make fewer, cheaper calls:
#   * every buffer is allocated once and every operation writes into one (``out=``);
#   * activations are stored features x batch with an extra row of ones, and each layer's bias is
#     the last column of its matrix, so one product computes ``W a + b``;
#   * the gradient is scaled by the learning rate once, at the output, so the update is a plain add;
#   * a hidden layer stores its matrix *negated* (``V = -[W | b]``): its product is then ``-z``,
#     the argument ``exp`` needs in the sigmoid, which saves a negation per step; the sign returns
#     in the backward pass, where ``V^T`` meets the equally negated gradient;
#   * small layers write their updates into one flat buffer that a single add applies; large
#     layers call BLAS gemm directly with beta=1, which adds the update into the weights in the
#     same pass (and picks faster kernels than numpy's dot for these thin products);
#   * each epoch shuffles the data once into contiguous per-batch blocks;
#   * training and validation sets are evaluated in one forward pass.
# --------------------------------------------------------------------------------------------------

#: Layers with at least this many weights go through BLAS gemm directly (a call costs ~7 µs
#: more than numpy's dot, but its kernels run thin products up to twice as fast).
GEMM_MIN_WEIGHTS = 8192


class _Products:
    """The three matrix products of a layer, through numpy's dot or directly through BLAS gemm.

    ``U`` is a layer's stored matrix ``(n_out, n_in + 1)``; activations and gradients are row-major
    ``(features, batch)``, which BLAS (column-major) sees as their transposes.
    """

    def __init__(self, U: np.ndarray, update_buffer: np.ndarray | None):
        self.U = U
        self.U_T = U.T
        self.update_buffer = update_buffer  # None: gemm adds the update straight into U
        self.gemm = scipy_blas.get_blas_funcs("gemm", dtype=U.dtype) if update_buffer is None else None

    def forward(self, a_prev, z):
        """``z = U a_prev``."""
        if self.gemm is None:
            np.dot(self.U, a_prev, out=z)
        else:  # z^T = a_prev^T U^T
            self.gemm(1.0, a_prev.T, self.U_T, 0.0, z.T, 0, 0, 1)

    def backward(self, g, ga_prev):
        """``ga_prev = U^T g``: the gradient passed to the layer below (bias row included)."""
        if self.gemm is None:
            np.dot(self.U_T, g, out=ga_prev)
        else:  # ga_prev^T = g^T U
            self.gemm(1.0, g.T, self.U_T, 0.0, ga_prev.T, 0, 1, 1)

    def update(self, g, a_prev):
        """``U += g a_prev^T``, or write ``g a_prev^T`` into the flat update buffer."""
        if self.gemm is None:
            np.dot(g, a_prev.T, out=self.update_buffer)
        else:  # U^T += a_prev g^T, in place
            self.gemm(1.0, a_prev.T, g.T, 1.0, self.U_T, 1, 0, 1)


class _HiddenStep:
    """A sigmoid layer on buffers for one batch size: forward and backward side by side.

    ``V = -[W | b]``. ``backward`` receives ``ga = -lr * dL/da`` (plus a junk row for the row of
    ones) and returns the same for the layer below.
    """

    def __init__(self, products: _Products, batch: int, dtype, ga_prev=None, training=True):
        n_out = products.U.shape[0]
        self.products = products
        self.a = np.ones((n_out + 1, batch), dtype)  # activations + the row of ones for the bias
        self.z = self.a[:-1]  # the pre-activation is computed in place of the activation
        self.limit = dtype.type(exp_limit(dtype))
        if training:
            self.ga = np.empty((n_out + 1, batch), dtype)  # filled by the layer above
            self.ga_rows = self.ga[:-1]
            self.g = np.empty((n_out, batch), dtype)
            self.ga_prev = ga_prev  # the layer below's ``ga``; None for the first layer

    def forward(self, a_prev):
        z = self.z
        self.products.forward(a_prev, z)  # z = -(W a_prev + b)
        np.minimum(z, self.limit, out=z)  # exp(88.7) overflows float32; sigmoid(-88) is 0 anyway
        np.exp(z, out=z)
        np.add(z, 1.0, out=z)
        np.divide(1.0, z, out=z)  # a = 1 / (1 + exp(-(W a_prev + b)))
        return self.a

    def backward(self, a_prev):
        a, g = self.z, self.g
        # lr * dL/dz = lr * dL/da * a (1 - a) = ga * (a^2 - a), ga carrying the minus sign
        np.multiply(a, a, out=g)
        np.subtract(g, a, out=g)
        np.multiply(g, self.ga_rows, out=g)
        if self.ga_prev is not None:
            self.products.backward(g, self.ga_prev)  # V^T (lr dL/dz) = -W^T lr dL/dz, before the update
        self.products.update(g, a_prev)  # V += lr dL/dz a_prev^T, i.e. W -= lr dL/dW


class _OutputStep:
    """The softmax layer with the cross-entropy gradient, for one batch size.

    ``U = [W | b]`` (not negated). ``gradient`` turns the logits straight into
    ``g = lr/B (y - p) = -lr dL/dz`` without forming ``p``.
    """

    def __init__(self, products: _Products, batch: int, dtype, ga_prev: np.ndarray):
        n_classes = products.U.shape[0]
        self.products = products
        self.z = np.empty((n_classes, batch), dtype)
        self.g = np.empty((n_classes, batch), dtype)
        self.column_max = np.empty(batch, dtype)
        self.column_sum = np.empty(batch, dtype)
        self.ga_prev = ga_prev

    def forward_gradient(self, a_prev, y_scaled, lr_per_sample):
        """``g = y_scaled - lr_per_sample * softmax(U a_prev)``, with ``y_scaled = lr/B * y``."""
        z, m, s = self.z, self.column_max, self.column_sum
        self.products.forward(a_prev, z)
        np.maximum.reduce(z, axis=0, out=m)
        np.subtract(z, m, out=z)  # exp of at most 0: no overflow
        np.exp(z, out=z)
        np.add.reduce(z, axis=0, out=s)
        np.divide(lr_per_sample, s, out=s)
        np.multiply(z, s, out=z)  # lr/B * p
        np.subtract(y_scaled, z, out=self.g)

    def backward(self, a_prev):
        self.products.backward(self.g, self.ga_prev)
        self.products.update(self.g, a_prev)


class _BatchPlan:
    """The layer steps and buffers for one batch size, sharing the trainer's weights."""

    def __init__(self, products: list[_Products], batch: int, dtype):
        self.hidden: list[_HiddenStep] = []
        ga_prev = None
        for p in products[:-1]:
            step = _HiddenStep(p, batch, dtype, ga_prev)
            self.hidden.append(step)
            ga_prev = step.ga
        self.output = _OutputStep(products[-1], batch, dtype, ga_prev)
        # each layer's input activations, the first being the batch itself (set per step)
        self.inputs = [None] + [step.a for step in self.hidden]


class _EvaluationPlan:
    """Forward-only buffers for scoring a fixed set of columns (training then validation)."""

    def __init__(self, products: list[_Products], X, y, n_train: int, dtype):
        n_features, n_columns = X.shape
        self.x = np.ones((n_features + 1, n_columns), dtype)
        self.x[:-1] = X
        self.y = np.asarray(y)
        self.n_train = n_train
        self.columns = np.arange(n_columns)
        self.hidden = [_HiddenStep(p, n_columns, dtype, training=False) for p in products[:-1]]
        self.output = products[-1]
        self.z = np.empty((products[-1].U.shape[0], n_columns), dtype)

    def evaluate(self):
        """``(train_loss, train_accuracy, val_loss, val_accuracy)``; NaN for an empty part."""
        a = self.x
        for layer in self.hidden:
            a = layer.forward(a)
        self.output.forward(a, self.z)
        sample_loss = -log_softmax(self.z, axis=0)[self.y, self.columns]
        correct = np.argmax(self.z, axis=0) == self.y
        results = []
        for part in (slice(0, self.n_train), slice(self.n_train, self.y.size)):
            if part.stop > part.start:
                results += [float(np.mean(sample_loss[part], dtype=np.float64)), float(np.mean(correct[part]))]
            else:
                results += [math.nan, math.nan]
        return tuple(results)


@dataclass
class TrainingResult:
    """What :meth:`SGDTrainer.train` reports besides the weights it leaves in the trainer."""

    history: dict[str, list] = field(default_factory=dict)
    diverged: bool = False
    diverged_epoch: int | None = None
    n_epochs_run: int = 0
    n_steps: int = 0
    seconds: float = 0.0


class SGDTrainer:
    """Mini-batch SGD of the network on preallocated buffers (see the notes above this class).

    ``weights``/``biases`` are the starting parameters in the study's layout (``W_l`` of shape
    ``(n_out, n_in)``, ``b_l`` of shape ``(n_out, 1)``); :meth:`parameters` returns the trained
    ones in the same layout. ``X`` is ``(n_features, m)``, ``y`` class indices.
    """

    def __init__(self, weights, biases, batch_size: int, dtype="float32"):
        self.dtype = np.dtype(dtype)
        self.batch_size = int(batch_size)
        self.n_layers = len(weights)
        self.n_classes = weights[-1].shape[0]
        shapes = [(W.shape[0], W.shape[1] + 1) for W in weights]
        direct = [rows * cols >= GEMM_MIN_WEIGHTS for rows, cols in shapes]
        # Small layers first: their updates are then one contiguous slice, applied by one add.
        order = [l for l in range(self.n_layers) if not direct[l]]
        order += [l for l in range(self.n_layers) if direct[l]]
        n_small = sum(shapes[l][0] * shapes[l][1] for l in order if not direct[l])
        self.theta = np.empty(sum(r * c for r, c in shapes), self.dtype)
        self.small_theta = self.theta[:n_small]
        self.small_updates = np.zeros(n_small, self.dtype)
        self.matrices: list[np.ndarray] = [None] * self.n_layers
        self.products: list[_Products] = [None] * self.n_layers
        offset = 0
        for l in order:
            rows, cols = shapes[l]
            U = self.theta[offset : offset + rows * cols].reshape(rows, cols)
            buffer = None if direct[l] else self.small_updates[offset : offset + rows * cols]
            self.matrices[l] = U
            self.products[l] = _Products(U, None if buffer is None else buffer.reshape(rows, cols))
            offset += rows * cols
        self.set_parameters(weights, biases)

    # -- parameters in the study's layout ---------------------------------------------------------

    def _sign(self, l: int) -> int:
        """Hidden layers store ``-[W | b]``, the output layer ``[W | b]``."""
        return 1 if l == self.n_layers - 1 else -1

    def set_parameters(self, weights, biases) -> None:
        for l, (W, b) in enumerate(zip(weights, biases)):
            U = self.matrices[l]
            U[:, :-1] = self._sign(l) * np.asarray(W)
            U[:, -1] = self._sign(l) * np.asarray(b).reshape(-1)

    def parameters(self, dtype=None):
        """``(weights, biases)`` copies in the study's layout: ``W (n_out, n_in)``, ``b (n_out,)``."""
        dtype = self.dtype if dtype is None else dtype
        weights = [(self._sign(l) * U[:, :-1]).astype(dtype) for l, U in enumerate(self.matrices)]
        biases = [(self._sign(l) * U[:, -1]).astype(dtype) for l, U in enumerate(self.matrices)]
        return weights, biases

    # -- one step ---------------------------------------------------------------------------------

    def step(self, plan: _BatchPlan, x, y_scaled, lr_per_sample) -> None:
        """One SGD step on a batch ``x`` (``(n_features + 1, B)``, last row ones).

        ``y_scaled`` is the one-hot batch times ``lr / B`` and ``lr_per_sample`` is ``lr / B``.
        """
        a = x
        for layer in plan.hidden:
            a = layer.forward(a)
        plan.output.forward_gradient(a, y_scaled, lr_per_sample)
        inputs = plan.inputs
        plan.output.backward(inputs[-1])
        for l in range(len(plan.hidden) - 1, -1, -1):
            plan.hidden[l].backward(inputs[l] if l else x)
        np.add(self.small_theta, self.small_updates, out=self.small_theta)

    def make_plan(self, batch: int) -> _BatchPlan:
        return _BatchPlan(self.products, batch, self.dtype)

    # -- the training loop ------------------------------------------------------------------------

    def train(
        self,
        X,
        y,
        X_val=None,
        y_val=None,
        *,
        epochs: int,
        rng: np.random.RandomState,
        lr_at_epoch,
        eval_every: int = 1,
    ) -> TrainingResult:
        """Run ``epochs`` passes of SGD; each shuffles the data with ``rng.permutation(m)``.

        ``lr_at_epoch(epoch)`` gives each epoch's learning rate. Loss and accuracy are recorded
        every ``eval_every`` epochs and at the last. The run stops as soon as it diverges: a
        floating-point overflow or invalid operation, non-finite weights, or a training loss above
        ``DIVERGENCE_FACTOR`` times that of a uniform guess.
        """
        dt = self.dtype
        B = self.batch_size
        n_features, m = X.shape
        n_full, rest = divmod(m, B)
        X_rows = np.ones((m, n_features + 1), dt)  # one sample per row: cheap to shuffle
        X_rows[:, :-1] = X.T
        Y_rows = one_hot(y, self.n_classes, dt).T.copy()
        X_blocks = np.empty((n_full, n_features + 1, B), dt)
        Y_blocks = np.empty((n_full, self.n_classes, B), dt)
        X_rest = np.empty((n_features + 1, rest), dt)
        Y_rest = np.empty((self.n_classes, rest), dt)
        full_plan = self.make_plan(B)
        rest_plan = self.make_plan(rest) if rest else None

        if X_val is not None and X_val.shape[1] > 0:
            X, y = np.concatenate([X, X_val], axis=1), np.concatenate([y, y_val])
        scoring = _EvaluationPlan(self.products, X, y, m, dt)
        loss_limit = DIVERGENCE_FACTOR * math.log(self.n_classes)

        result = TrainingResult(
            history={k: [] for k in ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy")}
        )

        def record(epoch, lr):
            values = scoring.evaluate()
            for key, value in zip(("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy"), (epoch, lr, *values)):
                result.history[key].append(value)
            return values[0]

        start = time.perf_counter()
        epoch, steps_done = 0, 0
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                for epoch in range(1, epochs + 1):
                    lr = float(lr_at_epoch(epoch))
                    order = rng.permutation(m)
                    head = order[: n_full * B]
                    np.copyto(X_blocks, X_rows[head].reshape(n_full, B, -1).transpose(0, 2, 1))
                    np.copyto(Y_blocks, Y_rows[head].reshape(n_full, B, -1).transpose(0, 2, 1))
                    k = dt.type(lr / B)
                    np.multiply(Y_blocks, k, out=Y_blocks)
                    for i in range(n_full):
                        self.step(full_plan, X_blocks[i], Y_blocks[i], k)
                        steps_done += 1
                    if rest:
                        tail = order[n_full * B :]
                        k_rest = dt.type(lr / rest)
                        np.copyto(X_rest, X_rows[tail].T)
                        np.multiply(Y_rows[tail].T, k_rest, out=Y_rest)
                        self.step(rest_plan, X_rest, Y_rest, k_rest)
                        steps_done += 1
                    evaluate_now = epoch % eval_every == 0 or epoch == epochs
                    if not np.isfinite(self.theta).all():
                        raise FloatingPointError("non-finite weights")
                    if evaluate_now:
                        train_loss = record(epoch, lr)
                        if not train_loss <= loss_limit:  # also catches NaN
                            result.diverged = True
                            break
        except FloatingPointError:
            result.diverged = True
            with np.errstate(all="ignore"):
                record(epoch, lr)
        result.seconds = time.perf_counter() - start
        result.n_epochs_run = epoch
        result.n_steps = steps_done
        if result.diverged:
            result.diverged_epoch = epoch
        return result
