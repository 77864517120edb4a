"""Attribution engine: ``create_explainer(method, model, **settings).attribute(images, target)``.

``images`` is a float tensor (N, 3, H, W) in [0, 1], ``target`` a LongTensor (N,); the result is a
float32 tensor (N, H, W) on the CPU. Methods: ``lime`` (default, the paper's), ``kernel_shap``,
``occlusion``, ``integrated_gradients`` and ``gradcam``. Importing this package does not import
torch; the explainers are imported on first use.
"""

from __future__ import annotations

from typing import Any

from ferxai.attribution.settings import (
    DEFAULT_METHOD,
    DEFAULT_SETTINGS,
    METHODS,
    check_method,
    resolve_settings,
)

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_SETTINGS",
    "METHODS",
    "create_explainer",
    "resolve_settings",
]

_EXPLAINERS = {
    "lime": ("ferxai.attribution.lime", "LimeExplainer"),
    "kernel_shap": ("ferxai.attribution.captum_methods", "KernelShapExplainer"),
    "occlusion": ("ferxai.attribution.captum_methods", "OcclusionExplainer"),
    "integrated_gradients": ("ferxai.attribution.captum_methods", "IntegratedGradientsExplainer"),
    "gradcam": ("ferxai.attribution.captum_methods", "GradCamExplainer"),
}


def create_explainer(method: str = DEFAULT_METHOD, model: Any = None, **settings: Any):
    """An explainer of ``model`` (in eval mode, on its device) with ``settings`` over the defaults.

    Unknown methods or settings raise :class:`ferxai.core.errors.ConfigError` listing the valid ones.
    """
    import importlib

    module_name, class_name = _EXPLAINERS[check_method(method)]
    if model is None:
        raise TypeError("create_explainer needs the model to explain")
    explainer_class = getattr(importlib.import_module(module_name), class_name)
    return explainer_class(model, **settings)
