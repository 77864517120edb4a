"""captum's perturbation methods: feature ablation, Shapley value sampling, KernelSHAP, occlusion.

All explain the target's softmax probability. The first three take LIME's SLIC superpixels as
features (a hidden superpixel takes the ``baseline`` value in every channel) and paint each
superpixel with its value (the stack keeps the segments and their signed values, as LIME's);
occlusion slides a ``window``² patch over all channels and sums its attributions over them.
Feature ablation, Shapley sampling and occlusion explain a batch per call, each image with its own
superpixels (captum takes one mask per image); captum's KernelSHAP fits one surrogate per call, so
it takes one image per call and batches that image's coalitions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ferxai.attribution.captum_methods import CaptumExplainer, seeded
from ferxai.attribution.common import keep_sign, slic_segments, softmax_forward, to_hwc_numpy
from ferxai.attribution.lime import Explanation


def superpixel_masks(images: torch.Tensor, n_segments: int, compactness: float) -> torch.Tensor:
    """SLIC labels of every image (as LIME's), (N, 1, H, W) int64 on the images' device."""
    masks = [slic_segments(to_hwc_numpy(image), n_segments, compactness) for image in images]
    return torch.from_numpy(np.stack(masks))[:, None].to(images.device)


def painted_explanation(values: torch.Tensor, masks: torch.Tensor, keep: str) -> Explanation:
    """Maps from per-pixel values constant over each superpixel and channel, plus the weights."""
    painted = values[:, 0].double().cpu()
    segments = masks[:, 0].cpu()
    weights = []
    for value, segment in zip(painted, segments, strict=True):
        n_features = int(segment.max()) + 1
        weights.append(
            torch.zeros(n_features, dtype=torch.float64)
            .scatter_(0, segment.flatten(), value.flatten())
            .numpy()
        )
    return Explanation(
        maps=keep_sign(painted, keep).float(), segments=segments, segment_weights=weights
    )


class _PerturbationExplainer(CaptumExplainer):
    def images_per_call(self, image_shape) -> int:
        return self.forward_batch(image_shape)

    def perturbations_per_eval(self, images: torch.Tensor) -> int:
        """Perturbations of every image of a call evaluated together: a full forward batch."""
        return max(1, self.forward_batch(images.shape[1:]) // images.shape[0])


class FeatureAblationExplainer(_PerturbationExplainer):
    """Drop in the target probability when one superpixel is set to ``baseline``."""

    method = "feature_ablation"

    def _explain_batch(self, images, target, seeds) -> Explanation:
        from captum.attr import FeatureAblation

        masks = superpixel_masks(images, self.settings["n_segments"], self.settings["compactness"])
        with torch.inference_mode():
            values = FeatureAblation(softmax_forward(self.model)).attribute(
                images,
                baselines=float(self.settings["baseline"]),
                target=target,
                feature_mask=masks,
                perturbations_per_eval=self.perturbations_per_eval(images),
            )
        return painted_explanation(values, masks, self.settings["keep"])

    def passes_per_image(self, shape) -> int:
        return self.settings["n_segments"] + 1


class ShapleyValueSamplingExplainer(_PerturbationExplainer):
    """Shapley values of the superpixels from ``n_samples`` random orderings (Castro et al.)."""

    method = "shapley_value_sampling"

    def _explain_batch(self, images, target, seeds) -> Explanation:
        from captum.attr import ShapleyValueSampling

        masks = superpixel_masks(images, self.settings["n_segments"], self.settings["compactness"])
        with torch.inference_mode():
            values = ShapleyValueSampling(softmax_forward(self.model)).attribute(
                images,
                baselines=float(self.settings["baseline"]),
                target=target,
                feature_mask=masks,
                n_samples=self.settings["n_samples"],
                perturbations_per_eval=self.perturbations_per_eval(images),
            )
        return painted_explanation(values, masks, self.settings["keep"])

    def passes_per_image(self, shape) -> int:
        return self.settings["n_samples"] * (self.settings["n_segments"] + 1)


class KernelShapExplainer(_PerturbationExplainer):
    """KernelSHAP over LIME's SLIC superpixels; hidden superpixels take the ``baseline`` value.

    captum's KernelShap regresses one surrogate over the whole input, so each image is its own
    call, seeded with its own seed; its ``num_samples`` coalitions share forward batches.
    """

    method = "kernel_shap"

    def images_per_call(self, image_shape) -> int:
        return 1

    def _explain_batch(self, images, target, seeds: Sequence[int]) -> Explanation:
        from captum.attr import KernelShap

        masks = superpixel_masks(images, self.settings["n_segments"], self.settings["compactness"])
        forward, baseline = softmax_forward(self.model), float(self.settings["baseline"])
        values = []
        for i, seed in enumerate(seeds):
            image, mask = images[i : i + 1], masks[i : i + 1]
            with seeded(seed, self.device), torch.inference_mode():
                if mask.max() == 0:
                    # One superpixel: its Shapley value is f(image) - f(baseline) (efficiency);
                    # captum's coalition sampler is undefined for a single feature.
                    pair = torch.cat([image, torch.full_like(image, baseline)])
                    probs = forward(pair)[:, int(target[i])]
                    values.append((probs[0] - probs[1]).expand_as(image))
                    continue
                values.append(
                    KernelShap(forward).attribute(
                        image,
                        baselines=baseline,
                        target=target[i : i + 1],
                        feature_mask=mask.expand_as(image),
                        n_samples=self.settings["num_samples"],
                        perturbations_per_eval=self.forward_batch(images.shape[1:]),
                    )
                )
        return painted_explanation(torch.cat(values), masks, self.settings["keep"])

    def passes_per_image(self, shape) -> int:
        return self.settings["num_samples"]


class OcclusionExplainer(_PerturbationExplainer):
    """Drop in the target probability when a ``window``² patch (all channels) is set to baseline."""

    method = "occlusion"

    def _explain_batch(self, images, target, seeds) -> Explanation:
        from captum.attr import Occlusion

        window, stride = self.settings["window"], self.settings["stride"]
        with torch.inference_mode():
            values = Occlusion(softmax_forward(self.model)).attribute(
                images,
                sliding_window_shapes=(images.shape[1], window, window),
                strides=(images.shape[1], stride, stride),
                baselines=float(self.settings["baseline"]),
                target=target,
                perturbations_per_eval=self.perturbations_per_eval(images),
            )
        return Explanation(maps=keep_sign(values.sum(dim=1), self.settings["keep"]).float().cpu())

    def passes_per_image(self, shape) -> int:
        window, stride = self.settings["window"], self.settings["stride"]
        return int(np.prod([(s - window) // stride + 2 for s in shape[-2:]]))
