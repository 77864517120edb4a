"""The four networks the paper trains from scratch, re-implemented from its descriptions.

The originals are Keras models, so convolutions *and* max-pools use TensorFlow's 'same' padding
(output = ceil(input / stride), the extra pixel padded at the bottom/right). With that padding the
parameter counts match the paper's at native size (WeiNet 1.73 M, SongNet 172.7 K, SilNet 184.9 M,
AlexNet 88.7 M), which is how the ambiguous descriptions were resolved. The dense layer after
``flatten`` is sized from ``input_size`` at construction, so every net also runs at reduced sizes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ferxai.core.errors import ConfigError


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'same' padding for any stride (PyTorch's 'same' needs stride 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return self._conv_forward(x, self.weight, self.bias)


class SamePadMaxPool2d(nn.Module):
    """MaxPool2d with TensorFlow 'same' padding: padded cells never win (padded with -inf)."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = _same_padding(x.shape[-1], self.kernel, self.stride)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=same"


# Layer specs: ("conv", out_channels, kernel, stride) | ("pool", kernel, stride) | ("drop", p).
_FEATURES: dict[str, list[tuple]] = {
    "WeiNet": [
        ("conv", 32, 7, 1), ("pool", 2, 1),
        ("conv", 32, 7, 1), ("pool", 2, 1),
        ("conv", 64, 7, 1), ("pool", 2, 1),
    ],
    "SongNet": [
        ("conv", 64, 5, 1), ("pool", 3, 2),
        ("conv", 64, 5, 1), ("pool", 3, 2),
        ("conv", 32, 3, 1), ("pool", 3, 2), ("drop", 0.5),
        ("conv", 32, 3, 1), ("pool", 3, 2), ("drop", 0.5),
    ],
    "SilNet": [
        ("conv", 32, 11, 1), ("pool", 2, 2),
        ("conv", 32, 7, 1), ("conv", 32, 7, 1), ("pool", 2, 1),
        ("conv", 64, 5, 1), ("conv", 64, 5, 1), ("pool", 2, 1),
    ],
    "AlexNet": [
        ("conv", 96, 11, 4), ("pool", 3, 2),
        ("conv", 256, 5, 1), ("pool", 3, 2),
        ("conv", 384, 3, 1), ("conv", 384, 3, 1), ("conv", 256, 3, 1), ("pool", 3, 2),
    ],
}

# Hidden dense layers after flatten: (units, dropout after it).
_DENSE: dict[str, list[tuple[int, float]]] = {
    "WeiNet": [],
    "SongNet": [],
    "SilNet": [(512, 0.5), (512, 0.0)],
    "AlexNet": [(4096, 0.4), (4096, 0.4), (4096, 0.4)],
}

SCRATCH_NAMES = tuple(_FEATURES)


class ScratchNet(nn.Module):
    """A Keras-style sequential CNN: conv/pool ``features``, flatten, dense ``classifier``."""

    def __init__(self, name: str, input_size: int, num_classes: int = 6, init: str = "keras"):
        super().__init__()
        self.name, self.input_size = name, input_size
        layers: list[nn.Module] = []
        channels, size = 3, input_size
        for spec in _FEATURES[name]:
            if spec[0] == "conv":
                _, out, kernel, stride = spec
                layers += [SamePadConv2d(channels, out, kernel, stride), nn.ReLU(inplace=True)]
                channels, size = out, math.ceil(size / stride)
            elif spec[0] == "pool":
                _, kernel, stride = spec
                layers.append(SamePadMaxPool2d(kernel, stride))
                size = math.ceil(size / stride)
            else:
                layers.append(nn.Dropout(spec[1]))
        self.features = nn.Sequential(*layers)
        # Keras flattens (H, W, C); the order only permutes dense weights, so (C, H, W) is kept.
        head: list[nn.Module] = [nn.Flatten()]
        width = channels * size * size
        for units, dropout in _DENSE[name]:
            head += [nn.Linear(width, units), nn.ReLU(inplace=True)]
            if dropout:
                head.append(nn.Dropout(dropout))
            width = units
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)
        INITIALIZERS[init](self)
        # Mean training image, subtracted inside the net so that every consumer of the weights
        # (evaluation, attribution) sees the same input; zeros (no-op) unless training sets it.
        self.register_buffer("input_mean", torch.zeros(3, input_size, input_size))
        self.register_load_state_dict_pre_hook(_default_input_mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x - self.input_mean))

    def center_inputs(self, images: torch.Tensor, chunk: int = 512) -> None:
        """Subtract the per-pixel mean of ``images`` (N, 3, H, W: floats in [0, 1], or uint8 as
        loaded) from now on. Summed in chunks: a real training set never exists as floats."""
        if images.shape[1:] != self.input_mean.shape:
            raise ValueError(f"center_inputs: images {tuple(images.shape[1:])} do not match the "
                             f"input {tuple(self.input_mean.shape)}")
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        total = torch.zeros(self.input_mean.shape, dtype=torch.float64)
        for start in range(0, len(images), chunk):
            total += images[start : start + chunk].sum(0, dtype=torch.float64)
        self.input_mean.copy_((total / (len(images) * scale)).to(self.input_mean.dtype))


def _default_input_mean(module: ScratchNet, state_dict, prefix, *_args) -> None:
    """Weights saved before ``input_mean`` existed load as uncentred (the behaviour they had)."""
    state_dict.setdefault(prefix + "input_mean", torch.zeros_like(module.input_mean))


def _keras_init(module: nn.Module) -> None:
    """Keras defaults (Glorot-uniform kernels, zero biases), as the paper's nets were trained."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def _he_init(module: nn.Module) -> None:
    """He-uniform kernels (variance 2 / fan-in), zero biases. Glorot's variance ~1 / fan-in halves
    the signal at every ReLU: SilNet and AlexNet then start with logits that hardly depend on the
    input (std over a batch ~0.007 and ~0.0015) and sit on the ln 6 plateau for hundreds of steps;
    He keeps the signal's scale through the stack, so they learn within a small step budget."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)


INITIALIZERS = {"keras": _keras_init, "he": _he_init}


def build_scratch(
    name: str, input_size: int, num_classes: int = 6, init: str = "keras"
) -> ScratchNet:
    if init not in INITIALIZERS:
        raise ConfigError(f"scratch_init: {init!r} is not one of {sorted(INITIALIZERS)}.")
    return ScratchNet(name, input_size, num_classes, init)
