"""RISE against a direct numpy transcription of Petsiuk et al. (2018), eq. 6 and section 3.2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ferxai.attribution import create_explainer
from ferxai.attribution.rise import build_masks, mask_parameters


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 6),
    )
    with torch.no_grad():
        model[-1].weight.mul_(10.0)
    return model.eval()


def bilinear_numpy(grid: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Half-pixel bilinear resize with the edge value beyond the border (written out)."""
    in_h, in_w = grid.shape

    def taps(out_n, in_n):
        source = np.maximum((np.arange(out_n) + 0.5) * in_n / out_n - 0.5, 0.0)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, in_n - 1)
        return low, high, source - low

    y0, y1, wy = taps(out_h, in_h)
    x0, x1, wx = taps(out_w, in_w)
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x1] * wx
    bottom = grid[y1][:, x0] * (1 - wx) + grid[y1][:, x1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]


def rise_numpy(model, image: np.ndarray, target: int, grids, shifts, p_keep: float):
    """S(λ) = 1 / (E[M] N) Σ_i f(I ⊙ M_i) M_i(λ), masks as the authors' generate_masks."""
    n_masks, cells, _ = grids.shape
    _, height, width = image.shape
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    saliency = np.zeros((height, width))
    for i in range(n_masks):
        up = bilinear_numpy(grids[i].astype(np.float64), (cells + 1) * cell_h, (cells + 1) * cell_w)
        dy = min(int(shifts[i, 0] * cell_h), cell_h - 1)
        dx = min(int(shifts[i, 1] * cell_w), cell_w - 1)
        mask = up[dy : dy + height, dx : dx + width]
        masked = torch.from_numpy((image * mask[None]).astype(np.float32))[None]
        with torch.no_grad():
            score = torch.softmax(model(masked), dim=1)[0, target].item()
        saliency += score * mask
    return saliency / (n_masks * p_keep)


@pytest.mark.parametrize(("size", "cells", "p_keep"), [(24, 5, 0.5), (30, 7, 0.3)])
def test_rise_equals_the_papers_formula(size, cells, p_keep):
    model = small_cnn()
    images = torch.rand((2, 3, size, size), generator=torch.Generator().manual_seed(3))
    settings = {"masks": 60, "cells": cells, "p_keep": p_keep, "batch_size": 37}
    seeds, targets = [5, 9], [1, 4]
    maps = create_explainer("rise", model, **settings).attribute(
        images, torch.tensor(targets), seeds=seeds
    )
    for i in range(2):
        grids, shifts = mask_parameters(seeds[i], 60, cells, p_keep)
        expected = rise_numpy(model, images[i].numpy().astype(np.float64), targets[i],
                              grids.numpy(), shifts.numpy(), p_keep)
        np.testing.assert_allclose(maps[i].numpy(), expected, rtol=0, atol=1e-5 * expected.max())


def test_rise_masks_keep_p_of_the_cells_and_do_not_depend_on_the_batch():
    grids, shifts = mask_parameters(0, 2000, 7, 0.3)
    assert grids.float().mean().item() == pytest.approx(0.3, abs=0.01)
    masks = build_masks(grids, shifts, 40, 40)
    assert masks.shape == (2000, 40, 40) and masks.min() >= 0 and masks.max() <= 1 + 1e-6
    assert masks.mean().item() == pytest.approx(0.3, abs=0.01)  # E[M] = p_keep
    model = small_cnn()
    images = torch.rand((3, 3, 20, 20), generator=torch.Generator().manual_seed(1))
    explainer = create_explainer("rise", model, masks=30, cells=4, batch_size=16)
    together = explainer.attribute(images, torch.tensor([0, 1, 2]), seeds=[4, 5, 6])
    alone = explainer.attribute(images[1:2], torch.tensor([1]), seeds=[5])
    torch.testing.assert_close(together[1:2], alone, rtol=0, atol=1e-7)
    other_seed = explainer.attribute(images[1:2], torch.tensor([1]), seeds=[7])
    assert not torch.allclose(other_seed, alone)
