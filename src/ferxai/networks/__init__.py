"""Networks stage (``workflow/rules/networks.smk``): the registry of the paper's twelve FER networks
(timm-style ``create_model`` / ``list_models``), training, evaluation, models trained elsewhere.

Every network takes RGB input scaled to [0, 1] of shape (B, 3, S, S) and returns (B, num_classes)
logits. The four scratch networks are re-implemented in :mod:`ferxai.networks.scratch`; the eight
pre-trained ones are timm backbones with a global-average-pooling + linear head
(:mod:`ferxai.networks.pretrained`), as is any other timm architecture named by its timm name; what is
known about each lives in :mod:`ferxai.networks.registry`. :func:`load_trained` loads weights
trained elsewhere (:mod:`ferxai.networks.trained`). Importing this module does not import torch.
"""

from __future__ import annotations

from ferxai.core.errors import ConfigError
from ferxai.networks.registry import (
    ModelInfo,
    is_known,
    list_models,
    min_input_size,
    model_info,
    resolve_input_size,
)

__all__ = [
    "ModelInfo",
    "create_model",
    "is_known",
    "list_models",
    "load_trained",
    "min_input_size",
    "model_info",
    "resolve_input_size",
]


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
        from ferxai.networks.scratch import build_scratch

        return build_scratch(name, size, num_classes, init=scratch_init)
    from ferxai.networks.pretrained import build_timm

    return build_timm(info, num_classes, pretrained=pretrained, weights=weights)


def load_trained(
    name: str,
    weights: str,
    input_size: int | None = None,
    class_order=None,
    network: str | None = None,
    **card,
):
    """Network ``name`` (one of the twelve or a timm architecture) with the weights of the file
    ``weights``, trained by ferxai or elsewhere, in eval mode, returning the six expressions'
    logits in ferxai's order. ``class_order``: the head's classes in its order (default ferxai's
    six); classes other than the six are dropped. ``network`` names it in messages.

    A whole model (TorchScript, torch.export, ONNX, Keras: ``name`` only names it) is read by
    :func:`ferxai.networks.loaders.load_trained` with its ``card`` (channels, layout, scale, mean,
    std, output; and runtime, randomize_seed, device); a state dict takes no card."""
    from ferxai.networks.model_card import CARD_KEYS, is_whole_model

    network = network or name
    if is_whole_model(weights):
        from ferxai.networks.loaders import load_trained as load_whole_model

        return load_whole_model(weights, network=network, input_size=input_size,
                                class_order=class_order, **card)
    if card:
        raise ConfigError(
            f"networks.overrides.{network}.{sorted(card)[0]}: {weights} is a state dict, loaded "
            f"into the ferxai architecture {name}, which takes ferxai's inputs (RGB in [0, 1]) and "
            f"returns logits; {', '.join(CARD_KEYS)} describe whole models. Remove it, or export "
            "the whole model (TorchScript, torch.export, ONNX) with its own input conventions "
            "(docs/models.md)."
        )
    from ferxai.networks.trained import adapt_state_dict

    model = create_model(name, input_size=input_size)
    state = adapt_state_dict(model, weights, network, class_order)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            f"trained_weights: {weights} does not fit {network} (architecture {name}, input "
            f"{resolve_input_size(name, input_size)} px): {str(exc)[:600]}. Check arch: and "
            "input_size:, and save the state dict of the ferxai model or of "
            "timm.create_model(arch, num_classes=N)."
        ) from exc
    return model.eval()


def load_model_file(path, arch: str | None = None, network: str | None = None, **card):
    """A model trained elsewhere, any format (state dict, TorchScript, torch.export, ONNX, Keras),
    behind ferxai's interface: (N, 3, H, W) RGB in [0, 1] → the six expressions' logits (the
    Python API's ``ferxai.load_trained(path, **card)``). ``arch``: a state dict's architecture
    (default ``network``, default the file's name); ``card``: input_size, class_order and, for
    whole models, channels, layout, scale, mean, std, output, runtime
    (:func:`ferxai.networks.loaders.load_trained`)."""
    from pathlib import Path

    from ferxai.networks.model_card import is_whole_model

    network = network or Path(path).stem
    if is_whole_model(path):
        if arch is not None:
            card["arch"] = arch  # refused there, with the reason
        return load_trained(network, str(path), network=network, **card)
    size, order = card.pop("input_size", None), card.pop("class_order", None)
    return load_trained(arch or network, str(path), size, order, network, **card)
