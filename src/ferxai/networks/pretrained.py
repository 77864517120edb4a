"""The eight ImageNet-pre-trained networks (and any other timm architecture): a timm backbone,
global average pooling, a linear head.

Like the paper's Keras models (``include_top=False`` + GAP + Dense(6)), only the convolutional
trunk is kept: timm's extra head layers (VGG's fc6/fc7 as convolutions, MobileNetV3's 1280-wide
head conv) are removed. Inputs stay in [0, 1]; the ImageNet mean/std normalization the weights
expect is a fixed buffer inside the model, so explainers and trainers all feed the same range.

Weights never come from the network at run time: ``weights`` is a local file (``.safetensors`` or a
torch state dict) or ``"hf-cache"`` (a pre-filled Hugging Face cache read with HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from ferxai.core.errors import ConfigError

log = logging.getLogger(__name__)

# timm modules used only by forward_head: they are not part of the Keras trunk the paper used.
_HEAD_ONLY_MODULES: dict[str, tuple[str, ...]] = {
    "vgg16": ("pre_logits", "head"),
    "vgg19": ("pre_logits", "head"),
    "mobilenetv3_large_100": ("conv_head", "norm_head", "act2", "flatten", "classifier"),
}

HF_CACHE = "hf-cache"


class TimmClassifier(nn.Module):
    """``backbone.forward_features`` → global average pooling → ``classifier`` (linear).

    ``timm_head=True`` (timm architectures outside the paper's twelve) pools with timm's own head
    instead (``forward_head(pre_logits=True)``: a ViT's class token, a ConvNeXt's norm, ...), so any
    timm model keeps its architecture up to the last linear layer, which is ``classifier``.
    """

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, mean, std,
                 timm_head: bool = False):
        super().__init__()
        self.backbone = backbone
        self.timm_head = timm_head
        self.classifier = nn.Linear(num_features, num_classes)
        # Not persistent: the state dict holds only learnable weights, like the Keras models.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features((x - self.mean) / self.std)
        if self.timm_head:
            return self.classifier(self.backbone.forward_head(features, pre_logits=True))
        return self.classifier(features.mean(dim=(2, 3)))


def build_timm(info, num_classes: int = 6, pretrained: bool = False, weights=None) -> nn.Module:
    """Build ``info.timm_name`` with a GAP + linear head; load ImageNet weights if ``pretrained``."""

    if pretrained and weights is None:
        raise ConfigError(
            f"weights: {info.name} is set to pretrained: true but no weights file is given. "
            f"Put the ImageNet weights of timm model '{info.timm_name}' in a local file "
            f"(e.g. weights/{info.timm_name}.safetensors) and set weights: to its path, use "
            f"weights: {HF_CACHE} with a pre-filled Hugging Face cache, or set pretrained: false."
        )
    if weights is not None and not pretrained:
        log.warning("%s: weights %s ignored because pretrained is false.", info.name, weights)
    from_cache = pretrained and str(weights) == HF_CACHE
    backbone = _create_backbone(info, from_cache)
    for module_name in _HEAD_ONLY_MODULES.get(info.timm_name, ()):
        setattr(backbone, module_name, nn.Identity())
    cfg = backbone.pretrained_cfg
    from ferxai.networks.registry import list_models

    timm_head = info.name not in list_models()  # any timm architecture: its own pooling head
    width = (getattr(backbone, "head_hidden_size", None) if timm_head else None) or (
        backbone.num_features
    )
    model = TimmClassifier(backbone, width, num_classes, cfg["mean"], cfg["std"], timm_head)
    if pretrained and not from_cache:
        load_weights(model, weights, info.name)
    return model


def _create_backbone(info, from_cache: bool) -> nn.Module:
    import timm

    if not from_cache:
        return timm.create_model(info.timm_name, pretrained=False, num_classes=0)
    _force_hf_offline()
    try:
        return timm.create_model(info.timm_name, pretrained=True, num_classes=0)
    except Exception as exc:  # timm/huggingface_hub raise many types for a missing cache entry
        raise ConfigError(
            f"weights: {HF_CACHE} was given for {info.name} but timm model '{info.timm_name}' is "
            f"not in the Hugging Face cache ({_hub_cache_dir()}): {exc}. Fill the cache on a "
            "machine with network, or save a local file there with `python -m "
            f"ferxai.networks.pretrained --out-dir weights {info.name}` and set weights: to it."
        ) from exc


def _hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "huggingface_hub is not installed"
    return str(constants.HF_HUB_CACHE)


def _force_hf_offline() -> None:
    """Never reach the network from a compute node, even if huggingface_hub read its environment
    (HF_HUB_OFFLINE) at import time, before this job set it."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = True


def read_state_dict(path: str | os.PathLike, network: str) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file or a torch state dict (``weights_only=True``) as a flat dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"weights: {path} (weights of {network}) does not exist. Put the file there, fix the "
            "path in the config, or set pretrained: false to train from scratch."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"weights: {path} (weights of {network}) is not a readable safetensors file or torch "
            f"state dict ({exc}). Re-download or re-export it."
        ) from exc
    for key in ("state_dict", "model", "model_state_dict"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConfigError(f"weights: {path} holds no state dict of tensors for {network}.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(model: TimmClassifier, path: str | os.PathLike, network: str) -> None:
    """Load backbone weights from ``path``; heads that do not fit (ImageNet's 1000 classes) are
    skipped. A file written from a whole :class:`TimmClassifier` (``backbone.*`` keys) loads as is.
    """
    state = read_state_dict(path, network)
    target = model if any(k.startswith("backbone.") for k in state) else model.backbone
    own = target.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    missing = [k for k in own if k not in usable and not k.startswith("classifier.")]
    if missing:
        raise ConfigError(
            f"weights: {path} does not fit {network}: {len(missing)} of its tensors are missing or "
            f"have another shape (first: {missing[:3]}). Use the weights of timm model "
            f"'{getattr(model.backbone, 'pretrained_cfg', {}).get('architecture', '?')}'."
        )
    target.load_state_dict(usable, strict=False)
    log.info(
        "%s: loaded %d tensors from %s (skipped %d: %s)",
        network,
        len(usable),
        path,
        len(skipped),
        ", ".join(skipped[:4]),
    )


# ------------------------------------------------------------------ fetching (login node only)


def fetch_weights(network: str, out_dir: str | os.PathLike | None = None,
                  out: str | os.PathLike | None = None) -> Path:
    """Download the ImageNet weights of ``network`` (one of the twelve or a timm name) from timm's
    sources and save them as ``out`` or ``out_dir/<timm name>.safetensors`` (atomically). Needs
    network access: run it on a login node (the workflow's local rule ``fetch_weights``), never
    in a compute job."""
    import timm
    from safetensors.torch import save_file

    from ferxai.core.io import atomic_path
    from ferxai.networks.registry import model_info, weights_file_name

    info = model_info(network)
    target = Path(out) if out is not None else Path(out_dir or ".") / weights_file_name(network)
    try:
        model = timm.create_model(info.timm_name, pretrained=True)
    except Exception as exc:  # timm/huggingface_hub/urllib raise many types when offline
        raise ConfigError(
            f"fetch-weights: timm could not get the weights of '{info.timm_name}' ({network}): "
            f"{exc}. Run it where the network reaches huggingface.co (a login node), or put the "
            f"file at {target} yourself."
        ) from exc
    with atomic_path(target) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    log.info("%s: saved ImageNet weights of %s to %s", network, info.timm_name, target)
    return target


def cli_fetch_weights_args(parser) -> None:
    parser.add_argument("--model", required=True,
                        help="one of the twelve (e.g. ResNet50) or a timm name (resnet18.a1_in1k)")
    parser.add_argument("--out", required=True, help="the .safetensors file to write")
    parser.set_defaults(provenance_inputs=(), provenance_outputs=("out",))


def cli_fetch_weights(args) -> None:
    fetch_weights(args.model, out=args.out)


def main(argv: list[str] | None = None) -> int:
    """``python -m ferxai.networks.pretrained --out-dir weights [NETWORK ...]`` (all 8 by default)."""
    import argparse

    from ferxai.core.constants import PRETRAINED_NETWORKS

    parser = argparse.ArgumentParser(description=fetch_weights.__doc__.split("\n")[0])
    parser.add_argument("networks", nargs="*", default=list(PRETRAINED_NETWORKS))
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for network in args.networks:
        print(fetch_weights(network, args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
