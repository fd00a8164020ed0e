"""The training recipe: its options, one definition each, and fitting a network by them.

:data:`OPTIONS` declares every training option once, with its default (the study's 2-layer
recipe), the values it allows and what it means. Validation (:func:`check_params`), the
scikit-learn estimator's defaults (:mod:`pcann.nn.estimator`) and the workflow's rule params
(``rules/common.smk``) derive from it, and a test holds ``schemas/config.schema.yaml`` to it.

:func:`train_network` is the study's recipe: ``np.random.RandomState(seed)`` draws the initial
weights (:func:`pcann.nn.network.init_parameters`), then the permutation of every epoch, and
:class:`pcann.nn.sgd.SGDTrainer` runs the epochs. A run can continue a shorter run of the same
setting exactly (:func:`continuation_problem`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache, partial
from numbers import Integral, Real
from pathlib import Path

import cv2
import numpy as np

from pcann.nn.network import cross_entropy, init_parameters, layer_sizes, logits
from pcann.nn.sgd import DTYPES, EXP_FUNCTIONS, SGDTrainer, TrainingResult

#: Learning-rate schedules understood by :func:`learning_rate`.
LR_SCHEDULES = ("constant", "step", "exponential")


def _is_integer(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _number_text(value) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class TrainingOption:
    """One training option: its name, default, allowed values and meaning.

    ``kind`` is ``integer``, ``number``, ``choice`` or ``layers`` (a non-empty list of integers
    >= 1). Numbers are bounded by ``minimum`` (exclusive when ``exclusive_minimum``) and
    ``maximum``; choices by ``choices``. ``shared`` options are the config's ``training:``
    mapping (one value for every run); the others vary per run (a setting of the study).
    """

    name: str
    kind: str
    default: object
    description: str
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    choices: tuple = ()
    shared: bool = True

    def check(self, value):
        """``value`` in canonical form (ints, floats, a tuple of layer sizes, a choice), or a
        ``ValueError`` naming the option and what it must be."""
        if self.kind == "choice":
            if isinstance(value, (type, np.dtype)) and self.name == "dtype":
                value = str(np.dtype(value))
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        if self.kind == "layers":
            return self._check_layers(value)
        if self.kind == "integer":
            if not _is_integer(value) or not self._in_range(value):
                raise ValueError(f"{self.name} must be an integer {self._range_text()}; got {value!r}")
            return int(value)
        if not _is_number(value) or not math.isfinite(value) or not self._in_range(value):
            raise ValueError(f"{self.name} must be a finite number {self._range_text()}; got {value!r}")
        return float(value)

    def _in_range(self, value) -> bool:
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                return False
        return self.maximum is None or value <= self.maximum

    def _range_text(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {_number_text(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"<= {_number_text(self.maximum)}")
        return " and ".join(parts)

    def _check_layers(self, value) -> tuple[int, ...]:
        sizes = (value,) if _is_integer(value) else value
        try:
            sizes = tuple(sizes)
        except TypeError:
            sizes = None
        if not sizes or isinstance(value, (bool, str)):
            raise ValueError(
                f"{self.name} must be a non-empty list of hidden layer sizes, e.g. [256]; got {value!r}"
            )
        if not all(_is_integer(size) and size >= 1 for size in sizes):
            raise ValueError(f"{self.name} must hold layer sizes that are integers >= 1; got {value!r}")
        return tuple(int(size) for size in sizes)

    def json_schema(self) -> dict:
        """The JSON-schema constraints this definition implies (what the config schema must say)."""
        if self.kind == "choice":
            return {"enum": list(self.choices)}
        if self.kind == "layers":
            return {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}
        schema = {"type": self.kind}
        if self.minimum is not None:
            schema["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


#: Every training option, declared once. The defaults are the study's 2-layer recipe.
OPTIONS = (
    TrainingOption("hidden", "layers", (256,), "Hidden-layer sizes, input side first.", shared=False),
    TrainingOption("epochs", "integer", 1000, "Passes over the training split.", minimum=1, shared=False),
    TrainingOption(
        "lr", "number", 0.005, "SGD learning rate (of the first epoch, when a schedule decays it).",
        minimum=0, exclusive_minimum=True, shared=False,
    ),
    TrainingOption("batch_size", "integer", 16, "Mini-batch size.", minimum=1, shared=False),
    TrainingOption(
        "seed", "integer", 1, "Seed of the initial weights and of the shuffling.",
        minimum=0, maximum=2**32 - 1, shared=False,
    ),
    TrainingOption(
        "lr_schedule", "choice", "constant", "How the learning rate changes with the epoch.",
        choices=LR_SCHEDULES,
    ),
    TrainingOption(
        "lr_decay_rate", "number", 0.5,
        "step: factor every lr_decay_every epochs; exponential: lr * rate**(epoch/lr_decay_every).",
        minimum=0, exclusive_minimum=True, maximum=1,
    ),
    TrainingOption("lr_decay_every", "integer", 100, "Epochs per decay step.", minimum=1),
    TrainingOption(
        "eval_every", "integer", 1,
        "Record training and validation loss and accuracy every k epochs, and after the last.",
        minimum=1,
    ),
    TrainingOption(
        "dtype", "choice", "float32", "Precision of training (predictions are always float64).",
        choices=DTYPES,
    ),
    TrainingOption(
        "exp_backend", "choice", "opencv",
        "The sigmoids' exp: opencv (cv2.exp, as accurate, faster) or numpy (numpy-only training).",
        choices=tuple(EXP_FUNCTIONS),
    ),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}
#: The default of every option.
DEFAULT_PARAMS = {option.name: option.default for option in OPTIONS}
#: The options shared by every run of a study: the config's ``training:`` mapping.
SHARED_OPTIONS = tuple(option.name for option in OPTIONS if option.shared)


def check_params(**params) -> dict:
    """Every training option validated and in canonical form (defaults for the missing ones), in
    the order of :data:`OPTIONS`; a ``ValueError`` names the option and what it must be."""
    unknown = sorted(set(params) - set(OPTIONS_BY_NAME))
    if unknown:
        raise ValueError(f"unknown training parameters {unknown}; known: {sorted(OPTIONS_BY_NAME)}")
    return {option.name: option.check(params.get(option.name, option.default)) for option in OPTIONS}


def shared_params(training: dict) -> dict:
    """The shared options of a config's ``training:`` mapping, checked and in canonical form and
    order, so that the same values always compare equal (Snakemake re-runs on changed params)."""
    return {name: OPTIONS_BY_NAME[name].check(training[name]) for name in SHARED_OPTIONS}


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
    continue the shorter one (see :func:`train_network`). The code is the text of
    :data:`TRAINER_MODULES`, so any edit of the network, the trainer or the recipe makes earlier
    runs unfit for continuation rather than silently mixed in.
    """
    digest = hashlib.sha256()
    recipe = {key: value for key, value in jsonable(params).items() if key != "epochs"}
    versions = {"numpy": np.__version__, "opencv": cv2.__version__, "n_classes": int(n_classes)}
    digest.update(json.dumps([recipe, versions], sort_keys=True).encode())
    digest.update(_trainer_code())
    for array, dtype in ((X, np.float64), (y, np.int64), (X_val, np.float64), (y_val, np.int64)):
        if array is not None:
            array = np.ascontiguousarray(array, dtype=dtype)
            digest.update(repr(array.shape).encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


#: The modules whose code decides a run's trajectory: the network, the trainer and this recipe.
TRAINER_MODULES = ("network.py", "sgd.py", "training.py")


@lru_cache(maxsize=None)
def _trainer_code() -> bytes:
    """The text of :data:`TRAINER_MODULES`, read once per process: part of every
    :func:`trajectory_key`."""
    here = Path(__file__).parent
    return b"".join((here / name).read_bytes() for name in TRAINER_MODULES)


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



def jsonable(params: dict) -> dict:
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
