"""What captum's methods share here: batching, seeding, the probability they explain.

Every explainer answers ``explain(images, target, seeds=None)`` and ``attribute(...) ->
Tensor[N, H, W]`` like LIME's, for a batch of images per call: the images of a job are split into
calls of as many images as one forward (+ backward) batch holds (``batch_size``, or measured on a
GPU by :func:`ferxai.attribution.common.auto_batch_size`; a pixel budget on the CPU), never
explained one by one. The methods that draw random numbers (noise tunnel, GradientSHAP,
Shapley sampling, KernelSHAP) seed torch's and numpy's generators with the seed of the first image
of each call, so a job's maps depend on its seed and ``batch_size`` only (set ``batch_size`` to
reproduce them on another GPU: the measured size follows the free memory).

Input attributions explain the target's softmax probability (as the paper's LIME), except DeepLIFT
(the pre-softmax score, as its authors); the layer methods (Grad-CAM, guided Grad-CAM) the
pre-softmax score, as Selvaraju et al.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ferxai.attribution.common import (
    ProgressLog,
    auto_batch_size,
    log,
    model_device,
    softmax_forward,
)
from ferxai.attribution.lime import Explanation, _default_seeds
from ferxai.attribution.settings import resolve_settings

# Backpropagation keeps activations: a gradient batch holds about this many times the memory.
GRADIENT_MEMORY_FACTOR = 4


class ProbabilityModel(nn.Module):
    """``model`` followed by a softmax (or not: ``softmax=False``), as one module.

    Guided backpropagation and deconvolution rewrite the backward pass of the modules they find,
    so what they explain must be a module, not a function. DeepLIFT explains the pre-softmax score
    (``softmax=False``), as Shrikumar et al. (2017, section 3.6) recommend; captum's rule for
    ``nn.Softmax`` would also mix the images of a batch (it normalises over the whole batch).
    """

    def __init__(self, model: nn.Module, softmax: bool = True) -> None:
        super().__init__()
        self.model = model
        self.softmax = nn.Softmax(dim=1) if softmax else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(images.contiguous(memory_format=torch.channels_last))
        return self.softmax(logits.float())


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Torch's and numpy's global generators set to ``seed`` inside, restored after (captum draws
    from both: GradientSHAP picks its baselines and points with ``np.random``)."""
    devices = [device] if device.type == "cuda" else []
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        np.random.set_state(state)


class CaptumExplainer:
    """Base of the captum explainers: subclasses define ``_explain_batch`` and their cost."""

    method = ""
    gradients = False  # a backward pass per forward: smaller batches

    def __init__(self, model: nn.Module, **settings) -> None:
        self.settings = resolve_settings(self.method, settings)
        self.model = model.eval()
        self.device = model_device(model)
        self.precision = "fp32"  # captum's perturbation and gradient paths stay in fp32
        self._batch_sizes: dict[tuple, int] = {}

    def attribute(
        self, images: torch.Tensor, target: torch.Tensor, seeds: Sequence[int] | None = None
    ) -> torch.Tensor:
        return self.explain(images, target, seeds).maps

    def explain(
        self, images: torch.Tensor, target: torch.Tensor, seeds: Sequence[int] | None = None
    ) -> Explanation:
        n_images = images.shape[0]
        seeds = _default_seeds(self.settings.get("seed", 0), n_images, seeds)
        target = torch.as_tensor(target, dtype=torch.long).reshape(n_images).to(self.device)
        images = images.to(self.device, torch.float32)
        if n_images == 0:
            return Explanation(torch.zeros((0, *images.shape[-2:])))
        per_call = self.images_per_call(images.shape[1:])
        progress = ProgressLog(self.method, n_images)
        parts = []
        for start in range(0, n_images, per_call):
            stop = min(start + per_call, n_images)
            with seeded(seeds[start], self.device):
                parts.append(self._explain_batch(images[start:stop], target[start:stop],
                                                 seeds[start:stop]))
            progress.update(stop - start, (stop - start) * self.passes_per_image(images.shape))
        log.info(progress.summary())
        segments = [p.segments for p in parts]
        return Explanation(
            maps=torch.cat([p.maps for p in parts]),
            segments=torch.cat(segments) if segments[0] is not None else None,
            segment_weights=[w for p in parts for w in (p.segment_weights or [])] or None,
        )

    def _explain_batch(
        self, images: torch.Tensor, target: torch.Tensor, seeds: Sequence[int]
    ) -> Explanation:
        raise NotImplementedError

    def passes_per_image(self, shape: torch.Size) -> int:
        """Forward passes one image costs (each with a backward pass for gradient methods)."""
        return 1

    def rows_per_image(self) -> int:
        """Rows one image adds to a forward batch (samples, baselines drawn with it)."""
        return 1

    def forward_batch(self, image_shape: Sequence[int]) -> int:
        """Rows per forward (+ backward) pass: ``batch_size``, else measured once per shape."""
        if self.settings.get("batch_size"):
            return int(self.settings["batch_size"])
        key = tuple(image_shape)
        if key not in self._batch_sizes:
            forward = softmax_forward(self.model)
            size = auto_batch_size(forward, key, self.device, limit=4096)
            self._batch_sizes[key] = (
                max(1, size // GRADIENT_MEMORY_FACTOR) if self.gradients else size
            )
        return self._batch_sizes[key]

    def images_per_call(self, image_shape: Sequence[int]) -> int:
        return max(1, self.forward_batch(image_shape) // self.rows_per_image())
