"""One source of defaults: every default of the configuration schema equals what the code uses
when the key is absent (attribution settings, and the CLI flags that mirror a config key)."""

from __future__ import annotations

import argparse

import pytest

from ferxai.attribution.settings import DEFAULT_METHOD, DEFAULT_SETTINGS, METHODS
from ferxai.cli import _entry
from ferxai.core.config import training_defaults, validate_config

SCHEMA_DEFAULTS = validate_config({}, source="the schema's defaults")

# config key → (command, flag dest) of every CLI flag that is that key when the workflow runs it
CLI_FLAGS = {
    "seed": [("synth", "seed"), ("folds", "seed"), ("positives", "seed"), ("attribute", "seed"),
             ("extended-metrics", "seed"), ("quality", "seed"), ("trust", "seed"),
             ("au-coverage", "seed"), ("per-face", "seed")],
    "data.min_size": [("prepare", "min_size")],
    "data.duplicates": [("prepare", "duplicates")],
    "data.folds": [("folds", "k")],
    "data.synthetic.subjects": [("synth", "subjects")],
    "data.synthetic.size": [("synth", "size")],
    "data.synthetic.images_per_expression": [("synth", "images_per_expression")],
    "data.synthetic.expressiveness": [("synth", "expressiveness")],
    "data.synthetic.neutral": [("synth", "neutral")],
    "positives.per_class": [("positives", "n")],
    "positives.only_correct": [("positives", "only_correct")],
    "landmarks.max_failure_fraction": [("landmarks", "max_failure_fraction")],
    "normalization.order": [("normalize", "order")],
    "comparison.threshold": [("compare", "threshold"), ("cluster", "threshold"),
                             ("per-face", "threshold")],
    "comparison.bootstrap": [("extended-metrics", "bootstrap"), ("au-coverage", "bootstrap"),
                             ("per-face", "bootstrap")],
    "quality.top_k": [("extended-metrics", "top_k"), ("trust", "top_k")],
    "quality.bootstrap": [("trust", "bootstrap")],
    "quality.order": [("trust", "order")],
}


def _schema_default(key: str):
    value = SCHEMA_DEFAULTS
    for part in key.split("."):
        value = value[part]
    return value


def _flag_default(command: str, dest: str):
    add_args, _ = _entry(command)
    parser = argparse.ArgumentParser()
    add_args(parser)
    return parser.get_default(dest)


@pytest.mark.parametrize("method", METHODS)
def test_attribution_settings_defaults_are_the_schemas(method):
    schema = SCHEMA_DEFAULTS["attribution"][method]
    assert {k: DEFAULT_SETTINGS[method][k] for k in schema} == schema
    # every setting a user may want is in the schema; seed, precision, cpu_forward: the top level
    assert set(DEFAULT_SETTINGS[method]) - {"seed", "precision", "cpu_forward"} == set(schema)
    assert SCHEMA_DEFAULTS["attribution"]["methods"] == [DEFAULT_METHOD]


@pytest.mark.parametrize(
    ("key", "command", "dest"),
    [(key, command, dest) for key, flags in CLI_FLAGS.items() for command, dest in flags],
)
def test_cli_flag_defaults_are_the_schemas(key, command, dest):
    assert _flag_default(command, dest) == _schema_default(key)


def test_normalization_defaults_are_the_schemas():
    normalization = SCHEMA_DEFAULTS["normalization"]
    for key, value in normalization.items():
        assert _flag_default("normalize", key) == value, key


def test_training_defaults_are_the_schemas():
    from ferxai.core.config import load_schema

    training = load_schema()["$defs"]["training"]["properties"]
    defaults = training_defaults()
    for key, sub in training.items():
        if "default" in sub:
            assert defaults[key] == sub["default"], key
