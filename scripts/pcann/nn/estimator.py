"""The study's multilayer perceptron as a scikit-learn classifier.

A thin wrapper: :mod:`pcann.nn.training` does the training (numpy only); this module adds
scikit-learn's input validation, label encoding and API, so that its tools (``cross_val_score``,
``GridSearchCV``, ``DecisionBoundaryDisplay``, ``check_estimator``) work on the network. Its
parameters and their defaults are the training options of :data:`pcann.nn.training.OPTIONS`.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

from pcann.nn.network import cross_entropy, log_softmax, softmax
from pcann.nn.sgd import TrainingResult
from pcann.nn.training import DEFAULT_PARAMS, FittedNetwork, check_params, schedule_of, train_network
from pcann.nn.weights_file import load_network, save_network


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """The study's multilayer perceptron as a scikit-learn classifier.

    Sigmoid hidden layers of the sizes in ``hidden``, a softmax output with one unit per class,
    categorical cross-entropy, plain mini-batch SGD; weights start as ``randn * 0.01`` and biases
    as zeros, drawn from ``np.random.RandomState(seed)`` (the study's ``np.random.seed(seed)``
    stream), which then shuffles the training set at the start of every epoch.

    Parameters
    ----------
    hidden : sequence of int
        Hidden layer sizes: ``(256,)`` is the study's 2-layer net, ``(256, 512)`` its 3-layer net.
    epochs : int
        Passes over the training set. The study's loop ran ``epochs + 1`` passes; this runs
        exactly ``epochs``.
    lr : float
        Learning rate (of the first epoch, when a schedule decays it).
    batch_size : int
        Samples per SGD step; the last batch of an epoch holds the remainder.
    seed : int
        Seed of the initial weights and of the shuffling.
    lr_schedule : {"constant", "step", "exponential"}
        How the learning rate changes with the epoch; see
        :func:`pcann.nn.training.learning_rate`. Not in the study.
    lr_decay_rate : float in (0, 1]
        Factor applied to the learning rate every ``lr_decay_every`` epochs.
    lr_decay_every : int
        Epochs per decay step (``step``), or per factor ``lr_decay_rate`` (``exponential``).
    eval_every : int
        Record loss and accuracy on the training and validation sets every ``eval_every``
        epochs, and always after the last epoch.
    dtype : {"float32", "float64"}
        Precision of training. float32 is faster and reaches the same accuracy; predictions are
        always computed in float64.
    exp_backend : {"opencv", "numpy"}
        Whose ``exp`` the sigmoids use during training (see :data:`pcann.nn.sgd.EXP_FUNCTIONS`):
        OpenCV's is as accurate and several times faster; ``numpy`` keeps training numpy-only.

    Attributes
    ----------
    classes_, n_features_in_
        As in every scikit-learn classifier.
    coefs_ : list of ndarray
        ``coefs_[l]`` has shape ``(n_out, n_in)``, as the study's ``W``; ``intercepts_[l]`` has
        ``n_out`` entries.
    history_ : dict of lists
        ``epoch``, ``lr``, ``train_loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy``, one
        entry per recorded epoch; the validation entries are NaN without a validation set.
    diverged_, diverged_epoch_
        Whether training stopped early because it diverged (see
        :meth:`pcann.nn.sgd.SGDTrainer.train`), and in which epoch. A diverged model keeps the weights it had when it stopped.
    n_epochs_run_, n_steps_, fit_seconds_, steps_per_second_
        How much training ran, and how fast (wall time, evaluations included).
    """

    def __init__(
        self,
        hidden=DEFAULT_PARAMS["hidden"],
        epochs=DEFAULT_PARAMS["epochs"],
        lr=DEFAULT_PARAMS["lr"],
        batch_size=DEFAULT_PARAMS["batch_size"],
        seed=DEFAULT_PARAMS["seed"],
        lr_schedule=DEFAULT_PARAMS["lr_schedule"],
        lr_decay_rate=DEFAULT_PARAMS["lr_decay_rate"],
        lr_decay_every=DEFAULT_PARAMS["lr_decay_every"],
        eval_every=DEFAULT_PARAMS["eval_every"],
        dtype=DEFAULT_PARAMS["dtype"],
        exp_backend=DEFAULT_PARAMS["exp_backend"],
    ):
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.lr_schedule = lr_schedule
        self.lr_decay_rate = lr_decay_rate
        self.lr_decay_every = lr_decay_every
        self.eval_every = eval_every
        self.dtype = dtype
        self.exp_backend = exp_backend

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate this estimator uses in ``epoch`` (counted from 1)."""
        return schedule_of(check_params(**self.get_params()))(epoch)

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, X, y, X_val=None, y_val=None):
        """Train on ``(X, y)``; ``(X_val, y_val)``, if given, is scored alongside in ``history_``.

        Labels may be of any type scikit-learn accepts (strings, integers); at least two classes.
        """
        params = check_params(**self.get_params())
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                f"MLPClassifier needs at least 2 classes to learn; got 1 class ({self.classes_[0]!r})"
            )
        X_val, y_val_index = self._validation_set(X_val, y_val)
        network = train_network(X, y_index, self.classes_.size, X_val, y_val_index, **params)
        self._set_fitted(network)
        return self

    def _set_fitted(self, network: FittedNetwork) -> None:
        result = network.result
        self.coefs_, self.intercepts_ = network.weights, network.biases
        self.history_ = result.history
        self.diverged_ = result.diverged
        self.diverged_epoch_ = result.diverged_epoch
        self.n_epochs_run_ = result.n_epochs_run
        self.n_steps_ = result.n_steps
        self.fit_seconds_ = result.seconds
        self.steps_per_second_ = result.n_steps / result.seconds if result.seconds > 0 else math.nan

    def _network(self) -> FittedNetwork:
        check_is_fitted(self)
        result = TrainingResult(
            history=self.history_,
            diverged=self.diverged_,
            diverged_epoch=self.diverged_epoch_,
            n_epochs_run=self.n_epochs_run_,
            n_steps=self.n_steps_,
            seconds=self.fit_seconds_,
        )
        return FittedNetwork(self.coefs_, self.intercepts_, result)

    def _validation_set(self, X_val, y_val):
        """Validated ``(X_val, class indices)``, or ``(None, None)`` without a validation set."""
        if X_val is None and y_val is None:
            return None, None
        if X_val is None or y_val is None:
            raise ValueError("X_val and y_val must be given together (or neither)")
        X_val, y_val = check_X_y(X_val, y_val, dtype=np.float64)
        if X_val.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X_val has {X_val.shape[1]} features, but X has {self.n_features_in_}"
            )
        unknown = np.setdiff1d(np.unique(y_val), self.classes_)
        if unknown.size:
            raise ValueError(f"y_val has labels that are not in y: {unknown.tolist()}")
        return X_val, np.searchsorted(self.classes_, y_val)

    # -- prediction ---------------------------------------------------------------------------

    def _logits(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._network().logits(X)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)``, columns in the order of ``classes_``."""
        return softmax(self._logits(X), axis=0).T

    def predict_log_proba(self, X) -> np.ndarray:
        return log_softmax(self._logits(X), axis=0).T

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample."""
        scores = self._logits(X)  # validates X, so an unfitted model raises NotFittedError first
        return self.classes_[np.argmax(scores, axis=0)]

    def log_loss(self, X, y) -> float:
        """Mean cross-entropy of the model on ``(X, y)``; labels must be among ``classes_``."""
        check_is_fitted(self)
        y = np.asarray(y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y has labels the model was not trained on: {unknown.tolist()}")
        return cross_entropy(self._logits(X), np.searchsorted(self.classes_, y))

    # -- saving -------------------------------------------------------------------------------

    def save_weights(self, path) -> None:
        """Write the fitted model to ``path`` (``.npz``, no pickle), atomically; see
        :func:`pcann.nn.weights_file.save_network`. :meth:`from_npz` restores a model that predicts identically."""
        network = self._network()
        save_network(
            path,
            network,
            params=self.get_params(),
            classes=self.classes_,
            n_features_in=self.n_features_in_,
        )

    @classmethod
    def from_npz(cls, path) -> "MLPClassifier":
        """A fitted model read back from :meth:`save_weights` or :func:`pcann.nn.weights_file.save_network`."""
        network, info = load_network(path)
        known = cls().get_params()
        model = cls(**{key: value for key, value in info["params"].items() if key in known})
        model.classes_ = info["classes"]
        model.n_features_in_ = info["n_features_in"]
        model._set_fitted(network)
        return model
