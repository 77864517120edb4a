import time

import pytest
import yaml

from ferxai.config import fill_defaults, network_settings, settings_json, validate_config
from ferxai.errors import ConfigError
from tests.conftest import REPO


def load(name):
    return yaml.safe_load((REPO / name).read_text())


@pytest.mark.parametrize("name", ["config/config.yaml", "config/sanity.yaml", ".test/config.yaml"])
def test_shipped_configs_validate(name):
    config = validate_config(load(name))
    assert config["networks"]["names"]
    assert config["attribution"]["lime"]["n_segments"] == 30


def test_paper_config_names_missing_weights():
    with pytest.raises(ConfigError, match="does not exist"):
        validate_config(load("config/paper.yaml"))


def test_every_schema_key_has_description_and_default():
    from ferxai.config import load_schema

    def walk(schema, path):
        for key, sub in schema.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            assert "default" in sub, f"{path}{key} has no default"
            walk(sub, f"{path}{key}.")

    walk(load_schema(), "")


def test_defaults_filled():
    config = fill_defaults({})
    assert config["data"]["folds"] == 2
    assert config["positives"]["only_correct"] is False


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"seed": 1, "networks": {"names": ["WeiNet"], "defaults": {"epoch": 3}}}, "epoch"),
        ({"networks": {"names": ["ResNet51"]}}, "ResNet51"),
        ({"networks": {"overrides": {"VGG17": {"epochs": 1}}}}, "VGG17"),
        ({"attribution": {"methods": ["shap"]}}, "shap"),
        ({"positives": {"per_class": 0}}, "per_class"),
        ({"data": {"folds": "five"}}, "folds"),
        ({"comparison": {"threshold": "median"}}, "threshold"),
        ({"datta": {}}, "datta"),
    ],
)
def test_bad_config_names_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(bad)


def test_pretrained_without_weights_names_network():
    with pytest.raises(ConfigError, match="VGG16 has pretrained: true but no weights"):
        validate_config({"networks": {"overrides": {"VGG16": {"pretrained": True}}}})


def test_pretrained_scratch_network_rejected():
    with pytest.raises(ConfigError, match="WeiNet is trained from scratch"):
        validate_config({"networks": {"overrides": {"WeiNet": {"pretrained": True}}}})


def test_cuda_without_gpu_fails_early():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match="no GPU is visible"):
        validate_config({"device": "cuda"})


def test_sanity_folds_must_exist():
    with pytest.raises(ConfigError, match="sanity.folds"):
        validate_config({"data": {"folds": 2}, "sanity": {"folds": [3]}})


def test_network_settings_merge_order():
    config = validate_config(
        {"networks": {"defaults": {"epochs": 5}, "overrides": {"SongNet": {"epochs": 9}}}}
    )
    assert network_settings(config, "SongNet")["epochs"] == 9
    assert network_settings(config, "WeiNet")["epochs"] == 5
    # canonical JSON: equal settings give equal strings whatever the key order
    assert settings_json({"b": 1, "a": 2}) == settings_json({"a": 2, "b": 1})


def test_validation_is_fast():
    start = time.perf_counter()
    with pytest.raises(ConfigError):
        validate_config({"networks": {"names": ["Nope"]}})
    assert time.perf_counter() - start < 2


def test_config_readme_is_current():
    from ferxai.config import schema_markdown

    assert schema_markdown() in (REPO / "config" / "README.md").read_text(), (
        "config/README.md is stale: regenerate its key table with ferxai.config.schema_markdown()"
    )
