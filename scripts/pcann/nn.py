"""Multilayer perceptrons written from scratch in numpy: the study's networks, made fast.

The network is the study's: sigmoid hidden layers, a softmax output, categorical cross-entropy,
plain mini-batch SGD. ``hidden=[256]`` is its 2-layer net and ``hidden=[256, 512]`` its 3-layer net.
Samples are *columns* inside this module (``X`` is ``(n_features, m)``), as in the study; the
scikit-learn estimator :class:`MLPClassifier` takes the usual ``(n_samples, n_features)``.

The module needs only numpy (plus OpenCV's ``exp`` and SciPy's BLAS, see the trainer), so a
training job starts in a fraction of a second; :class:`pcann.estimator.MLPClassifier` wraps it
for scikit-learn. It has four parts, each usable on its own:

1. **Numerically stable pieces** (:func:`sigmoid`, :func:`log_softmax`, :func:`softmax`,
   :func:`cross_entropy`): finite for any finite input, never an overflow warning.
2. **The readable network** (:class:`SigmoidLayer`, :class:`SoftmaxLayer`, :func:`forward`,
   :func:`backward`, :func:`loss_and_gradients`): forward and backward of each layer side by side,
   written to be read and to be checked against finite differences.
3. **The fast trainer** (:class:`SGDTrainer`): the same arithmetic on preallocated float32 buffers,
   tuned for the study's small batches, where numpy's cost per call matters more than the flops.
   Tests check that one of its steps equals a step of the readable network.
4. **Fitting and saving** (:func:`check_params`, :func:`train_network`, :func:`save_network`,
   :func:`load_network`): the whole recipe (seeding, initialisation, schedule) from validated
   parameters, and the ``.npz`` format of a fitted network.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache, partial
from numbers import Integral, Real
from pathlib import Path

import cv2
import numpy as np

#: Learning-rate schedules understood by :func:`learning_rate`.
LR_SCHEDULES = ("constant", "step", "exponential")
#: Compute precisions of the trainer.
DTYPES = ("float32", "float64")
#: Implementations of ``exp`` for the trainer's sigmoids (see ``EXP_FUNCTIONS``).
EXP_BACKENDS = ("opencv", "numpy")
#: A run has diverged once its training loss exceeds this many times the loss of a uniform guess.
DIVERGENCE_FACTOR = 100.0
#: The study's weight initialisation: ``randn(n_out, n_in) * INIT_SCALE``, biases zero.
INIT_SCALE = 0.01


# --------------------------------------------------------------------------------------------------
# 1. Numerically stable pieces
# --------------------------------------------------------------------------------------------------


def exp_limit(dtype) -> float:
    """Largest whole number whose ``exp`` is finite in ``dtype`` (88 for float32, 709 for float64).

    ``sigmoid`` clamps ``-z`` here, which removes the overflow of ``exp`` and moves a result by
    less than the smallest normal number of ``dtype`` (sigmoid(-88) is 6e-39 in float32).
    """
    return float(math.floor(math.log(np.finfo(dtype).max)))


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 / (1 + exp(-z))`` elementwise, without overflow for any ``z``.

    The plain formula overflows ``exp(-z)`` for very negative ``z`` (z < -88 in float32); clamping
    ``-z`` at :func:`exp_limit` avoids that and keeps every result within the smallest normal
    number of the true value. ``out`` may be ``z`` itself.
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
        # sigmoid'(z) = sigmoid(z) (1 - sigmoid(z)): the derivative reuses the forward output
        dZ = dA * A * (1 - A)
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


def learning_rate(
    schedule: str, lr: float, decay_rate: float, decay_every: int, epoch: int
) -> float:
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
# The study's nets take 74 SGD steps per epoch on batches of 16, so a step of the 2-layer net is
# some twenty numpy calls on arrays of a few thousand numbers: the cost of each *call* dominates,
# not the arithmetic. Everything below serves to make fewer and cheaper calls:
#   * every buffer is allocated once and every operation writes into one (``out=``);
#   * each step is a "tape": the list of its numpy calls with every argument bound in advance
#     (``functools.partial``), built once per batch, so a step is just ``for op in tape: op()``;
#   * activations are stored features x batch with an extra row of ones, and each layer's bias is
#     the last column of its matrix, so one product computes ``W a + b``;
#   * the gradient is scaled by the learning rate once, at the output, so updates are plain adds;
#   * a hidden layer stores its matrix *negated* (``V = -[W | b]``): its product is then ``-z``,
#     the argument ``exp`` needs in the sigmoid, which saves a negation per step; the sign returns
#     in the backward pass, where ``V^T`` meets the equally negated gradient;
#   * the sigmoid lets ``exp`` overflow to inf instead of clamping its argument (see
#     ``TRAINING_ERRSTATE``), and the softmax sums, scales and broadcasts with one product;
#   * small layers write their updates into one flat buffer that a single add applies; large
#     layers call BLAS gemm directly, which adds the update into the weights in the same pass
#     (beta=1) and runs this product 1.6x faster than numpy's dot (whose kernel for the other
#     two products is the faster one);
#   * each epoch shuffles the data once into contiguous per-batch blocks;
#   * training and validation sets are evaluated in one forward pass.
# --------------------------------------------------------------------------------------------------

#: The sigmoids' ``exp``, the trainer's costliest elementwise call. OpenCV's ``cv2.exp`` (already a
#: dependency, for loading images) computes it on numpy arrays in place, no copies, as accurately as
#: numpy's (both within 2 ulp of the true value in float32) but 3-7x faster on CPUs without
#: AVX-512, where numpy's float32 ``exp`` runs at about 2.5 ns per number; it overflows to inf
#: and passes NaN through exactly as ``np.exp`` does. ``numpy`` keeps the trainer numpy-only.
EXP_FUNCTIONS = {"opencv": cv2.exp, "numpy": np.exp}

#: Layers with at least this many weights are updated in place by BLAS gemm: its call costs a
#: few µs more than numpy's dot, which pays off once the products take tens of microseconds.
GEMM_MIN_WEIGHTS = 8192

#: Floating-point policy of the training loop. An overflow is no error: ``exp(-z)`` overflows to
#: inf for z < -88 (float32) and the sigmoid ``1 / (1 + inf)`` is then exactly 0, its correct
#: value, so the trainer skips the clamp that :func:`sigmoid` pays for. A NaN is an error: it is
#: raised at the operation that makes it and ends the run as diverged. An overflow anywhere else
#: (the softmax cannot overflow: it subtracts its maximum) makes weights or logits infinite, and
#: a NaN or the end-of-epoch check of the weights follows.
TRAINING_ERRSTATE = {"over": "ignore", "invalid": "raise", "divide": "raise"}


class _LayerProducts:
    """The three matrix products of one layer, bound to their buffers as tape operations.

    ``U`` is the layer's stored matrix ``(n_out, n_in + 1)``; activations and gradients are
    ``(features, batch)``. Products go through numpy's dot, except the update of a large layer:
    BLAS gemm with beta=1 adds ``g a_prev^T`` straight into the weights, saving a pass over them
    and the slow kernel numpy picks for this shape. BLAS is column-major and sees every array
    transposed, so the gemm call passes ``.T`` views (no copies) and computes the transposed
    product.
    """

    def __init__(self, U: np.ndarray, update_buffer: np.ndarray | None):
        self.U = U
        self.update_buffer = update_buffer  # None: a large layer, updated in place by gemm
        if update_buffer is None:
            # imported here: SciPy costs a third of a second, and small nets never need it
            from scipy.linalg import blas as scipy_blas

            self.gemm = scipy_blas.get_blas_funcs("gemm", dtype=U.dtype)

    def forward(self, a_prev, z):
        """``z = U a_prev``."""
        return partial(np.dot, self.U, a_prev, z)

    def backward(self, g, ga_prev):
        """``ga_prev = U^T g``: the gradient for the layer below (a junk row for the ones)."""
        return partial(np.dot, self.U.T, g, ga_prev)

    def update(self, g, a_prev):
        """``U += g a_prev^T``; small layers only write ``g a_prev^T`` to the update buffer."""
        if self.update_buffer is not None:
            return partial(np.dot, g, a_prev.T, self.update_buffer)
        return partial(self.gemm, 1.0, a_prev.T, g.T, 1.0, self.U.T, 1, 0, 1)  # U^T += a_prev g^T


class _HiddenLayer:
    """A sigmoid layer's buffers for one batch size, and its operations: forward and backward.

    The layer stores ``V = -[W | b]``. Backward reads ``ga = -lr dL/da`` (written by the layer
    above, with a junk last row) and writes the same quantity for the layer below.
    """

    def __init__(self, products: _LayerProducts, batch: int, dtype, exp, training: bool = True):
        n_out = products.U.shape[0]
        self.products = products
        self.exp = exp
        self.a = np.ones((n_out + 1, batch), dtype)  # activations and the row of ones for the bias
        self.z = self.a[:-1]  # the pre-activation is computed in place of the activation
        self.one = np.ones((), dtype)  # 0-d arrays: numpy converts them faster than Python floats
        if training:
            self.ga = np.empty((n_out + 1, batch), dtype)
            self.g = np.empty((n_out, batch), dtype)

    def forward(self, a_prev):
        z, one = self.z, self.one
        return [
            self.products.forward(a_prev, z),  # z = -(W a_prev + b)
            partial(self.exp, z, z),  # may overflow to inf (see TRAINING_ERRSTATE): then a = 0
            partial(np.add, z, one, z),
            partial(np.divide, one, z, z),  # a = 1 / (1 + exp(-(W a_prev + b)))
        ]

    def backward(self, a_prev, ga_prev):
        a, g = self.z, self.g
        ops = [  # lr dL/dz = lr dL/da a (1 - a) = ga (a^2 - a), ga carrying the minus sign
            partial(np.multiply, a, a, g),
            partial(np.subtract, g, a, g),
            partial(np.multiply, g, self.ga[:-1], g),
        ]
        if ga_prev is not None:  # V^T g = -W^T lr dL/dz, taken before V changes
            ops.append(self.products.backward(g, ga_prev))
        ops.append(self.products.update(g, a_prev))  # V += lr dL/dz a_prev^T: W -= lr dL/dW
        return ops


class _OutputLayer:
    """The softmax layer with the cross-entropy gradient, for one batch size.

    The layer stores ``U = [W | b]``. Its forward pass turns the logits straight into
    ``g = lr/B (y - p) = -lr dL/dz``, without forming ``p``.
    """

    def __init__(self, products: _LayerProducts, batch: int, dtype):
        n_classes = products.U.shape[0]
        self.products = products
        self.batch = batch
        self.z = np.empty((n_classes, batch), dtype)
        self.g = np.empty((n_classes, batch), dtype)
        self.column_max = np.empty(batch, dtype)
        self.sum_weights = np.empty((n_classes, n_classes), dtype)  # B / lr in every entry
        self.scaled_sum = np.empty((n_classes, batch), dtype)

    def set_learning_rate(self, lr: float) -> None:
        # B / lr, capped so that B / lr times the sum of exps (at most n_classes) stays finite: a
        # decayed rate that small updates nothing anyway
        cap = float(np.finfo(self.sum_weights.dtype).max) / len(self.sum_weights)
        self.sum_weights.fill(min(self.batch / lr, cap) if lr > 0 else cap)

    def forward(self, a_prev, y_scaled):
        """Operations for ``g = y_scaled - lr/B softmax(U a_prev)``; ``y_scaled = lr/B y``."""
        z, column_max, scaled_sum = self.z, self.column_max, self.scaled_sum
        return [
            self.products.forward(a_prev, z),
            *self._column_max(z, column_max),
            partial(np.subtract, z, column_max, z),  # softmax is unchanged; exp is now at most 1
            partial(np.exp, z, z),
            # B/lr times each column's sum of exps, repeated on every row: summing, scaling and
            # broadcasting in one product, so that the division is between equal shapes (faster)
            partial(np.dot, self.sum_weights, z, scaled_sum),
            partial(np.divide, z, scaled_sum, z),  # lr/B * p
            partial(np.subtract, y_scaled, z, self.g),
        ]

    def backward(self, a_prev, ga_prev):
        return [self.products.backward(self.g, ga_prev), self.products.update(self.g, a_prev)]

    @staticmethod
    def _column_max(z, out):
        """Operations for ``out = z.max(axis=0)``: for a few classes, maxima of rows are cheaper
        than a reduction (which costs about three elementwise calls)."""
        if len(z) > 4:
            return [partial(np.maximum.reduce, z, 0, None, out)]
        ops = [partial(np.maximum, z[0], z[1], out=out)]
        return ops + [partial(np.maximum, out, row, out=out) for row in z[2:]]


class _BatchBuffers:
    """All layers' buffers for one batch size."""

    def __init__(self, products: list[_LayerProducts], batch: int, dtype, exp):
        self.hidden = [_HiddenLayer(p, batch, dtype, exp) for p in products[:-1]]
        self.output = _OutputLayer(products[-1], batch, dtype)


#: Up to this many classes, the scorer computes the logits one class (one row) at a time.
SCORER_ROWWISE_CLASSES = 4


class _Scorer:
    """Loss and accuracy of a fixed set of columns (training, then validation), in one pass."""

    def __init__(self, products: list[_LayerProducts], X, y, n_train: int, dtype, exp):
        n_features, n_columns = X.shape
        n_classes = products[-1].U.shape[0]
        self.exp = exp
        self.x = np.ones((n_features + 1, n_columns), dtype)
        self.x[:-1] = X
        self.y = np.asarray(y)
        self.true_class = self.y * n_columns + np.arange(n_columns)  # flat index of z[y_i, i]
        self.parts = (slice(0, n_train), slice(n_train, n_columns))
        self.z = np.empty((n_classes, n_columns), dtype)
        self.column_max = np.empty(n_columns, dtype)
        self.column_sum = np.empty(n_columns, dtype)
        self.true_logit = np.empty(n_columns, dtype)
        self.predicted = np.empty(n_columns, np.intp)
        self.forward = []
        a_prev = self.x
        for p in products[:-1]:
            layer = _HiddenLayer(p, n_columns, dtype, exp, training=False)
            self.forward += layer.forward(a_prev)
            a_prev = layer.a
        U = products[-1].U
        if n_classes <= SCORER_ROWWISE_CLASSES:
            # a product with 3 rows and thousands of columns runs at a fifth of BLAS's speed
            # as a matrix product, and twice as fast as one matrix-vector product per class
            self.forward += [partial(np.dot, U[k], a_prev, self.z[k]) for k in range(n_classes)]
        else:
            self.forward.append(products[-1].forward(a_prev, self.z))

    def score(self):
        """``(train_loss, train_accuracy, val_loss, val_accuracy)``; NaN for an empty part."""
        for op in self.forward:
            op()
        z, column_max, column_sum = self.z, self.column_max, self.column_sum
        np.argmax(z, axis=0, out=self.predicted)
        np.maximum.reduce(z, 0, None, column_max)
        np.subtract(z, column_max, z)
        np.take(z, self.true_class, out=self.true_logit)
        self.exp(z, z)
        np.add.reduce(z, 0, None, column_sum)
        np.log(column_sum, column_sum)
        sample_loss = np.subtract(column_sum, self.true_logit, column_sum)  # log-sum-exp - z_y
        correct = self.predicted == self.y
        results = []
        for part in self.parts:
            if part.stop > part.start:
                results += [
                    float(np.mean(sample_loss[part], dtype=np.float64)),
                    float(np.mean(correct[part])),
                ]
            else:
                results += [math.nan, math.nan]
        return tuple(results)


class _ShuffledBatches:
    """The training set, reshuffled every epoch into contiguous per-batch blocks.

    Each sample is one row ``[x, 1, lr/B * one-hot(y)]``, so one gather and one transposing copy
    lay out a whole epoch; a batch is then ``block[:n_features + 1]`` (inputs with the row of
    ones) and ``block[n_features + 1:]`` (scaled labels), both contiguous views.
    """

    def __init__(self, X, y, n_classes: int, batch_size: int, dtype):
        n_features, m = X.shape
        self.n_inputs = n_features + 1
        self.batch_size = batch_size
        self.n_full, self.rest = divmod(m, batch_size)
        self.one_hot = one_hot(y, n_classes, dtype).T
        self.rows = np.ones((m, self.n_inputs + n_classes), dtype)
        self.rows[:, :n_features] = X.T
        self.gathered = np.empty_like(self.rows)
        self.blocks = np.empty((self.n_full, self.rows.shape[1], batch_size), dtype)
        self.last = np.empty((self.rows.shape[1], self.rest), dtype)
        self.lr = None

    def sizes(self):
        """``(batch size, [(x, y_scaled), ...])`` for the full batches and the short last one."""
        split = self.n_inputs
        yield self.batch_size, [(block[:split], block[split:]) for block in self.blocks]
        if self.rest:
            yield self.rest, [(self.last[:split], self.last[split:])]

    def shuffle(self, order, lr: float) -> None:
        if lr != self.lr:  # labels carry the learning rate over the batch size
            np.multiply(self.one_hot, lr / self.batch_size, out=self.rows[:, self.n_inputs :])
            self.lr = lr
        np.take(self.rows, order, axis=0, out=self.gathered)
        head = self.gathered[: self.n_full * self.batch_size]
        np.copyto(self.blocks, head.reshape(self.n_full, self.batch_size, -1).transpose(0, 2, 1))
        if self.rest:
            np.copyto(self.last, self.gathered[self.n_full * self.batch_size :].T)
            self.last[self.n_inputs :] *= self.batch_size / self.rest  # lr / rest, not lr / B


HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


@dataclass
class TrainingResult:
    """What :meth:`SGDTrainer.train` reports; the trained weights stay in the trainer."""

    history: dict[str, list] = field(default_factory=lambda: {key: [] for key in HISTORY_KEYS})
    diverged: bool = False
    diverged_epoch: int | None = None
    n_epochs_run: int = 0
    n_steps: int = 0
    seconds: float = 0.0
    #: What a longer run needs to continue this one exactly (see :func:`train_network`): the
    #: state of the random stream after the last epoch, and the :func:`trajectory_key`.
    rng_state: tuple | None = None
    trajectory_key: str | None = None

    def continued(self, eval_every: int) -> "TrainingResult":
        """The record a longer run starts from when it continues this one: the same history, but
        without the last row unless ``eval_every`` would have recorded it too."""
        last = self.n_epochs_run
        keep = len(self.history["epoch"])
        if keep and self.history["epoch"][-1] == last and last % eval_every:
            keep -= 1
        return TrainingResult(
            history={key: list(values[:keep]) for key, values in self.history.items()},
            n_epochs_run=last,
            n_steps=self.n_steps,
        )


class SGDTrainer:
    """Mini-batch SGD of the network on preallocated buffers (see the notes above).

    ``weights``/``biases`` are the starting parameters in the study's layout (``W_l`` of shape
    ``(n_out, n_in)``, ``b_l`` of ``n_out`` entries); :meth:`parameters` returns the current ones
    in the same layout. Inputs are samples-as-columns, ``X`` of shape ``(n_features, m)``.
    """

    def __init__(self, weights, biases, batch_size: int, dtype="float32", exp_backend="opencv"):
        self.dtype = np.dtype(dtype)
        self.exp = EXP_FUNCTIONS[exp_backend]
        self.batch_size = int(batch_size)
        self.n_layers = len(weights)
        self.n_classes = weights[-1].shape[0]
        shapes = [(W.shape[0], W.shape[1] + 1) for W in weights]
        direct = [rows * cols >= GEMM_MIN_WEIGHTS for rows, cols in shapes]
        # Small layers first, so that their updates form one slice that one add applies.
        order = sorted(range(self.n_layers), key=lambda l: direct[l])
        n_small = sum(rows * cols for (rows, cols), big in zip(shapes, direct) if not big)
        self.theta = np.empty(sum(rows * cols for rows, cols in shapes), self.dtype)
        self.small_theta = self.theta[:n_small]
        self.small_updates = np.zeros(n_small, self.dtype)
        self.matrices: list[np.ndarray] = [None] * self.n_layers
        self.products: list[_LayerProducts] = [None] * self.n_layers
        offset = 0
        for l in order:
            rows, cols = shapes[l]
            span = slice(offset, offset + rows * cols)
            self.matrices[l] = self.theta[span].reshape(rows, cols)
            updates = None if direct[l] else self.small_updates[span].reshape(rows, cols)
            self.products[l] = _LayerProducts(self.matrices[l], updates)
            offset += rows * cols
        self.set_parameters(weights, biases)

    def _sign(self, l: int) -> int:
        """Hidden layers store ``-[W | b]``, the output layer ``[W | b]``."""
        return 1 if l == self.n_layers - 1 else -1

    def set_parameters(self, weights, biases) -> None:
        for l, (W, b) in enumerate(zip(weights, biases)):
            self.matrices[l][:, :-1] = self._sign(l) * np.asarray(W)
            self.matrices[l][:, -1] = self._sign(l) * np.asarray(b).reshape(-1)

    def parameters(self, dtype=None):
        """Copies ``(weights, biases)`` in the study's layout: ``W (n_out, n_in)``, ``b (n_out,)``."""
        dtype = self.dtype if dtype is None else dtype
        weights = [(self._sign(l) * U[:, :-1]).astype(dtype) for l, U in enumerate(self.matrices)]
        biases = [(self._sign(l) * U[:, -1]).astype(dtype) for l, U in enumerate(self.matrices)]
        return weights, biases

    def tape(self, buffers: _BatchBuffers, x, y_scaled) -> list:
        """The operations of one SGD step on the batch ``x``, in order.

        ``x`` is ``(n_features + 1, B)`` with a last row of ones, ``y_scaled`` the batch's one-hot
        labels times ``lr / B``; ``buffers.output.set_learning_rate(lr)`` sets the same ``lr``.
        The arrays are bound, not copied: refill them and run the tape again for the next epoch.
        """
        hidden, output = buffers.hidden, buffers.output
        inputs = [x] + [layer.a for layer in hidden]  # the input of every layer
        ops = []
        for layer, a_prev in zip(hidden, inputs):
            ops += layer.forward(a_prev)
        ops += output.forward(inputs[-1], y_scaled)
        ops += output.backward(inputs[-1], hidden[-1].ga)
        for l in range(len(hidden) - 1, -1, -1):
            ops += hidden[l].backward(inputs[l], hidden[l - 1].ga if l else None)
        ops.append(partial(np.add, self.small_theta, self.small_updates, self.small_theta))
        return ops

    def step(self, x, y, lr: float) -> None:
        """One SGD step on the batch ``x`` (``(n_features, B)``) with class indices ``y``.

        Builds the buffers and tape for this one step: for tests and exploration; :meth:`train`
        builds them once and reuses them.
        """
        batch = x.shape[1]
        x = np.vstack([x, np.ones((1, batch))]).astype(self.dtype)
        y_scaled = one_hot(y, self.n_classes, self.dtype) * self.dtype.type(lr / batch)
        buffers = _BatchBuffers(self.products, batch, self.dtype, self.exp)
        buffers.output.set_learning_rate(lr)
        with np.errstate(**TRAINING_ERRSTATE):
            for op in self.tape(buffers, x, y_scaled):
                op()

    def train(
        self,
        X,
        y,
        X_val=None,
        y_val=None,
        *,
        epochs: int,
        rng,
        lr_at_epoch,
        eval_every: int = 1,
        start: TrainingResult | None = None,
    ) -> TrainingResult:
        """Run SGD up to epoch ``epochs``; each epoch shuffles the data with ``rng.permutation(m)``.

        ``lr_at_epoch(epoch)`` gives each epoch's learning rate (epochs count from 1). Loss and
        accuracy are recorded every ``eval_every`` epochs and at the last. The run stops at the
        first sign of divergence: an operation that makes a NaN (see ``TRAINING_ERRSTATE``),
        non-finite weights after an epoch, or a recorded training loss above
        ``DIVERGENCE_FACTOR`` times that of a uniform guess. ``start``, the record of epochs
        already run (:meth:`TrainingResult.continued`), continues a run after its last epoch; the
        trainer's weights and ``rng`` must then be where that run left them.
        """
        dt, m = self.dtype, X.shape[1]
        batches = _ShuffledBatches(X, y, self.n_classes, self.batch_size, dt)
        tapes, outputs = [], []  # one tape per batch; the output layers hold the learning rate
        for batch_size, blocks in batches.sizes():
            buffers = _BatchBuffers(self.products, batch_size, dt, self.exp)
            outputs.append(buffers.output)
            tapes += [self.tape(buffers, x, y_scaled) for x, y_scaled in blocks]
        if X_val is not None and X_val.shape[1] > 0:
            X, y = np.concatenate([X, X_val], axis=1), np.concatenate([y, y_val])
        scorer = _Scorer(self.products, X, y, m, dt, self.exp)
        loss_limit = DIVERGENCE_FACTOR * math.log(self.n_classes)
        result = TrainingResult() if start is None else start

        def record(epoch, lr):
            values = (epoch, lr, *scorer.score())
            for key, value in zip(HISTORY_KEYS, values):
                result.history[key].append(value)
            return values[2]

        started = time.perf_counter()
        epoch, lr = result.n_epochs_run, math.nan
        try:
            with np.errstate(**TRAINING_ERRSTATE):
                for epoch in range(result.n_epochs_run + 1, epochs + 1):
                    lr = float(lr_at_epoch(epoch))
                    batches.shuffle(rng.permutation(m), lr)
                    for output in outputs:
                        output.set_learning_rate(lr)
                    for tape in tapes:
                        for op in tape:
                            op()
                        result.n_steps += 1
                    if not np.isfinite(self.theta).all():
                        raise FloatingPointError("non-finite weights")
                    if epoch % eval_every == 0 or epoch == epochs:
                        if not record(epoch, lr) <= loss_limit:  # also true for NaN
                            result.diverged = True
                            break
        except FloatingPointError:
            result.diverged = True
            with np.errstate(all="ignore"):
                record(epoch, lr)
        result.seconds = time.perf_counter() - started
        result.n_epochs_run = epoch
        result.diverged_epoch = epoch if result.diverged else None
        return result


# --------------------------------------------------------------------------------------------------
# 4. Fitting and saving
# --------------------------------------------------------------------------------------------------

#: The training parameters and their defaults: the study's 2-layer recipe. The estimator's
#: constructor and the workflow's config both take these names.
DEFAULT_PARAMS = {
    "hidden": (256,),
    "epochs": 1000,
    "lr": 0.005,
    "batch_size": 16,
    "seed": 1,
    "lr_schedule": "constant",
    "lr_decay_rate": 0.5,
    "lr_decay_every": 100,
    "eval_every": 1,
    "dtype": "float32",
    "exp_backend": "opencv",
}


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_positive_float(name: str, value, maximum: float = math.inf) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number > 0; got {value!r}")
    if not (0 < value <= maximum and math.isfinite(value)):
        bound = "" if maximum == math.inf else f" and <= {maximum}"
        raise ValueError(f"{name} must be a finite number > 0{bound}; got {value!r}")
    return float(value)


def _check_hidden(hidden) -> tuple[int, ...]:
    sizes = (hidden,) if isinstance(hidden, (Integral, np.integer)) else hidden
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = None
    if not sizes or isinstance(hidden, bool):
        raise ValueError(
            f"hidden must be a non-empty list of hidden layer sizes, e.g. [256]; got {hidden!r}"
        )
    for size in sizes:
        if isinstance(size, (bool, np.bool_)) or not isinstance(size, Integral) or size < 1:
            raise ValueError(f"hidden must hold layer sizes that are integers >= 1; got {hidden!r}")
    return tuple(int(size) for size in sizes)


def check_params(**params) -> dict:
    """Every training parameter validated (defaults from :data:`DEFAULT_PARAMS` for the missing),
    with a message naming the parameter and what it must be."""
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown training parameters {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    p = {**DEFAULT_PARAMS, **params}
    if p["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(
            f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {p['lr_schedule']!r}"
        )
    dtype = p["dtype"]
    dtype = str(np.dtype(dtype)) if isinstance(dtype, (type, np.dtype)) else dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {p['dtype']!r}")
    if p["exp_backend"] not in EXP_BACKENDS:
        raise ValueError(
            f"exp_backend must be one of {', '.join(EXP_BACKENDS)}; got {p['exp_backend']!r}"
        )
    seed = _check_int("seed", p["seed"], 0)
    if seed >= 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1]; got {p['seed']!r}")
    return {
        "hidden": _check_hidden(p["hidden"]),
        "epochs": _check_int("epochs", p["epochs"], 1),
        "lr": _check_positive_float("lr", p["lr"]),
        "batch_size": _check_int("batch_size", p["batch_size"], 1),
        "seed": seed,
        "lr_schedule": p["lr_schedule"],
        "lr_decay_rate": _check_positive_float("lr_decay_rate", p["lr_decay_rate"], 1.0),
        "lr_decay_every": _check_int("lr_decay_every", p["lr_decay_every"], 1),
        "eval_every": _check_int("eval_every", p["eval_every"], 1),
        "dtype": dtype,
        "exp_backend": p["exp_backend"],
    }


def schedule_of(params: dict):
    """``epoch -> learning rate`` for checked ``params`` (see :func:`learning_rate`)."""
    return partial(
        learning_rate,
        params["lr_schedule"],
        params["lr"],
        params["lr_decay_rate"],
        params["lr_decay_every"],
    )


@dataclass
class FittedNetwork:
    """A trained network in the study's layout, float64: ``weights[l]`` is ``(n_out, n_in)``,
    ``biases[l]`` has ``n_out`` entries; ``result`` is the training record."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    result: TrainingResult

    def logits(self, X: np.ndarray, dtype=np.float64) -> np.ndarray:
        """``(n_classes, m)`` logits of samples-as-rows ``X``, computed in ``dtype``."""
        weights = [np.asarray(W, dtype=dtype) for W in self.weights]
        biases = [np.asarray(b, dtype=dtype).reshape(-1, 1) for b in self.biases]
        return logits(weights, biases, np.asarray(X, dtype=dtype).T)

    def predict(self, X: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The most probable class index of each row of ``X``; float32 (``dtype``) is twice as
        fast, for pictures, where a point on a class boundary may fall either way."""
        return np.argmax(self.logits(X, dtype), axis=0)


def train_network(
    X, y, n_classes: int, X_val=None, y_val=None, *, continue_from=None, **params
) -> FittedNetwork:
    """Fit the network on samples-as-rows ``X`` (finite floats) and class indices ``y`` in
    ``range(n_classes)``; ``(X_val, y_val)``, if given, is scored alongside in the history.

    The recipe of the study: ``np.random.RandomState(seed)`` draws the initial weights, then the
    permutation of every epoch. ``params`` are checked by :func:`check_params`.

    ``continue_from``, a :class:`FittedNetwork` of the same parameters and data that ran fewer
    epochs, is continued from its last epoch instead of starting over: its weights and random
    stream are exactly where a run from the start would be after that epoch, so the result is
    bit-identical to one (tested) at a fraction of the cost. :func:`continuation_problem` says
    whether a network can be continued; a ``ValueError`` names the reason when it cannot.
    """
    p = check_params(**params)
    X = np.asarray(X, dtype=np.float64)
    if p["batch_size"] > X.shape[0]:
        raise ValueError(
            f"batch_size={p['batch_size']} is larger than the number of training samples "
            f"(n_samples = {X.shape[0]}); use a batch_size of at most {X.shape[0]}"
        )
    X_val = None if X_val is None else np.asarray(X_val, dtype=np.float64)
    key = trajectory_key(p, n_classes, X, y, X_val, y_val)
    rng = np.random.RandomState(p["seed"])
    weights, biases = init_parameters(layer_sizes(X.shape[1], p["hidden"], n_classes), rng)
    start = None
    if continue_from is not None:
        problem = _continuation_problem(continue_from, key, p["epochs"])
        if problem:
            raise ValueError(f"cannot continue the given network: {problem}")
        weights, biases = continue_from.weights, continue_from.biases
        rng.set_state(continue_from.result.rng_state)
        start = continue_from.result.continued(p["eval_every"])
    trainer = SGDTrainer(weights, biases, p["batch_size"], p["dtype"], p["exp_backend"])
    result = trainer.train(
        X.T,
        np.asarray(y),
        None if X_val is None else X_val.T,
        None if y_val is None else np.asarray(y_val),
        epochs=p["epochs"],
        rng=rng,
        lr_at_epoch=schedule_of(p),
        eval_every=p["eval_every"],
        start=start,
    )
    result.rng_state = rng.get_state()
    result.trajectory_key = key
    weights, biases = trainer.parameters(dtype=np.float64)
    return FittedNetwork(weights, biases, result)


def trajectory_key(params: dict, n_classes: int, X, y, X_val=None, y_val=None) -> str:
    """Fingerprint of everything but the number of epochs that decides a run's weights and
    history: the checked parameters, the data, and the code and libraries that compute them.

    Two runs with the same key follow the same trajectory epoch by epoch, so the longer one can
    continue the shorter one (see :func:`train_network`). The code is this file's text, so any
    edit of the trainer makes earlier runs unfit for continuation rather than silently mixed in.
    """
    import hashlib
    import json

    digest = hashlib.sha256()
    recipe = {key: value for key, value in _jsonable(params).items() if key != "epochs"}
    versions = {"numpy": np.__version__, "opencv": cv2.__version__, "n_classes": int(n_classes)}
    digest.update(json.dumps([recipe, versions], sort_keys=True).encode())
    digest.update(_trainer_code())
    for array, dtype in ((X, np.float64), (y, np.int64), (X_val, np.float64), (y_val, np.int64)):
        if array is not None:
            array = np.ascontiguousarray(array, dtype=dtype)
            digest.update(repr(array.shape).encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


@lru_cache(maxsize=None)
def _trainer_code() -> bytes:
    """This file's text, read once per process: part of every :func:`trajectory_key`."""
    return Path(__file__).read_bytes()


def continuation_problem(
    network: FittedNetwork, n_classes: int, X, y, X_val=None, y_val=None, **params
) -> str | None:
    """Why :func:`train_network` with these arguments cannot continue ``network``; ``None`` when
    it can."""
    p = check_params(**params)
    return _continuation_problem(
        network, trajectory_key(p, n_classes, X, y, X_val, y_val), p["epochs"]
    )


def _continuation_problem(network: FittedNetwork, key: str, epochs: int) -> str | None:
    result = network.result
    if result.trajectory_key is None or result.rng_state is None:
        return "it was saved without the state a continuation needs"
    if result.trajectory_key != key:
        return "it was trained with other parameters, data or code"
    if result.diverged:
        return f"it diverged (epoch {result.diverged_epoch})"
    if not result.n_epochs_run < epochs:
        return f"it ran {result.n_epochs_run} epochs, not fewer than {epochs}"
    return None


def accuracy_and_loss(network: FittedNetwork, X, y) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``network`` on ``(X, y)`` (class indices), in float64."""
    z = network.logits(X)
    y = np.asarray(y)
    return float(np.mean(np.argmax(z, axis=0) == y)), cross_entropy(z, y)


def save_network(path, network: FittedNetwork, *, params: dict, classes, n_features_in: int) -> None:
    """Write a fitted network to ``path`` (``.npz``, no pickle), atomically: the parameters (as
    JSON), the class labels, weights and biases, and the training record."""
    import json

    from .io import save_npz

    classes = np.asarray(classes)
    if classes.dtype == object:
        classes = classes.astype(str)
    result = network.result
    arrays = {
        "params_json": np.array(json.dumps(_jsonable(params))),
        "classes": classes,
        "n_features_in": np.array(n_features_in),
        "n_layers": np.array(len(network.weights)),
        "diverged": np.array(result.diverged),
        "diverged_epoch": np.array(-1 if result.diverged_epoch is None else result.diverged_epoch),
        "n_epochs_run": np.array(result.n_epochs_run),
        "n_steps": np.array(result.n_steps),
        "fit_seconds": np.array(result.seconds),
    }
    if result.rng_state is not None:  # what a longer run needs to continue this one
        name, keys, position, has_gauss, cached_gaussian = result.rng_state
        arrays.update(
            rng_keys=np.asarray(keys, dtype=np.uint32),
            rng_position=np.array(position),
            rng_has_gauss=np.array(has_gauss),
            rng_cached_gaussian=np.array(cached_gaussian, dtype=np.float64),
        )
    if result.trajectory_key is not None:
        arrays["trajectory_key"] = np.array(result.trajectory_key)
    for l, (W, b) in enumerate(zip(network.weights, network.biases)):
        arrays[f"W{l + 1}"], arrays[f"b{l + 1}"] = W, b
    for key, values in result.history.items():
        arrays[f"history_{key}"] = np.asarray(values, dtype=np.float64)
    save_npz(path, **arrays)


def load_network(path: str | Path) -> tuple[FittedNetwork, dict]:
    """``(network, info)`` read back from :func:`save_network` (never unpickles anything);
    ``info`` holds ``params``, ``classes`` and ``n_features_in``."""
    import json

    from .io import load_npz

    arrays = load_npz(path)
    params = json.loads(str(arrays["params_json"]))
    if isinstance(params.get("hidden"), list):
        params["hidden"] = tuple(params["hidden"])
    n_layers = int(arrays["n_layers"])
    history = {
        key: arrays[f"history_{key}"].tolist() for key in HISTORY_KEYS if f"history_{key}" in arrays
    }
    if "epoch" in history:
        history["epoch"] = [int(e) for e in history["epoch"]]
    epoch = int(arrays["diverged_epoch"])
    result = TrainingResult(
        history=history,
        diverged=bool(arrays["diverged"]),
        diverged_epoch=None if epoch < 0 else epoch,
        n_epochs_run=int(arrays["n_epochs_run"]),
        n_steps=int(arrays["n_steps"]),
        seconds=float(arrays["fit_seconds"]),
    )
    if "rng_keys" in arrays:
        result.rng_state = (
            "MT19937",
            arrays["rng_keys"],
            int(arrays["rng_position"]),
            int(arrays["rng_has_gauss"]),
            float(arrays["rng_cached_gaussian"]),
        )
    if "trajectory_key" in arrays:
        result.trajectory_key = str(arrays["trajectory_key"])
    network = FittedNetwork(
        [arrays[f"W{l + 1}"] for l in range(n_layers)],
        [arrays[f"b{l + 1}"] for l in range(n_layers)],
        result,
    )
    info = {
        "params": params,
        "classes": arrays["classes"],
        "n_features_in": int(arrays["n_features_in"]),
    }
    return network, info


def _jsonable(params: dict) -> dict:
    """Parameters as JSON values (tuples become lists, numpy scalars Python ones)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, (tuple, list, np.ndarray)):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        elif isinstance(value, (type, np.dtype)):
            value = str(np.dtype(value))
        out[key] = value
    return out
