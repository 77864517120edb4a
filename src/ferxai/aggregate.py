"""Global heatmaps: the pooled mean of normalized maps, histogram-stretched, as in the paper.

Pooling is a sum over every valid map of every given stack divided by their total count (not a mean
of per-stack means), so by-network = pooled over folds and by-expression = pooled over networks and
folds come from the same function. Stacks are read chunk by chunk: memory does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferxai import __version__
from ferxai.constants import CANVAS_HEIGHT, CANVAS_WIDTH
from ferxai.errors import ConfigError, DataError
from ferxai.io import atomic_path, iter_stack_maps, read_png_gray, read_stack, write_png

log = logging.getLogger(__name__)

CANVAS_SHAPE = (CANVAS_HEIGHT, CANVAS_WIDTH)
NO_IMAGES_REASON = "no explained images (the network predicted no image as this expression)"


@dataclass
class Heatmap:
    """A global heatmap: pooled ``mean`` (float64), ``stretched`` (float32) and ``uint8``."""

    mean: np.ndarray
    stretched: np.ndarray
    uint8: np.ndarray
    count: int
    empty: bool = False
    reason: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)


def stretch(mean: np.ndarray) -> np.ndarray:
    """Histogram stretch to [0, 1] (min → 0, max → 1); unchanged if constant or max ≤ 0."""
    values = np.asarray(mean, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high > low and high > 0:
        return (values - low) / (high - low)
    return values.copy()


def to_uint8(stretched: np.ndarray) -> np.ndarray:
    """``trunc(stretched * 255)`` clipped to 0..255, as the paper's ``astype(uint8)``."""
    return np.clip(np.floor(np.asarray(stretched, dtype=np.float64) * 255.0), 0, 255).astype(
        np.uint8
    )


def heatmap_from_sum(
    total: np.ndarray, count: int, reason: str = NO_IMAGES_REASON, attrs: dict | None = None
) -> Heatmap:
    """Finish a pooled sum into a :class:`Heatmap`; ``count == 0`` gives an explicit empty one."""
    attrs = dict(attrs or {})
    if count == 0:
        zeros = np.zeros(total.shape)
        return Heatmap(
            zeros, zeros.astype(np.float32), zeros.astype(np.uint8), 0, True, reason, attrs
        )
    mean = np.asarray(total, dtype=np.float64) / count
    stretched = stretch(mean)
    return Heatmap(mean, stretched.astype(np.float32), to_uint8(stretched), count, attrs=attrs)


def stack_valid(path: str | os.PathLike) -> np.ndarray:
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


def jet_rgb(heatmap_uint8: np.ndarray) -> np.ndarray:
    """JET-coloured RGB rendering (OpenCV COLORMAP_JET, as the paper's figures)."""
    import cv2

    bgr = cv2.applyColorMap(np.asarray(heatmap_uint8, dtype=np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_heatmap(
    heatmap: Heatmap,
    h5_path: str | os.PathLike,
    png_path: str | os.PathLike,
    jet_path: str | os.PathLike | None = None,
) -> None:
    """Write the heatmap HDF5 (mean, stretched, uint8 + attrs), its PNG and optional JET PNG."""
    import h5py

    from ferxai.io import _attr_value

    with atomic_path(h5_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("mean", data=heatmap.mean.astype(np.float64))
            h5.create_dataset("stretched", data=heatmap.stretched.astype(np.float32))
            h5.create_dataset("uint8", data=heatmap.uint8.astype(np.uint8))
            for key, value in heatmap.attrs.items():
                h5.attrs[key] = _attr_value(value)
            h5.attrs["count"] = int(heatmap.count)
            h5.attrs["empty"] = bool(heatmap.empty)
            h5.attrs["reason"] = heatmap.reason
            h5.attrs["ferxai_version"] = __version__
    write_png(png_path, heatmap.uint8)
    if jet_path:
        write_png(jet_path, jet_rgb(heatmap.uint8))


@dataclass
class LoadedHeatmap:
    """A heatmap read back for comparison: ``continuous`` is the stretched float in [0, 1]."""

    uint8: np.ndarray
    continuous: np.ndarray
    empty: bool
    reason: str = ""
    count: int | None = None
    mean: np.ndarray | None = None


def read_heatmap(
    png_path: str | os.PathLike, h5_dir: str | os.PathLike | None = None, use_h5: bool = True
) -> LoadedHeatmap:
    """Read a heatmap PNG and, when present, its ``.h5`` (beside it, or in ``h5_dir``).

    Empty = the HDF5 says ``empty`` or the PNG is all zeros. ``continuous`` is the HDF5's
    ``stretched`` array when available, else PNG / 255.
    """
    png_path = Path(png_path)
    image = read_png_gray(png_path)
    h5_path = (Path(h5_dir) if h5_dir else png_path.parent) / (png_path.stem + ".h5")
    if use_h5 and h5_path.is_file():
        import h5py

        with h5py.File(h5_path, "r") as h5:
            empty = bool(h5.attrs.get("empty", False))
            reason = h5.attrs.get("reason", "")
            reason = reason.decode() if isinstance(reason, bytes) else str(reason)
            continuous = np.asarray(h5["stretched"][...], dtype=np.float64)
            mean = np.asarray(h5["mean"][...], dtype=np.float64) if "mean" in h5 else None
            count = int(h5.attrs["count"]) if "count" in h5.attrs else None
        if continuous.shape != image.shape:
            raise DataError(
                f"{h5_path}: its heatmap is {continuous.shape} but {png_path} is {image.shape}. "
                "Delete both and rerun `ferxai aggregate`."
            )
        if not empty and not image.any():
            empty, reason = True, "all-zero heatmap"
        return LoadedHeatmap(image, continuous, empty, reason or "", count, mean)
    empty = not image.any()
    return LoadedHeatmap(image, image / 255.0, empty, "all-zero heatmap" if empty else "")


# ------------------------------------------------------------------------------------------ CLI


def cli_aggregate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stacks", nargs="+", help="normalized stacks to pool")
    parser.add_argument("--out-h5", help="heatmap HDF5 (mean, stretched, uint8)")
    parser.add_argument("--out-png", help="grayscale uint8 heatmap PNG")
    parser.add_argument("--out-jet", default=None, help="optional JET-coloured PNG")
    parser.add_argument(
        "--attrs", default="{}", help="JSON object of attributes (network, fold, expression...)"
    )
    parser.add_argument(
        "--plan",
        action="append",
        default=[],
        help='JSON list of {"stacks": [...], "stem": PATH, "attrs": {...}}: several heatmaps '
        "(STEM.png, STEM.h5, STEM_jet.png) in one process, each stack read once (repeatable)",
    )
    parser.add_argument("--chunk", type=int, default=64, help="maps read at a time (memory)")


def _json_arg(text: str, flag: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag}: not valid JSON ({exc}).") from exc
    if not isinstance(value, kind):
        raise ConfigError(f"{flag}: must be a JSON {kind.__name__}.")
    return value


def cli_aggregate(args: argparse.Namespace) -> None:
    from ferxai import provenance

    if args.chunk < 1:
        raise ConfigError(f"--chunk {args.chunk}: must be at least 1.")
    jobs = [job for plan in args.plan for job in _json_arg(plan, "--plan", list)]
    if args.stacks:
        if not (args.out_h5 and args.out_png):
            raise ConfigError("aggregate: --stacks needs --out-h5 and --out-png.")
        attrs = _json_arg(args.attrs, "--attrs", dict)
        jobs.append(
            {
                "stacks": args.stacks,
                "attrs": attrs,
                "out": (args.out_h5, args.out_png, args.out_jet),
            }
        )
    if not jobs:
        raise ConfigError("aggregate: give --stacks (with --out-h5/--out-png) or --plan.")
    cache: dict = {}
    for job in jobs:
        stem = job.get("stem")
        out_h5, out_png, out_jet = job.get("out") or (
            f"{stem}.h5",
            f"{stem}.png",
            f"{stem}_jet.png",
        )
        heatmap = pool_stacks(job["stacks"], args.chunk, job.get("attrs", {}), cache)
        write_heatmap(heatmap, out_h5, out_png, out_jet)
        # One record per heatmap, naming exactly the stacks it pools.
        record = provenance.build(job["stacks"], job.get("attrs", {}), {"command": "aggregate"})
        for path in (out_h5, out_png):
            provenance.write_sidecar(path, record)
        if heatmap.empty:
            log.warning("%s: empty heatmap: %s", out_png, heatmap.reason)
        else:
            log.info("%s: pooled %d maps", out_png, heatmap.count)
