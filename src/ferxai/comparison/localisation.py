"""Localisation: how well global heatmaps fall on the ground-truth regions.

Binary metrics after a threshold (the paper's IoU, F1, precision, recall after Otsu), threshold-free
metrics of the continuous map (ROC-AUC, mass inside, NSS, CC) and bootstrap confidence intervals of
the IoU over the explained images. Everything here works on heatmaps, masks and stack paths it is
given; finding files and writing results is the commands' job (:mod:`ferxai.comparison`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from ferxai.comparison.groundtruth import mask_for
from ferxai.comparison.localisation_scores import (
    DEFAULT_K,
    LOCALISATION_SCORES,
    localisation_scores,
)
from ferxai.comparison.metrics import (
    BINARY_METRICS,
    CONTINUOUS_METRICS,
    binary_metrics,
    binary_metrics_batch,
    continuous_metrics,
    percentile_interval,
)
from ferxai.comparison.thresholds import ThresholdSpec, binarize, otsu_thresholds, parse_threshold
from ferxai.core.constants import EXPRESSIONS, network_order
from ferxai.heatmaps.heatmap import Heatmap, heatmap_from_mean, to_uint8
from ferxai.heatmaps.pooling import (
    count_maps,
    resampled_heatmaps,
    valid_image_ids,
    valid_map_chunks,
)

METRICS_COLUMNS = ("network", "fold", "expression", *BINARY_METRICS)
THRESHOLD_COLUMNS = (
    "network",
    "fold",
    "expression",
    "threshold_method",
    "threshold",
    "predicted_area",
    "gt_area",
    "note",
)
EXTENDED_METRIC_COLUMNS = (
    "network",
    "expression",
    *CONTINUOUS_METRICS,
    *LOCALISATION_SCORES,
    "iou",
    "iou_ci_low",
    "iou_ci_high",
    "n_images",
    "n_boot",
    "note",
)
DIFFERENCE_COLUMNS = (
    "expression",
    "network_a",
    "network_b",
    "iou_a",
    "iou_b",
    "difference",
    "ci_low",
    "ci_high",
    "resolved",
    "n_a",
    "n_b",
    "n_boot",
)


# ---------------------------------------------------------------------------- binary metrics


def score_heatmap(heatmap: Heatmap, mask: np.ndarray, spec: ThresholdSpec) -> dict[str, object]:
    """Binary metrics of one heatmap (NaN with a note when it is empty)."""
    if heatmap.empty:
        nan = float("nan")
        note = f"empty heatmap: {heatmap.reason or 'all zeros'}"
        row = dict.fromkeys(BINARY_METRICS, nan)
        return {**row, "threshold": nan, "predicted_area": 0, "note": note}
    predicted, t = binarize(heatmap.uint8, spec, mask)
    row = binary_metrics(predicted, mask)
    note = "optimistic: threshold chosen against the ground truth" if spec.method == "best" else ""
    return {**row, "threshold": t, "predicted_area": int(predicted.sum()), "note": note}


def metric_rows(
    heatmaps: Mapping[tuple[str, object, str], tuple[Heatmap, object]],
    masks: Mapping[str, np.ndarray],
    spec: ThresholdSpec,
) -> list[dict]:
    """One row per heatmap keyed (network, fold or 'all', expression) → (heatmap, where it came
    from, for messages): the binary metrics plus how the heatmap was binarized
    (:data:`METRICS_COLUMNS` ∪ :data:`THRESHOLD_COLUMNS`), in network, fold, expression order."""
    keys = sorted(heatmaps, key=lambda k: (k[0], k[1] != "all", k[1], EXPRESSIONS.index(k[2])))
    rows = []
    for net, fold, expr in keys:
        heatmap, where = heatmaps[(net, fold, expr)]
        mask = mask_for(masks, expr, heatmap.uint8.shape, where)
        scored = score_heatmap(heatmap, mask, spec)
        rows.append(
            {
                "network": net,
                "fold": fold,
                "expression": expr,
                **{m: scored[m] for m in BINARY_METRICS},
                "threshold_method": spec.label,
                "threshold": scored["threshold"],
                "predicted_area": scored["predicted_area"],
                "gt_area": int(mask.sum()),
                "note": scored["note"],
            }
        )
    return rows


def compare_heatmaps(
    heatmaps: Mapping[tuple[str, str], Heatmap | np.ndarray],
    masks: Mapping[str, np.ndarray],
    threshold: str = "otsu",
) -> list[dict]:
    """IoU, F1, precision and recall of heatmaps keyed (network, expression) against the masks of
    their expressions, after ``threshold`` (``otsu`` as the paper, ``fixed:V``, ``topk:P``,
    ``best``): one row per heatmap, as ``metrics.csv``. Arrays are taken as stretched [0, 1] maps."""
    given = {
        (net, "all", expr): (h if isinstance(h, Heatmap) else heatmap_from_mean(h), f"{net}/{expr}")
        for (net, expr), h in heatmaps.items()
    }
    return metric_rows(given, masks, parse_threshold(threshold))


# ------------------------------------------------------------------------------------ bootstrap


def seed_for(seed: int, key: str) -> np.random.Generator:
    """A generator per (network, expression) that does not depend on the processing order."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(key.encode())]))


def bootstrap_iou(
    stack_paths: Sequence[str | os.PathLike],
    mask: np.ndarray,
    n_boot: int = 200,
    rng: np.random.Generator | None = None,
    chunk: int = 64,
    batch: int = 100,
) -> np.ndarray:
    """IoU of ``n_boot`` re-aggregated heatmaps, each from the explained images drawn with
    replacement (pooled over the given stacks), stretched, Otsu-thresholded.

    Each resample is a count vector c (how often each image was drawn); its pooled mean is
    ``c @ maps / n``. The maps are streamed once per batch of resamples, so memory is
    ``batch × canvas``, independent of the number of images.
    """
    rng = rng or np.random.default_rng(0)
    _, n = count_maps(stack_paths)
    if n == 0:
        return np.full(n_boot, np.nan)
    draws = rng.integers(0, n, size=(n_boot, n))
    # Row b of `counts` = how often each image was drawn in resample b (one bincount for all rows).
    flat_draws = (draws + np.arange(n_boot)[:, None] * n).ravel()
    counts = np.bincount(flat_draws, minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)
    ious = np.empty(n_boot)
    for start in range(0, n_boot, batch):
        block = counts[start : start + batch]
        sums = np.zeros((len(block), mask.size), dtype=np.float64)
        offset = 0
        for maps in valid_map_chunks(stack_paths, chunk):
            flat = maps.reshape(len(maps), -1)
            sums += block[:, offset : offset + len(maps)] @ flat
            offset += len(maps)
        means = sums / n
        low = means.min(axis=1, keepdims=True)
        high = means.max(axis=1, keepdims=True)
        stretchable = (high > low) & (high > 0)
        stretched = np.where(
            stretchable, (means - low) / np.where(stretchable, high - low, 1), means
        )
        images = to_uint8(stretched).reshape(len(block), *mask.shape)
        thresholds = otsu_thresholds(images)
        predicted = images > thresholds[:, None, None]
        ious[start : start + len(block)] = binary_metrics_batch(predicted, mask)["iou"]
    return ious


def extended_metric_rows(
    heatmaps: Mapping[tuple[str, str], tuple[Heatmap, object]],
    masks: Mapping[str, np.ndarray],
    stacks: Mapping[str, Sequence[str]] | None,
    n_boot: int = 200,
    seed: int = 0,
    top_k: int = DEFAULT_K,
) -> list[dict]:
    """Per by-network heatmap keyed (network, expression) → (heatmap, where): continuous metrics,
    Quantus's localisation scores (``top_k`` for its top-k intersection) and the bootstrap 95 % CI
    of the Otsu IoU over the stacks of ``stacks['Network/Expression']``."""
    rows = []
    for net, expr in sorted(heatmaps, key=lambda k: (k[0], EXPRESSIONS.index(k[1]))):
        heatmap, where = heatmaps[(net, expr)]
        mask = mask_for(masks, expr, heatmap.uint8.shape, where)
        row: dict[str, object] = {"network": net, "expression": expr}
        if heatmap.empty:
            empty = (*CONTINUOUS_METRICS, *LOCALISATION_SCORES, "iou", "iou_ci_low", "iou_ci_high")
            row |= dict.fromkeys(empty, np.nan)
            rows.append(row | {"n_images": 0, "n_boot": 0, "note": "empty heatmap"})
            continue
        predicted, _ = binarize(heatmap.uint8, ThresholdSpec("otsu"))
        row |= continuous_metrics(heatmap.stretched, mask)
        scores = localisation_scores(heatmap.stretched[None], mask, k=top_k)
        row |= {name: float(values[0]) for name, values in scores.items()}
        row["iou"] = binary_metrics(predicted, mask)["iou"]
        paths = list((stacks or {}).get(f"{net}/{expr}", []))
        low = high = float("nan")
        note = "" if paths else "no stacks given: no bootstrap"
        if paths and n_boot > 0:
            ious = bootstrap_iou(paths, mask, n_boot, seed_for(seed, f"{net}/{expr}"))
            low, high = percentile_interval(ious)
        n_images = count_maps(paths)[1] if paths else 0
        rows.append(
            row
            | {"iou_ci_low": low, "iou_ci_high": high, "n_images": n_images}
            | {"n_boot": n_boot if paths else 0, "note": note}
        )
    return rows


# ------------------------------------------------------------- paired differences between networks


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) counts: how often each of ``n`` items is drawn in each of ``n_boot`` resamples
    of n draws with replacement (drawn as :func:`bootstrap_iou` draws)."""
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (draws + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n)


def paired_bootstrap_ious(
    stacks: Mapping[str, Sequence[str | os.PathLike]],
    mask: np.ndarray,
    n_boot: int = 200,
    rng: np.random.Generator | None = None,
    chunk: int = 64,
    batch: int = 100,
) -> dict[str, np.ndarray]:
    """Otsu IoU of ``n_boot`` paired resamples of every network's heatmap (network → (n_boot,)).

    Paired: resample b draws, with replacement, as many images as the networks explained in all
    (the union of their valid maps' image ids) from that union; every network then pools its own
    maps of the drawn images, each as often as it was drawn (``counts @ maps / counts.sum()``,
    streamed once per batch by :func:`ferxai.heatmaps.pooling.resampled_heatmaps`), stretched, quantized,
    Otsu-thresholded. The same images are resampled for every network, so differences taken within
    a replicate are paired. A network none of whose images was drawn gets NaN in that replicate.
    """
    rng = rng or np.random.default_rng(0)
    ids = {net: valid_image_ids(paths) for net, paths in stacks.items()}
    union = sorted(set().union(*ids.values())) if ids else []
    if not union or n_boot <= 0:
        return {net: np.full(max(n_boot, 0), np.nan) for net in stacks}
    counts = resample_counts(len(union), n_boot, rng)
    position = {image_id: k for k, image_id in enumerate(union)}
    ious = {}
    for net, paths in stacks.items():
        own = counts[:, [position[i] for i in ids[net]]]
        values = np.full(n_boot, np.nan)
        for start in range(0, n_boot, batch):
            block = own[start : start + batch]
            images = resampled_heatmaps(paths, block, chunk)
            predicted = images > otsu_thresholds(images)[:, None, None]
            batch_ious = binary_metrics_batch(predicted, mask)["iou"]
            values[start : start + len(block)] = np.where(block.sum(axis=1) > 0, batch_ious, np.nan)
        ious[net] = values
    return ious


def iou_difference_rows(
    heatmaps: Mapping[tuple[str, str], tuple[Heatmap, object]],
    masks: Mapping[str, np.ndarray],
    stacks: Mapping[str, Sequence[str]] | None,
    groups: Mapping[str, Sequence[str]] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> list[dict]:
    """Paired bootstrap 95 % CIs of the Otsu-IoU difference of every pair of networks, and of the
    groups' mean IoUs, per expression (:data:`DIFFERENCE_COLUMNS`).

    ``heatmaps``: (network, expression) → (by-network heatmap, where); ``stacks``:
    ``'Network/Expression'`` → its normalized stacks. Networks with an empty heatmap or without
    valid maps are left out. ``difference`` = ``iou_a − iou_b`` of the observed heatmaps; the CI
    is the percentile interval of the within-replicate differences of
    :func:`paired_bootstrap_ious` (one generator per expression, ``seed_for(seed,
    'differences/Expression')``: independent of the per-network CIs of
    :func:`extended_metric_rows`). ``resolved``: the CI excludes 0. Group rows (each pair of
    ``groups``, names in ``network_a``/``network_b``): the difference of the members' mean IoUs,
    ``n_a``/``n_b`` their images in all. Rows in expression order, pairs in the paper's network
    order, then the group rows.
    """
    stacks = stacks or {}
    rows: list[dict] = []
    for expr in EXPRESSIONS:
        observed: dict[str, float] = {}
        n_images: dict[str, int] = {}
        mask = None
        for net in network_order([n for n, e in heatmaps if e == expr]):
            heatmap, where = heatmaps[(net, expr)]
            paths = list(stacks.get(f"{net}/{expr}", []))
            if heatmap.empty or not paths or count_maps(paths)[1] == 0:
                continue
            mask = mask_for(masks, expr, heatmap.uint8.shape, where)
            predicted, _ = binarize(heatmap.uint8, ThresholdSpec("otsu"))
            observed[net] = binary_metrics(predicted, mask)["iou"]
            n_images[net] = count_maps(paths)[1]
        if len(observed) < 2:
            continue
        rng = seed_for(seed, f"differences/{expr}")
        nets_stacks = {net: stacks[f"{net}/{expr}"] for net in observed}
        boot = paired_bootstrap_ious(nets_stacks, mask, n_boot, rng)
        pairs = [(a, [a], b, [b]) for a, b in combinations(observed, 2)]
        for (name_a, nets_a), (name_b, nets_b) in combinations((groups or {}).items(), 2):
            members_a = [n for n in nets_a if n in observed]
            members_b = [n for n in nets_b if n in observed]
            if members_a and members_b:
                pairs.append((name_a, members_a, name_b, members_b))
        for name_a, members_a, name_b, members_b in pairs:
            iou = [np.mean([observed[n] for n in m]) for m in (members_a, members_b)]
            replicates = [np.mean([boot[n] for n in m], axis=0) for m in (members_a, members_b)]
            low, high = (
                percentile_interval(replicates[0] - replicates[1])
                if n_boot > 0
                else (float("nan"), float("nan"))
            )
            rows.append(
                {
                    "expression": expr,
                    "network_a": name_a,
                    "network_b": name_b,
                    "iou_a": float(iou[0]),
                    "iou_b": float(iou[1]),
                    "difference": float(iou[0] - iou[1]),
                    "ci_low": low,
                    "ci_high": high,
                    "resolved": bool(low > 0 or high < 0),
                    "n_a": sum(n_images[n] for n in members_a),
                    "n_b": sum(n_images[n] for n in members_b),
                    "n_boot": n_boot,
                }
            )
    return rows
