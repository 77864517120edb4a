"""Pieces every attribution method shares: superpixels, batch sizes, softmax forward, progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from ferxai.core.device import autocast

log = logging.getLogger("ferxai.attribution")

# Widest batch tried on a GPU; beyond it throughput no longer grows for these networks.
MAX_GPU_BATCH = 2048


def slic_segments(image_hwc: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels exactly as lime's ``SegmentationAlgorithm('slic', ...)``, labels 0..F-1.

    SLIC relabels its output contiguously; the relabelling below only guards the degenerate case
    where it would not (lime would then index features by label and silently misalign).
    """
    from skimage.segmentation import slic

    segments = slic(image_hwc, n_segments=n_segments, compactness=compactness, start_label=0)
    labels = np.unique(segments)
    if labels[0] != 0 or labels[-1] != len(labels) - 1:
        segments = np.unique(segments, return_inverse=True)[1].reshape(segments.shape)
    return segments.astype(np.int64)


def to_hwc_numpy(image_chw: torch.Tensor) -> np.ndarray:
    return image_chw.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy()


def keep_sign(values: torch.Tensor, keep: str) -> torch.Tensor:
    """Evidence kept in a map: ``positive`` (paper), ``negative`` as magnitudes, ``absolute``, or
    ``signed`` (the values as they are)."""
    if keep == "signed":
        return values
    if keep == "positive":
        return values.clamp(min=0)
    if keep == "negative":
        return (-values).clamp(min=0)
    return values.abs()


def model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def softmax_forward(
    model: torch.nn.Module,
    precision: str = "fp32",
    logits_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``images -> softmax probabilities`` (float32), under ``precision`` autocast.

    The paper explained softmax outputs, so every method sees probabilities, not logits.
    ``logits_fn`` replaces ``model(images)`` (a CPU path of :mod:`ferxai.networks.forward`, which sets
    its own memory format).
    """
    device = model_device(model)

    def forward(images: torch.Tensor) -> torch.Tensor:
        if logits_fn is not None:
            return torch.softmax(logits_fn(images).float(), dim=1)
        images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(images)
        return torch.softmax(logits.float(), dim=1)

    return forward


def auto_batch_size(
    forward: Callable[[torch.Tensor], torch.Tensor],
    image_shape: tuple[int, int, int],
    device: torch.device,
    limit: int,
) -> int:
    """A forward batch that fits: measured peak memory on a GPU, a pixel budget on a CPU."""
    height, width = image_shape[1:]
    if device.type != "cuda":
        # On CPU, throughput peaks at small batches (measured: ~10 images of 64-224 px on AVX2);
        # larger ones spill the caches and run slower per image.
        return int(np.clip(round(1.6e5 / (height * width)), 8, 64))
    probe = 8
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.inference_mode():
        forward(torch.zeros((probe, *image_shape), device=device))
    per_sample = max((torch.cuda.max_memory_allocated(device) - base) / probe, 1.0)
    free, _ = torch.cuda.mem_get_info(device)
    fitting = int(0.5 * free / per_sample)
    return int(np.clip(fitting, probe, min(MAX_GPU_BATCH, max(limit, probe))))


class ProgressLog:
    """One log line per image at most every ``interval`` seconds, plus a summary at the end."""

    def __init__(self, method: str, total: int, interval: float = 5.0) -> None:
        self.method, self.total, self.interval = method, total, interval
        self.start = self.last = time.perf_counter()
        self.images = self.samples = 0

    def update(self, images: int, samples: int) -> None:
        self.images += images
        self.samples += samples
        now = time.perf_counter()
        if now - self.last >= self.interval or self.images == self.total:
            self.last = now
            log.info(
                "%s: %d/%d images, %.0f samples/s",
                self.method,
                self.images,
                self.total,
                self.samples / max(now - self.start, 1e-9),
            )

    def summary(self) -> str:
        elapsed = time.perf_counter() - self.start
        return (
            f"{self.method}: {self.images} images in {elapsed:.1f} s "
            f"({self.samples / max(elapsed, 1e-9):.0f} samples/s, "
            f"{elapsed / max(self.images, 1):.2f} s/image)"
        )
