import time

import pytest
import yaml

from ferxai.core.config import fill_defaults, network_settings, settings_json, validate_config
from ferxai.core.errors import ConfigError
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
    from ferxai.core.config import load_schema

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


def test_pretrained_without_weights_trains_from_the_fetched_cache_file():
    config = validate_config(
        {"results": "out", "networks": {"names": ["VGG16", "test_resnet.r160_in1k"],
                                        "defaults": {"pretrained": True}}}
    )
    assert network_settings(config, "VGG16")["weights"] == "out/weights/vgg16.safetensors"
    tagged = network_settings(config, "test_resnet.r160_in1k")["weights"]
    assert tagged == "out/weights/test_resnet.r160_in1k.safetensors"
    config["networks"]["weights_cache"] = "/shared/w"
    assert network_settings(config, "VGG16")["weights"] == "/shared/w/vgg16.safetensors"


def test_timm_names_and_models_trained_elsewhere(tmp_path):
    from ferxai.core.config import fetched_weights, trained_networks

    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"")
    order = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry"]
    config = validate_config({"networks": {
        "names": ["WeiNet", "resnet18", "MyNet"],
        "overrides": {"MyNet": {"trained_weights": str(weights), "arch": "test_resnet",
                                "class_order": order}},
    }})
    assert trained_networks(config) == {"MyNet": str(weights)}
    assert fetched_weights(config, "MyNet") is None and fetched_weights(config, "resnet18") is None


@pytest.mark.parametrize(
    "networks, match",
    [
        ({"names": ["resnet18.nope"]}, "'resnet18.nope' is neither"),
        ({"names": ["MyNet"], "overrides": {"MyNet": {"arch": "resnet18"}}}, "MyNet.arch: only"),
        ({"names": ["MyNet"], "overrides": {"MyNet": {"trained_weights": "nope.pt"}}},
         "MyNet.arch: 'MyNet' is neither"),
        ({"names": ["MyNet"], "overrides": {"MyNet": {"trained_weights": "nope.pt",
                                                      "arch": "WeiNet"}}},
         "MyNet.trained_weights: 'nope.pt' does not exist"),
        ({"names": ["resnet18"], "defaults": {"trained_weights": "x.pt"}}, "per network only"),
        ({"names": ["WeiNet"], "overrides": {"vgg17": {"epochs": 1}}}, "overrides.vgg17"),
        ({"names": ["a/b"]}, "a/b"),
    ],
)
def test_network_names_errors_name_the_key_and_the_fix(networks, match):
    with pytest.raises(ConfigError, match=match):
        validate_config({"networks": networks})


def test_class_order_must_name_the_six_expressions_once(tmp_path):
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"")
    bad = {"trained_weights": str(weights), "arch": "WeiNet",
           "class_order": ["angry", "angry", "fear", "happy", "sad", "surprise"]}
    with pytest.raises(ConfigError, match="MyNet.class_order.*names Anger 2 times"):
        validate_config({"networks": {"names": ["MyNet"], "overrides": {"MyNet": bad}}})


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
    from ferxai.core.config import schema_markdown

    assert schema_markdown() in (REPO / "config" / "README.md").read_text(), (
        "config/README.md is stale: regenerate its key table with ferxai.core.config.schema_markdown()"
    )


def test_sanity_methods_must_be_run():
    with pytest.raises(ConfigError, match="sanity.methods names \\['occlusion'\\]"):
        validate_config({"attribution": {"methods": ["lime"]}, "sanity": {"methods": ["occlusion"]}})
    assert validate_config({})["sanity"]["methods"] is None
