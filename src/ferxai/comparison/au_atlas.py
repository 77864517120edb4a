"""The action-unit atlas: one region per FACS action unit on the canonical face.

``resources/au_atlas.yaml`` draws, in the point language of the Ekman spec
(:mod:`ferxai.comparison.groundtruth`, docs/groundtruth.md), where each AU's muscle moves the face, with its
FACS source. From it come the per-AU references of the comparison stage: a face's own mask is the
union of the regions of the AUs it shows (:func:`union_mask`), an expression's prototype mask the
union of its prototype AUs (as the Ekman spec lists them, :func:`prototype_aus`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.comparison.groundtruth import (
    SPEC_VERSION,
    _is_int,
    _reject_unknown_keys,
    _validate_named_points,
    _validate_region,
    canonical_points89,
    draw_masks,
)
from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS
from ferxai.core.errors import ConfigError

log = logging.getLogger(__name__)

SHIPPED = "ferxai/resources/au_atlas.yaml"
_TOP_KEYS = {"version", "points", "action_units"}
_AU_KEYS = {"name", "muscle", "source", "regions"}


def load_atlas(path: str | os.PathLike | None = None) -> dict:
    """Read and validate an AU atlas YAML (default: the shipped one).

    Returns ``{"source", "version", "points", "action_units"}``; ``action_units`` maps each AU
    number (ascending) to ``{"name", "muscle", "source", "regions"}``. A problem raises
    :class:`ConfigError` naming the file, the AU and the region.
    """
    import yaml

    source, text = _read_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc}). Fix the syntax.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping with 'points' and 'action_units' "
            "(docs/groundtruth.md, AU atlas)."
        )
    _reject_unknown_keys(raw, _TOP_KEYS, source)
    if raw.get("version", SPEC_VERSION) != SPEC_VERSION:
        raise ConfigError(
            f"{source}: version {raw['version']!r}; this ferxai reads {SPEC_VERSION}."
        )
    named = _validate_named_points(raw.get("points") or {}, source)
    units = raw.get("action_units")
    if not isinstance(units, dict) or not units:
        raise ConfigError(
            f"{source}: 'action_units' must map AU numbers to {{name, source, regions}}."
        )
    bad = [key for key in units if not _is_int(key) or key < 1]
    if bad:
        raise ConfigError(
            f"{source}: action unit key(s) {', '.join(map(repr, bad))} must be positive integers "
            "(the AU numbers, e.g. 12:)."
        )
    validated = {au: _validate_unit(units[au], named, f"{source}: AU{au}") for au in sorted(units)}
    return {"source": source, "version": SPEC_VERSION, "points": named, "action_units": validated}


def _read_text(path: str | os.PathLike | None) -> tuple[str, str]:
    if path is None:
        return SHIPPED, (resources.files("ferxai") / "resources" / "au_atlas.yaml").read_text(
            encoding="utf-8"
        )
    try:
        return str(path), Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the AU atlas ({exc.strerror}). Fix the path (--atlas) or leave "
            "it out for the shipped one."
        ) from exc


def _validate_unit(entry: Any, named: Mapping, where: str) -> dict:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with name, source and regions.")
    _reject_unknown_keys(entry, _AU_KEYS, where)
    for key in ("name", "source"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ConfigError(
                f"{where}: '{key}' must be a non-empty text (the AU's FACS name and where the "
                "region comes from)."
            )
    regions = entry.get("regions")
    if not isinstance(regions, list) or not regions:
        raise ConfigError(f"{where}: 'regions' must be a non-empty list of regions.")
    checked = [_validate_region(r, i, named, set(), where) for i, r in enumerate(regions, 1)]
    return {
        "name": entry["name"].strip(),
        "muscle": str(entry.get("muscle", "")).strip(),
        "source": " ".join(entry["source"].split()),
        "regions": checked,
    }


def atlas_masks(
    atlas: Mapping | None = None,
    canvas: tuple[int, int] = (CANVAS_HEIGHT, CANVAS_WIDTH),
    points: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """Boolean ``canvas`` masks ``{AU number: mask}`` of an atlas (default: the shipped one)."""
    atlas = load_atlas() if atlas is None else atlas
    as_spec = {
        "points": atlas["points"],
        "expressions": {au: {"regions": u["regions"]} for au, u in atlas["action_units"].items()},
    }
    return draw_masks(as_spec, canvas=canvas, points=points)


def union_mask(aus: Iterable[int], masks: Mapping[int, np.ndarray], where: str = "") -> np.ndarray:
    """The union of the atlas regions of ``aus``; an AU without a region raises ConfigError.

    An empty ``aus`` gives an empty mask.
    """
    aus = list(aus)
    missing = sorted(set(aus) - set(masks))
    if missing:
        raise ConfigError(
            f"{where + ': ' if where else ''}AU {', '.join(map(str, missing))} has no region in "
            f"the AU atlas (it has {', '.join(map(str, masks))}); add one to the atlas YAML "
            "(--atlas) or leave those AUs out."
        )
    shape = next(iter(masks.values())).shape
    out = np.zeros(shape, dtype=bool)
    for au in aus:
        out |= masks[au]
    return out


def prototype_aus(spec: Mapping | None = None) -> dict[str, tuple[int, ...]]:
    """Each expression's prototype AUs as the Ekman spec lists them (shipped spec by default)."""
    from ferxai.comparison.groundtruth import load_spec

    spec = load_spec() if spec is None else spec
    return {
        name: tuple(u["au"] for u in entry["action_units"])
        for name, entry in spec["expressions"].items()
    }


def prototype_masks(
    masks: Mapping[int, np.ndarray], prototypes: Mapping[str, Iterable[int]] | None = None
) -> dict[str, np.ndarray]:
    """The atlas union of every expression's prototype AUs, keyed in ``EXPRESSIONS`` order."""
    prototypes = prototype_aus() if prototypes is None else prototypes
    return {
        name: union_mask(prototypes[name], masks, name)
        for name in EXPRESSIONS
        if name in prototypes
    }


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (NaN when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else math.nan


# ------------------------------------------------------------------------------------- outputs


def write_atlas_pngs(masks: Mapping[int, np.ndarray], out_dir: str | os.PathLike) -> list[Path]:
    """``out_dir/AU{n}.png`` (0/255) for every AU; returns the paths written."""
    from ferxai.core.io import write_png

    paths = []
    for au, mask in masks.items():
        path = Path(out_dir) / f"AU{au}.png"
        write_png(path, mask.astype(np.uint8) * 255)
        paths.append(path)
    return paths


def read_atlas_dir(folder: str | os.PathLike) -> dict[int, np.ndarray]:
    """``{AU: bool mask}`` from the ``AU{n}.png`` files of ``folder`` (``--au-dir``'s output)."""
    import re

    from ferxai.core.errors import DataError
    from ferxai.core.io import read_png_gray

    folder = Path(folder)
    found = {}
    for path in folder.glob("AU*.png"):
        match = re.fullmatch(r"AU(\d+)\.png", path.name)
        if match:
            found[int(match[1])] = read_png_gray(path) > 127
    if not found:
        raise DataError(
            f"{folder}: no AU{{n}}.png; write the atlas regions with `ferxai groundtruth --au-dir "
            f"{folder}`."
        )
    return dict(sorted(found.items()))


def save_atlas_figure(atlas: Mapping, masks: Mapping[int, np.ndarray], path) -> None:
    """One panel per AU over the canonical points: the region, the AU's number and FACS name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ferxai.core.io import save_figure

    points = canonical_points89()
    aus = list(masks)
    cols = min(7, len(aus))
    rows = math.ceil(len(aus) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, au in zip(axes.ravel(), aus, strict=False):
        mask = masks[au]
        overlay = np.ones((*mask.shape, 3))
        overlay[mask] = (0.95, 0.6, 0.3)
        ax.imshow(overlay)
        ax.scatter(points[:68, 0], points[:68, 1], s=1.5, c="navy")
        ax.set_title(f"AU{au}\n{atlas['action_units'][au]['name']}", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
