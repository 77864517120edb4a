"""Attribution engine: ``create_explainer(method, model, **settings).attribute(images, target)``.

``images`` is a float tensor (N, 3, H, W) in [0, 1], ``target`` a LongTensor (N,); the result is a
float32 tensor (N, H, W) on the CPU. Methods (:data:`METHODS`): ``lime`` (default, the paper's,
ferxai's own), captum's gradient methods (:mod:`ferxai.attribution.captum_gradient`) and
perturbation methods (:mod:`ferxai.attribution.captum_perturbation`), pytorch-grad-cam's CAMs
(:mod:`ferxai.attribution.cam_methods`) and RISE (:mod:`ferxai.attribution.rise`). Every method
explains a batch of images per call. Importing this package does not import torch; the
explainers are imported on first use.
"""

from __future__ import annotations

from typing import Any

from ferxai.attribution.settings import (
    CAM_METHODS,
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

_G, _P = "ferxai.attribution.captum_gradient", "ferxai.attribution.captum_perturbation"
_EXPLAINERS = {
    "lime": ("ferxai.attribution.lime", "LimeExplainer"),
    "saliency": (_G, "SaliencyExplainer"),
    "input_x_gradient": (_G, "InputXGradientExplainer"),
    "guided_backprop": (_G, "GuidedBackpropExplainer"),
    "deconvolution": (_G, "DeconvolutionExplainer"),
    "deeplift": (_G, "DeepLiftExplainer"),
    "deeplift_shap": (_G, "DeepLiftShapExplainer"),
    "gradient_shap": (_G, "GradientShapExplainer"),
    "integrated_gradients": (_G, "IntegratedGradientsExplainer"),
    "guided_gradcam": (_G, "GuidedGradCamExplainer"),
    "gradcam": (_G, "GradCamExplainer"),
    "feature_ablation": (_P, "FeatureAblationExplainer"),
    "shapley_value_sampling": (_P, "ShapleyValueSamplingExplainer"),
    "kernel_shap": (_P, "KernelShapExplainer"),
    "occlusion": (_P, "OcclusionExplainer"),
    "rise": ("ferxai.attribution.rise", "RiseExplainer"),
    **{name: ("ferxai.attribution.cam_methods", "CamExplainer") for name in CAM_METHODS},
}
assert set(_EXPLAINERS) == set(METHODS), "every method in the settings has an explainer"


def create_explainer(method: str = DEFAULT_METHOD, model: Any = None, **settings: Any):
    """An explainer of ``model`` (in eval mode, on its device) with ``settings`` over the defaults.

    Unknown methods or settings raise :class:`ferxai.core.errors.ConfigError` listing the valid ones.
    """
    import importlib

    module_name, class_name = _EXPLAINERS[check_method(method)]
    if model is None:
        raise TypeError("create_explainer needs the model to explain")
    explainer_class = getattr(importlib.import_module(module_name), class_name)
    if method in CAM_METHODS:
        return explainer_class(model, method, **settings)
    return explainer_class(model, **settings)
