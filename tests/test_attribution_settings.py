"""Settings of every method: refused before any job with the valid choices, filled as documented."""

from __future__ import annotations

import pytest

from ferxai.attribution.settings import METHODS, NOISE_TUNNEL_DEFAULTS, resolve_settings
from ferxai.core.config import validate_config
from ferxai.core.errors import ConfigError


@pytest.mark.parametrize(
    ("attribution", "message"),
    [
        ({"methods": ["smoothgrad"]}, "not one of lime, saliency"),
        (
            {"methods": ["saliency"], "saliency": {"noise_tunnel": {"type": "x"}}},
            "noise_tunnel.type",
        ),
        ({"methods": ["saliency"], "saliency": {"noise_tunel": None}}, "Allowed keys here"),
        ({"methods": ["rise"], "rise": {"p_keep": 1.5}}, "rise.p_keep"),
        ({"methods": ["scorecam"], "scorecam": {"layer": 3}}, "scorecam.layer"),
        ({"methods": ["fullgrad"], "fullgrad": {"layer": "x"}}, "fullgrad"),
        ({"methods": ["integrated_gradients"], "integrated_gradients": {"rule": "x"}}, "rule"),
    ],
)
def test_the_workflow_config_refuses_bad_methods_and_settings(attribution, message):
    with pytest.raises(ConfigError, match=message):
        validate_config({"attribution": attribution})


def test_every_method_validates_with_its_defaults_in_one_config():
    validate_config({"attribution": {"methods": list(METHODS)}})


def test_noise_tunnel_is_filled_with_captum_keys_and_checked():
    resolved = resolve_settings("saliency", {"noise_tunnel": {"type": "vargrad"}})
    assert resolved["noise_tunnel"] == {**NOISE_TUNNEL_DEFAULTS, "type": "vargrad"}
    for bad, key in [({"samples": 0}, "samples"), ({"stdev": -1}, "stdev"), ({"n": 3}, "n")]:
        with pytest.raises(ConfigError, match=key):
            resolve_settings("deeplift", {"noise_tunnel": bad})
    with pytest.raises(ConfigError, match="noise_tunnel"):  # not a gradient method
        resolve_settings("gradcam_plusplus", {"noise_tunnel": {}})


@pytest.mark.parametrize(
    ("method", "settings", "key"),
    [
        ("deeplift_shap", {"baselines": []}, "baselines"),
        ("gradient_shap", {"stdevs": -0.1}, "stdevs"),
        ("ablationcam", {"ratio_channels_to_ablate": 0}, "ratio_channels_to_ablate"),
        ("rise", {"cells": 0}, "cells"),
        ("eigencam", {"aug_smooth": "yes"}, "aug_smooth"),
        ("saliency", {"keep": "both"}, "keep"),
    ],
)
def test_bad_values_name_their_key(method, settings, key):
    with pytest.raises(ConfigError, match=key):
        resolve_settings(method, settings)
