"""Attribution methods, their settings and defaults; validated without importing torch."""

from __future__ import annotations

from typing import Any

from ferxai.core.errors import ConfigError

KEEP_CHOICES = ("positive", "negative", "absolute")
PRECISIONS = ("auto", "fp32", "bf16")
CPU_FORWARDS = ("auto", "eager", "channels_last", "compile", "onnxruntime")  # ferxai.networks.forward

# Paper settings for LIME (Gaya-Morey et al. 2024, via lime 0.2.0.1); batch_size None = automatic.
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
        "cpu_forward": "channels_last",
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
    "integrated_gradients": {
        "n_steps": 50,
        "baseline": 0.0,
        "batch_size": None,
        "keep": "positive",
    },
    "gradcam": {"layer": None},
}
METHODS: tuple[str, ...] = tuple(DEFAULT_SETTINGS)
DEFAULT_METHOD = "lime"

_POSITIVE_INTS = ("num_samples", "n_segments", "window", "stride", "n_steps")
_NUMBERS = ("compactness", "hide_color", "kernel_width", "baseline")


def check_method(method: str) -> str:
    if method not in DEFAULT_SETTINGS:
        raise ConfigError(
            f"attribution method {method!r} is unknown; valid methods: {', '.join(METHODS)}."
        )
    return method


def job_settings(method: str, settings: dict[str, Any], precision: str,
                 cpu_forward: str = "channels_last") -> dict[str, Any]:
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
        raise ConfigError(f"{where}: give a module name (e.g. 'layer4') or null (last conv layer).")
    if method == "lime" and key == "num_samples" and value < 2:
        raise ConfigError(
            f"{where}: LIME needs at least 2 samples (the first is the image itself)."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
