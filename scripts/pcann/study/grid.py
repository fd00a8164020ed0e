"""The parameter study: which training runs a configuration asks for, and where each lives.

A :class:`Setting` is everything that defines one training run. Its folder name encodes every
value, so a setting that several sweeps share (the baseline) is one Snakemake job and one set of
files, and changing one value in ``config.yaml`` creates new paths only for the runs that
contain it: Snakemake then re-runs exactly those.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace

from pcann import PcannError
from pcann.study.paths import RUNS_ROOT

SWEPT_PARAMETERS = ("hidden", "epochs", "lr", "batch_size")
#: Snakemake wildcard patterns of the run path.
WILDCARD_PATTERNS = {
    "hidden": r"[1-9][0-9]*(?:-[1-9][0-9]*)*",
    "epochs": r"[1-9][0-9]*",
    "lr": r"[0-9][0-9.e+-]*",
    "batch_size": r"[1-9][0-9]*",
    "seed": r"[0-9]+",
}
RUN_ID_TEMPLATE = "hidden={hidden}_epochs={epochs}_lr={lr}_batch={batch_size}_seed={seed}"
#: Plan rows whose runs are headline runs: the runs themselves and their protocol and
#: component-count repeats.
HEADLINE_TABLES = ("headline", "protocols", "components")


def format_lr(lr: float) -> str:
    """Canonical text of a learning rate: the shortest repr, so 0.0050 and 5e-3 share a path."""
    return repr(float(lr))


@dataclass(frozen=True, order=True)
class Setting:
    """One training run: preprocessing, architecture and optimisation values."""

    protocol: str
    n_components: int
    hidden: tuple[int, ...]
    epochs: int
    lr: float
    batch_size: int
    seed: int

    @property
    def run_id(self) -> str:
        return RUN_ID_TEMPLATE.format(
            hidden="-".join(map(str, self.hidden)),
            epochs=self.epochs,
            lr=format_lr(self.lr),
            batch_size=self.batch_size,
            seed=self.seed,
        )

    @property
    def run_dir(self) -> str:
        return f"{RUNS_ROOT}/{self.protocol}/pca{self.n_components}/{self.run_id}"

    @property
    def n_layers(self) -> int:
        """Layers with weights, as the study counts them (2-layer = one hidden layer)."""
        return len(self.hidden) + 1

    def as_record(self) -> dict:
        record = asdict(self)
        record["hidden"] = list(self.hidden)
        return record

    @classmethod
    def from_wildcards(cls, wildcards) -> "Setting":
        return cls(
            protocol=wildcards.protocol,
            n_components=int(wildcards.n_components),
            hidden=tuple(int(h) for h in wildcards.hidden.split("-")),
            epochs=int(wildcards.epochs),
            lr=float(wildcards.lr),
            batch_size=int(wildcards.batch_size),
            seed=int(wildcards.seed),
        )


@dataclass(frozen=True)
class PlanRow:
    """One line of a results table: a setting, and why the study runs it."""

    table: str  # the table the row is in: sweep | headline | protocols | components | factorial
    network: str  # a key of config["networks"]
    parameter: str  # the varied value: hidden, epochs, lr, batch_size, protocol, n_components, ...
    value: str  # its text as shown in tables
    is_baseline: bool
    setting: Setting

    def as_record(self) -> dict:
        return {
            "table": self.table,
            "network": self.network,
            "parameter": self.parameter,
            "value": self.value,
            "is_baseline": self.is_baseline,
            "run_dir": self.setting.run_dir,
            **self.setting.as_record(),
        }


def value_text(parameter: str, value) -> str:
    if parameter == "hidden":
        return "[" + ", ".join(map(str, value)) + "]"
    if parameter == "lr":
        return format_lr(value)
    return str(value)


def baseline_setting(config: dict, network: str, seed: int) -> Setting:
    spec = config["networks"][network]["baseline"]
    return Setting(
        protocol=config["protocol"],
        n_components=config["n_components"],
        hidden=tuple(spec["hidden"]),
        epochs=spec["epochs"],
        lr=float(spec["lr"]),
        batch_size=spec["batch_size"],
        seed=seed,
    )


def _normalised(parameter: str, value):
    """A config value in the form a :class:`Setting` holds (hidden as a tuple, lr as a float)."""
    if parameter == "hidden":
        return tuple(value)
    if parameter == "lr":
        return float(value)
    return value


def _with(setting: Setting, parameter: str, value) -> Setting:
    return replace(setting, **{parameter: _normalised(parameter, value)})


def _swept_values(spec: dict, parameter: str, baseline_value) -> list:
    """The sweep's values of ``parameter`` plus the baseline's, distinct and sorted."""
    values = {_normalised(parameter, v) for v in spec.get("sweep", {}).get(parameter, [])}
    return sorted(values | {baseline_value}, key=_sort_key)


def headline_settings(config: dict, seed: int) -> list[tuple[str, str, Setting]]:
    """``(label, network, setting)`` of each headline run."""
    runs = []
    for entry in config["headline"]:
        network = entry["network"]
        if network not in config["networks"]:
            raise PcannError(
                f"config key headline: network {network!r} is not one of the networks "
                f"({', '.join(config['networks'])})"
            )
        setting = baseline_setting(config, network, seed)
        changes = []
        for parameter in SWEPT_PARAMETERS:
            if parameter in entry:
                setting = _with(setting, parameter, entry[parameter])
                changes.append(f"{parameter}={value_text(parameter, entry[parameter])}")
        label = network + (f" ({', '.join(changes)})" if changes else "")
        runs.append((label, network, setting))
    return runs


def study_plan(config: dict) -> list[PlanRow]:
    """Every table row the configuration asks for, in a stable order."""
    rows: list[PlanRow] = []
    for seed in config["seeds"]:
        for network, spec in config["networks"].items():
            base = baseline_setting(config, network, seed)
            for parameter in SWEPT_PARAMETERS:
                baseline_value = getattr(base, parameter)
                for value in _swept_values(spec, parameter, baseline_value):
                    rows.append(
                        PlanRow(
                            "sweep", network, parameter, value_text(parameter, value),
                            value == baseline_value, _with(base, parameter, value),
                        )
                    )
            if config["full_factorial"]:
                rows.extend(_factorial_rows(network, spec, base))
        for label, network, setting in headline_settings(config, seed):
            rows.append(PlanRow("headline", network, "run", label, False, setting))
            for protocol in config["compare_protocols"]:
                rows.append(
                    PlanRow("protocols", network, "protocol", f"{label} / {protocol}",
                            protocol == setting.protocol, replace(setting, protocol=protocol))
                )
            for n_components in config["components_sweep"]:
                rows.append(
                    PlanRow("components", network, "n_components", f"{label} / {n_components}",
                            n_components == setting.n_components,
                            replace(setting, n_components=n_components))
                )
    return rows


def _factorial_rows(network: str, spec: dict, base: Setting) -> list[PlanRow]:
    axes = [_swept_values(spec, p, getattr(base, p)) for p in SWEPT_PARAMETERS]
    rows = []
    for hidden, epochs, lr, batch_size in itertools.product(*axes):
        setting = replace(base, hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size)
        label = ", ".join(
            f"{p}={value_text(p, v)}" for p, v in zip(SWEPT_PARAMETERS, (hidden, epochs, lr, batch_size))
        )
        rows.append(PlanRow("factorial", network, "all", label, setting == base, setting))
    return rows


def _sort_key(value):
    return (len(value), value) if isinstance(value, tuple) else value


def unique_settings(rows: list[PlanRow]) -> list[Setting]:
    """The distinct settings of a plan, in first-seen order: one training job each."""
    return list(dict.fromkeys(row.setting for row in rows))


def swept_epochs(config: dict) -> set[int]:
    """Every value of the networks' epochs sweeps."""
    return {
        int(epochs)
        for spec in config["networks"].values()
        for epochs in spec.get("sweep", {}).get("epochs", [])
    }


def shorter_runs(settings, epochs_values) -> dict[Setting, Setting]:
    """The run each setting continues instead of starting over: the longest run of the same
    setting with fewer epochs, among those whose epochs are in ``epochs_values``.

    Training is deterministic and epoch ``e`` of a run does not depend on how many epochs come
    after it, so a 4000-epoch run can start where the 2000-epoch run ended and give the same
    result (see :func:`pcann.nn.training.train_network`); an epochs sweep then costs its longest run
    instead of the sum of all. ``epochs_values`` are the sweeps' values (:func:`swept_epochs`),
    not every run's: a baseline's epochs are then continued by no run, and changing them
    re-runs exactly the runs with the new value.
    """
    settings = list(settings)
    anchors = set(epochs_values)
    lengths: dict[Setting, list[int]] = {}
    for setting in settings:
        if setting.epochs in anchors:
            lengths.setdefault(replace(setting, epochs=0), []).append(setting.epochs)
    continued = {}
    for setting in settings:
        shorter = [e for e in lengths.get(replace(setting, epochs=0), ()) if e < setting.epochs]
        if shorter:
            continued[setting] = replace(setting, epochs=max(shorter))
    return continued
