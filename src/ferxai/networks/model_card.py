"""A model's input and output card: how ferxai's images become its input and its output the six
expressions' logits.

ferxai feeds every network RGB images in [0, 1], shape (N, 3, S, S) (``S`` = ``input_size``), and
explains its six expressions' scores. A model trained elsewhere may want one grey channel, NHWC,
pixels scaled to [-1, 1] or normalized with its dataset's mean and std, and may end in a softmax
over 7 or 8 classes. The card says so (keys of ``networks.overrides.NAME``, all optional):

* ``channels``: 3 (RGB) or 1 (luma 0.299 R + 0.587 G + 0.114 B, as OpenCV's and PIL's grey);
* ``layout``: ``NCHW`` or ``NHWC``;
* ``scale: [low, high]``: pixel 0 → low, 255 → high (default [0, 1]); then ``mean``/``std`` per
  channel (default none), ``(value - mean) / std``;
* ``output``: ``logits`` (default) or ``probabilities``;
* ``class_order``: the outputs' classes in order (default ferxai's six).

:class:`CardModel` wraps the model's own forward (a torch module, or ONNX Runtime) so that it
takes ferxai's batches and returns the six expressions' logits: with ``output: logits`` the
model's logits of the six (their softmax is today's rule), with ``output: probabilities`` the
logarithms of the six probabilities, whose softmax is those six renormalized to sum 1. The
preprocessing is torch arithmetic on the input, so gradients reach ferxai's (N, 3, S, S) image and
every map is over the S × S image the model saw, whatever its layout. This module does not
import torch (the configuration is checked with it); the wrapper is
:class:`ferxai.networks.loaders.CardModel`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, what cv2.COLOR_RGB2GRAY and PIL's "L" use
LAYOUTS = ("NCHW", "NHWC")
OUTPUTS = ("logits", "probabilities")
# The card's keys beside input_size and class_order (those two existed before cards).
CARD_KEYS = ("channels", "layout", "scale", "mean", "std", "output")
# trained_weights by file type (ferxai.networks.loaders reads each); anything else: a state dict.
FORMATS = {
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".pt2": "torch.export",
    ".onnx": "onnx",
    ".keras": "keras",
    ".h5": "keras",
    ".hdf5": "keras",
}
STATE_DICT = "state dict"


@dataclass(frozen=True)
class ModelCard:
    """The input/output conventions of one model; the defaults are ferxai's own networks'."""

    input_size: int | None = None
    channels: int = 3
    layout: str = "NCHW"
    scale: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    output: str = "logits"
    class_order: tuple[str, ...] = field(default=EXPRESSIONS)

    def is_default(self) -> bool:
        """True when the card changes nothing about ferxai's input and output."""
        default = ModelCard(input_size=self.input_size)
        return self == default

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as the card's keys are spelled in the configuration."""
        out = asdict(self)
        out["scale"] = list(self.scale)
        out["class_order"] = list(self.class_order)
        for key in ("mean", "std"):
            out[key] = None if out[key] is None else list(out[key])
        return out

    def dropped_classes(self) -> list[str]:
        """The outputs that are none of the six expressions (Neutral, Contempt, ...)."""
        from ferxai.networks.registry import class_rows

        rows, _ = class_rows(self.class_order, "class_order")
        return [c for i, c in enumerate(self.class_order) if i not in rows]


def make_card(where: str = "model card", **given: Any) -> ModelCard:
    """A :class:`ModelCard` from configuration keys (None = default), checked; ``where`` names the
    key in messages (e.g. ``networks.overrides.MyNet``)."""
    unknown = sorted(set(given) - {"input_size", "class_order", *CARD_KEYS})
    if unknown:
        raise ConfigError(
            f"{where}: unknown card key(s) {', '.join(unknown)}; the card's keys are input_size, "
            f"class_order, {', '.join(CARD_KEYS)}."
        )
    values = {k: v for k, v in given.items() if v is not None}
    channels = values.get("channels", 3)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ConfigError(f"{where}.channels: {channels!r}; use 3 (RGB) or 1 (grey: luma).")
    layout = values.get("layout", "NCHW")
    if layout not in LAYOUTS:
        raise ConfigError(f"{where}.layout: {layout!r}; use NCHW or NHWC (channels last).")
    output = values.get("output", "logits")
    if output not in OUTPUTS:
        raise ConfigError(
            f"{where}.output: {output!r}; use logits (before the softmax) or probabilities "
            "(the model ends in a softmax)."
        )
    scale = _numbers(values.get("scale", (0.0, 1.0)), f"{where}.scale", 2, 2)
    if scale[0] == scale[1]:
        raise ConfigError(f"{where}.scale: {list(scale)} maps every pixel to one value; "
                          "give [low, high] with low != high, e.g. [-1, 1].")
    mean = std = None
    if "mean" in values or "std" in values:
        mean = _numbers(values.get("mean", [0.0] * channels), f"{where}.mean", 1, channels)
        std = _numbers(values.get("std", [1.0] * channels), f"{where}.std", 1, channels)
        for key, vector in (("mean", mean), ("std", std)):
            if len(vector) not in (1, channels):
                raise ConfigError(
                    f"{where}.{key}: {list(vector)} has {len(vector)} values for {channels} "
                    f"channel(s); give one value per channel (or one for all)."
                )
        if any(s <= 0 for s in std):
            raise ConfigError(f"{where}.std: {list(std)}; every std must be > 0.")
    order = tuple(str(c) for c in values.get("class_order") or EXPRESSIONS)
    from ferxai.networks.registry import class_rows

    class_rows(order, f"{where}.class_order")  # each of the six once
    size = values.get("input_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ConfigError(f"{where}.input_size: {size!r}; give the side in pixels the model "
                          "was trained at.")
    return ModelCard(size, int(channels), layout, scale, mean, std, output, order)


def card_from_settings(settings: Mapping[str, Any], where: str) -> ModelCard:
    """The card of a network's settings (``networks.overrides.NAME``)."""
    keys = ("input_size", "class_order", *CARD_KEYS)
    return make_card(where, **{k: settings.get(k) for k in keys})


def _numbers(value, where: str, least: int, most: int) -> tuple[float, ...]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list | tuple)
        or not least <= len(value) <= max(most, least)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        count = f"{least}" if least == most else f"{least} to {most}"
        raise ConfigError(f"{where}: {value!r}; give a list of {count} numbers.")
    return tuple(float(v) for v in value)


def model_format(path: str | os.PathLike) -> str:
    """The format of a ``trained_weights`` file, from its name (and a TorchScript archive's
    contents when it is named ``.pt``/``.pth``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix in (".pt", ".pth") and path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
    return STATE_DICT


def is_whole_model(path: str | os.PathLike) -> bool:
    """True for a file holding its architecture too (anything but a state dict)."""
    return model_format(path) != STATE_DICT
