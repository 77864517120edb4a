"""RISE (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for Explanation").

The saliency of pixel λ is the expected score of the target over random masks that keep it:

    S(λ) = 1 / (E[M] · N) · Σ_i f(I ⊙ M_i) · M_i(λ),   E[M] = p_keep,

with f the target's softmax probability. Each mask is a ``cells`` × ``cells`` grid of cells kept
with probability ``p_keep``, upsampled bilinearly to (cells + 1) · ⌈H / cells⌉ pixels and cropped
to H × W at a random shift of less than one cell (the authors' ``generate_masks``). The authors
upsample with ``skimage.transform.resize(order=1, mode='reflect')``; here it is
``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)``, the same half-pixel
bilinear interpolation except in the outer half cell, which clamps instead of mirroring.

Batched like LIME: the masks of every image are drawn from that image's seed (its map does not
depend on the images beside it), built on the model's device a forward batch at a time, and the
masked images of several images share each forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ferxai.attribution.captum_methods import CaptumExplainer
from ferxai.attribution.common import softmax_forward
from ferxai.attribution.lime import Explanation


def mask_parameters(seed: int, masks: int, cells: int, p_keep: float):
    """The random draws of one image: the binary grids (N, s, s) and the shifts (N, 2)."""
    generator = torch.Generator().manual_seed(int(seed))
    grids = torch.rand((masks, cells, cells), generator=generator, dtype=torch.float64) < p_keep
    # shifts in [0, 1): scaled to whole pixels of one cell by build_masks, for any image size
    shifts = torch.rand((masks, 2), generator=generator, dtype=torch.float64)
    return grids, shifts


def build_masks(grids: torch.Tensor, shifts: torch.Tensor, height: int, width: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """RISE masks (N, H, W) float32 in [0, 1] from the grids and [0, 1) shifts of
    :func:`mask_parameters`: upsampled to (s + 1) · cell, shifted by ⌊shift · cell⌋ pixels."""
    cells = grids.shape[-1]
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    up = F.interpolate(
        grids[:, None].to(device, torch.float32),
        size=((cells + 1) * cell_h, (cells + 1) * cell_w),
        mode="bilinear",
        align_corners=False,
    )[:, 0]
    dy = (shifts[:, 0] * cell_h).long().clamp(max=cell_h - 1)
    dx = (shifts[:, 1] * cell_w).long().clamp(max=cell_w - 1)
    rows = dy.to(device)[:, None] + torch.arange(height, device=device)  # (N, H)
    cols = dx.to(device)[:, None] + torch.arange(width, device=device)  # (N, W)
    index = torch.arange(len(grids), device=device)[:, None, None]
    return up[index, rows[:, :, None], cols[:, None, :]]


class RiseExplainer(CaptumExplainer):
    """``create_explainer('rise', model, masks=4000, cells=7, p_keep=0.5)``."""

    method = "rise"

    def images_per_call(self, image_shape) -> int:
        # masks of all images of a call are built a forward batch at a time: any count fits
        return max(1, self.forward_batch(image_shape))

    def _explain_batch(self, images, target, seeds: Sequence[int]) -> Explanation:
        n_images, _, height, width = images.shape
        n_masks, cells, p_keep = (self.settings[k] for k in ("masks", "cells", "p_keep"))
        forward = softmax_forward(self.model)
        draws = [mask_parameters(seed, n_masks, cells, p_keep) for seed in seeds]
        batch = self.forward_batch(images.shape[1:])
        saliency = torch.zeros((n_images, height, width), dtype=torch.float64, device=self.device)
        # (image, mask) pairs in image-major order, ``batch`` of them per forward pass
        total = n_images * n_masks
        with torch.inference_mode():
            for start in range(0, total, batch):
                pairs = torch.arange(start, min(start + batch, total))
                which, mask_index = pairs // n_masks, pairs % n_masks
                masks = torch.cat([
                    build_masks(draws[i][0][run], draws[i][1][run], height, width, self.device)
                    for i, run in _runs(which.tolist(), mask_index.tolist())
                ])
                on = which.to(self.device)
                scores = forward(images[on] * masks[:, None])
                score = scores.gather(1, target[on][:, None])[:, 0].double()
                saliency.index_add_(0, on, score[:, None, None] * masks.double())
        saliency /= n_masks * p_keep
        return Explanation(maps=saliency.float().cpu())

    def passes_per_image(self, shape) -> int:
        return self.settings["masks"]


def _runs(images: list[int], masks: list[int]):
    """(image, slice of its masks) for consecutive pairs of one image: masks built per run."""
    start = 0
    while start < len(images):
        stop = start
        while stop < len(images) and images[stop] == images[start]:
            stop += 1
        yield images[start], slice(masks[start], masks[stop - 1] + 1)
        start = stop
