"""Readable configuration errors: each names the key, the value and what was expected."""

from __future__ import annotations

from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from . import PcannError


class ConfigError(PcannError):
    """The configuration does not match schemas/config.schema.yaml."""


def load_schema(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


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
