"""Global heatmaps: the one heatmap type, its files, and the names those files carry.

A heatmap is a pooled mean map on the canonical canvas, histogram-stretched to [0, 1] and stored as
an 8-bit PNG (what the paper published and compared) with a sibling HDF5 holding the float arrays
and whether it is empty, plus a JET-coloured PNG for figures. File names follow the paper's
published layout, so heatmaps made elsewhere are read exactly as ferxai's own:

* ``{Network}_{Expression}_heatmap.png``        one network, pooled over its folds (by network)
* ``{Network}_CV{k}_{Expression}_heatmap.png``  one network, one fold (by fold)
* ``{Expression}_heatmap.png``                  every network and fold (by expression)

:func:`heatmap_stem` builds these names (the workflow's rules use it too) and
:func:`discover_heatmaps` parses them back.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferxai import __version__
from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS
from ferxai.core.errors import DataError
from ferxai.core.io import jet_rgb, open_h5, read_dataset, read_png_gray, write_h5, write_png

log = logging.getLogger(__name__)

CANVAS_SHAPE = (CANVAS_HEIGHT, CANVAS_WIDTH)


@dataclass
class Heatmap:
    """A global heatmap.

    ``stretched`` is the pooled mean stretched to [0, 1] (the continuous map every threshold-free
    metric uses) and ``uint8`` its 8-bit image. ``mean`` (the pooled mean before stretching) and
    ``count`` (maps pooled) are known when the heatmap was pooled here or read with its HDF5;
    ``None`` for a bare PNG. ``empty`` heatmaps (nothing pooled, or all zeros) carry a ``reason``.
    """

    uint8: np.ndarray
    stretched: np.ndarray
    mean: np.ndarray | None = None
    count: int | None = None
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


def heatmap_from_mean(mean: np.ndarray, count: int | None = None) -> Heatmap:
    """Stretch a pooled mean into a :class:`Heatmap` (empty when its image is all zeros)."""
    stretched = stretch(mean)
    image = to_uint8(stretched)
    empty = not image.any()
    return Heatmap(
        image, stretched, np.asarray(mean, dtype=np.float64), count, empty,
        "all-zero heatmap" if empty else "",
    )


# ----------------------------------------------------------------------------- file names


def heatmap_stem(
    folder: str | os.PathLike, expression: str, network: str | None = None, fold=None
) -> str:
    """Path without suffix of a heatmap in the published layout (see the module docstring);
    ``network=None`` is the by-expression heatmap. Placeholders such as ``{model}`` pass through."""
    name = f"{expression}_heatmap"
    if network is not None:
        name = f"{network}_{name}" if fold is None else f"{network}_CV{fold}_{name}"
    return f"{folder}/{name}"


def heatmap_paths(stem: str) -> list[str]:
    """The three files of one heatmap: PNG, HDF5 and JET PNG."""
    return [f"{stem}.png", f"{stem}.h5", f"{stem}_jet.png"]


_EXPR = "|".join(EXPRESSIONS)
_BY_FOLD = re.compile(rf"^(?P<network>.+)_CV(?P<fold>\d+)_(?P<expression>{_EXPR})_heatmap\.png$")
_BY_NETWORK = re.compile(rf"^(?P<network>.+)_(?P<expression>{_EXPR})_heatmap\.png$")
_BY_EXPRESSION = re.compile(rf"^(?P<expression>{_EXPR})_heatmap\.png$")


@dataclass
class HeatmapFiles:
    """Heatmap PNGs found in a folder, keyed (network, expression), (network, expression, fold)
    and expression."""

    by_network: dict[tuple[str, str], Path] = field(default_factory=dict)
    by_fold: dict[tuple[str, str, int], Path] = field(default_factory=dict)
    by_expression: dict[str, Path] = field(default_factory=dict)


def discover_heatmaps(folder: str | os.PathLike) -> HeatmapFiles:
    """Find ``*_heatmap.png`` in ``folder`` and its subfolders and classify them by name."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--heatmaps {root}: not a folder. Give the folder holding *_heatmap.png.")
    found = HeatmapFiles()
    seen: dict[object, Path] = {}
    for path in sorted(root.rglob("*_heatmap.png")):
        if path.name.startswith("."):  # temporary files of atomic writes
            continue
        key: object
        if match := _BY_FOLD.match(path.name):
            key = (match["network"], match["expression"], int(match["fold"]))
            found.by_fold[key] = path
        elif match := _BY_EXPRESSION.match(path.name):
            key = match["expression"]
            found.by_expression[key] = path
        elif match := _BY_NETWORK.match(path.name):
            key = (match["network"], match["expression"])
            found.by_network[key] = path
        else:
            log.warning("%s: name not in the published layout; ignored", path)
            continue
        if key in seen:
            raise DataError(
                f"{path} and {seen[key]}: two heatmaps for {key}. Keep one of them in --heatmaps."
            )
        seen[key] = path
    if not (found.by_network or found.by_fold or found.by_expression):
        raise DataError(
            f"--heatmaps {root}: no heatmap named {{Network}}_{{Expression}}_heatmap.png or "
            "{Network}_CV{k}_{Expression}_heatmap.png. Point it at the aggregate output folder."
        )
    return found


# ------------------------------------------------------------------------------ read / write


def write_heatmap(
    heatmap: Heatmap,
    h5_path: str | os.PathLike,
    png_path: str | os.PathLike,
    jet_path: str | os.PathLike | None = None,
) -> None:
    """Write the heatmap HDF5 (mean, stretched, uint8 + attrs; checksummed), its PNG and optional
    JET PNG."""
    mean = heatmap.mean if heatmap.mean is not None else heatmap.stretched
    datasets = {
        "mean": np.asarray(mean, dtype=np.float64),
        "stretched": np.asarray(heatmap.stretched, dtype=np.float32),
        "uint8": np.asarray(heatmap.uint8, dtype=np.uint8),
    }
    attrs = {**heatmap.attrs, "count": int(heatmap.count or 0), "empty": bool(heatmap.empty),
             "reason": heatmap.reason, "ferxai_version": __version__}
    write_h5(h5_path, datasets, attrs)
    write_png(png_path, heatmap.uint8)
    if jet_path:
        write_png(jet_path, jet_rgb(heatmap.uint8))


def read_heatmap(
    png_path: str | os.PathLike, h5_dir: str | os.PathLike | None = None, use_h5: bool = True
) -> Heatmap:
    """Read a heatmap PNG and, when present, its ``.h5`` (beside it, or in ``h5_dir``).

    Empty = the HDF5 says ``empty`` or the PNG is all zeros. ``stretched`` is the HDF5's array
    (as float64) when available, else PNG / 255.
    """
    png_path = Path(png_path)
    image = read_png_gray(png_path)
    h5_path = (Path(h5_dir) if h5_dir else png_path.parent) / (png_path.stem + ".h5")
    if use_h5 and h5_path.is_file():
        with open_h5(h5_path, "heatmap HDF5") as h5:
            empty = bool(h5.attrs.get("empty", False))
            reason = h5.attrs.get("reason", "")
            reason = reason.decode() if isinstance(reason, bytes) else str(reason)
            stretched = np.asarray(read_dataset(h5, "stretched", h5_path), dtype=np.float64)
            mean = read_dataset(h5, "mean", h5_path) if "mean" in h5 else None
            mean = None if mean is None else np.asarray(mean, dtype=np.float64)
            count = int(h5.attrs["count"]) if "count" in h5.attrs else None
        if stretched.shape != image.shape:
            raise DataError(
                f"{h5_path}: its heatmap is {stretched.shape} but {png_path} is {image.shape}. "
                "Delete both and rerun `ferxai aggregate`."
            )
        if not empty and not image.any():
            empty, reason = True, "all-zero heatmap"
        return Heatmap(image, stretched, mean, count, empty, reason or "")
    empty = not image.any()
    return Heatmap(image, image / 255.0, empty=empty, reason="all-zero heatmap" if empty else "")


def load_heatmaps(
    files: Mapping, h5_dir: str | os.PathLike | None = None, use_h5: bool = True
) -> dict:
    """Read every heatmap of ``files`` (key → PNG path) with its HDF5 when present."""
    return {key: read_heatmap(path, h5_dir, use_h5) for key, path in files.items()}
