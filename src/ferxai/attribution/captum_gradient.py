"""captum's gradient methods by name, on a batch of images per call.

``saliency``, ``input_x_gradient``, ``guided_backprop``, ``deconvolution``, ``deeplift``,
``deeplift_shap``, ``gradient_shap``, ``integrated_gradients`` and ``guided_gradcam`` return
input attributions (N, 3, H, W); they are summed over the colour channels and ``keep`` chooses
the evidence painted (``signed``: the plain sum). They explain the softmax probability of the
target (through :class:`ProbabilityModel`), except DeepLIFT, DeepLIFT-SHAP and guided Grad-CAM:
the pre-softmax score, as their authors. Methods
with a ``noise_tunnel`` setting can be wrapped in captum's ``NoiseTunnel`` (SmoothGrad,
SmoothGrad², VarGrad). ``gradcam`` is captum's ``LayerGradCam`` on the network's last
convolutional stage (or ``layer``), ReLU'd and upsampled bilinearly to the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ferxai.attribution.captum_methods import CaptumExplainer, ProbabilityModel
from ferxai.attribution.common import keep_sign, softmax_forward
from ferxai.attribution.lime import Explanation
from ferxai.attribution.target_layers import resolve_layer


def constant_baselines(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """One constant image per value, shaped like one image of ``like``: (B, C, H, W)."""
    ones = torch.ones((1, *like.shape[1:]), device=like.device, dtype=like.dtype)
    return torch.cat([ones * float(v) for v in values])


class GradientExplainer(CaptumExplainer):
    """A captum input attribution, optionally under a noise tunnel, summed over channels."""

    gradients = True

    def _attribution(self, images: torch.Tensor):
        raise NotImplementedError

    def _arguments(self, images: torch.Tensor) -> dict:
        return {}

    def _explain_batch(self, images, target, seeds) -> Explanation:
        values = self.channel_attributions(images, target).sum(dim=1)
        return Explanation(maps=keep_sign(values, self.settings["keep"]).float().cpu())

    def channel_attributions(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """captum's (N, C, H, W) attributions, exactly as the library returns them."""
        from captum.attr import NoiseTunnel

        attribution = self._attribution(images)
        arguments = {"target": target, **self._arguments(images)}
        tunnel = self.settings.get("noise_tunnel")
        with torch.enable_grad():
            if tunnel:
                values = NoiseTunnel(attribution).attribute(
                    images,
                    nt_type=tunnel["type"],
                    nt_samples=tunnel["samples"],
                    stdevs=float(tunnel["stdev"]),
                    **arguments,
                )
            else:
                values = attribution.attribute(images, **arguments)
        return values.detach()

    def rows_per_image(self) -> int:
        tunnel = self.settings.get("noise_tunnel")
        return (tunnel["samples"] if tunnel else 1) * self._rows_per_sample()

    def _rows_per_sample(self) -> int:
        return 1

    def passes_per_image(self, shape: torch.Size) -> int:
        return self.rows_per_image()


class SaliencyExplainer(GradientExplainer):
    """Simonyan et al. 2014: the gradient (absolute by default, captum's ``abs=True``)."""

    method = "saliency"

    def _attribution(self, images):
        from captum.attr import Saliency

        return Saliency(ProbabilityModel(self.model))

    def _arguments(self, images):
        return {"abs": self.settings["abs"]}


class InputXGradientExplainer(GradientExplainer):
    method = "input_x_gradient"

    def _attribution(self, images):
        from captum.attr import InputXGradient

        return InputXGradient(ProbabilityModel(self.model))


class GuidedBackpropExplainer(GradientExplainer):
    """Springenberg et al. 2015: ReLUs pass only positive gradients backwards."""

    method = "guided_backprop"

    def _attribution(self, images):
        from captum.attr import GuidedBackprop

        return GuidedBackprop(ProbabilityModel(self.model))


class DeconvolutionExplainer(GradientExplainer):
    """Zeiler & Fergus 2014: ReLUs applied to the gradient on the way back."""

    method = "deconvolution"

    def _attribution(self, images):
        from captum.attr import Deconvolution

        return Deconvolution(ProbabilityModel(self.model))


class DeepLiftExplainer(GradientExplainer):
    """Shrikumar et al. 2017 (rescale rule) against a constant ``baseline`` image, on the
    pre-softmax score (their section 3.6)."""

    method = "deeplift"

    def _attribution(self, images):
        from captum.attr import DeepLift

        return DeepLift(ProbabilityModel(self.model, softmax=False))

    def _arguments(self, images):
        return {"baselines": float(self.settings["baseline"])}

    def _rows_per_sample(self) -> int:
        return 2  # captum runs the images and their baselines in one batch


class DeepLiftShapExplainer(GradientExplainer):
    """DeepLIFT averaged over a distribution of constant ``baselines`` images."""

    method = "deeplift_shap"

    def _attribution(self, images):
        from captum.attr import DeepLiftShap

        return DeepLiftShap(ProbabilityModel(self.model, softmax=False))

    def _arguments(self, images):
        return {"baselines": constant_baselines(self.settings["baselines"], images)}

    def _rows_per_sample(self) -> int:
        return 2 * len(self.settings["baselines"])  # each image beside each baseline


class GradientShapExplainer(GradientExplainer):
    """Lundberg & Lee 2017's expected gradients: ``n_samples`` random points between the image
    (with Gaussian noise of ``stdevs``) and a baseline drawn from ``baselines``."""

    method = "gradient_shap"

    def _attribution(self, images):
        from captum.attr import GradientShap

        return GradientShap(softmax_forward(self.model))

    def _arguments(self, images):
        return {
            "baselines": constant_baselines(self.settings["baselines"], images),
            "n_samples": self.settings["n_samples"],
            "stdevs": float(self.settings["stdevs"]),
        }

    def _rows_per_sample(self) -> int:
        return self.settings["n_samples"]


class IntegratedGradientsExplainer(GradientExplainer):
    """Sundararajan et al. 2017 from a constant ``baseline``; ``n_steps`` points per image are
    evaluated ``forward_batch`` rows at a time (captum's ``internal_batch_size``)."""

    method = "integrated_gradients"

    def _attribution(self, images):
        from captum.attr import IntegratedGradients

        return IntegratedGradients(softmax_forward(self.model))

    def _arguments(self, images):
        return {
            "baselines": float(self.settings["baseline"]),
            "n_steps": self.settings["n_steps"],
            "method": self.settings["rule"],
            "internal_batch_size": self.forward_batch(images.shape[1:]),
        }

    def images_per_call(self, image_shape) -> int:
        tunnel = self.settings.get("noise_tunnel")
        return max(1, self.forward_batch(image_shape) // (tunnel["samples"] if tunnel else 1))

    def passes_per_image(self, shape: torch.Size) -> int:
        return self.rows_per_image() * self.settings["n_steps"]


class _LayerExplainer(GradientExplainer):
    """A method on one layer: the network's last convolutional stage unless ``layer`` names it."""

    def __init__(self, model, **settings) -> None:
        super().__init__(model, **settings)
        self.layer_name: str | None = self.settings["layer"]

    def layer(self, images: torch.Tensor):
        self.layer_name, module = resolve_layer(self.model, images, self.layer_name, self.method)
        return module


class GuidedGradCamExplainer(_LayerExplainer):
    """Selvaraju et al. 2017: guided backpropagation times the upsampled Grad-CAM."""

    method = "guided_gradcam"

    def _attribution(self, images):
        from captum.attr import GuidedGradCam

        return GuidedGradCam(self.model, self.layer(images))

    def _arguments(self, images):
        return {"interpolate_mode": self.settings["interpolate_mode"]}


class GradCamExplainer(_LayerExplainer):
    """Grad-CAM (captum ``LayerGradCam``): one map per image, ReLU'd, upsampled bilinearly."""

    method = "gradcam"

    def _explain_batch(self, images, target, seeds) -> Explanation:
        return Explanation(maps=self.layer_maps(images, target)[:, 0].cpu())

    def layer_maps(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import LayerAttribution, LayerGradCam

        layer = self.layer(images)
        with torch.enable_grad():
            cam = LayerGradCam(self.model, layer).attribute(
                images, target=target, relu_attributions=self.settings["relu_attributions"]
            )
        return LayerAttribution.interpolate(cam.detach().float(), images.shape[-2:], "bilinear")
