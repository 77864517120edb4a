"""Is a set of 68 landmarks a face? A plausibility check against the canonical face.

Each face's 68 points are aligned to the canonical template's (``canonical_template.json``) by the
similarity (translation, rotation, uniform scale; no reflection) that fits them best in the
least-squares sense (Procrustes). The **residual** is the RMS distance left after that alignment
divided by the RMS spread of the template about its centroid: 0 for a face of exactly the
template's shape, at any position, size and in-plane rotation; about 1 for points that carry no
face shape at all (scattered or shuffled); scale-free, so the same threshold holds for a 48 px and
a 4000 px photo. Faces above ``max_residual`` are *implausible*: the landmark stage records them as
failures (``ok=False``, reason ``implausible landmarks (Procrustes residual R > T)``) and the maps
of their images are left out, like the maps of faces without landmarks.

Measured (docs/normalization.md, "Plausibility"): synthetic faces 0.04-0.22, dlib on the astronaut
photo 0.14-0.16, a simulated 45 degree head turn 0.27; points off by one index 0.48, regions swapped
0.82, shuffled, scattered, mirrored or x/y-swapped points 0.94-1. Default 0.4.

Also the small helpers of the landmark QA figure: the seeded sample of faces per expression and the
region colouring of the 68 points.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np

TEMPLATE_FILE = "canonical_template.json"
DEFAULT_MAX_RESIDUAL = 0.4
IMPLAUSIBLE = "implausible landmarks"

# The iBUG 68-point regions, for drawing: name -> (first, last + 1)
REGIONS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17),
    "brows": (17, 27),
    "nose": (27, 36),
    "eyes": (36, 48),
    "mouth": (48, 68),
}
REGION_COLORS: dict[str, str] = {
    "jaw": "#ffd92f",
    "brows": "#e78ac3",
    "nose": "#66c2a5",
    "eyes": "#8da0cb",
    "mouth": "#fc8d62",
}


@functools.cache
def template_landmarks() -> np.ndarray:
    """The canonical 68 landmarks (68, 2) ``[x, y]`` from the packaged template (read directly: the
    landmark stage must not import the warp, which imports the landmark stage)."""
    text = resources.files("ferxai.resources").joinpath(TEMPLATE_FILE).read_text(encoding="utf-8")
    points = np.asarray(json.loads(text)["landmarks_68"], dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"{TEMPLATE_FILE}: landmarks_68 has shape {points.shape}, not (68, 2)")
    points.setflags(write=False)
    return points


def procrustes_residual(points: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Normalized similarity-Procrustes residual of landmarks (..., 68, 2) to ``reference``
    (default the canonical template): shape (...,), in [0, 1]; NaN where a face has non-finite
    or coincident points."""
    reference = template_landmarks() if reference is None else np.asarray(reference, np.float64)
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-2:] != reference.shape:
        raise ValueError(f"landmarks must be (..., 68, 2), got {points.shape}")
    batch = points.reshape(-1, *reference.shape)
    ref = reference - reference.mean(axis=0)
    ref_norm2 = float((ref**2).sum())
    src = batch - batch.mean(axis=1, keepdims=True)
    src_norm2 = (src**2).sum(axis=(1, 2))
    # cross-covariance as a complex number: rotation + scale that best maps src onto ref
    # (2-D similarity Procrustes; the optimum is |sum conj(z_src) z_ref|, reflections excluded)
    z_src = src[..., 0] + 1j * src[..., 1]
    z_ref = ref[:, 0] + 1j * ref[:, 1]
    cross = np.abs((np.conj(z_src) * z_ref).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        # min over s, R of |s R src - ref|^2 = |ref|^2 - cross^2 / |src|^2
        left = ref_norm2 - cross**2 / src_norm2
        residual = np.sqrt(np.clip(left, 0.0, None) / ref_norm2)
    residual = np.where(np.isfinite(batch).all(axis=(1, 2)) & (src_norm2 > 0), residual, np.nan)
    return residual.reshape(points.shape[:-2])


def implausible_reason(residual: float, max_residual: float) -> str:
    return f"{IMPLAUSIBLE} (Procrustes residual {residual:.2f} > {max_residual:g})"


def flag_implausible(landmarks: np.ndarray, ok: np.ndarray, reasons: list[str], max_residual):
    """Mark faces whose residual exceeds ``max_residual`` as failures, in place: ``ok`` False,
    landmarks NaN, reason set. Returns (residuals (N,) float32, NaN where there were no landmarks;
    number newly flagged). ``max_residual`` None or ≤ 0 only measures."""
    residual = np.full(len(ok), np.nan, dtype=np.float64)
    if len(ok):
        residual[ok] = procrustes_residual(landmarks[ok])
    if max_residual is None or max_residual <= 0:
        return residual.astype(np.float32), 0
    bad = np.flatnonzero(ok & ~(residual <= max_residual))  # NaN residual (degenerate) is bad too
    for k in bad:
        reasons[k] = implausible_reason(residual[k], max_residual)
    ok[bad] = False
    landmarks[bad] = np.nan
    return residual.astype(np.float32), len(bad)


# ----------------------------------------------------------------------------- the QA sample
def sample_per_expression(
    rows: Sequence[Mapping[str, str]], expressions: Sequence[str], per_expression: int, seed: int
) -> dict[str, list[int]]:
    """Indices of ``rows`` to show: up to ``per_expression`` per expression, drawn without
    replacement with ``seed`` (the same rows every run), in row order."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[int]] = {}
    for expression in expressions:
        candidates = [k for k, row in enumerate(rows) if row.get("expression") == expression]
        if len(candidates) > per_expression:
            candidates = sorted(rng.choice(candidates, per_expression, replace=False).tolist())
        chosen[expression] = candidates
    return chosen


def region_colors() -> list[str]:
    """The colour of each of the 68 points (by :data:`REGIONS`)."""
    colors = [""] * 68
    for name, (first, last) in REGIONS.items():
        colors[first:last] = [REGION_COLORS[name]] * (last - first)
    return colors
