"""Attribution methods, their settings and defaults; validated without importing torch."""

from __future__ import annotations

from typing import Any

from ferxai.core.errors import ConfigError

KEEP_CHOICES = ("positive", "negative", "absolute", "signed")
PRECISIONS = ("auto", "fp32", "bf16")
CPU_FORWARDS = ("auto", "eager", "channels_last", "compile", "onnxruntime")  # ferxai.networks.forward
NOISE_TUNNEL_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")  # captum's NoiseTunnel nt_type
IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
# captum's NoiseTunnel defaults are nt_samples=5, stdevs=1.0; 1.0 suits standardized inputs, on
# ferxai's [0, 1] images it is the whole range: 0.15 is SmoothGrad's 10-20 % of the range.
NOISE_TUNNEL_DEFAULTS = {"type": "smoothgrad", "samples": 5, "stdev": 0.15}

# Gradient methods explain the target's softmax probability (as LIME), summed over channels.
_GRADIENT = {"keep": "positive", "noise_tunnel": None, "batch_size": None, "seed": 0}
_SUPERPIXELS = {"n_segments": 30, "compactness": 20.0, "baseline": 0.0}
# pytorch-grad-cam's CAMs: the library's maps (ReLU, min-max scaled, upsampled to the input).
_CAM = {"layer": None, "aug_smooth": False, "eigen_smooth": False, "batch_size": None}

# Paper settings for LIME (Gaya-Morey et al. 2024, via lime 0.2.0.1); batch_size None = automatic.
# Every other method: the defining library's defaults (captum 0.9, pytorch-grad-cam 1.5), except
# where noted in the schema (workflow/schemas/config.schema.yaml, one line per key).
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "lime": {
        "num_samples": 1000,
        "n_segments": 30,
        "compactness": 20.0,
        "hide_color": 0.0,
        "kernel_width": 0.25,
        "keep": "positive",
        "batch_size": None,
        "precision": "auto",
        "cpu_forward": "auto",
        "seed": 0,
    },
    # --- captum, gradients
    "saliency": {"abs": True, **_GRADIENT},
    "input_x_gradient": dict(_GRADIENT),
    "guided_backprop": dict(_GRADIENT),
    "deconvolution": dict(_GRADIENT),
    "deeplift": {"baseline": 0.0, **_GRADIENT},
    "deeplift_shap": {"baselines": [0.0, 1.0], "keep": "positive", "batch_size": None},
    "gradient_shap": {
        "baselines": [0.0, 1.0],
        "n_samples": 5,
        "stdevs": 0.0,
        "keep": "positive",
        "batch_size": None,
        "seed": 0,
    },
    "integrated_gradients": {
        "n_steps": 50,
        "rule": "gausslegendre",
        "baseline": 0.0,
        **_GRADIENT,
    },
    "guided_gradcam": {
        "layer": None,
        "interpolate_mode": "nearest",
        "keep": "positive",
        "batch_size": None,
    },
    "gradcam": {"layer": None, "relu_attributions": True, "batch_size": None},
    # --- captum, perturbations
    "feature_ablation": {**_SUPERPIXELS, "keep": "positive", "batch_size": None},
    "shapley_value_sampling": {
        "n_samples": 25,
        **_SUPERPIXELS,
        "keep": "positive",
        "batch_size": None,
        "seed": 0,
    },
    "kernel_shap": {
        "num_samples": 1000,
        "n_segments": 30,
        "compactness": 20.0,
        "baseline": 0.0,
        "batch_size": None,
        "keep": "positive",
        "seed": 0,
    },
    "occlusion": {
        "window": 16,
        "stride": 8,
        "baseline": 0.0,
        "batch_size": None,
        "keep": "positive",
    },
    # --- pytorch-grad-cam
    "gradcam_plusplus": dict(_CAM),
    "xgradcam": dict(_CAM),
    "eigencam": dict(_CAM),
    "eigengradcam": dict(_CAM),
    "layercam": dict(_CAM),
    "scorecam": dict(_CAM),
    "ablationcam": {**_CAM, "ratio_channels_to_ablate": 1.0},
    "hirescam": dict(_CAM),
    "fullgrad": {"aug_smooth": False, "eigen_smooth": False, "batch_size": None},
    "gradcam_elementwise": dict(_CAM),
    # --- ferxai's own (Petsiuk et al. 2018)
    "rise": {"masks": 4000, "cells": 7, "p_keep": 0.5, "batch_size": None, "seed": 0},
}
METHODS: tuple[str, ...] = tuple(DEFAULT_SETTINGS)
DEFAULT_METHOD = "lime"
CAPTUM_GRADIENT_METHODS = (
    "saliency",
    "input_x_gradient",
    "guided_backprop",
    "deconvolution",
    "deeplift",
    "deeplift_shap",
    "gradient_shap",
    "integrated_gradients",
    "guided_gradcam",
    "gradcam",
)
CAPTUM_PERTURBATION_METHODS = (
    "feature_ablation",
    "shapley_value_sampling",
    "kernel_shap",
    "occlusion",
)
CAM_METHODS = tuple(m for m, s in DEFAULT_SETTINGS.items() if "eigen_smooth" in s)

_POSITIVE_INTS = ("num_samples", "n_segments", "window", "stride", "n_steps", "n_samples", "masks")
_NUMBERS = ("compactness", "hide_color", "kernel_width", "baseline")
_BOOLEANS = ("abs", "relu_attributions", "aug_smooth", "eigen_smooth")


def check_method(method: str) -> str:
    if method not in DEFAULT_SETTINGS:
        raise ConfigError(
            f"attribution method {method!r} is unknown; valid methods: {', '.join(METHODS)}."
        )
    return method


def job_settings(method: str, settings: dict[str, Any], precision: str,
                 cpu_forward: str = "auto") -> dict[str, Any]:
    """A job's settings: the config block of ``method`` plus the run's ``precision`` and
    ``cpu_forward`` for the methods that take them (LIME; captum's paths stay in fp32 eager and
    reject the keys)."""
    out = dict(settings)
    if "precision" in DEFAULT_SETTINGS[check_method(method)]:
        out["precision"] = precision
    if "cpu_forward" in DEFAULT_SETTINGS[method]:
        out["cpu_forward"] = cpu_forward
    return out


def resolve_settings(method: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults of ``method`` updated with ``settings``; unknown keys or bad values → ConfigError."""
    defaults = DEFAULT_SETTINGS[check_method(method)]
    given = dict(settings or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(
            f"{method} settings: unknown key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(defaults)}."
        )
    resolved = {**defaults, **given}
    if resolved.get("noise_tunnel") is not None:
        resolved["noise_tunnel"] = _noise_tunnel(method, resolved["noise_tunnel"])
    for key, value in resolved.items():
        _check_value(method, key, value)
    return resolved


def _check_value(method: str, key: str, value: Any) -> None:
    where = f"{method} setting {key}={value!r}"
    if key in _POSITIVE_INTS and (not _is_int(value) or value < 1):
        raise ConfigError(f"{where}: must be a positive integer.")
    if key in _NUMBERS and not isinstance(value, int | float):
        raise ConfigError(f"{where}: must be a number.")
    if key == "kernel_width" and value <= 0:
        raise ConfigError(f"{where}: must be > 0 (the paper uses 0.25).")
    if key == "batch_size" and value is not None and (not _is_int(value) or value < 1):
        raise ConfigError(f"{where}: must be a positive integer or null (automatic).")
    if key == "keep" and value not in KEEP_CHOICES:
        raise ConfigError(f"{where}: use one of {', '.join(KEEP_CHOICES)}.")
    if key == "precision" and value not in PRECISIONS:
        raise ConfigError(f"{where}: use one of {', '.join(PRECISIONS)}.")
    if key == "cpu_forward" and value not in CPU_FORWARDS:
        raise ConfigError(f"{where}: use one of {', '.join(CPU_FORWARDS)}.")
    if key == "seed" and not _is_int(value):
        raise ConfigError(f"{where}: must be an integer.")
    if key == "layer" and value is not None and not isinstance(value, str):
        raise ConfigError(
            f"{where}: give a module name (e.g. 'backbone.layer4') or null (the last "
            "convolutional stage, found per network)."
        )
    if key in _BOOLEANS and not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false.")
    if key == "baselines" and (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"{where}: give a non-empty list of pixel values, e.g. [0.0, 1.0].")
    if key == "stdevs" and (not isinstance(value, int | float) or value < 0):
        raise ConfigError(f"{where}: must be a number >= 0.")
    if key == "rule" and value not in IG_RULES:
        raise ConfigError(f"{where}: use one of {', '.join(IG_RULES)}.")
    if key == "interpolate_mode" and value not in INTERPOLATIONS:
        raise ConfigError(f"{where}: use one of {', '.join(INTERPOLATIONS)}.")
    if key == "ratio_channels_to_ablate" and (
        not isinstance(value, int | float) or not 0 < value <= 1
    ):
        raise ConfigError(f"{where}: must be in (0, 1] (1: ablate every channel).")
    if key == "cells" and (not _is_int(value) or value < 1):
        raise ConfigError(f"{where}: must be a positive integer (the paper uses 7).")
    if key == "p_keep" and (not isinstance(value, int | float) or not 0 < value < 1):
        raise ConfigError(f"{where}: must be in (0, 1) (the paper uses 0.5).")
    if method == "integrated_gradients" and key == "n_steps" and value < 2:
        raise ConfigError(f"{where}: needs at least 2 steps.")
    if method == "lime" and key == "num_samples" and value < 2:
        raise ConfigError(
            f"{where}: LIME needs at least 2 samples (the first is the image itself)."
        )


def _noise_tunnel(method: str, value: Any) -> dict[str, Any]:
    """``noise_tunnel`` with captum's NoiseTunnel keys filled in; anything else -> ConfigError."""
    where = f"{method} setting noise_tunnel={value!r}"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: give null or {{type, samples, stdev}}.")
    unknown = sorted(set(value) - set(NOISE_TUNNEL_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
            f"{', '.join(NOISE_TUNNEL_DEFAULTS)}."
        )
    tunnel = {**NOISE_TUNNEL_DEFAULTS, **value}
    if tunnel["type"] not in NOISE_TUNNEL_TYPES:
        raise ConfigError(f"{where}: type must be one of {', '.join(NOISE_TUNNEL_TYPES)}.")
    if not _is_int(tunnel["samples"]) or tunnel["samples"] < 1:
        raise ConfigError(f"{where}: samples must be a positive integer.")
    if not isinstance(tunnel["stdev"], int | float) or tunnel["stdev"] < 0:
        raise ConfigError(f"{where}: stdev must be a number >= 0.")
    return tunnel


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
