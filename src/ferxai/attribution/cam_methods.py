"""The CAM family through pytorch-grad-cam (PyPI ``grad-cam``), on a batch of images per call.

``gradcam_plusplus``, ``xgradcam``, ``eigencam``, ``eigengradcam``, ``layercam``, ``scorecam``,
``ablationcam``, ``hirescam``, ``fullgrad`` and ``gradcam_elementwise`` are the library's own
classes called as its README does: ``Cam(model, target_layers=[layer])(input_tensor=images,
targets=[ClassifierOutputTarget(t) ...])``, which scores the pre-softmax output. The maps are the
library's: ReLU'd, min-max scaled to [0, 1] per image and resized to the input (OpenCV, bilinear).
The layer is the network's last convolutional stage (:mod:`ferxai.attribution.target_layers`)
unless ``layer`` names one; FullGrad takes every bias of the network, as its authors.
"""

from __future__ import annotations

import contextlib
import os

import torch

from ferxai.attribution.captum_methods import GRADIENT_MEMORY_FACTOR, CaptumExplainer
from ferxai.attribution.lime import Explanation
from ferxai.attribution.target_layers import resolve_layer
from ferxai.core.errors import ConfigError

# method -> pytorch_grad_cam class name
CAM_CLASSES = {
    "gradcam_plusplus": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "hirescam": "HiResCAM",
    "fullgrad": "FullGrad",
    "gradcam_elementwise": "GradCAMElementWise",
}


@contextlib.contextmanager
def frozen_parameters(model: torch.nn.Module):
    """Weights without gradients inside (restored after): the library calls ``backward()``,
    which would otherwise compute and keep a gradient for every weight. The input is made to
    require gradients instead, so the layer's activations still get theirs."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def create_cam(method: str, model: torch.nn.Module, layers: list, batch_size: int, settings):
    """The pytorch-grad-cam object of ``method`` on ``layers``, as the library documents it."""
    import pytorch_grad_cam

    cam_class = getattr(pytorch_grad_cam, CAM_CLASSES[method])
    if method == "ablationcam":  # a fresh AblationLayer: the library's default is shared
        return cam_class(
            model,
            target_layers=layers,
            ablation_layer=pytorch_grad_cam.AblationLayer(),
            batch_size=batch_size,
            ratio_channels_to_ablate=float(settings["ratio_channels_to_ablate"]),
        )
    cam = cam_class(model, target_layers=layers)
    if method == "scorecam":
        cam.batch_size = batch_size  # ScoreCAM reads it as an attribute (default 16)
    return cam


class CamExplainer(CaptumExplainer):
    """One pytorch-grad-cam method: ``create_explainer(name, model, **settings)``."""

    gradients = True

    def __init__(self, model: torch.nn.Module, method: str, **settings) -> None:
        self.method = method
        super().__init__(model, **settings)
        self.layer_name: str | None = self.settings.get("layer")

    def _explain_batch(self, images, target, seeds) -> Explanation:
        return Explanation(maps=torch.from_numpy(self.cam_maps(images, target)).float())

    def cam_maps(self, images: torch.Tensor, target: torch.Tensor):
        """The library's (N, H, W) float32 maps for ``images`` and classes ``target``."""
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        layers = []
        if self.method != "fullgrad":
            self.layer_name, layer = resolve_layer(self.model, images, self.layer_name,
                                                   self.method)
            layers = [layer]
        # ScoreCAM's and AblationCAM's own forward batches: no backward pass in them
        batch = self.settings["batch_size"] or (
            self.forward_batch(images.shape[1:]) * GRADIENT_MEMORY_FACTOR
        )
        targets = [ClassifierOutputTarget(int(t)) for t in target]
        inputs = images.detach().clone().requires_grad_(True)
        # ScoreCAM and AblationCAM draw a tqdm bar per image on stderr: no place for them in a log
        maps = None
        with frozen_parameters(self.model), torch.enable_grad(), _quiet():
            with create_cam(self.method, self.model, layers, batch, self.settings) as cam:
                try:
                    maps = cam(
                        input_tensor=inputs,
                        targets=targets,
                        aug_smooth=self.settings["aug_smooth"],
                        eigen_smooth=self.settings["eigen_smooth"],
                    )
                except ValueError as exc:
                    if self.method != "fullgrad":
                        raise
                    # FullGrad pairs the biases, in module order, with the bias gradients, in
                    # the order the backward pass reaches them: networks whose skip branches
                    # run out of module order (Xception) break that pairing.
                    raise ConfigError(
                        f"fullgrad: pytorch-grad-cam's FullGrad cannot explain "
                        f"{type(self.model).__name__} ({exc}); its bias layers do not run in "
                        "module order. Use another CAM (e.g. gradcam_plusplus, layercam)."
                    ) from exc
        if maps is None:  # the library's __exit__ swallows an IndexError and returns nothing
            raise RuntimeError(f"{self.method}: pytorch-grad-cam failed on {self.layer_name!r}")
        return maps

    def passes_per_image(self, shape) -> int:
        return 1


@contextlib.contextmanager
def _quiet():
    with open(os.devnull, "w") as sink:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
