"""What a search tries: its candidates, its rungs and the runs each rung trains.

A :class:`Search` is built once from the configuration's ``search:`` block
(:func:`search_from_config`). A candidate is a network setting without its epochs and seed
(hidden layers, learning rate, batch size); the search trains every candidate with every seed
for the first rung's epochs, keeps the best ``ceil(n / reduction_factor)`` (validation accuracy,
:mod:`pcann.search.halving`) and continues only those to the next rung's epochs, from their
saved weights, up to ``max_epochs``. Every run is an ordinary run folder under ``results/runs/``,
so a setting the study trained is not trained again.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from pcann import PcannError
from pcann.study.grid import Setting, format_lr, value_text
from pcann.study.paths import search_dir

#: Each rung keeps 1/REDUCTION_FACTOR of its candidates unless the search says otherwise (as
#: scikit-learn's HalvingGridSearchCV and Hyperband's default).
REDUCTION_FACTOR = 3
#: The values a candidate sets; every other value of a run comes from the search or its rung.
CANDIDATE_PARAMETERS = ("hidden", "lr", "batch_size")


@dataclass(frozen=True, order=True)
class Candidate:
    """One point of the search space: a setting without its epochs and seed."""

    hidden: tuple[int, ...]
    lr: float
    batch_size: int

    @property
    def name(self) -> str:
        """The candidate in the rung tables: ``hidden=256_lr=0.005_batch=16`` (as its run folders)."""
        return f"hidden={'-'.join(map(str, self.hidden))}_lr={format_lr(self.lr)}_batch={self.batch_size}"

    def as_record(self) -> dict:
        return {"hidden": value_text("hidden", self.hidden), "lr": self.lr, "batch_size": self.batch_size}


def rung_epochs(min_epochs: int, max_epochs: int, factor: int) -> list[int]:
    """The epochs of every rung: ``min_epochs`` times ``factor`` to the rung's power while below
    ``max_epochs``, then ``max_epochs``. Anchored at the minimum, so that raising the maximum adds
    rungs on top and leaves every earlier rung (its runs and decisions) as it was."""
    epochs = [min_epochs]
    while epochs[-1] * factor < max_epochs:
        epochs.append(epochs[-1] * factor)
    if epochs[-1] < max_epochs:
        epochs.append(max_epochs)
    return epochs


def survivors(n_candidates: int, factor: int) -> int:
    """How many of a rung's ``n_candidates`` go on to the next rung: ``ceil(n / factor)``, as
    scikit-learn's ``HalvingGridSearchCV`` keeps (at least one)."""
    return max(1, math.ceil(n_candidates / factor))


@dataclass(frozen=True)
class Search:
    """A successive-halving search as the configuration declares it."""

    name: str
    network: str
    candidates: tuple[Candidate, ...]
    min_epochs: int
    max_epochs: int
    reduction_factor: int
    seeds: tuple[int, ...]
    protocol: str
    n_components: int

    @property
    def rungs(self) -> list[int]:
        """The epochs of every rung, first to last (the last is ``max_epochs``)."""
        return rung_epochs(self.min_epochs, self.max_epochs, self.reduction_factor)

    @property
    def folder(self) -> str:
        return search_dir(self.name)

    def rung_sizes(self) -> list[int]:
        """How many candidates each rung trains, whatever the results."""
        sizes = [len(self.candidates)]
        for _ in self.rungs[1:]:
            sizes.append(survivors(sizes[-1], self.reduction_factor))
        return sizes

    def setting(self, candidate: Candidate, epochs: int, seed: int) -> Setting:
        return Setting(
            protocol=self.protocol,
            n_components=self.n_components,
            hidden=candidate.hidden,
            epochs=epochs,
            lr=candidate.lr,
            batch_size=candidate.batch_size,
            seed=seed,
        )

    def runs(self, candidate: Candidate, rung: int) -> list[Setting]:
        """The candidate's runs at a rung, one per seed."""
        return [self.setting(candidate, self.rungs[rung], seed) for seed in self.seeds]

    def continued(self) -> dict[Setting, Setting]:
        """Every run a later rung may train -> the run of the rung before that it continues."""
        rungs = self.rungs
        return {
            self.setting(candidate, later, seed): self.setting(candidate, earlier, seed)
            for candidate in self.candidates
            for seed in self.seeds
            for earlier, later in zip(rungs, rungs[1:])
        }

    def candidate_named(self, name: str) -> Candidate:
        for candidate in self.candidates:
            if candidate.name == name:
                return candidate
        raise PcannError(f"search {self.name}: {name!r} is not one of its candidates")

    def describe(self) -> str:
        """One line: the candidates, seeds, rungs and how many each keeps."""
        sizes = self.rung_sizes()
        rungs = ", ".join(f"{n} at {e}" for n, e in zip(sizes, self.rungs))
        seeds = ", ".join(map(str, self.seeds))
        return (
            f"search {self.name}: {len(self.candidates)} candidates of {self.network}, seeds {seeds}, "
            f"reduction factor {self.reduction_factor}; candidates at epochs: {rungs}"
        )


def _grid_candidates(grid: dict, baseline: Candidate) -> list[Candidate]:
    axes = [
        [_normalised(parameter, value) for value in grid.get(parameter) or [getattr(baseline, parameter)]]
        for parameter in CANDIDATE_PARAMETERS
    ]
    return [Candidate(*values) for values in itertools.product(*axes)]


def _normalised(parameter: str, value):
    if parameter == "hidden":
        return tuple(int(size) for size in value)
    if parameter == "lr":
        return float(value)
    return int(value)


def random_candidates(spec: dict, baseline: Candidate) -> list[Candidate]:
    """``spec["n"]`` candidates drawn one after another from ``np.random.default_rng(spec["seed"])``:
    the learning rate log-uniformly from ``lr: {low, high}``, hidden layers and batch size uniformly
    from their lists. Each candidate takes the same number of draws, so asking for more candidates
    keeps the first ones (and what the search already trained for them)."""
    rng = np.random.default_rng(spec.get("seed", 0))
    hidden_choices = [tuple(h) for h in spec.get("hidden") or [baseline.hidden]]
    batch_choices = list(spec.get("batch_size") or [baseline.batch_size])
    lr_range = spec.get("lr")
    candidates = []
    for _ in range(spec["n"]):
        hidden = hidden_choices[int(rng.integers(len(hidden_choices)))]
        batch_size = int(batch_choices[int(rng.integers(len(batch_choices)))])
        draw = float(rng.random())
        if lr_range:
            low, high = math.log(lr_range["low"]), math.log(lr_range["high"])
            # four significant digits: a run folder's name stays readable and exact
            lr = float(f"{math.exp(low + draw * (high - low)):.4g}")
        else:
            lr = baseline.lr
        candidates.append(Candidate(hidden, lr, batch_size))
    return candidates


def search_from_config(config: dict) -> Search | None:
    """The configured search, or None; a :class:`PcannError` names the key of a value that
    cannot be searched."""
    spec = config.get("search")
    if not spec:
        return None
    network = spec["network"]
    if network not in config["networks"]:
        raise PcannError(
            f"config key search.network: {network!r} is not one of the networks "
            f"({', '.join(config['networks'])}); the search varies that network's baseline"
        )
    base = config["networks"][network]["baseline"]
    baseline = Candidate(tuple(base["hidden"]), float(base["lr"]), int(base["batch_size"]))
    given = spec["candidates"]
    if not given.get("grid") and not given.get("random"):
        raise PcannError(
            "config key search.candidates: no candidates; expected grid (lists of hidden, lr, "
            "batch_size values, all combined) and/or random (n draws from ranges)"
        )
    candidates = _grid_candidates(given["grid"], baseline) if given.get("grid") else []
    if given.get("random"):
        lr_range = given["random"].get("lr")
        if lr_range and lr_range["low"] > lr_range["high"]:
            raise PcannError(
                f"config key search.candidates.random.lr: low {lr_range['low']} is above high "
                f"{lr_range['high']}; expected low <= high"
            )
        candidates += random_candidates(given["random"], baseline)
    if spec["min_epochs"] > spec["max_epochs"]:
        raise PcannError(
            f"config key search.min_epochs: {spec['min_epochs']} is above search.max_epochs "
            f"{spec['max_epochs']}; expected min_epochs <= max_epochs"
        )
    return Search(
        name=spec["name"],
        network=network,
        # a candidate listed twice (a grid point drawn again) is one candidate, first place kept
        candidates=tuple(dict.fromkeys(candidates)),
        min_epochs=spec["min_epochs"],
        max_epochs=spec["max_epochs"],
        reduction_factor=spec.get("reduction_factor", REDUCTION_FACTOR),
        seeds=tuple(spec.get("seeds") or config["seeds"]),
        protocol=spec.get("protocol") or config["protocol"],
        n_components=spec.get("n_components") or config["n_components"],
    )
