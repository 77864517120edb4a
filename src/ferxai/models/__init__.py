"""Registry of the paper's twelve FER networks (timm-style ``create_model`` / ``list_models``).

Every network takes RGB input scaled to [0, 1] of shape (B, 3, S, S) and returns (B, num_classes)
logits. The four scratch networks are re-implemented in :mod:`ferxai.models.scratch`; the eight
pre-trained ones are timm backbones with a global-average-pooling + linear head
(:mod:`ferxai.models.pretrained`). Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferxai.constants import NETWORKS
from ferxai.errors import ConfigError

__all__ = ["ModelInfo", "create_model", "list_models", "min_input_size", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What the paper says about one network, plus what ferxai needs to build it."""

    name: str
    native_input_size: int
    pretrained_default: bool
    timm_name: str | None
    optimizer: str  # "rmsprop" | "adam", the paper's choice
    lr: float
    paper_epochs: int
    # parameter count the paper reports (scratch nets only, rounded as printed there)
    paper_params: int | None
    min_input_size: int


# Minimum sizes: scratch nets use 'same' padding everywhere so any size works, but below 16 px the
# maps carry no information; timm nets need enough pixels for their stride-32 stems (Keras limits,
# checked by tests/test_models.py: inception_v3 and legacy_xception fail below 75 and 71).
_REGISTRY: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("WeiNet", 64, False, None, "rmsprop", 1e-4, 10, 1_700_000, 16),
        ModelInfo("SongNet", 224, False, None, "rmsprop", 1e-4, 25, 172_700, 16),
        ModelInfo("SilNet", 150, False, None, "adam", 1e-4, 10, 184_900_000, 16),
        ModelInfo("AlexNet", 224, False, None, "rmsprop", 1e-4, 10, 88_700_000, 16),
        ModelInfo("VGG16", 224, True, "vgg16", "adam", 1e-4, 2, None, 32),
        ModelInfo("VGG19", 224, True, "vgg19", "adam", 1e-4, 2, None, 32),
        ModelInfo("ResNet50", 224, True, "resnet50", "adam", 1e-4, 2, None, 32),
        ModelInfo("ResNet101V2", 224, True, "resnetv2_101", "adam", 1e-4, 2, None, 32),
        ModelInfo("InceptionV3", 299, True, "inception_v3", "adam", 1e-4, 2, None, 75),
        ModelInfo("Xception", 299, True, "legacy_xception", "adam", 1e-4, 2, None, 71),
        ModelInfo(
            "MobileNetV3Large", 224, True, "mobilenetv3_large_100", "adam", 1e-6, 15, None, 32
        ),
        ModelInfo(
            "EfficientNetV2B0", 224, True, "tf_efficientnetv2_b0", "adam", 1e-6, 10, None, 32
        ),
    )
}
assert tuple(_REGISTRY) == NETWORKS, "registry must list the networks in the paper's order"


def list_models() -> list[str]:
    """The twelve network names in the paper's order (four scratch nets first)."""
    return list(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name``; an unknown name raises :class:`ConfigError` listing the known."""
    try:
        return _REGISTRY[name]
    except KeyError:
        lowered = {k.lower(): k for k in _REGISTRY}
        hint = f" Did you mean {lowered[name.lower()]!r}?" if name.lower() in lowered else ""
        raise ConfigError(
            f"model: unknown network {name!r}.{hint} Known networks: {', '.join(_REGISTRY)}."
        ) from None


def min_input_size(name: str) -> int:
    """Smallest square input (pixels) the network accepts."""
    return model_info(name).min_input_size


def resolve_input_size(name: str, input_size: int | None) -> int:
    """``input_size`` or the native size when None; too small a size raises :class:`ConfigError`."""
    info = model_info(name)
    size = info.native_input_size if input_size is None else int(input_size)
    if size < info.min_input_size:
        raise ConfigError(
            f"input_size: {size} px is too small for {name} (needs >= {info.min_input_size} px; "
            f"native {info.native_input_size}). Raise input_size or leave it null for native."
        )
    return size


def create_model(
    name: str,
    num_classes: int = 6,
    pretrained: bool = False,
    weights: str | None = None,
    input_size: int | None = None,
    scratch_init: str = "keras",
):
    """Build network ``name`` for ``input_size`` px (native when None) with ``num_classes`` outputs.

    ``pretrained=True`` loads ImageNet weights for the timm networks from ``weights``: a local
    ``.safetensors`` / torch state-dict file, or ``"hf-cache"`` for a pre-filled Hugging Face cache
    used offline. The network is never contacted. Scratch networks ignore ``pretrained`` only when
    it is False; asking for pre-trained scratch weights is a :class:`ConfigError`.
    ``scratch_init`` initialises the four from-scratch networks: ``"keras"`` (Glorot-uniform, as the
    paper's Keras models) or ``"he"`` (He-uniform); timm networks keep timm's initialisation.
    """
    info = model_info(name)
    size = resolve_input_size(name, input_size)
    if info.timm_name is None:
        if pretrained:
            raise ConfigError(
                f"pretrained: {name} is trained from scratch in the paper and has no pre-trained "
                "weights. Set pretrained: false for it."
            )
        from ferxai.models.scratch import build_scratch

        return build_scratch(name, size, num_classes, init=scratch_init)
    from ferxai.models.pretrained import build_timm

    return build_timm(info, num_classes, pretrained=pretrained, weights=weights)
