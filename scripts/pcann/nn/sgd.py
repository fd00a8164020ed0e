"""The fast mini-batch SGD trainer: the readable network's arithmetic, made cheap to run.

How a step here maps onto one step of the readable network (:mod:`pcann.nn.network`), for a batch
of ``B`` samples as columns and learning rate ``lr``:

=====================================  ============================================================
readable network                       this trainer
=====================================  ============================================================
``W_l``, ``b_l``                       one matrix per layer, bias as its last column: the output
                                       layer stores ``U = [W | b]``, a hidden layer the negation
                                       ``V = -[W | b]``
``A_{l-1}``                            ``a``: the same activations with a last row of ones, so
                                       ``U a`` is ``W A + b``
``A = sigmoid(W A_prev + b)``          ``z = V a_prev`` (that is ``-(W A_prev + b)``, the argument
                                       ``exp`` needs), then ``exp``, ``+ 1`` and ``1 / .`` in place
``P = softmax(W A_prev + b)``          ``z = U a_prev``, minus its column maxima, ``exp``, divided
                                       by ``B / lr`` times the column sums: ``lr / B * P``
``dZ_L = (P - Y) / B``                 ``g = lr/B Y - lr/B P = -lr dZ_L``; the labels arrive
                                       already multiplied by ``lr / B`` (``y_scaled``)
``dA_prev = W^T dZ``                   ``ga = U^T g = -lr dA_prev`` (``V^T g`` for a hidden layer,
                                       whose two signs cancel the same way)
``dZ = dA * A (1 - A)``                ``g = ga (A^2 - A) = lr dZ``: ``ga`` carries the minus sign
``W -= lr dW``, ``b -= lr db``         ``U += g a_prev^T`` (output: ``g = -lr dZ``) and
                                       ``V += g a_prev^T`` (hidden: ``V = -[W|b]``, ``g = lr dZ``)
=====================================  ============================================================

So the learning rate enters once per step, through the scaled labels ``lr / B * Y`` and the
softmax's ``B / lr`` normaliser (:meth:`_OutputLayer.set_learning_rate`); every gradient below is
already scaled by it, and every update is a plain add. The short last batch of an epoch (``r``
samples) has its labels scaled by ``lr / r`` instead. A test (``tests/test_nn.py``) keeps each
step of this trainer equal to a step of the readable network.

Why it is written this way: the study's nets take 74 SGD steps per epoch on batches of 16, so a
step of the 2-layer net is some twenty numpy calls on arrays of a few thousand numbers, and the
cost of each *call* dominates, not the arithmetic. Everything below serves to make fewer and
cheaper calls:

* every buffer is allocated once and every operation writes into one (``out=``);
* each step is a "tape": the list of its numpy calls with every argument bound in advance
  (``functools.partial``), built once per batch, so a step is just ``for op in tape: op()``;
* the negated hidden matrices save a negation per step (the product is already ``-z``);
* the sigmoid lets ``exp`` overflow to inf instead of clamping its argument (see
  ``TRAINING_ERRSTATE``), and the softmax sums, scales and broadcasts with one product;
* small layers write their updates into one flat buffer that a single add applies; large layers
  call BLAS gemm directly, which adds the update into the weights in the same pass (beta=1) and
  runs this product 1.6x faster than numpy's dot (whose kernel for the other two products is the
  faster one);
* each epoch shuffles the data once into contiguous per-batch blocks; with many classes the
  blocks carry each sample's class index instead of its one-hot row (see :class:`_ClassIndices`);
* training and validation sets are evaluated in one forward pass.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np

from pcann.nn.network import one_hot

#: Compute precisions of the trainer.
DTYPES = ("float32", "float64")
#: A run has diverged once its training loss exceeds this many times the loss of a uniform guess.
DIVERGENCE_FACTOR = 100.0

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


#: Up to this many classes, the scorer computes the logits one class (one row) at a time.
SCORER_ROWWISE_CLASSES = 4
#: Up to this many classes, the softmax sums its exps with one small matrix product.
SUM_BY_PRODUCT_CLASSES = 16
#: Up to this many classes, each epoch shuffles the scaled one-hot labels with the inputs; above,
#: only the class indices (:class:`_ClassIndices`). Moving a one-hot row costs about 5 ns per
#: class and sample (0.7 µs a sample at 131 classes, a tenth of a 54,000-sample epoch), the
#: index route one extra call of about 0.6 µs per step.
ONE_HOT_CLASSES = 16


@dataclass
class _ClassIndices:
    """The labels of one batch as class indices, standing in for its scaled one-hot matrix.

    ``flat_index[i]`` is the position of sample ``i``'s class in a flattened ``(classes, B)``
    array; ``value`` (0-d) is ``lr / B``, the one entry of a scaled one-hot column.
    ``g = y_scaled - lr/B p`` is then ``0 - lr/B p`` with ``value`` added at ``flat_index``: the
    same float operations on every entry (``v + (-z)`` is ``v - z``, and ``0 - z`` keeps the
    sign of a zero), so both label forms train bit for bit alike.
    """

    flat_index: np.ndarray
    value: np.ndarray


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
        self.g_flat = self.g.reshape(-1)  # a view, for labels given as _ClassIndices
        self.zero = np.zeros((), dtype)
        self.column_max = np.empty(batch, dtype)
        self.sum_by_product = n_classes <= SUM_BY_PRODUCT_CLASSES
        if self.sum_by_product:
            self.sum_weights = np.empty((n_classes, n_classes), dtype)  # B / lr in every entry
            self.scaled_sum = np.empty((n_classes, batch), dtype)
        else:
            self.sum_weights = np.empty((), dtype)  # B / lr
            self.scaled_sum = np.empty(batch, dtype)

    def set_learning_rate(self, lr: float) -> None:
        # B / lr, capped so that B / lr times the sum of exps (at most n_classes) stays finite: a
        # decayed rate that small updates nothing anyway
        cap = float(np.finfo(self.z.dtype).max) / len(self.z)
        self.sum_weights.fill(min(self.batch / lr, cap) if lr > 0 else cap)

    def forward(self, a_prev, y_scaled):
        """Operations for ``g = y_scaled - lr/B softmax(U a_prev)``; ``y_scaled = lr/B y``, as
        a matrix or as :class:`_ClassIndices`."""
        z, column_max, scaled_sum = self.z, self.column_max, self.scaled_sum
        if self.sum_by_product:
            # B/lr times each column's sum of exps, repeated on every row: summing, scaling and
            # broadcasting in one product, so that the division is between equal shapes (faster)
            normalise = [partial(np.dot, self.sum_weights, z, scaled_sum)]
        else:  # the product costs n_classes^2 per sample: sum, then scale, then broadcast
            normalise = [
                partial(np.add.reduce, z, 0, None, scaled_sum),
                partial(np.multiply, scaled_sum, self.sum_weights, scaled_sum),
            ]
        return [
            self.products.forward(a_prev, z),
            *self._column_max(z, column_max),
            partial(np.subtract, z, column_max, z),  # softmax is unchanged; exp is now at most 1
            partial(np.exp, z, z),
            *normalise,
            partial(np.divide, z, scaled_sum, z),  # lr/B * p
            *self._labels_minus(y_scaled, z),
        ]

    def _labels_minus(self, y_scaled, z):
        """Operations for ``g = y_scaled - z``."""
        if not isinstance(y_scaled, _ClassIndices):
            return [partial(np.subtract, y_scaled, z, self.g)]
        return [
            partial(np.subtract, self.zero, z, self.g),
            partial(np.add.at, self.g_flat, y_scaled.flat_index, y_scaled.value),
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




class _Scorer:
    """Loss and accuracy of a fixed set of columns (training, then validation), in one pass.

    Up to :data:`SCORER_ROWWISE_CLASSES` classes the logits are computed class by class, one row
    each; with more, as one product laid out samples x classes, so that the maxima, sums and
    arg-maxima over the classes read contiguous memory (over a classes x samples array they
    stride across it, several times slower at 131 classes).
    """

    def __init__(self, products: list[_LayerProducts], X, y, n_train: int, dtype, exp):
        n_features, n_columns = X.shape
        n_classes = products[-1].U.shape[0]
        self.exp = exp
        self.x = np.ones((n_features + 1, n_columns), dtype)
        self.x[:-1] = X
        self.y = np.asarray(y)
        self.parts = (slice(0, n_train), slice(n_train, n_columns))
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
            self.class_axis = 0
            self.z = np.empty((n_classes, n_columns), dtype)
            self.true_class = self.y * n_columns + np.arange(n_columns)  # flat index of z[y_i, i]
            # a product with 3 rows and thousands of columns runs at a fifth of BLAS's speed
            # as a matrix product, and twice as fast as one matrix-vector product per class
            self.forward += [partial(np.dot, U[k], a_prev, self.z[k]) for k in range(n_classes)]
        else:
            self.class_axis = 1
            self.z = np.empty((n_columns, n_classes), dtype)
            self.true_class = np.arange(n_columns) * n_classes + self.y  # flat index of z[i, y_i]
            self.forward.append(partial(np.dot, a_prev.T, U.T, self.z))  # transposed views, no copies

    def score(self):
        """``(train_loss, train_accuracy, val_loss, val_accuracy)``; NaN for an empty part."""
        for op in self.forward:
            op()
        z, column_max, column_sum, axis = self.z, self.column_max, self.column_sum, self.class_axis
        np.argmax(z, axis=axis, out=self.predicted)
        np.maximum.reduce(z, axis, None, column_max)
        np.subtract(z, column_max if axis == 0 else column_max[:, None], z)
        np.take(z, self.true_class, out=self.true_logit)
        self.exp(z, z)
        np.add.reduce(z, axis, None, column_sum)
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
    ones) and ``block[n_features + 1:]`` (scaled labels), both contiguous views. With more than
    :data:`ONE_HOT_CLASSES` classes the rows hold ``[x, 1]`` only, and a batch's labels are its
    :class:`_ClassIndices`, gathered from the class indices in the same order.
    """

    def __init__(self, X, y, n_classes: int, batch_size: int, dtype):
        n_features, m = X.shape
        self.n_inputs = n_features + 1
        self.batch_size = batch_size
        self.n_full, self.rest = divmod(m, batch_size)
        self.by_index = n_classes > ONE_HOT_CLASSES
        n_label_rows = 0 if self.by_index else n_classes
        self.rows = np.ones((m, self.n_inputs + n_label_rows), dtype)
        self.rows[:, :n_features] = X.T
        self.gathered = np.empty_like(self.rows)
        self.blocks = np.empty((self.n_full, self.rows.shape[1], batch_size), dtype)
        self.last = np.empty((self.rows.shape[1], self.rest), dtype)
        if self.by_index:
            self.y = np.asarray(y, np.intp)
            self.classes = np.empty(m, np.intp)
            self.flat_index = np.empty((self.n_full, batch_size), np.intp)
            self.last_index = np.empty(self.rest, np.intp)
            # the values the one-hot rows would hold: lr/B, and lr/B * B/rest in the last batch
            self.value, self.last_value = np.empty((), dtype), np.empty((), dtype)
        else:
            self.one_hot = one_hot(y, n_classes, dtype).T
        self.lr = None

    def sizes(self):
        """``(batch size, [(x, y_scaled), ...])`` for the full batches and the short last one."""
        split = self.n_inputs
        if self.by_index:
            yield self.batch_size, [
                (block[:split], _ClassIndices(index, self.value))
                for block, index in zip(self.blocks, self.flat_index)
            ]
            if self.rest:
                yield self.rest, [(self.last[:split], _ClassIndices(self.last_index, self.last_value))]
            return
        yield self.batch_size, [(block[:split], block[split:]) for block in self.blocks]
        if self.rest:
            yield self.rest, [(self.last[:split], self.last[split:])]

    def shuffle(self, order, lr: float) -> None:
        if lr != self.lr:  # labels carry the learning rate over the batch size
            if self.by_index:
                # the same float operations as on the one-hot rows below, on their one value
                np.multiply(np.ones((), self.value.dtype), lr / self.batch_size, out=self.value)
                if self.rest:
                    np.multiply(self.value, self.batch_size / self.rest, out=self.last_value)
            else:
                np.multiply(self.one_hot, lr / self.batch_size, out=self.rows[:, self.n_inputs :])
            self.lr = lr
        np.take(self.rows, order, axis=0, out=self.gathered)
        head = self.gathered[: self.n_full * self.batch_size]
        np.copyto(self.blocks, head.reshape(self.n_full, self.batch_size, -1).transpose(0, 2, 1))
        if self.rest:
            np.copyto(self.last, self.gathered[self.n_full * self.batch_size :].T)
            if not self.by_index:
                self.last[self.n_inputs :] *= self.batch_size / self.rest  # lr / rest, not lr / B
        if self.by_index:  # class c of column i of a (classes, B) array: flat index c * B + i
            np.take(self.y, order, out=self.classes)
            head = self.classes[: self.n_full * self.batch_size].reshape(self.flat_index.shape)
            np.multiply(head, self.batch_size, out=self.flat_index)
            self.flat_index += np.arange(self.batch_size)
            np.multiply(self.classes[self.n_full * self.batch_size :], self.rest, out=self.last_index)
            self.last_index += np.arange(self.rest)


#: The columns of a training history, in the order of ``history.csv``.
HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr")


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

    def _compile(self, X, y):
        """The epoch's batches, one tape of operations per batch, and the output layers (which
        hold the learning rate), all over buffers allocated once for the whole run."""
        batches = _ShuffledBatches(X, y, self.n_classes, self.batch_size, self.dtype)
        tapes, outputs = [], []
        for batch_size, blocks in batches.sizes():
            buffers = _BatchBuffers(self.products, batch_size, self.dtype, self.exp)
            outputs.append(buffers.output)
            tapes += [self.tape(buffers, x, y_scaled) for x, y_scaled in blocks]
        return batches, tapes, outputs

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
        batches, tapes, outputs = self._compile(X, y)
        if X_val is not None and X_val.shape[1] > 0:
            X, y = np.concatenate([X, X_val], axis=1), np.concatenate([y, y_val])
        scorer = _Scorer(self.products, X, y, m, dt, self.exp)
        loss_limit = DIVERGENCE_FACTOR * math.log(self.n_classes)
        result = TrainingResult() if start is None else start

        def record(epoch, lr):
            train_loss, train_accuracy, val_loss, val_accuracy = scorer.score()
            row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
                   "val_loss": val_loss, "val_accuracy": val_accuracy, "lr": lr}
            for key in HISTORY_KEYS:
                result.history[key].append(row[key])
            return train_loss

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


