"""Faithfulness of saliency maps to the network: perturb by relevance, watch the target's probability.

- **Deletion / insertion** (Petsiuk et al. 2018, RISE): pixels are removed from the image (set to
  the baseline), or inserted into the baseline image, in order of decreasing relevance, in
  ``steps`` equal parts; the curve is the target's softmax probability after each part (step 0 is
  the untouched image, resp. the plain baseline), its area the trapezoid over the fraction of
  pixels in [0, 1]. A faithful map has a small deletion and a large insertion area.
- **PixelFlipping** (Bach et al. 2015) and **RegionPerturbation** (Samek et al. 2016), exactly as
  Quantus 0.6.0 computes them with its ``batch_baseline_replacement_by_indices`` perturbation
  (tests/test_faithfulness.py calls Quantus itself): the map is broadcast over the colour channels
  and the ``features_in_step`` highest channel values are flipped per step (PixelFlipping, curve =
  the target's probability after each step); or the ``patch_size`` squares, ranked by their summed
  relevance (``morf``: most relevant first, ``lerf``: least), are replaced one after the other,
  ``regions`` times (RegionPerturbation, curve = the drop of the target's probability). Their areas
  are Quantus's ``calculate_auc`` (trapezoid with unit spacing).

Every function takes ``forward``: float32 images (B, C, H, W) → class probabilities (B, K), which
:func:`probability_forward` builds from a torch model; the perturbed images of many images and
steps share forward batches. Images are (N, C, H, W) float32, maps (N, H, W), targets (N,).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

Forward = Callable[[np.ndarray], np.ndarray]
BASELINES = ("black", "white", "mean")
ORDERS = ("morf", "lerf")


def probability_forward(model, batch_size: int = 64) -> Forward:
    """``images -> softmax(model(images))`` in float32, in batches of ``batch_size``, no gradients."""
    import torch

    from ferxai.attribution.common import model_device

    device = model_device(model)

    def forward(images: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
                logits = model(batch.to(device, torch.float32))
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    return forward


def baseline_values(images: np.ndarray, baseline: str | float) -> np.ndarray:
    """One baseline per image: ``black`` its minimum, ``white`` its maximum, ``mean`` its mean (over
    all channels, as Quantus's ``get_baseline_dict``), or a number for every image."""
    flat = images.reshape(len(images), -1)
    if isinstance(baseline, str):
        if baseline == "black":
            return flat.min(axis=1)
        if baseline == "white":
            return flat.max(axis=1)
        if baseline == "mean":
            return flat.mean(axis=1)
        raise ValueError(f"baseline {baseline!r}: use one of {', '.join(BASELINES)} or a number")
    return np.full(len(images), float(baseline), dtype=images.dtype)


def curve_area(curves: np.ndarray, dx: float = 1.0) -> np.ndarray:
    """Trapezoid area of each curve (rows), NaN for a row with a NaN."""
    return np.trapezoid(np.asarray(curves, dtype=np.float64), dx=dx, axis=1)


# ----------------------------------------------------------------------------- the forward queue


def _target_probabilities(
    forward: Forward,
    variants: Iterator[tuple[int, int, np.ndarray]],
    targets: np.ndarray,
    shape: tuple[int, int],
    batch_size: int,
) -> np.ndarray:
    """Probability of each image's target for every (image, step, perturbed images) block of
    ``variants``; blocks of several images share forward batches of about ``batch_size``."""
    out = np.full(shape, np.nan, dtype=np.float64)
    pending: list[tuple[int, int, np.ndarray]] = []
    queued = 0

    def flush() -> None:
        nonlocal pending, queued
        if not pending:
            return
        probabilities = forward(np.concatenate([block for _, _, block in pending]))
        offset = 0
        for image, first, block in pending:
            rows = probabilities[offset : offset + len(block), targets[image]]
            out[image, first : first + len(block)] = rows
            offset += len(block)
        pending, queued = [], 0

    for image, first, block in variants:
        pending.append((image, first, block))
        queued += len(block)
        if queued >= batch_size:
            flush()
    flush()
    return out


def _masked_variants(
    images: np.ndarray, ranks: np.ndarray, counts: np.ndarray, fill: np.ndarray, chunk: int,
    reveal: bool = False,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Per image, the variants where the elements of rank < counts[t] are set to ``fill`` (or,
    ``reveal``, the only ones kept from the image on a ``fill`` background), ``chunk`` at a time.

    ``ranks`` (N, F) is each element's position in the perturbation order, F the elements of one
    image (C·H·W, or H·W broadcast over the channels)."""
    n = len(images)
    flat_images = images.reshape(n, -1)
    per_channel = ranks.shape[1] != flat_images.shape[1]
    for i in range(n):
        for first in range(0, len(counts), chunk):
            hidden = ranks[i][None, :] < counts[first : first + chunk, None]
            if reveal:
                hidden = ~hidden
            if per_channel:  # one rank per pixel: the same mask on every channel
                hidden = np.repeat(hidden[:, None, :], images.shape[1], axis=1).reshape(
                    len(hidden), -1
                )
            block = np.where(hidden, fill[i].astype(images.dtype), flat_images[i][None, :])
            yield i, first, block.reshape(len(block), *images.shape[1:])


def _ranks(order: np.ndarray) -> np.ndarray:
    """Inverse permutation per row: ranks[i, order[i, j]] = j."""
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :].repeat(len(order), 0), 1)
    return ranks


def _check(images: np.ndarray, maps: np.ndarray, targets: np.ndarray) -> None:
    if images.ndim != 4 or maps.shape != (len(images), *images.shape[2:]):
        raise ValueError(
            f"images must be (N, C, H, W) and maps (N, H, W) of the same N, H, W; got "
            f"{images.shape} and {maps.shape}"
        )
    if len(targets) != len(images):
        raise ValueError(f"{len(targets)} targets for {len(images)} images")


# ------------------------------------------------------------------------ deletion and insertion


def deletion_insertion(
    forward: Forward,
    images: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    steps: int = 16,
    baseline: str | float = "black",
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves (N, steps + 1) of Petsiuk et al. (2018).

    Pixels are ordered by decreasing relevance (a stable sort: ties in image order, so a map's
    curve does not depend on anything else); after step t the first ``round(t · H·W / steps)`` are
    removed (deletion) or are the only ones inserted (insertion). Areas: ``curve_area(c, 1/steps)``.
    """
    images, maps, targets = np.asarray(images), np.asarray(maps), np.asarray(targets)
    _check(images, maps, targets)
    if steps < 2:
        raise ValueError(f"steps = {steps}: need at least 2")
    n, pixels = len(images), maps[0].size
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    ranks = _ranks(order)
    counts = np.round(np.arange(steps + 1) * pixels / steps).astype(np.int64)
    fill = baseline_values(images, baseline)
    chunk = max(1, batch_size)
    shape = (n, steps + 1)
    deletion = _target_probabilities(
        forward, _masked_variants(images, ranks, counts, fill, chunk), targets, shape, batch_size
    )
    insertion = _target_probabilities(
        forward,
        _masked_variants(images, ranks, counts, fill, chunk, reveal=True),
        targets,
        shape,
        batch_size,
    )
    return deletion, insertion


# -------------------------------------------------------------------------- Quantus's two metrics


def features_in_step_for(height: int, width: int, channels: int, steps: int) -> int:
    """PixelFlipping's ``features_in_step`` for about ``steps`` steps: the largest divisor of H·W
    (Quantus requires one) not above C·H·W / steps (Quantus flips channel values, C per pixel)."""
    pixels = height * width
    limit = max(1, (channels * pixels) // steps)
    return max(d for d in range(1, min(limit, pixels) + 1) if pixels % d == 0)


def pixel_flipping(
    forward: Forward,
    images: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    features_in_step: int = 1,
    baseline: str | float = "black",
    batch_size: int = 64,
) -> np.ndarray:
    """Quantus's ``PixelFlipping`` curves (N, ceil(C·H·W / features_in_step)).

    As Quantus: the map (divided by its largest magnitude) is broadcast over the channels,
    ``argsort(-a)`` (numpy's default sort, so ties break as there) orders the C·H·W values, and
    step t has the first (t + 1) · features_in_step of them at the baseline (``black``: the
    image's minimum, which the flipped values keep being).
    """
    images, maps, targets = np.asarray(images), np.asarray(maps), np.asarray(targets)
    _check(images, maps, targets)
    if features_in_step < 1 or maps[0].size % features_in_step:
        raise ValueError(
            f"features_in_step = {features_in_step} must divide the {maps[0].size} pixels"
        )
    n = len(images)
    a = np.broadcast_to(_normalised(maps)[:, None], images.shape).reshape(n, -1)
    ranks = _ranks(np.argsort(-a, axis=1))
    total = a.shape[1]
    steps = -(-total // features_in_step)
    counts = np.minimum((np.arange(steps) + 1) * features_in_step, total)
    fill = baseline_values(images, baseline)
    variants = _masked_variants(images, ranks, counts, fill, max(1, batch_size))
    return _target_probabilities(forward, variants, targets, (n, steps), batch_size)


def region_perturbation(
    forward: Forward,
    images: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    patch_size: int = 8,
    order: str = "morf",
    regions: int = 100,
    baseline: str | float = "black",
    batch_size: int = 64,
) -> np.ndarray:
    """Quantus's ``RegionPerturbation`` curves (N, min(regions, patches)): the target's probability
    on the image minus that after the first r + 1 patches are replaced.

    As Quantus: image and map are padded to a multiple of ``patch_size`` (map with 0, the image at
    the edges), the map broadcast over the channels and summed per patch, the patches ranked by
    ``argsort(∓sums)`` and replaced cumulatively by the baseline; the padding is cut off again
    before the forward pass.
    """
    images, maps, targets = np.asarray(images), np.asarray(maps), np.asarray(targets)
    _check(images, maps, targets)
    if order not in ORDERS:
        raise ValueError(f"order {order!r}: use one of {', '.join(ORDERS)}")
    n, c, h, w = images.shape
    if not 1 <= patch_size <= min(h, w):
        raise ValueError(f"patch_size = {patch_size} must lie in 1..{min(h, w)} (the image side)")
    pad_h, pad_w = _padding(h, patch_size), _padding(w, patch_size)
    hp, wp = h + sum(pad_h), w + sum(pad_w)
    a = np.broadcast_to(_normalised(maps)[:, None], images.shape)
    a_pad = np.pad(a, ((0, 0), (0, 0), pad_h, pad_w), mode="constant")
    blocks = _block_indices(c, hp, wp, patch_size)  # (patches, C·p·p) flat indices
    # Summed one patch at a time, as Quantus does: numpy rounds a 3-D reduction differently in the
    # last bits, which reorders tied patches (LIME's maps are constant over superpixels).
    # (And indexed as Quantus does: ``flat[:, block]`` comes out in another memory order.)
    flat_a, rows = a_pad.reshape(n, -1), np.arange(n)[:, None]
    sums = np.stack(
        [flat_a[rows, np.broadcast_to(block, (n, len(block)))].sum(axis=-1) for block in blocks],
        axis=-1,
    )
    ranking = np.argsort(-sums if order == "morf" else sums, axis=-1)
    count = min(regions, blocks.shape[0])
    # rank of every padded element = position of its patch in the ranking
    patch_rank = _ranks(ranking)  # (N, patches)
    element_patch = np.empty(c * hp * wp, dtype=np.int64)
    element_patch[blocks.ravel()] = np.repeat(np.arange(blocks.shape[0]), blocks.shape[1])
    padded_ranks = patch_rank[:, element_patch]  # (N, C·hp·wp)
    ranks = padded_ranks.reshape(n, c, hp, wp)[
        :, :, pad_h[0] : pad_h[0] + h, pad_w[0] : pad_w[0] + w
    ]
    ranks = ranks.reshape(n, -1)
    fill = baseline_values(images, baseline)
    counts = np.arange(1, count + 1)
    variants = _masked_variants(images, ranks, counts, fill, max(1, batch_size))
    perturbed = _target_probabilities(forward, variants, targets, (n, count), batch_size)
    original = forward(np.ascontiguousarray(images))[np.arange(n), targets].astype(np.float64)
    return original[:, None] - perturbed


def _normalised(maps: np.ndarray) -> np.ndarray:
    """Maps divided by their largest magnitude (Quantus's normalise_by_max; zeros stay zeros)."""
    maps = np.asarray(maps, dtype=np.float64)
    peak = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    return maps / np.where(peak == 0, 1.0, peak)[:, None, None]


def _padding(size: int, patch: int) -> tuple[int, int]:
    """Quantus's get_padding_size: the missing rows split floor/ceil."""
    missing = (patch - size % patch) % patch
    return missing // 2, missing - missing // 2


def _block_indices(channels: int, height: int, width: int, patch: int) -> np.ndarray:
    """Flat indices of each patch (row-major over the patch grid), C·p·p per patch in (C, p, p)
    order, as Quantus's get_block_indices."""
    index = np.arange(channels * height * width).reshape(channels, height, width)
    rows, cols = height // patch, width // patch
    blocks = index.reshape(channels, rows, patch, cols, patch).transpose(1, 3, 0, 2, 4)
    return blocks.reshape(rows * cols, -1)


# -------------------------------------------------------------------------------------- ROAD

# Neighbour weights of the noisy linear imputation (Rong et al. 2022, as tleemann/road_evaluation
# and Quantus's noisy_linear_imputation): diagonal neighbours 1/12, direct ones 1/6.
_ROAD_OFFSETS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
                 ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


def linear_imputation(
    image: np.ndarray, indices: np.ndarray, noise: float = 0.0, rng=None
) -> np.ndarray:
    """``image`` (C, H, W) with the pixels ``indices`` (flat, H·W) replaced by the solution of
    Quantus's ``noisy_linear_imputation`` system (each removed pixel = the weighted mean of its
    8 neighbours, removed or not), plus ``noise`` × a standard normal draw of ``rng``."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    flat = image.reshape(c, -1)
    indices = np.asarray(indices, dtype=np.int64)
    k = len(indices)
    if k == 0:
        return image.copy()
    kept = np.ones(h * w, dtype=bool)
    kept[indices] = False
    variable = np.zeros(h * w, dtype=np.int64)
    variable[indices] = np.arange(k)
    rows, cols, values = [np.arange(k)], [np.arange(k)], []
    rhs = np.zeros((k, c))
    weight_sum = np.ones(k)
    x, y = indices // w, indices % w
    for (dx, dy), weight in _ROAD_OFFSETS:
        valid = (x + dx >= 0) & (y + dy >= 0) & (x + dx < h) & (y + dy < w)
        ids = np.flatnonzero(valid)
        neighbour = indices[valid] + dx * w + dy
        known = kept[neighbour]
        rhs[ids[known]] -= weight * flat[:, neighbour[known]].T
        rows.append(ids[~known])
        cols.append(variable[neighbour[~known]])
        values.append(np.full(int((~known).sum()), weight))
        weight_sum[~valid] -= weight
    values.insert(0, -weight_sum)
    matrix = csc_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(k, k)
    )
    solution = np.asarray(spsolve(matrix, rhs)).reshape(k, c).T
    if noise:
        solution = solution + noise * (rng or np.random.default_rng(0)).standard_normal(
            solution.shape
        )
    out = flat.astype(np.float64, copy=True)
    out[:, indices] = solution
    return out.reshape(c, h, w)


def road(
    forward: Forward,
    images: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    percentages=(10, 20, 30, 40, 50, 60, 70, 80, 90),
    noise: float = 0.01,
    seed: int = 0,
    batch_size: int = 64,
) -> np.ndarray:
    """ROAD curves (N, len(percentages)), Rong et al. (2022), most relevant first: the target's
    probability after the ``p`` % most relevant pixels (stable sort) are imputed from their
    neighbours (:func:`linear_imputation` with ``noise``, image i drawing from seed + i), which
    removes their information without the out-of-distribution holes of a constant baseline. Lower
    is more faithful. (Quantus's ROAD ranks the channel-broadcast map, whose indices overrun the
    H·W pixels its imputation takes for a colour image; here the pixels are ranked.)"""
    images, maps, targets = np.asarray(images), np.asarray(maps), np.asarray(targets)
    _check(images, maps, targets)
    n, pixels = len(images), maps[0].size
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")

    def variants():
        for i in range(n):
            rng = np.random.default_rng(seed + i)
            block = np.stack([
                linear_imputation(images[i], order[i, : int(pixels * p / 100)], noise, rng)
                for p in percentages
            ]).astype(images.dtype)
            yield i, 0, block

    return _target_probabilities(forward, variants(), targets, (n, len(percentages)), batch_size)
