"""The quality section of the configuration: defaults, and bad settings stopped before any job."""

from __future__ import annotations

import pytest

from ferxai.core.config import validate_config
from ferxai.core.errors import ConfigError


def test_quality_defaults_are_filled():
    quality = validate_config({})["quality"]
    assert quality["enabled"] is False and quality["methods"] == ["lime"]
    assert quality["steps"] == 16 and quality["top_k"] == 1000 and quality["order"] == "morf"
    assert quality["mprt"] == {"enabled": True, "layers": 3, "similarities": ["spearman", "ssim"]}


@pytest.mark.parametrize(
    "quality, match",
    [
        ({"top_k": 61601}, r"quality\.top_k = 61601 is larger than a map"),
        ({"steps": 1}, r"quality\.steps: 1 is less than the minimum of 2"),
        (
            {"mprt": {"similarities": ["cosine"]}},
            r"quality\.mprt\.similarities\.0: 'cosine' is not",
        ),
        ({"order": "random"}, r"quality\.order: 'random' is not one of morf, lerf"),
        ({"enabled": True, "methods": ["occlusion"]}, r"quality\.methods names \['occlusion'\]"),
        ({"enabled": True, "folds": [3]}, r"quality\.folds names fold\(s\) \[3\]"),
        ({"enabled": True, "patch_size": 50}, r"quality\.patch_size = 50 is larger than WeiNet"),
        ({"enabled": True, "baseline": "grey"}, r"quality\.baseline = 'grey'"),
        ({"regions": 0}, r"quality\.regions"),
        ({"enabled": True, "networks": ["VGG16"]}, r"quality\.networks names \['VGG16'\]"),
        ({"stepz": 3}, r"quality: .*stepz"),
    ],
)
def test_bad_quality_settings_name_the_key(quality, match):
    config = {"networks": {"names": ["WeiNet"], "defaults": {"input_size": 40}}, "quality": quality}
    with pytest.raises(ConfigError, match=match):
        validate_config(config)


def test_a_numeric_baseline_is_accepted():
    config = validate_config({"quality": {"enabled": True, "baseline": 0.5}})
    assert config["quality"]["baseline"] == 0.5


def test_the_jobs_defaults_are_the_schemas():
    from ferxai.quality.job import DEFAULTS, quality_settings

    quality = validate_config({})["quality"]
    assert {key: quality[key] for key in DEFAULTS} == DEFAULTS
    assert quality_settings("{}") == DEFAULTS
