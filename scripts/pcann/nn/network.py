"""The study's network, written to be read: its maths, layer by layer.

Sigmoid hidden layers, a softmax output, categorical cross-entropy. Samples are *columns*
(``X`` is ``(n_features, m)``), as in the study. Forward and backward of each layer stand side
by side, so each gradient can be read beside the formula it differentiates; the tests check
them against finite differences, and the fast trainer (:mod:`pcann.nn.sgd`) against them, step by
step. ``hidden=[256]`` is the study's 2-layer net and ``hidden=[256, 512]`` its 3-layer net.

The numerically stable pieces (:func:`sigmoid`, :func:`log_softmax`, :func:`softmax`,
:func:`cross_entropy`) are finite for any finite input and never warn of an overflow.
"""

from __future__ import annotations

import math

import numpy as np

#: The study's weight initialisation: ``randn(n_out, n_in) * INIT_SCALE``, biases zero.
INIT_SCALE = 0.01


# --------------------------------------------------------------------------------------------------
# Numerically stable pieces
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
# Layers, forward and backward
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

