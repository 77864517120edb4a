"""Pooling normalized maps into global heatmaps, as the paper: the mean of every valid map.

Pooling is a sum over every valid map of every given stack divided by their total count (not a mean
of per-stack means), so by-fold, by-network (pooled over folds) and by-expression (pooled over
networks and folds) heatmaps come from the same function. Stacks are read chunk by chunk: memory
does not grow with the number of maps. Plans (:func:`network_plan`, :func:`expression_plan`) say
which stacks pool into which heatmap file; the workflow's rules build them with these functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import DataError
from ferxai.core.io import iter_stack_maps, read_stack
from ferxai.heatmaps.heatmap import (
    CANVAS_SHAPE,
    Heatmap,
    heatmap_from_mean,
    heatmap_stem,
    stretch,
    to_uint8,
)

NO_IMAGES_REASON = "no explained images (the network predicted no image as this expression)"


# ------------------------------------------------------------------------------ reading stacks


def stack_valid(path: str | os.PathLike) -> np.ndarray:
    """The ``valid`` flags of a normalized stack (every map counts when the stack has none)."""
    stack = read_stack(path, load_maps=False)
    n = len(stack)
    valid = stack.extras.get("valid")
    if valid is None:  # stacks made elsewhere may lack it: every map counts
        return np.ones(n, dtype=bool)
    valid = np.asarray(valid, dtype=bool).ravel()
    if valid.size != n:
        raise DataError(
            f"{path}: 'valid' has {valid.size} entries for {n} maps. "
            "Delete the stack and rerun `ferxai normalize` for it."
        )
    return valid


def valid_map_chunks(paths: Sequence[str | os.PathLike], chunk: int = 64) -> Iterator[np.ndarray]:
    """Yield float32 chunks (m, 275, 224) of the valid maps of ``paths``, in order."""
    for path in paths:
        valid = stack_valid(path)
        start = 0
        for maps in iter_stack_maps(path, chunk):
            if maps.shape[1:] != CANVAS_SHAPE:
                raise DataError(
                    f"{path}: maps are {maps.shape[1:]}, not the canonical {CANVAS_SHAPE}. "
                    "Aggregate normalized stacks (`ferxai normalize` output), not raw attributions."
                )
            keep = valid[start : start + len(maps)]
            start += len(maps)
            if keep.any():
                yield np.asarray(maps[keep], dtype=np.float32)


def valid_maps_by_image(paths: Sequence[str | os.PathLike]) -> dict[str, np.ndarray]:
    """image_id → normalized map, for the maps of ``paths`` that normalization marked valid."""
    maps: dict[str, np.ndarray] = {}
    for path in paths:
        stack = read_stack(path)
        for image_id, keep, heat in zip(stack.image_id, stack_valid(path), stack.maps, strict=True):
            if keep:
                maps[image_id] = heat
    return maps


def valid_image_ids(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Image ids of the valid maps of ``paths``, in the order :func:`valid_map_chunks` yields
    the maps (reads no maps)."""
    ids: list[str] = []
    for path in paths:
        stack = read_stack(path, load_maps=False)
        ids += [i for i, keep in zip(stack.image_id, stack_valid(path), strict=True) if keep]
    return ids


def resampled_heatmaps(
    paths: Sequence[str | os.PathLike], counts: np.ndarray, chunk: int = 64
) -> np.ndarray:
    """uint8 heatmaps (B, 275, 224) of B resamples of the valid maps of ``paths``, streamed.

    ``counts`` (B, n valid maps, in :func:`valid_map_chunks` order): how often resample b holds
    each map. Its heatmap is ``counts[b] @ maps / counts[b].sum()``, stretched and quantized as
    :func:`heatmap_from_sum` does (:func:`ferxai.heatmaps.heatmap.stretch`, :func:`to_uint8`); the maps are
    read once for all B rows, never copied per resample (memory: B × canvas). A resample holding
    no map gives zeros.
    """
    counts = np.asarray(counts, dtype=np.float64)
    sums = np.zeros((len(counts), CANVAS_SHAPE[0] * CANVAS_SHAPE[1]), dtype=np.float64)
    offset = 0
    for maps in valid_map_chunks(paths, chunk):
        block = counts[:, offset : offset + len(maps)]
        sums += block @ maps.reshape(len(maps), -1).astype(np.float64)
        offset += len(maps)
    if offset != counts.shape[1]:
        raise DataError(
            f"resampled heatmaps: counts for {counts.shape[1]} maps, the stacks hold {offset} "
            "valid maps. Build the counts from count_maps / valid_image_ids of the same stacks."
        )
    # The arithmetic of stretch() and to_uint8(), in place (no temporaries of B × canvas):
    # mean = sum / n; (mean - low) / (high - low) when high > low and high > 0, else mean as is;
    # floor(x * 255) clipped to 0..255.
    totals = counts.sum(axis=1)
    sums /= np.where(totals > 0, totals, 1.0)[:, None]
    low = sums.min(axis=1, keepdims=True)
    high = sums.max(axis=1, keepdims=True)
    stretchable = (high > low) & (high > 0)
    sums -= np.where(stretchable, low, 0.0)
    sums /= np.where(stretchable, high - low, 1.0)
    sums *= 255.0
    np.floor(sums, out=sums)
    np.clip(sums, 0, 255, out=sums)
    return sums.astype(np.uint8).reshape(len(counts), *CANVAS_SHAPE)


def count_maps(paths: Sequence[str | os.PathLike]) -> tuple[int, int]:
    """(all maps, valid maps) over ``paths``, reading only the small ``valid`` arrays."""
    valids = [stack_valid(p) for p in paths]
    return sum(v.size for v in valids), sum(int(v.sum()) for v in valids)


def stack_sum(path: str | os.PathLike, chunk: int = 64) -> tuple[np.ndarray, int, int]:
    """(sum of the valid maps, valid count, all maps) of one stack, streamed chunk by chunk."""
    total = np.zeros(CANVAS_SHAPE, dtype=np.float64)
    count = 0
    for maps in valid_map_chunks([path], chunk):
        total += maps.sum(axis=0, dtype=np.float64)
        count += len(maps)
    return total, count, stack_valid(path).size


# ------------------------------------------------------------------------------------ pooling


def heatmap_from_sum(
    total: np.ndarray, count: int, reason: str = NO_IMAGES_REASON, attrs: dict | None = None
) -> Heatmap:
    """Finish a pooled sum into a :class:`Heatmap`; ``count == 0`` gives an explicit empty one."""
    attrs = dict(attrs or {})
    if count == 0:
        zeros = np.zeros(total.shape)
        return Heatmap(zeros.astype(np.uint8), zeros.astype(np.float32), zeros, 0, True, reason,
                       attrs)
    mean = np.asarray(total, dtype=np.float64) / count
    stretched = stretch(mean)
    return Heatmap(to_uint8(stretched), stretched.astype(np.float32), mean, count, attrs=attrs)


def global_heatmap(maps: np.ndarray, valid: np.ndarray | None = None) -> Heatmap:
    """Pool normalized maps (N, 275, 224) into a global heatmap, as the paper: the mean of every
    valid map (``valid`` (N,) bool, default all), stretched to [0, 1]. In memory; the workflow
    pools stacks from disk with :func:`pool_stacks`, which gives the same heatmap."""
    maps = np.asarray(maps, dtype=np.float64)
    keep = np.ones(len(maps), bool) if valid is None else np.asarray(valid, dtype=bool)
    total = maps[keep].sum(axis=0) if keep.any() else np.zeros(maps.shape[1:])
    return heatmap_from_sum(total, int(keep.sum()), attrs={"n_maps": len(maps)})


def pool_stacks(
    paths: Sequence[str | os.PathLike],
    chunk: int = 64,
    attrs: dict | None = None,
    cache: dict | None = None,
) -> Heatmap:
    """Pooled mean heatmap of every valid map of every stack in ``paths`` (streamed).

    ``cache`` (path -> :func:`stack_sum`) lets several heatmaps that share stacks — by fold and
    by network — read each stack once.
    """
    cache = {} if cache is None else cache
    total = np.zeros(CANVAS_SHAPE, dtype=np.float64)
    count = n_all = 0
    for path in paths:
        if path not in cache:
            cache[path] = stack_sum(path, chunk)
        stack_total, stack_count, stack_all = cache[path]
        total += stack_total
        count += stack_count
        n_all += stack_all
    reason = NO_IMAGES_REASON
    if n_all > 0 and count == 0:
        reason = (
            f"all {n_all} explained images failed normalization (valid=False: no landmarks); "
            "see results/landmarks/failures.csv"
        )
    info = {"n_maps": n_all, "n_invalid": n_all - count, "sources": [str(p) for p in paths]}
    return heatmap_from_sum(total, count, reason, {**info, **(attrs or {})})


def pooled_by_expression(
    by_expression: Mapping[str, Heatmap], by_network: Mapping[tuple[str, str], Heatmap]
) -> dict[str, Heatmap]:
    """The by-expression heatmaps: ``by_expression`` when given, else pooled from ``by_network``.

    With the by-network HDF5s (``mean`` and ``count``) the pool is exact (sum / total count);
    with PNGs only it is the mean of the stretched maps, each network weighing the same.
    """
    if by_expression:
        return dict(by_expression)
    pooled: dict[str, Heatmap] = {}
    for expr in EXPRESSIONS:
        maps = [m for (_, e), m in by_network.items() if e == expr and not m.empty]
        if not maps:
            continue
        if all(m.mean is not None and m.count for m in maps):
            total = sum(m.mean * m.count for m in maps) / sum(m.count for m in maps)
        else:
            total = np.mean([m.stretched for m in maps], axis=0)
        pooled[expr] = heatmap_from_mean(total)
    return pooled


# -------------------------------------------------------------------------------------- plans

StacksFor = Callable[[Sequence[int], str], list[str]]


def network_stems(
    folder: str, network: str, folds: Sequence[int], by_fold: bool = True
) -> list[tuple[str, str, object]]:
    """(stem, expression, fold) of one network's heatmaps: pooled over ``folds`` (fold 'all')
    and, with ``by_fold``, one per fold."""
    stems = []
    for expression in EXPRESSIONS:
        stems.append((heatmap_stem(folder, expression, network), expression, "all"))
        stems += [(heatmap_stem(folder, expression, network, k), expression, k)
                  for k in (folds if by_fold else ())]
    return stems


def network_plan(
    folder: str,
    network: str,
    method: str,
    folds: Sequence[int],
    stacks_for: StacksFor,
    by_fold: bool = True,
) -> list[dict]:
    """Plan of one network's heatmaps for ``ferxai aggregate --plan``: for each stem the stacks it
    pools (``stacks_for(folds, expression)``) and the attributes it records."""
    return [
        {
            "stacks": stacks_for(folds if fold == "all" else [fold], expression),
            "stem": stem,
            "attrs": {
                "network": network,
                "expression": expression,
                "method": method,
                "fold": fold,
            },
        }
        for stem, expression, fold in network_stems(folder, network, folds, by_fold)
    ]


def expression_plan(folder: str, method: str, stacks_for: Callable[[str], list[str]]) -> list[dict]:
    """Plan of the by-expression heatmaps (every network and fold pooled per expression)."""
    return [
        {
            "stacks": stacks_for(expression),
            "stem": heatmap_stem(folder, expression),
            "attrs": {
                "network": "all",
                "fold": "all",
                "expression": expression,
                "method": method,
            },
        }
        for expression in EXPRESSIONS
    ]
