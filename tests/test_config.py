"""Configuration validation: every bad value is named with its key and the expected form."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from pcann.workflow.config import ConfigError, canonical_config, check_config, config_errors, load_schema
from pcann.nn.estimator import MLPClassifier
from pcann.preprocessing.features import PROTOCOLS, SPLITS
from pcann.nn.training import DEFAULT_PARAMS, OPTIONS, SHARED_OPTIONS

SCHEMA_PATH = REPO / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def schema():
    return load_schema(SCHEMA_PATH)


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_config_is_valid(config):
    check_config(config, SCHEMA_PATH)


def test_every_shipped_key_has_a_comment():
    for number, line in enumerate((REPO / "config.yaml").read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith(("#", "-")) and ":" in line:
            assert "#" in line, f"config.yaml line {number} has no comment: {line!r}"


#: Keys whose schema default differs from config.yaml's shipped value, each with the reason the
#: README or the schema states. Empty: leaving any key out of config.yaml gives its shipped value.
DEFAULTS_THAT_DIFFER: dict[str, str] = {}


def _defaults(spec: dict, prefix: str = ""):
    """Every (dotted key, default) of a schema's properties, nested mappings included."""
    for key, sub in spec.get("properties", {}).items():
        if "default" in sub and sub["default"] != {}:
            yield prefix + key, sub["default"]
        yield from _defaults(sub, f"{prefix}{key}.")


def _shipped(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def test_every_schema_default_is_the_shipped_value_or_a_documented_difference(schema, config):
    defaults = dict(_defaults(schema))
    assert {"networks", "headline", "components_sweep", "demo.n_classes", "training.dtype"} <= set(defaults)
    for key, default in defaults.items():
        if key in DEFAULTS_THAT_DIFFER:
            assert _shipped(config, key) != default, f"{key} is listed as differing but does not"
            continue
        assert _shipped(config, key) == default, f"config.yaml and the schema's default disagree on {key}"


def test_every_top_level_key_is_shipped_in_config_yaml_with_a_default(schema, config):
    for key, spec in schema["properties"].items():
        assert key in config, f"config.yaml does not ship {key}"
        assert "default" in spec, f"the schema gives {key} no default"


def test_leaving_every_key_out_gives_the_shipped_study(schema, config):
    from snakemake.utils import validate

    empty: dict = {}
    validate(empty, str(SCHEMA_PATH))  # fills in the defaults, as the workflow's validation does
    assert canonical_config(empty, schema) == canonical_config(config, schema)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"n_components": -1}, r"config key n_components: -1 is less than the minimum of 1; expected integer, >= 1"),
        ({"n_components": "abc"}, r"config key n_components: 'abc' is not of type 'integer'"),
        ({"val_fraction": 1.5}, r"config key val_fraction: .*expected number, > 0, < 1"),
        ({"tpyo": 3}, r"config key tpyo: .*unknown key; known keys here: .*data_dir"),
        ({"demo": {"seed": 0, "colour": 1}}, r"config key demo.colour: .*unknown key"),
        ({"protocol": "leaky"}, r"config key protocol: .*expected one of study, train-only"),
        ({"read_mode": "rgb"}, r"config key read_mode: .*expected one of color, grey, unchanged"),
    ],
)
def test_bad_values_name_the_key_and_the_expected_form(config, change, expected):
    config.update(change)
    with pytest.raises(ConfigError, match=expected):
        check_config(config, SCHEMA_PATH)


def test_all_problems_are_listed_at_once(schema, config):
    config.update({"n_components": 0, "split_seed": "ten"})
    assert len(config_errors(config, schema)) == 2


def test_runtime_settings_stay_out_of_config(schema):
    runtime_words = {"threads", "cores", "mem_mb", "memory", "runtime", "partition", "account"}
    assert not runtime_words & set(schema["properties"])


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    from pcann.workflow.config import load_config_file

    path = tmp_path / "broken.yaml"
    path.write_text("n_components: 2\nnetworks: [1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml line 3, column 1: not valid YAML"):
        load_config_file(path)


def test_config_file_must_be_a_mapping(tmp_path):
    from pcann.workflow.config import load_config_file

    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping of config keys, got list"):
        load_config_file(path)


def _schema_of_option(schema: dict, option) -> dict:
    """Where the config schema declares a training option."""
    if option.shared:
        return schema["properties"]["training"]["properties"][option.name]
    if option.name == "seed":
        return schema["properties"]["seeds"]["items"]
    return schema["$defs"][option.name]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_the_schema_says_what_each_training_option_defines(schema, option):
    expected = {**option.json_schema(), "description": option.description}
    if option.shared:
        expected["default"] = option.default
    assert _schema_of_option(schema, option) == expected


def test_the_training_mapping_is_the_shared_options_and_two_workflow_switches(schema):
    keys = list(schema["properties"]["training"]["properties"])
    assert keys == [*SHARED_OPTIONS, "plot_training_points", "continue_shorter_runs"]


def test_the_estimator_takes_every_training_option_with_its_default():
    assert MLPClassifier().get_params() == DEFAULT_PARAMS


def test_the_schema_allows_exactly_the_protocols_and_splits_the_code_knows(schema):
    assert schema["$defs"]["protocol"]["enum"] == list(PROTOCOLS)
    assert schema["properties"]["compare_protocols"]["items"] == {"$ref": "#/$defs/protocol"}
    assert schema["properties"]["protocol"]["$ref"] == "#/$defs/protocol"
    assert schema["properties"]["split"]["enum"] == list(SPLITS)


def test_the_canonical_config_orders_keys_as_the_schema_and_writes_numbers_as_floats(schema, config):
    config["training"] = {"lr_decay_rate": 1, "lr_schedule": "step"}
    config["networks"] = {"b": {"baseline": {"batch_size": 8, "lr": 1, "epochs": 3, "hidden": [4]}},
                          "a": {"baseline": {"hidden": [2], "epochs": 1, "lr": 0.5, "batch_size": 4}}}
    reordered = dict(reversed(config.items()))
    canonical = canonical_config(reordered, schema)
    assert list(canonical) == [key for key in schema["properties"] if key in config]
    assert canonical["training"] == {"lr_schedule": "step", "lr_decay_rate": 1.0}
    assert isinstance(canonical["training"]["lr_decay_rate"], float)
    assert list(canonical["networks"]) == ["b", "a"]  # the networks keep their order: the tables'
    assert list(canonical["networks"]["b"]["baseline"]) == ["hidden", "epochs", "lr", "batch_size"]
    assert repr(canonical["networks"]["b"]["baseline"]["lr"]) == "1.0"
    assert canonical_config(canonical, schema) == canonical


# --- the study files that ship: studies/*.yaml and .test/config.yaml ----------------------------

STUDY_FILES = sorted((REPO / "studies").glob("*.yaml")) + [REPO / ".test" / "config.yaml"]
#: The keys a study file replaces as a whole (the README, "Your own study"); the rest override
#: config.yaml's one by one.
def _study_config(path) -> dict:
    """config.yaml with a study file applied as the workflow applies a --configfile."""
    from pcann.workflow.study_record import resolve_config

    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    return resolve_config(shipped, [path], {}, None)[0]


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_study_file_is_valid_and_fits_its_demo_data(path):
    from snakemake.utils import validate

    from pcann.workflow.config import check_plan_fits_data
    from pcann.study.plan import StudyPlan

    config = _study_config(path)
    check_config(config, SCHEMA_PATH)
    validate(config, str(SCHEMA_PATH))
    demo = config["demo"]
    n_train_folder = demo["n_classes"] * demo["n_train_per_class"]
    plan = StudyPlan(config, n_train_folder, demo["n_classes"])
    check_plan_fits_data(plan.settings, config, n_train_folder, demo["image_size"] ** 2 * 3)
    assert {row.network for row in plan.rows} == set(yaml.safe_load(path.read_text())["networks"])


def test_the_readme_shows_the_worked_example_study_file():
    import re

    readme = (REPO / "README.md").read_text()
    shown = next(
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", readme, re.S)
        if "networks:" in block
    )
    assert shown == yaml.safe_load((REPO / "studies" / "quick.yaml").read_text())
