"""Other attribution methods through captum: KernelSHAP, occlusion, integrated gradients, Grad-CAM.

Every explainer answers ``attribute(images, target, seeds=None) -> Tensor[N, H, W]`` like LIME's.
KernelSHAP, occlusion and integrated gradients explain the softmax probability (as the paper's
LIME does) and keep the evidence chosen by ``keep`` (positive by default); Grad-CAM follows
Selvaraju et al.: gradients of the pre-softmax score, ReLU, upsampled bilinearly to the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ferxai.attribution.common import (
    ProgressLog,
    auto_batch_size,
    keep_sign,
    log,
    model_device,
    slic_segments,
    softmax_forward,
    to_hwc_numpy,
)
from ferxai.attribution.lime import Explanation, _default_seeds
from ferxai.attribution.settings import resolve_settings
from ferxai.core.errors import ConfigError

# Backpropagation keeps activations: a gradient batch holds about this many times the memory.
GRADIENT_MEMORY_FACTOR = 4


class _CaptumExplainer:
    method = ""

    def __init__(self, model: nn.Module, **settings) -> None:
        self.settings = resolve_settings(self.method, settings)
        self.model = model.eval()
        self.device = model_device(model)
        self.precision = "fp32"  # captum's perturbation and gradient paths stay in fp32

    def attribute(
        self, images: torch.Tensor, target: torch.Tensor, seeds: Sequence[int] | None = None
    ) -> torch.Tensor:
        return self.explain(images, target, seeds).maps

    def explain(
        self, images: torch.Tensor, target: torch.Tensor, seeds: Sequence[int] | None = None
    ) -> Explanation:
        n_images = images.shape[0]
        seeds = _default_seeds(self.settings.get("seed", 0), n_images, seeds)
        target = torch.as_tensor(target, dtype=torch.long).reshape(n_images)
        images = images.to(self.device, torch.float32)
        progress = ProgressLog(self.method, n_images)
        parts = []
        for i in range(n_images):
            parts.append(self._explain_one(images[i : i + 1], target[i : i + 1], seeds[i]))
            progress.update(1, self._evaluations_per_image(images.shape))
        log.info(progress.summary())
        if not parts:
            return Explanation(torch.zeros((0, *images.shape[-2:])))
        segments = [p.segments for p in parts]
        return Explanation(
            maps=torch.cat([p.maps for p in parts]),
            segments=torch.cat(segments) if segments[0] is not None else None,
            segment_weights=[w for p in parts for w in (p.segment_weights or [])] or None,
        )

    def _explain_one(self, image: torch.Tensor, target: torch.Tensor, seed: int) -> Explanation:
        raise NotImplementedError

    def _evaluations_per_image(self, shape: torch.Size) -> int:
        return 1

    def _batch_size(self, image_shape: Sequence[int], gradients: bool = False) -> int:
        if self.settings.get("batch_size"):
            return int(self.settings["batch_size"])
        forward = softmax_forward(self.model)
        size = auto_batch_size(forward, tuple(image_shape), self.device, limit=4096)
        return max(1, size // GRADIENT_MEMORY_FACTOR) if gradients else size


class KernelShapExplainer(_CaptumExplainer):
    """KernelSHAP over LIME's SLIC superpixels; hidden superpixels take the ``baseline`` value."""

    method = "kernel_shap"

    def _explain_one(self, image: torch.Tensor, target: torch.Tensor, seed: int) -> Explanation:
        from captum.attr import KernelShap

        segments = slic_segments(
            to_hwc_numpy(image[0]), self.settings["n_segments"], self.settings["compactness"]
        )
        segment_map = torch.from_numpy(segments)
        mask = segment_map.to(self.device)[None, None].expand_as(image)
        forward, baseline = softmax_forward(self.model), float(self.settings["baseline"])
        torch.manual_seed(seed)  # captum draws the coalitions from torch's generator
        with torch.inference_mode():
            if segments.max() == 0:
                # One superpixel: its Shapley value is f(image) - f(baseline) (efficiency);
                # captum's coalition sampler is undefined for a single feature.
                pair = torch.cat([image, torch.full_like(image, baseline)])
                probs = forward(pair)[:, int(target[0])]
                values = (probs[0] - probs[1]).expand_as(image)
            else:
                values = KernelShap(forward).attribute(
                    image,
                    baselines=baseline,
                    target=target.to(self.device),
                    feature_mask=mask,
                    n_samples=self.settings["num_samples"],
                    perturbations_per_eval=self._batch_size(image.shape[1:]),
                )
        painted = values[0, 0].double().cpu()  # constant over a superpixel and over channels
        n_features = int(segments.max()) + 1
        weights = torch.zeros(n_features, dtype=torch.float64).scatter_(
            0, segment_map.flatten(), painted.flatten()
        )
        return Explanation(
            maps=keep_sign(painted, self.settings["keep"]).float()[None],
            segments=segment_map[None],
            segment_weights=[weights.numpy()],
        )

    def _evaluations_per_image(self, shape: torch.Size) -> int:
        return self.settings["num_samples"]


class OcclusionExplainer(_CaptumExplainer):
    """Drop in the target probability when a ``window``² patch (all channels) is set to baseline."""

    method = "occlusion"

    def _explain_one(self, image: torch.Tensor, target: torch.Tensor, seed: int) -> Explanation:
        from captum.attr import Occlusion

        window, stride = self.settings["window"], self.settings["stride"]
        with torch.inference_mode():
            values = Occlusion(softmax_forward(self.model)).attribute(
                image,
                sliding_window_shapes=(image.shape[1], window, window),
                strides=(image.shape[1], stride, stride),
                baselines=float(self.settings["baseline"]),
                target=target.to(self.device),
                perturbations_per_eval=self._batch_size(image.shape[1:]),
            )
        return Explanation(maps=keep_sign(values.sum(dim=1), self.settings["keep"]).float().cpu())

    def _evaluations_per_image(self, shape: torch.Size) -> int:
        window, stride = self.settings["window"], self.settings["stride"]
        return int(np.prod([(s - window) // stride + 2 for s in shape[-2:]]))


class IntegratedGradientsExplainer(_CaptumExplainer):
    """Integrated gradients from a constant ``baseline`` image, summed over colour channels."""

    method = "integrated_gradients"

    def _explain_one(self, image: torch.Tensor, target: torch.Tensor, seed: int) -> Explanation:
        from captum.attr import IntegratedGradients

        with torch.enable_grad():
            values = IntegratedGradients(softmax_forward(self.model)).attribute(
                image,
                baselines=float(self.settings["baseline"]),
                target=target.to(self.device),
                n_steps=self.settings["n_steps"],
                internal_batch_size=self._batch_size(image.shape[1:], gradients=True),
            )
        values = values.detach().sum(dim=1)
        return Explanation(maps=keep_sign(values, self.settings["keep"]).float().cpu())

    def _evaluations_per_image(self, shape: torch.Size) -> int:
        return self.settings["n_steps"]


class GradCamExplainer(_CaptumExplainer):
    """Grad-CAM on ``layer`` (default: the last convolution the forward pass runs)."""

    method = "gradcam"

    def __init__(self, model: nn.Module, **settings) -> None:
        super().__init__(model, **settings)
        self.layer_name: str | None = self.settings["layer"]

    def _explain_one(self, image: torch.Tensor, target: torch.Tensor, seed: int) -> Explanation:
        from captum.attr import LayerAttribution, LayerGradCam

        if self.layer_name is None:
            self.layer_name = last_conv_layer(self.model, image)
        layer = named_layer(self.model, self.layer_name)
        with torch.enable_grad():
            cam = LayerGradCam(self.model, layer).attribute(
                image, target=target.to(self.device), relu_attributions=True
            )
        cam = LayerAttribution.interpolate(cam.detach().float(), image.shape[-2:], "bilinear")
        return Explanation(maps=cam[:, 0].cpu())


def named_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if _is_conv(m)]
        raise ConfigError(
            f"gradcam setting layer={name!r}: no such module in {type(model).__name__}; "
            f"convolutions include {', '.join(convs[-5:])} (or use null for the last one)."
        )
    return modules[name]


def _is_conv(module: nn.Module) -> bool:
    """A 2-D convolution, or a module standing for one (``ferxai_conv``: the channels-first tap
    after a Keras model's convolution, ferxai.networks.loaders.LayerTap)."""
    return isinstance(module, nn.Conv2d) or getattr(module, "ferxai_conv", False)


def last_conv_layer(model: nn.Module, image: torch.Tensor) -> str:
    """Name of the last ``Conv2d`` executed by a forward pass on ``image`` (hooks removed after)."""
    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []
    handles = [
        module.register_forward_hook(lambda mod, _inp, _out: order.append(names[mod]))
        for module in names
        if _is_conv(module)
    ]
    try:
        with torch.inference_mode():
            model(image[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not order:
        raise ConfigError(
            f"gradcam: {type(model).__name__} has no Conv2d layer; set the 'layer' setting "
            "to the name of a module with a spatial output."
        )
    return order[-1]
