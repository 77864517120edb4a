"""Ekman/FACS ground-truth masks, drawn from a declarative YAML over the 89 canonical points.

The shipped spec (``resources/ekman_gt.yaml``, schema in ``docs/groundtruth.md``) lists per
expression its action units and the facial regions they move. Each region is a union of filled
triangles/polygons whose vertices are canonical points or points derived from them; filled with
OpenCV exactly like the published masks of Gaya-Morey et al. (2024), it reproduces them pixel for
pixel. Users may point ``--spec`` to their own YAML, or compare against their own reference image
(e.g. an eye-tracking fixation map) with :func:`load_reference_image`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS
from ferxai.errors import ConfigError, DataError

log = logging.getLogger(__name__)

N_POINTS = 89
SPEC_VERSION = 1
SHAPE_KINDS = ("triangles", "strips", "fans", "polygons")
_REGION_KEYS = {"name", "aus", *SHAPE_KINDS}
_EXPRESSION_KEYS = {"action_units", "regions"}
_TOP_KEYS = {"version", "points", "expressions"}
# Floor tolerance: a canonical point stored as 89.9999999 must still land on pixel 90.
_PIXEL_EPS = 1e-6

Point = tuple[float, float]


# ------------------------------------------------------------------------------------ the spec


def load_spec(path: str | os.PathLike | None = None) -> dict:
    """Read and validate a ground-truth YAML (default: the shipped Ekman/FACS spec).

    Returns ``{"source", "version", "points", "expressions"}`` where ``expressions`` maps each
    expression (in ``EXPRESSIONS`` order) to ``{"action_units": [...], "regions": [...]}``.
    Every problem raises :class:`ConfigError` naming the file, the expression and the region.
    """
    import yaml

    source, text = _read_spec_text(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc}). Fix the syntax.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping with 'points' and 'expressions', got "
            f"{type(raw).__name__}. See docs/groundtruth.md for the schema."
        )
    _reject_unknown_keys(raw, _TOP_KEYS, f"{source}")
    if raw.get("version", SPEC_VERSION) != SPEC_VERSION:
        raise ConfigError(
            f"{source}: version {raw['version']!r} is not supported; this ferxai reads version "
            f"{SPEC_VERSION} (docs/groundtruth.md)."
        )
    named = _validate_named_points(raw.get("points") or {}, source)
    expressions = raw.get("expressions")
    if not isinstance(expressions, dict) or not expressions:
        raise ConfigError(
            f"{source}: 'expressions' must be a non-empty mapping of expression -> "
            f"{{action_units, regions}}; expressions are {', '.join(EXPRESSIONS)}."
        )
    unknown = [name for name in expressions if name not in EXPRESSIONS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown expression(s) {', '.join(map(str, unknown))}; "
            f"use {', '.join(EXPRESSIONS)} (capitalized)."
        )
    validated = {
        name: _validate_expression(expressions[name], named, f"{source}: {name}")
        for name in EXPRESSIONS
        if name in expressions
    }
    return {
        "source": source,
        "version": SPEC_VERSION,
        "points": named,
        "expressions": validated,
    }


def _read_spec_text(path: str | os.PathLike | None) -> tuple[str, str]:
    if path is None:
        resource = resources.files("ferxai") / "resources" / "ekman_gt.yaml"
        return "ferxai/resources/ekman_gt.yaml", resource.read_text(encoding="utf-8")
    try:
        return str(path), Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the ground-truth spec ({exc.strerror}). "
            "Fix the path (groundtruth spec setting / --spec) or leave it empty for the shipped one."
        ) from exc


def _reject_unknown_keys(mapping: Mapping, allowed: set[str], where: str) -> None:
    extra = sorted(str(k) for k in mapping if k not in allowed)
    if extra:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}."
        )


def _validate_named_points(points: Any, source: str) -> dict[str, Any]:
    if not isinstance(points, dict):
        raise ConfigError(f"{source}: 'points' must map names to point references.")
    dummy = np.zeros((N_POINTS, 2))
    for name, ref in points.items():
        if not isinstance(name, str) or not name or name[0].isdigit():
            raise ConfigError(
                f"{source}: point name {name!r} must be a string not starting with a digit."
            )
        # Resolving against a dummy point set checks the reference's structure (and cycles).
        _resolve_with_context(ref, dummy, points, f"{source}: points: {name}")
    return dict(points)


def _validate_expression(entry: Any, named: dict, where: str) -> dict:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with 'action_units' and 'regions'.")
    _reject_unknown_keys(entry, _EXPRESSION_KEYS, where)
    units = _validate_action_units(entry.get("action_units") or [], where)
    regions = entry.get("regions")
    if not isinstance(regions, list) or not regions:
        raise ConfigError(f"{where}: 'regions' must be a non-empty list of regions.")
    known_aus = {unit["au"] for unit in units}
    validated = [
        _validate_region(region, i, named, known_aus, where) for i, region in enumerate(regions, 1)
    ]
    return {"action_units": units, "regions": validated}


def _validate_action_units(units: Any, where: str) -> list[dict]:
    if not isinstance(units, list):
        raise ConfigError(f"{where}: 'action_units' must be a list of {{au: N, name: ...}}.")
    out = []
    for unit in units:
        if not isinstance(unit, dict) or not _is_int(unit.get("au")) or unit["au"] < 1:
            raise ConfigError(
                f"{where}: action unit {unit!r} must be a mapping with a positive integer 'au' "
                "and a 'name', e.g. {au: 4, name: Brow lowerer}."
            )
        _reject_unknown_keys(unit, {"au", "name"}, f"{where}: AU{unit['au']}")
        out.append({"au": int(unit["au"]), "name": str(unit.get("name", ""))})
    return out


def _validate_region(region: Any, index: int, named: dict, known_aus: set[int], where: str) -> dict:
    if not isinstance(region, dict):
        raise ConfigError(f"{where}: region #{index} must be a mapping (name, aus, shapes).")
    label = f"{where}: region {region.get('name', f'#{index}')!r}"
    _reject_unknown_keys(region, _REGION_KEYS, label)
    aus = region.get("aus", [])
    if not isinstance(aus, list) or not all(_is_int(a) for a in aus):
        raise ConfigError(f"{label}: 'aus' must be a list of AU numbers, e.g. [1, 2].")
    unlisted = sorted(set(aus) - known_aus)
    if unlisted:
        raise ConfigError(
            f"{label}: AU {', '.join(map(str, unlisted))} not in the expression's action_units; "
            "add it there or remove it from the region."
        )
    shapes = {kind: region[kind] for kind in SHAPE_KINDS if kind in region}
    if not shapes:
        raise ConfigError(f"{label}: no shape; give at least one of {', '.join(SHAPE_KINDS)}.")
    dummy = np.zeros((N_POINTS, 2))
    for kind, lists in shapes.items():
        _check_shape_lists(kind, lists, label)
        for vertex_list in lists:
            for ref in vertex_list:
                _resolve_with_context(ref, dummy, named, f"{label}: {kind}")
    return {"name": str(region.get("name", f"region {index}")), "aus": list(aus), **shapes}


def _check_shape_lists(kind: str, lists: Any, label: str) -> None:
    if not isinstance(lists, list) or not all(isinstance(v, list) for v in lists):
        raise ConfigError(f"{label}: '{kind}' must be a list of point lists, e.g. [[1, 2, 3]].")
    for vertices in lists:
        if kind == "triangles" and len(vertices) != 3:
            raise ConfigError(
                f"{label}: triangle {vertices} has {len(vertices)} points; a triangle needs 3."
            )
        if len(vertices) < 3:
            raise ConfigError(f"{label}: {kind} entry {vertices} needs at least 3 points.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------- points


def resolve_point(
    ref: Any,
    points89: np.ndarray,
    named: Mapping[str, Any] | None = None,
    _seen: tuple[str, ...] = (),
) -> Point:
    """Coordinates ``(x, y)`` of a point reference on the canonical points (89, 2).

    ``ref`` is an integer 1-89, a name from ``named``, or a derived point: ``{mid: [a, b]}``,
    ``{x_of: a, y_of: b}``, ``{lerp: [a, b, t]}`` (``a + t (b - a)``) or
    ``{offset: [a, dx, dy]}``; ``a``/``b`` are references themselves. Coordinates are exact
    (not rounded); :func:`draw_masks` floors them to pixels.
    """
    named = named or {}
    if _is_int(ref):
        if not 1 <= ref <= N_POINTS:
            raise ConfigError(f"point {ref} does not exist; point numbers are 1-{N_POINTS}.")
        x, y = points89[ref - 1]
        return float(x), float(y)
    if isinstance(ref, str):
        if ref not in named:
            known = ", ".join(named) or "none defined"
            raise ConfigError(f"unknown point name {ref!r} (named points: {known}).")
        if ref in _seen:
            raise ConfigError(f"named point {ref!r} refers to itself ({' -> '.join(_seen)}).")
        return resolve_point(named[ref], points89, named, (*_seen, ref))
    if isinstance(ref, dict):
        return _resolve_derived(ref, points89, named, _seen)
    raise ConfigError(
        f"point reference {ref!r} is not an integer 1-{N_POINTS}, a point name or one of "
        "{mid: [a, b]}, {x_of: a, y_of: b}, {lerp: [a, b, t]}, {offset: [a, dx, dy]}."
    )


def _resolve_derived(ref: dict, points89: np.ndarray, named: Mapping, seen: tuple) -> Point:
    def point(sub: Any) -> Point:
        return resolve_point(sub, points89, named, seen)

    keys = set(ref)
    if keys == {"mid"}:
        a, b = _operands(ref["mid"], 2, "mid: [a, b]")
        (ax, ay), (bx, by) = point(a), point(b)
        return (ax + bx) / 2, (ay + by) / 2
    if keys == {"x_of", "y_of"}:
        return point(ref["x_of"])[0], point(ref["y_of"])[1]
    if keys == {"lerp"}:
        a, b, t = _operands(ref["lerp"], 3, "lerp: [a, b, t]")
        (ax, ay), (bx, by) = point(a), point(b)
        t = _number(t, "lerp t")
        return ax + t * (bx - ax), ay + t * (by - ay)
    if keys == {"offset"}:
        a, dx, dy = _operands(ref["offset"], 3, "offset: [a, dx, dy]")
        ax, ay = point(a)
        return ax + _number(dx, "offset dx"), ay + _number(dy, "offset dy")
    raise ConfigError(
        f"derived point {ref!r} has keys {sorted(map(str, keys))}; use exactly one of "
        "{mid: [a, b]}, {x_of: a, y_of: b}, {lerp: [a, b, t]}, {offset: [a, dx, dy]}."
    )


def _operands(value: Any, count: int, form: str) -> list:
    if not isinstance(value, list) or len(value) != count:
        raise ConfigError(f"derived point needs {form}, got {value!r}.")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}.")
    return float(value)


def _resolve_with_context(ref: Any, points89: np.ndarray, named: Mapping, where: str) -> Point:
    try:
        return resolve_point(ref, points89, named)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def canonical_points89() -> np.ndarray:
    """The 89 canonical points (float64, ``[x, y]``) with corners in the figure's numbering.

    Taken from :func:`ferxai.template.canonical_points`; its four corner rows are reordered by
    position (86 top-left, 87 bottom-left, 88 top-right, 89 bottom-right) so the spec's numbers
    mean the same corner whatever order the template stores them in.
    """
    from ferxai.template import canonical_points

    points = np.asarray(canonical_points(), dtype=np.float64)
    if points.shape != (N_POINTS, 2):
        raise ConfigError(
            f"ferxai.template.canonical_points() returned shape {points.shape}, expected "
            f"({N_POINTS}, 2). Regenerate the template with `ferxai make-template`."
        )
    return order_corners(points)


def order_corners(points89: np.ndarray) -> np.ndarray:
    """Return a copy whose rows 86-89 are top-left, bottom-left, top-right, bottom-right."""
    corners = points89[85:89]
    centre = corners.mean(axis=0)
    # (is right, is bottom) -> 0 top-left, 1 bottom-left, 2 top-right, 3 bottom-right
    slot = 2 * (corners[:, 0] > centre[0]) + (corners[:, 1] > centre[1])
    if sorted(slot.tolist()) != [0, 1, 2, 3]:
        raise ConfigError(
            f"canonical points 86-89 {corners.tolist()} are not the four canvas corners. "
            "Regenerate the template with `ferxai make-template`."
        )
    out = points89.copy()
    out[85 + slot] = corners
    return out


# -------------------------------------------------------------------------------------- masks


def region_polygons(region: Mapping, points89: np.ndarray, named: Mapping) -> list[np.ndarray]:
    """The filled pieces of one region as int32 (K, 2) pixel polygons (strips/fans split up)."""
    pieces: list[list] = [*region.get("triangles", [])]
    pieces += [s[i : i + 3] for s in region.get("strips", []) for i in range(len(s) - 2)]
    pieces += [[f[0], f[i], f[i + 1]] for f in region.get("fans", []) for i in range(1, len(f) - 1)]
    pieces += region.get("polygons", [])
    return [_to_pixels([resolve_point(r, points89, named) for r in piece]) for piece in pieces]


def _to_pixels(vertices: Sequence[Point]) -> np.ndarray:
    # Floor, like the int() of the published masks (coordinates are non-negative).
    return np.floor(np.asarray(vertices) + _PIXEL_EPS).astype(np.int32)


def draw_masks(
    spec: Mapping,
    canvas: tuple[int, int] = (CANVAS_HEIGHT, CANVAS_WIDTH),
    points: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Boolean masks ``canvas`` (rows, cols) of every expression in ``spec`` (from :func:`load_spec`).

    ``points`` are the 89 canonical points (default :func:`canonical_points89`).
    """
    import cv2

    points89 = canonical_points89() if points is None else np.asarray(points, dtype=np.float64)
    named = spec.get("points", {})
    masks = {}
    for expression, entry in spec["expressions"].items():
        image = np.zeros(canvas, dtype=np.uint8)
        for region in entry["regions"]:
            # One fill per piece: filling overlapping pieces in one call would cut holes where they
            # overlap, and drawContours(FILLED) includes the edges as the published masks do.
            for polygon in region_polygons(region, points89, named):
                cv2.drawContours(image, [polygon], 0, 255, thickness=cv2.FILLED)
        masks[expression] = image > 0
    return masks


def ekman_masks(spec_path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The six boolean (275, 224) masks keyed Anger ... Surprise (shipped spec by default)."""
    spec = load_spec(spec_path)
    missing = [name for name in EXPRESSIONS if name not in spec["expressions"]]
    if missing:
        raise ConfigError(
            f"{spec['source']}: no regions for {', '.join(missing)}; the Ekman masks need all of "
            f"{', '.join(EXPRESSIONS)}."
        )
    return draw_masks(spec)


def load_masks(
    gt_dir: str | os.PathLike | None = None, pattern: str = "{Expression}_gt.png"
) -> dict[str, np.ndarray]:
    """Boolean masks by expression: ferxai's own Ekman masks, or ``pattern`` files in ``gt_dir``."""
    if gt_dir is None or str(gt_dir) in ("", "default"):
        return {k: np.asarray(v, dtype=bool) for k, v in ekman_masks().items()}
    from ferxai.io import read_png_gray

    folder = Path(gt_dir)
    masks = {}
    for expr in EXPRESSIONS:
        path = folder / pattern.format(Expression=expr)
        if path.is_file():
            masks[expr] = read_png_gray(path) > 127
    if not masks:
        raise DataError(
            f"--gt {folder}: no mask named {pattern}. Give a folder of such PNGs "
            "(white = region) or leave --gt out to use ferxai's Ekman masks."
        )
    return masks


def mask_for(masks: Mapping[str, np.ndarray], expr: str, shape: tuple, where) -> np.ndarray:
    """The mask of ``expr``, checked to exist and to match a heatmap of ``shape`` (from ``where``)."""
    if expr not in masks:
        raise DataError(
            f"{where}: no ground-truth mask for {expr}. Add {expr}_gt.png to --gt or remove the "
            "heatmap."
        )
    mask = masks[expr]
    if mask.shape != shape:
        raise DataError(
            f"{where}: heatmap is {shape} but the {expr} mask is {mask.shape}. Both must be on the "
            "canonical canvas (275 high × 224 wide)."
        )
    return mask


# --------------------------------------------------------------------------- user references


def load_reference_image(
    path: str | os.PathLike,
    threshold: float | str | None = None,
    canvas: tuple[int, int] = (CANVAS_HEIGHT, CANVAS_WIDTH),
) -> np.ndarray:
    """A user reference (grayscale image, e.g. an eye-tracking fixation map) on the canvas.

    Returns float32 in [0, 1] (pixel / 255) when ``threshold`` is None, else a boolean mask:
    ``value >= threshold`` for a number in [0, 1], or Otsu's threshold for ``"otsu"``. An image of
    another size is resized to ``canvas`` (rows, cols) with a warning, since it then only lines up
    with the heatmaps if it was drawn on the same canonical face.
    """
    import cv2

    from ferxai.io import read_png_gray

    image = read_png_gray(path)
    if image.shape != tuple(canvas):
        log.warning(
            "%s: reference is %dx%d (w x h), resized to the %dx%d canonical canvas; make sure it "
            "was drawn on the canonical face.",
            path,
            image.shape[1],
            image.shape[0],
            canvas[1],
            canvas[0],
        )
        shrinking = image.shape[0] * image.shape[1] > canvas[0] * canvas[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (canvas[1], canvas[0]), interpolation=interpolation)
    values = image.astype(np.float32) / 255.0
    if threshold is None:
        return values
    if threshold == "otsu":
        if image.min() == image.max():
            raise DataError(f"{path}: the reference is uniform; Otsu's threshold is undefined.")
        level, _ = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return image > level
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"reference threshold {threshold!r}: use a number in [0, 1] or 'otsu'.")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"reference threshold {threshold}: must lie in [0, 1] (or be 'otsu').")
    return values >= threshold


# ------------------------------------------------------------------------------------- figure


def save_masks_figure(
    spec: Mapping, masks: Mapping[str, np.ndarray], points89: np.ndarray, path: str | os.PathLike
) -> None:
    """Masks over the numbered canonical points, one panel per expression, AUs in the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ferxai.io import save_figure

    names = list(masks)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 5.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names, strict=False):
        _draw_panel(ax, name, masks[name], spec["expressions"][name]["action_units"], points89)
    fig.tight_layout()
    save_figure(fig, path)


def _draw_panel(ax, name: str, mask: np.ndarray, units: Sequence[Mapping], points89) -> None:
    height, width = mask.shape
    overlay = np.ones((height, width, 3))
    overlay[mask] = (0.55, 0.85, 0.55)
    ax.imshow(overlay, extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    ax.scatter(points89[:, 0], points89[:, 1], s=4, c="red", zorder=3)
    for number, (x, y) in enumerate(points89, 1):
        ax.annotate(
            str(number), (x, y), fontsize=4.5, color="navy", xytext=(1.5, -1.5),
            textcoords="offset points",
        )  # fmt: skip
    aus = "\n".join(
        ", ".join(f"AU{u['au']} {u['name']}" for u in units[i : i + 2])
        for i in range(0, len(units), 2)
    )
    ax.set_title(f"{name}\n{aus}", fontsize=7)
    ax.set_xlim(-4, width + 4)
    ax.set_ylim(height + 4, -4)
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------- CLI


def cli_groundtruth_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out-dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder for {Expression}_gt.png (0/255)",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        default=None,
        metavar="YAML",
        help="ground-truth YAML (default: the shipped Ekman spec)",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        metavar="PATH",
        help="also draw the masks over the numbered points",
    )
    parser.set_defaults(provenance_inputs=("spec",), provenance_outputs=("out_dir", "figure"))


def cli_groundtruth(args: argparse.Namespace) -> None:
    from ferxai.io import write_png

    spec = load_spec(args.spec)
    points89 = canonical_points89()
    masks = draw_masks(spec, points=points89)
    missing = [name for name in EXPRESSIONS if name not in masks]
    if missing:
        raise ConfigError(
            f"{spec['source']}: no regions for {', '.join(missing)}; the groundtruth stage writes "
            f"all of {', '.join(EXPRESSIONS)}."
        )
    for name in EXPRESSIONS:
        write_png(args.out_dir / f"{name}_gt.png", masks[name].astype(np.uint8) * 255)
    log.info("wrote %d ground-truth masks to %s", len(EXPRESSIONS), args.out_dir)
    if args.figure is not None:
        save_masks_figure(spec, masks, points89, args.figure)
        log.info("wrote %s", args.figure)
