"""Training settings and the random streams of an epoch: what makes a training reproducible.

:class:`TrainSettings` (parsed and range-checked from the job's JSON, defaults from the schema's
``$defs/training``), the per-epoch seeds of every random stream, the epoch-seeded sampler and the
seeded augmentation. Used by :mod:`ferxai.networks.training`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ferxai.core.errors import ConfigError
from ferxai.networks.scratch import INITIALIZERS

# ------------------------------------------------------------------------------------ settings


@dataclass
class TrainSettings:
    """``--settings`` JSON of ``ferxai train``; every key is optional."""

    epochs: int | None = None  # None → the paper's epochs for the network
    batch_size: int = 128
    val_batch_size: int = 32
    optimizer: str = "paper"  # "rmsprop" | "adam" | "paper" (the network's optimizer in the paper)
    lr: float | None = None  # None → the paper's learning rate for the network
    input_size: int | None = None  # None → native size
    augment: bool = False
    seed: int = 0
    pretrained: bool = False
    weights: str | None = None
    scratch_init: str = "keras"  # "keras" (Glorot, as the paper) | "he"; from-scratch nets only
    center_inputs: bool = False  # subtract the mean training image; from-scratch nets only
    device: str = "auto"
    precision: str = "auto"
    val_fraction: float = 0.1
    num_workers: int = 0


_TYPES: dict[str, tuple[type, ...]] = {
    "epochs": (int, type(None)),
    "batch_size": (int,),
    "val_batch_size": (int,),
    "optimizer": (str,),
    "lr": (int, float, type(None)),
    "input_size": (int, type(None)),
    "augment": (bool,),
    "seed": (int,),
    "pretrained": (bool,),
    "weights": (str, type(None)),
    "scratch_init": (str,),
    "center_inputs": (bool,),
    "device": (str,),
    "precision": (str,),
    "val_fraction": (int, float),
    "num_workers": (int,),
}


def parse_settings(settings: str | dict | None) -> TrainSettings:
    """Validate a settings JSON string or dict; unknown keys and wrong types raise ConfigError."""
    if settings is None or settings == "":
        raw: dict[str, Any] = {}
    elif isinstance(settings, str):
        try:
            raw = json.loads(settings)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings: not valid JSON ({exc}). Pass a JSON object.") from exc
    else:
        raw = dict(settings)
    if not isinstance(raw, dict):
        raise ConfigError("--settings: expected a JSON object of training settings.")
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"train settings: unknown keys {unknown}; known: {sorted(known)}.")
    for key, value in raw.items():
        bad_bool = isinstance(value, bool) and bool not in _TYPES[key]
        if bad_bool or not isinstance(value, _TYPES[key]):
            raise ConfigError(f"train settings: {key}={value!r} has the wrong type.")
    parsed = TrainSettings(**raw)
    _check_ranges(parsed)
    return parsed


def _check_ranges(s: TrainSettings) -> None:
    if s.epochs is not None and s.epochs < 1:
        raise ConfigError(f"train settings: epochs={s.epochs}; use at least 1.")
    if s.batch_size < 1 or s.val_batch_size < 1:
        raise ConfigError("train settings: batch_size and val_batch_size must be >= 1.")
    if s.optimizer not in ("paper", "rmsprop", "adam"):
        raise ConfigError(f"train settings: optimizer={s.optimizer!r}; use paper, rmsprop or adam.")
    if s.lr is not None and not s.lr > 0:
        raise ConfigError(f"train settings: lr={s.lr}; use a positive learning rate or null.")
    if not 0 <= s.val_fraction < 1:
        raise ConfigError(f"train settings: val_fraction={s.val_fraction}; use 0 <= value < 1.")
    if s.scratch_init not in INITIALIZERS:
        raise ConfigError(f"train settings: scratch_init={s.scratch_init!r}; use one of "
                          f"{sorted(INITIALIZERS)}.")
    if s.num_workers < 0:
        raise ConfigError("train settings: num_workers must be >= 0.")


# ---------------------------------------------------------------------------------- randomness


def stream_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent 63-bit seed for one random stream (0 order, 1 augmentation, 2 torch) of an epoch."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(2, np.uint64)[0] >> 1)


class EpochSeededSampler(torch.utils.data.Sampler):
    """Random permutation that depends only on ``(seed, epoch)``: identical after a resume."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch, 0))
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


# ------------------------------------------------------------------------------- augmentation


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Keras-style random flip, rotation ±3 % of a turn, translation ±5 %, contrast ±10 %.

    Parameters are drawn on the CPU from ``generator`` (same numbers on any device) and applied
    to the whole batch with one ``grid_sample``; borders are reflected like Keras' default.
    """
    n = x.shape[0]
    draw = torch.rand(n, 5, generator=generator).to(x.device, x.dtype)
    flip = torch.where(draw[:, 0] < 0.5, -1.0, 1.0).to(x.dtype)
    angle = (draw[:, 1] * 2 - 1) * 0.03 * 2 * math.pi
    shift = (draw[:, 2:4] * 2 - 1) * 0.05 * 2  # grid units: the image spans [-1, 1]
    contrast = 1 + (draw[:, 4] * 2 - 1) * 0.1
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
            torch.stack([sin * flip, cos, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * contrast.view(n, 1, 1, 1) + mean).clamp(0, 1)
