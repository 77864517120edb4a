"""The registry of networks: what the paper says about each of its twelve, and their input sizes.

Any other timm architecture (``resnet18``, or with a weight tag ``resnet18.a1_in1k``) is answered
from timm's pretrained config: its input size, minimum size and whether timm has weights for it.

Imported by the factory (:mod:`ferxai.networks`) and by the builders; it imports neither, so the
package's imports run one way (factory → builders → registry). Importing it does not import torch;
asking about a timm name imports timm.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache

from ferxai.core.constants import EXPRESSIONS, LABEL_ALIASES, NETWORKS
from ferxai.core.errors import ConfigError

log = logging.getLogger(__name__)


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
    # timm architectures whose patch grid is built for the native size only (ViTs)
    fixed_input_size: bool = False


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


# Every timm model name is lower case, optionally with a weight tag: checked without importing timm.
_TIMM_NAME = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)?")
# What a timm architecture outside the twelve is trained with when the settings do not say.
TIMM_OPTIMIZER, TIMM_LR, TIMM_EPOCHS, TIMM_MIN_INPUT_SIZE = "adam", 1e-4, 2, 32


def list_models() -> list[str]:
    """The twelve network names in the paper's order (four scratch nets first)."""
    return list(_REGISTRY)


def is_known(name: str) -> bool:
    """True for the paper's twelve and for any architecture timm can build (with a valid tag)."""
    try:
        model_info(name)
    except ConfigError:
        return False
    return True


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name``: one of the twelve, or a timm architecture (``arch[.tag]``)
    described from timm's pretrained config. Anything else raises :class:`ConfigError`."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if _TIMM_NAME.fullmatch(name):
        info = _timm_info(name)
        if info is not None:
            return info
    lowered = {k.lower(): k for k in _REGISTRY}
    hint = f" Did you mean {lowered[name.lower()]!r}?" if name.lower() in lowered else ""
    raise ConfigError(
        f"model: unknown network {name!r}.{hint} Known networks: {', '.join(_REGISTRY)}, or any "
        "timm architecture (timm.list_models(), lower case, e.g. 'resnet18' or with a weight tag "
        "'resnet18.a1_in1k')."
    ) from None


@cache
def _timm_info(name: str) -> ModelInfo | None:
    """A :class:`ModelInfo` from timm's pretrained config, or None if timm has no such model."""
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(name):
        return None
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # a tag timm does not know
        return None
    if cfg is None:  # an architecture without any pretrained config
        native, minimum, has_weights, fixed = 224, TIMM_MIN_INPUT_SIZE, False, False
    else:
        native = int(cfg.input_size[-1])
        has_weights = bool(cfg.hf_hub_id or cfg.url or cfg.file)
        fixed = bool(cfg.fixed_input_size)  # e.g. ViTs: the patch grid fits the native size
        minimum = int(cfg.min_input_size[-1]) if cfg.min_input_size else TIMM_MIN_INPUT_SIZE
        minimum = native if fixed else min(minimum, native)
    return ModelInfo(
        name, native, has_weights, name, TIMM_OPTIMIZER, TIMM_LR, TIMM_EPOCHS, None, minimum, fixed
    )


def weights_file_name(name: str) -> str:
    """File name of the network's ImageNet weights in the weight cache: ``<timm name>.safetensors``."""
    info = model_info(name)
    if info.timm_name is None:
        raise ConfigError(f"{name} is trained from scratch; it has no pre-trained weights.")
    return f"{info.timm_name}.safetensors"


def min_input_size(name: str) -> int:
    """Smallest square input (pixels) the network accepts."""
    return model_info(name).min_input_size


def resolve_input_size(name: str, input_size: int | None) -> int:
    """``input_size`` or the native size when None; too small a size raises :class:`ConfigError`."""
    info = model_info(name)
    size = info.native_input_size if input_size is None else int(input_size)
    if size != info.native_input_size and info.fixed_input_size:
        raise ConfigError(
            f"input_size: {name} runs only at its native {info.native_input_size} px (timm builds "
            f"its patch grid for that size), not {size}. Set input_size: null for it."
        )
    if size < info.min_input_size:
        raise ConfigError(
            f"input_size: {size} px is too small for {name} (needs >= {info.min_input_size} px; "
            f"native {info.native_input_size}). Raise input_size or leave it null for native."
        )
    return size


def class_rows(class_order, source: str = "class_order") -> tuple[list[int], int]:
    """For each of the six expressions, its output's index in ``class_order``; also the number of
    outputs. Labels are spelled as ferxai's or as a built-in alias (angry, happy, ...); other
    labels are classes the six-expression study drops."""
    labels = list(class_order)
    canonical = [LABEL_ALIASES.get(str(label).strip().lower(), str(label)) for label in labels]
    rows = []
    for expression in EXPRESSIONS:
        found = [i for i, label in enumerate(canonical) if label == expression]
        if len(found) != 1:
            raise ConfigError(
                f"{source}: {labels} names {expression} {len(found)} times; list every output "
                f"of the head once, in its order, with each of {', '.join(EXPRESSIONS)} exactly "
                "once (other classes, e.g. Neutral, are dropped)."
            )
        rows.append(found[0])
    dropped = [labels[i] for i in range(len(labels)) if i not in rows]
    if dropped:
        log.info("%s: the logits of %s are dropped (not one of the six expressions)",
                 source, ", ".join(map(str, dropped)))
    return rows, len(labels)
