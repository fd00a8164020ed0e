"""Readable configuration errors: each names the key, the value and what was expected."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from pcann import PcannError


class ConfigError(PcannError):
    """The configuration does not match schemas/config.schema.yaml."""


# libyaml's safe loader where PyYAML has it: ten times faster on a grid of thousands of values
# (planning time). Syntax errors are reported by the pure-Python loader, whose messages are the
# same on every installation.
try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader


def load_schema(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.load(handle, Loader=SafeLoader)


def load_config_file(path: str | Path) -> dict:
    """Read a YAML configuration safely; a syntax error names the file, line and column."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    try:
        data = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError:
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
        raise
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def _key(error) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        prefix = f"{path}." if path else ""
        return ", ".join(prefix + name for name in unknown)
    return path or "(top level)"


def _expected(error) -> str:
    schema = error.schema
    if error.validator == "additionalProperties":
        known = ", ".join(sorted(schema.get("properties", {})))
        return f"unknown key; known keys here: {known}"
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(map(str, schema["enum"])))
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        parts.append(" or ".join(types))
    for bound, text in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                        ("exclusiveMaximum", "<"), ("minItems", "at least"), ("minLength", "length >=")):
        if bound in schema:
            parts.append(f"{text} {schema[bound]}" + (" items" if bound == "minItems" else ""))
    description = schema.get("description")
    expected = ", ".join(parts) if parts else "see the schema"
    return f"expected {expected}" + (f" ({description})" if description else "")


def config_errors(config: dict, schema: dict) -> list[str]:
    """One line per problem: ``config key K: <what is wrong>; expected <form>``."""
    validator = Draft202012Validator(schema)
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        lines.append(f"config key {_key(error)}: {error.message}; {_expected(error)}")
    return lines


def check_config(config: dict, schema_path: str | Path) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config``, or return quietly."""
    problems = config_errors(config, load_schema(schema_path))
    if problems:
        raise ConfigError(
            "invalid configuration (schemas/config.schema.yaml):\n  " + "\n  ".join(problems)
        )


def canonical_config(config: dict, schema: dict) -> dict:
    """``config`` with every mapping's keys in the schema's order and every ``number`` a float.

    Two configurations with the same values then compare equal and print the same, however
    their files order the keys or write the numbers (``5.0e-3``, ``0.005``, ``1``): Snakemake
    compares rule params by their text, so only a changed value re-runs a job. Keys the schema
    does not name (the networks, by name) keep their order, which is the tables' order.
    """
    return _canonical(config, schema, schema)


def _canonical(value, schema: dict, root: dict):
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        others = schema.get("additionalProperties")
        others = others if isinstance(others, dict) else {}
        ordered = {key: _canonical(value[key], properties[key], root) for key in properties if key in value}
        for key in value:
            if key not in properties:
                ordered[key] = _canonical(value[key], others, root)
        return ordered
    if isinstance(value, list):
        return [_canonical(item, schema.get("items", {}), root) for item in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_data_dir(config: dict) -> Path:
    """The configured data folder; a :class:`ConfigError` names the key when it cannot be the
    study's input."""
    data_dir = Path(config["data_dir"])
    if not data_dir.is_dir():
        raise ConfigError(
            f"config key data_dir: {str(data_dir)!r} does not exist or is not a folder; "
            "expected a folder holding the sub-folders "
            f"{config['train_folder']!r} and {config['test_folder']!r}"
        )
    for key in ("train_folder", "test_folder"):
        if not (data_dir / config[key]).is_dir():
            raise ConfigError(
                f"config key {key}: {str(data_dir / config[key])!r} does not exist or is "
                "not a folder; expected one sub-folder per class inside it"
            )
    return data_dir


def check_results_writable(results: str | Path) -> None:
    """Stop with one line when ``results`` exists but cannot be written (read-only, no access,
    full), without writing anything to find out."""
    results = Path(results)
    if not results.is_dir():
        return
    stats = os.statvfs(results)
    if stats.f_flag & os.ST_RDONLY:
        code = errno.EROFS
    elif not os.access(results, os.W_OK | os.X_OK):
        code = errno.EACCES
    elif stats.f_bavail == 0:
        code = errno.ENOSPC
    else:
        return
    raise ConfigError(
        f"cannot write to {results.resolve()}: {os.strerror(code)}; every output of the workflow goes there"
    )


def _batch_size_keys(config: dict, batch_size: int) -> list[str]:
    """The config keys that ask for ``batch_size``."""
    keys = []
    for name, network in config.get("networks", {}).items():
        if network["baseline"]["batch_size"] == batch_size:
            keys.append(f"networks.{name}.baseline.batch_size")
        if batch_size in network.get("sweep", {}).get("batch_size", []):
            keys.append(f"networks.{name}.sweep.batch_size")
    for index, entry in enumerate(config.get("headline", [])):
        if entry.get("batch_size") == batch_size:
            keys.append(f"headline[{index}].batch_size")
    candidates = (config.get("search") or {}).get("candidates", {})
    for kind in ("grid", "random"):
        if batch_size in (candidates.get(kind) or {}).get("batch_size", []):
            keys.append(f"search.candidates.{kind}.batch_size")
    return keys or ["batch_size"]


def check_plan_fits_data(settings, config: dict, n_train_folder: int, n_features: int) -> None:
    """Refuse settings the data cannot support, naming the config key and both numbers.

    Runs when the workflow starts, so that an impossible batch size or component count stops
    the study before any job, not after hours of other training runs.
    """
    from pcann.preprocessing.features import split_sizes

    n_train = split_sizes(n_train_folder, config["val_fraction"])[0]
    problems = []
    for batch_size in sorted({s.batch_size for s in settings if s.batch_size > n_train}):
        problems.append(
            f"config key {', '.join(_batch_size_keys(config, batch_size))}: {batch_size} "
            f"is larger than the training split ({n_train} of the {n_train_folder} training-folder "
            f"images); expected at most {n_train}"
        )
    for protocol, n_components in sorted({(s.protocol, s.n_components) for s in settings}):
        fit_rows = n_train_folder if protocol == "study" else n_train
        limit = min(fit_rows, n_features)
        if n_features and n_components > limit:
            key = (
                "n_components" if n_components == config["n_components"]
                else "search.n_components" if n_components == (config.get("search") or {}).get("n_components")
                else "components_sweep"
            )
            problems.append(
                f"config key {key}: {n_components} is more than PCA can keep under "
                f"protocol {protocol}: at most min(samples={fit_rows}, features={n_features}) = {limit}"
            )
    if problems:
        raise ConfigError("the study does not fit the data:\n  " + "\n  ".join(problems))
