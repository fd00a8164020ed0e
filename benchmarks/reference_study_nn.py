"""The study's network written the straightforward way: the speed baseline for bench_training.py.

This is how the reference study (and most course notebooks) write a multilayer perceptron:
float64, samples as columns (``X`` has shape ``(n_features, m)``), parameters in a dict keyed
``"W1"``, ``"b1"``, ..., a fresh array for every intermediate result, and the loss and accuracy
of the whole training and validation sets computed after every epoch.

It follows the same recipe as :func:`pcann.nn.training.train_network` (same random stream, same
initialisation, same shuffling, exactly ``epochs`` passes), so on the same data the two end at
the same accuracy up to float rounding; only the engineering differs. It is not used by the
workflow.
"""

from __future__ import annotations

import numpy as np


def sigmoid(Z):
    return 1.0 / (1.0 + np.exp(-Z))


def softmax(Z):
    E = np.exp(Z - np.max(Z, axis=0, keepdims=True))
    return E / np.sum(E, axis=0, keepdims=True)


def initialize_parameters(layer_sizes, rng):
    """W{l} = randn(n_l, n_{l-1}) * 0.01 drawn layer by layer, b{l} = zeros, as the study did."""
    parameters = {}
    for l in range(1, len(layer_sizes)):
        parameters[f"W{l}"] = rng.randn(layer_sizes[l], layer_sizes[l - 1]) * 0.01
        parameters[f"b{l}"] = np.zeros((layer_sizes[l], 1))
    return parameters


def forward_propagation(X, parameters, n_layers):
    cache = {"A0": X}
    A = X
    for l in range(1, n_layers + 1):
        Z = np.dot(parameters[f"W{l}"], A) + parameters[f"b{l}"]
        A = softmax(Z) if l == n_layers else sigmoid(Z)
        cache[f"Z{l}"] = Z
        cache[f"A{l}"] = A
    return A, cache


def compute_cost(A_out, Y):
    m = Y.shape[1]
    return -np.sum(Y * np.log(np.clip(A_out, 1e-12, 1.0))) / m


def backward_propagation(Y, parameters, cache, n_layers):
    m = Y.shape[1]
    grads = {}
    dZ = cache[f"A{n_layers}"] - Y
    for l in range(n_layers, 0, -1):
        A_prev = cache[f"A{l - 1}"]
        grads[f"dW{l}"] = np.dot(dZ, A_prev.T) / m
        grads[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) / m
        if l > 1:
            dA_prev = np.dot(parameters[f"W{l}"].T, dZ)
            dZ = dA_prev * A_prev * (1 - A_prev)
    return grads


def update_parameters(parameters, grads, learning_rate, n_layers):
    for l in range(1, n_layers + 1):
        parameters[f"W{l}"] = parameters[f"W{l}"] - learning_rate * grads[f"dW{l}"]
        parameters[f"b{l}"] = parameters[f"b{l}"] - learning_rate * grads[f"db{l}"]
    return parameters


def one_hot(y, n_classes):
    Y = np.zeros((n_classes, y.size))
    Y[y, np.arange(y.size)] = 1.0
    return Y


def accuracy(A_out, y):
    return float(np.mean(np.argmax(A_out, axis=0) == y))


def train(X_train, y_train, X_val, y_val, hidden, epochs, learning_rate, batch_size, seed=1):
    """Train on samples-as-rows inputs; returns ``(parameters, history)``.

    ``y`` are integer class indices ``0..n_classes-1``. History lists the loss and accuracy of the
    whole training and validation sets after every epoch.
    """
    X = X_train.T.astype(np.float64)
    Xv = X_val.T.astype(np.float64)
    n_classes = int(max(y_train.max(), y_val.max())) + 1
    Y = one_hot(y_train, n_classes)
    Yv = one_hot(y_val, n_classes)
    layer_sizes = [X.shape[0], *hidden, n_classes]
    n_layers = len(layer_sizes) - 1
    rng = np.random.RandomState(seed)
    parameters = initialize_parameters(layer_sizes, rng)
    m = X.shape[1]
    history = {"train_loss": [], "train_accuracy": [], "val_loss": [], "val_accuracy": []}
    for epoch in range(epochs):
        permutation = rng.permutation(m)
        X_shuffled = X[:, permutation]
        Y_shuffled = Y[:, permutation]
        for start in range(0, m, batch_size):
            X_batch = X_shuffled[:, start : start + batch_size]
            Y_batch = Y_shuffled[:, start : start + batch_size]
            _, cache = forward_propagation(X_batch, parameters, n_layers)
            grads = backward_propagation(Y_batch, parameters, cache, n_layers)
            parameters = update_parameters(parameters, grads, learning_rate, n_layers)
        A_train, _ = forward_propagation(X, parameters, n_layers)
        A_val, _ = forward_propagation(Xv, parameters, n_layers)
        history["train_loss"].append(compute_cost(A_train, Y))
        history["train_accuracy"].append(accuracy(A_train, y_train))
        history["val_loss"].append(compute_cost(A_val, Yv))
        history["val_accuracy"].append(accuracy(A_val, y_val))
    return parameters, history


def predict(parameters, X, n_layers):
    A_out, _ = forward_propagation(X.T.astype(np.float64), parameters, n_layers)
    return np.argmax(A_out, axis=0)
