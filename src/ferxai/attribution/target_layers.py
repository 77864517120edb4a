"""The layer a CAM explains: found per network, or named with the ``layer`` setting.

Grad-CAM and its family weight the feature maps of one layer. Their authors (and
pytorch-grad-cam's examples: ``model.layer4[-1]`` for a ResNet) take the output of the last
convolutional stage, after its activation, where the maps are still spatial. That is found here
for any network, ferxai's twelve, any timm model or a user's own, by one forward pass: the last
module holding a convolution to finish with a 4-D feature map wider than 1 × 1, or a module after
it (a norm or activation without a convolution) with an output of that same shape. Containers
finish after their children, so a ResNet answers ``layer4`` (its last stage), a ResNetV2 its final
``norm`` (BN + ReLU), a scratch network its ``features``; a 1 × 1 map after global pooling
(MobileNetV3's ``conv_head``) is not spatial and is passed over.
"""

from __future__ import annotations

import torch
from torch import nn

from ferxai.core.errors import ConfigError


def is_conv(module: nn.Module) -> bool:
    """A 2-D convolution, or a module standing for one (``ferxai_conv``: the channels-first tap
    after a Keras model's convolution, :class:`ferxai.networks.loaders.LayerTap`)."""
    return isinstance(module, nn.Conv2d) or getattr(module, "ferxai_conv", False)


def find_target_layer(model: nn.Module, image: torch.Tensor, method: str = "cam") -> str:
    """Name of the module whose output is the network's last spatial feature map.

    ``image`` is one input (1, C, H, W) or a batch (its first image is used); hooks are removed
    before returning.
    """
    names = {module: name for name, module in model.named_modules() if name}
    has_conv = {m for m in names if any(is_conv(c) for c in m.modules())}
    finished: list[tuple[str, bool, tuple[int, ...]]] = []

    def record(module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-2:].numel() > 1:
            finished.append((names[module], module in has_conv, tuple(output.shape)))

    handles = [module.register_forward_hook(record) for module in names]
    try:
        with torch.inference_mode():
            model(image[:1])
    finally:
        for handle in handles:
            handle.remove()
    conv_stages = [i for i, (_, conv, _) in enumerate(finished) if conv]
    if not conv_stages:
        raise ConfigError(
            f"{method}: {type(model).__name__} has no convolution with a spatial (N, C, H, W) "
            "output wider than 1 x 1 at this input size; set the 'layer' setting to the name of a module with a spatial "
            "output."
        )
    last = conv_stages[-1]
    chosen = last
    for i in range(last + 1, len(finished)):  # a norm / activation applied to that map
        if finished[i][2] == finished[last][2]:
            chosen = i
    return finished[chosen][0]


def named_layer(model: nn.Module, name: str, method: str = "cam") -> nn.Module:
    """The module called ``name`` in ``model`` (as ``model.named_modules()`` names it)."""
    modules = dict(model.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if is_conv(m)]
        raise ConfigError(
            f"{method} setting layer={name!r}: no such module in {type(model).__name__}; "
            f"convolutions include {', '.join(convs[-5:])} (or use null to find the last "
            "convolutional stage)."
        )
    return modules[name]


def resolve_layer(model: nn.Module, image: torch.Tensor, name: str | None, method: str):
    """``(name, module)`` of the layer to explain: ``name`` if given, else the one found."""
    if name is None:
        name = find_target_layer(model, image, method)
    return name, named_layer(model, name, method)
