"""Synthetic FACS faces: a small, fully known dataset to run (and test) the whole study offline.

Every subject gets its own face geometry on the iBUG 68-point layout, skin tone, hair, background and
lighting; every image of a subject shows one expression made of FACS action units (AUs) that move
the landmarks and draw features (brows, lids, nose wrinkle, lips, open mouth, nasolabial lines), at
a random intensity, under a small random pose, with noise. Because we know where each expression's
AUs act, we also write a *planted cue* mask per expression on the canonical 224 x 275 face: the
regions a network *could* use, to compare heatmaps with.

The mean face is our own parametric shape (jaw super-ellipse, arched brows, almond eyes, nose line,
two-arc lips) in a unit frame whose origin is the middle of the jaw's top points and whose unit is
half the face width; it is close to, but not read from, the paper's canonical points.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS, NEUTRAL
from ferxai.core.errors import ConfigError
from ferxai.core.io import atomic_path, write_csv, write_png
from ferxai.data.face_model import (
    ACTION_UNITS,
    AU_BASIS,
    AU_INDEX,
    DISTRACTOR_MAX,
    EXPRESSION_AUS,
    FOREHEAD_POINTS,
    INNER_LIPS,
    JAW,
    LEFT_BROW,
    LEFT_EYE,
    MAX_EXPRESSIVENESS,
    NOSE_BRIDGE,
    NOSTRILS,
    OUTER_LIPS,
    RIGHT_BROW,
    RIGHT_EYE,
    Subject,
    make_subject,
)
from ferxai.data.facs import from_intensities

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- render
@dataclass(frozen=True)
class Pose:
    angle_deg: float
    scale: float
    shift: tuple[float, float]  # fraction of the image size

    @staticmethod
    def random(rng: np.random.Generator) -> Pose:
        return Pose(
            angle_deg=rng.uniform(-5, 5),
            scale=rng.uniform(0.95, 1.05),
            shift=(rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)),
        )


def au_intensities(
    expression: str, rng: np.random.Generator, intensity_min: float = 0.5
) -> np.ndarray:
    """Per-AU intensity vector (in ``ACTION_UNITS`` order): the expression's AUs in
    [intensity_min, 1], every other AU a weak distractor in [0, DISTRACTOR_MAX]."""
    intensity = rng.uniform(0.0, DISTRACTOR_MAX, len(ACTION_UNITS))
    for au in EXPRESSION_AUS[expression]:
        intensity[AU_INDEX[au]] = rng.uniform(intensity_min, 1.0)
    return intensity


def render_face(
    subject: Subject,
    intensity: np.ndarray,
    pose: Pose,
    size: int,
    rng: np.random.Generator,
    noise: float = 0.03,
    expressiveness: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face; return (uint8 RGB (size, size, 3), landmarks (68, 2) float32 [x, y] px).

    ``expressiveness`` scales every AU's landmark displacement (1 = the amplitudes of
    ``_au_fields``; 2 = caricatured, which small from-scratch networks learn at 32-64 px)."""
    unit = subject.shape + expressiveness * np.einsum("a,aij->ij", intensity, AU_BASIS)
    to_px = _pixel_transform(pose, size)
    landmarks = to_px(unit)
    au = dict(zip(ACTION_UNITS, intensity, strict=True))
    canvas = _Canvas(size)
    canvas.image[:] = subject.background
    _draw_head(canvas, subject, unit, to_px)
    _draw_wrinkles(canvas, subject, unit, au, to_px)
    _draw_brows(canvas, subject, landmarks)
    _draw_eyes(canvas, subject, landmarks, rng)
    _draw_nose(canvas, subject, landmarks)
    _draw_mouth(canvas, subject, landmarks)
    image = _light_and_noise(canvas.image, rng, noise)
    return image, landmarks.astype(np.float32)


def _pixel_transform(pose: Pose, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """Unit frame → pixels: hair to open-mouth chin fill ~0.9 of the image, then the pose."""
    theta = math.radians(pose.angle_deg)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    pixels_per_unit = 0.27 * size * pose.scale
    face_center = np.array([0.0, 0.55])  # unit-frame point put at the image centre
    offset = size / 2 + np.array(pose.shift) * size

    def to_px(points: np.ndarray) -> np.ndarray:
        return (points - face_center) @ rotation.T * pixels_per_unit + offset

    return to_px


class _Canvas:
    """A float RGB image with anti-aliased drawing helpers (sub-pixel coordinates via ``shift``)."""

    SHIFT = 4

    def __init__(self, size: int):
        self.size = size
        self.image = np.zeros((size, size, 3), dtype=np.float32)
        self.line_px = max(1, round(size / 128))

    def _fixed(self, points: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(points) * (1 << self.SHIFT)).astype(np.int32).reshape(-1, 1, 2)

    def mask(self, draw: Callable[[np.ndarray], None]) -> np.ndarray:
        """Alpha (size, size, 1) in [0, 1] of whatever ``draw`` paints in 255 on a uint8 layer."""
        layer = np.zeros((self.size, self.size), np.uint8)
        draw(layer)
        return (layer.astype(np.float32) / 255.0)[:, :, None]

    def polygon_mask(self, points: np.ndarray) -> np.ndarray:
        import cv2

        return self.mask(
            lambda m: cv2.fillPoly(m, [self._fixed(points)], 255, cv2.LINE_AA, self.SHIFT)
        )

    def polyline_mask(
        self, points: np.ndarray, thickness: float, closed: bool = False
    ) -> np.ndarray:
        import cv2

        width = max(1, round(thickness))
        return self.mask(
            lambda m: cv2.polylines(
                m, [self._fixed(points)], closed, 255, width, cv2.LINE_AA, self.SHIFT
            )
        )

    def circle_mask(self, center: np.ndarray, radius: float) -> np.ndarray:
        import cv2

        c = tuple(int(v) for v in self._fixed(center).ravel())
        r = int(round(radius * (1 << self.SHIFT)))
        return self.mask(lambda m: cv2.circle(m, c, r, 255, -1, cv2.LINE_AA, self.SHIFT))

    def paint(self, alpha: np.ndarray, color: np.ndarray, strength: float = 1.0) -> None:
        """Blend ``color`` in with opacity ``alpha * strength``, only inside alpha's bounding box
        (features are small: blending the whole image each time dominated the render time)."""
        covered = alpha[:, :, 0] > 0
        rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
        if rows.size == 0:
            return
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        weight = alpha[box] * np.float32(strength)
        region = self.image[box]
        region += (np.asarray(color, np.float32) - region) * weight


def _arc(center: np.ndarray, rx: float, ry: float, start: float, stop: float, n: int) -> np.ndarray:
    t = np.linspace(start, stop, n)
    return center + np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)


def _draw_head(canvas: _Canvas, subject: Subject, unit: np.ndarray, to_px) -> None:
    jaw = unit[JAW]
    half_width = (jaw[16, 0] - jaw[0, 0]) / 2
    top_center = np.array([(jaw[0, 0] + jaw[16, 0]) / 2, (jaw[0, 1] + jaw[16, 1]) / 2])
    height = subject.forehead_height
    # Hair: a cap a little larger than the forehead, down to the ears.
    hair = _arc(top_center + [0, 0.25], half_width * 1.13, height * 1.25, math.pi, 2 * math.pi, 25)
    canvas.paint(canvas.polygon_mask(to_px(hair)), subject.hair)
    neck = np.array(
        [jaw[4] + [0.1, 0], jaw[12] - [0.1, 0], jaw[12] + [-0.1, 1.5], jaw[4] + [0.1, 1.5]]
    )
    canvas.paint(canvas.polygon_mask(to_px(neck)), subject.skin * 0.8)
    forehead = _arc(top_center, half_width, height, 0.0, -math.pi, FOREHEAD_POINTS)[1:-1]
    outline = np.concatenate([jaw, forehead])
    canvas.paint(canvas.polygon_mask(to_px(outline)), subject.skin)


def _draw_brows(canvas: _Canvas, subject: Subject, landmarks: np.ndarray) -> None:
    thickness = canvas.size * 0.025
    for brow in (RIGHT_BROW, LEFT_BROW):
        canvas.paint(canvas.polyline_mask(landmarks[brow], thickness), subject.hair * 0.8)


def _draw_eyes(canvas: _Canvas, subject: Subject, landmarks: np.ndarray, rng) -> None:
    gaze = rng.normal(0.0, 0.01 * canvas.size, 2)
    for eye in (RIGHT_EYE, LEFT_EYE):
        points = landmarks[eye]
        opening = canvas.polygon_mask(points)
        width = np.linalg.norm(points[3] - points[0])
        center = points.mean(axis=0) + gaze
        # The iris is a disc of fixed size: wide-open lids (AU5) show sclera above it, tight lids
        # (AU7) cover it; clipping it to the lid opening is what makes that visible.
        canvas.paint(opening, np.array([235, 232, 225]))
        canvas.paint(opening * canvas.circle_mask(center, 0.24 * width), subject.iris)
        canvas.paint(opening * canvas.circle_mask(center, 0.10 * width), np.zeros(3))
        lid = canvas.polyline_mask(points[[0, 1, 2, 3]], canvas.line_px * 1.5)
        canvas.paint(lid, subject.hair * 0.4)
        canvas.paint(canvas.polyline_mask(points[[3, 4, 5, 0]], canvas.line_px), subject.skin * 0.6)


def _draw_nose(canvas: _Canvas, subject: Subject, landmarks: np.ndarray) -> None:
    shade = subject.skin * 0.75
    canvas.paint(canvas.polyline_mask(landmarks[[28, 29, 30]], canvas.line_px), shade, 0.5)
    canvas.paint(canvas.polyline_mask(landmarks[NOSTRILS], canvas.line_px * 1.5), shade)
    for nostril in (32, 34):
        canvas.paint(canvas.circle_mask(landmarks[nostril], canvas.size * 0.012), shade * 0.6)


def _draw_mouth(canvas: _Canvas, subject: Subject, landmarks: np.ndarray) -> None:
    canvas.paint(canvas.polygon_mask(landmarks[OUTER_LIPS]), subject.lips)
    inner = landmarks[INNER_LIPS]
    opening = float(np.mean(inner[[5, 6, 7], 1] - inner[[3, 2, 1], 1]))
    if opening > 0.8:
        interior = canvas.polygon_mask(inner)
        canvas.paint(interior, np.array([45, 12, 18]))
        # Upper teeth: a band under the upper inner lip, clipped to the opening.
        teeth = inner[[0, 1, 2, 3, 4]]
        band = np.concatenate([teeth, teeth[::-1] + [0, min(opening * 0.45, canvas.size * 0.05)]])
        canvas.paint(interior * canvas.polygon_mask(band), np.array([240, 238, 228]))
    seam = canvas.polyline_mask(inner[[0, 1, 2, 3, 4]], canvas.line_px)
    canvas.paint(seam, subject.lips * 0.45)


def _draw_wrinkles(canvas: _Canvas, subject: Subject, unit: np.ndarray, au: dict, to_px) -> None:
    """Furrows whose darkness follows the AU intensity (weak distractors leave them faint)."""
    fold = subject.skin * 0.55
    width = canvas.line_px

    def line(points: np.ndarray, strength: float) -> None:
        if strength > 0.05:
            canvas.paint(canvas.polyline_mask(to_px(points), width), fold, min(1.0, strength))

    brow_y = min(unit[19, 1], unit[24, 1])
    for k in range(2):  # AU1/AU2: horizontal forehead lines (central for AU1, lateral for AU2)
        y = brow_y - 0.18 - 0.13 * k
        line(np.array([[-0.25, y], [0.0, y - 0.03], [0.25, y]]), au[1] * 0.8)
        line(np.array([[-0.7, y + 0.05], [-0.35, y]]), au[2] * 0.8)
        line(np.array([[0.35, y], [0.7, y + 0.05]]), au[2] * 0.8)
    for side in (-1, 1):  # AU4: vertical glabella furrows between the brows
        x = (unit[21, 0] + unit[22, 0]) / 2 + side * 0.05
        line(np.array([[x, unit[21, 1] - 0.05], [x, unit[21, 1] + 0.12]]), au[4])
    for k in range(3):  # AU9: horizontal wrinkles across the nose bridge
        y = unit[27, 1] + 0.05 + 0.07 * k
        line(np.array([[-0.09, y + 0.02], [0.0, y], [0.09, y + 0.02]]), au[9])
    nasolabial = max(au[6], au[12], 0.8 * au[9])
    for wing, corner, side in ((31, 48, -1), (35, 54, 1)):  # AU6/9/12: nasolabial folds
        start = unit[wing] + [0.05 * side, -0.04]
        end = unit[corner] + [0.06 * side, 0.07]
        bulge = (start + end) / 2 + [0.09 * side, 0.0]
        t = np.linspace(0, 1, 8)[:, None]
        line((1 - t) ** 2 * start + 2 * t * (1 - t) * bulge + t**2 * end, nasolabial)
    for corner, side in ((36, -1), (45, 1)):  # AU6: crow's feet at the outer eye corners
        for dy in (-0.05, 0.0, 0.05):
            start = unit[corner] + [0.04 * side, dy]
            line(np.array([start, start + [0.1 * side, dy * 1.5]]), au[6])


def _light_and_noise(image: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A linear lighting gradient in a random direction, a slight camera blur, Gaussian noise."""
    import cv2

    size = image.shape[0]
    direction = rng.uniform(0, 2 * math.pi)
    coords = (np.arange(size, dtype=np.float32) - size / 2) / size
    ramp = math.cos(direction) * coords[None, :] + math.sin(direction) * coords[:, None]
    light = rng.uniform(0.85, 1.1) * (1.0 + rng.uniform(0.0, 0.6) * ramp)
    image = cv2.GaussianBlur(image * light[:, :, None], (0, 0), 0.5 * size / 128)
    image = image + rng.normal(0.0, noise * 255.0, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- planted-cue masks
CUE_MARGIN_PX = 8  # dilation on the 224 x 275 canvas: AUs act around, not only on, the points


def _au_regions() -> dict[int, list[np.ndarray]]:
    """Landmark polygons (iBUG indices) where each AU changes the image (moves or draws)."""
    brows = np.concatenate([RIGHT_BROW, LEFT_BROW])
    eyes = [RIGHT_EYE, LEFT_EYE]
    # Lower lid, crow's feet (towards the jaw's top point) and the nasolabial fold to the mouth.
    cheeks = [np.array([0, 36, 41, 40, 39, 31, 48]), np.array([16, 45, 46, 47, 42, 35, 54])]
    mouth = [OUTER_LIPS]
    return {
        1: [np.array([19, 20, 21, 22, 23, 24]), _FOREHEAD_CENTRAL],
        2: [np.array([17, 18, 19]), np.array([24, 25, 26]), *_FOREHEAD_LATERAL],
        4: [brows, np.array([21, 22, 27, 39, 42])],
        5: eyes,
        6: cheeks + eyes,
        7: eyes,
        9: [np.concatenate([[21, 22, 39, 42], NOSE_BRIDGE, NOSTRILS]), *cheeks],
        12: mouth + cheeks,
        15: mouth,
        16: mouth,
        20: mouth,
        23: mouth,
        26: [np.concatenate([OUTER_LIPS, np.arange(5, 12)])],  # open mouth down to the chin
    }


# Forehead bands where AU1/AU2 draw their lines: a negative index means "that brow point, lifted".
_FOREHEAD_CENTRAL = np.array([19, 24, -24, -19])
_FOREHEAD_LATERAL = (np.array([17, 19, -19, -17]), np.array([24, 26, -26, -24]))


def cue_mask(expression: str, canonical: np.ndarray | None = None) -> np.ndarray:
    """uint8 (275, 224) mask, 255 where ``expression``'s AUs act, drawn on canonical landmarks."""
    import cv2

    points = _canonical_points() if canonical is None else np.asarray(canonical, float)
    mask = np.zeros((CANVAS_HEIGHT, CANVAS_WIDTH), np.uint8)
    regions = _au_regions()
    forehead_lift = 0.6 * (points[8, 1] - points[27, 1]) / 3  # ~ one third of nose-to-chin
    for au in EXPRESSION_AUS[expression]:
        for region in regions[au]:
            polygon = _region_points(points, region, forehead_lift)
            cv2.fillConvexPoly(mask, cv2.convexHull(np.round(polygon).astype(np.int32)), 255)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * CUE_MARGIN_PX + 1,) * 2)
    return cv2.dilate(mask, kernel) if mask.any() else mask


def _region_points(points: np.ndarray, region: np.ndarray, lift: float) -> np.ndarray:
    above = region < 0
    out = points[np.abs(region)].copy()
    out[above, 1] -= lift
    return out


def _canonical_points() -> np.ndarray:
    from ferxai.core.template import canonical_landmarks

    return np.asarray(canonical_landmarks(), dtype=float)


# ------------------------------------------------------------------------------------ synthesize
MANIFEST_COLUMNS = ("path", "expression", "subject", "landmarks", "aus")
# AUs at least this intense are written to the manifest's ``aus`` column (FACS notation, letters in
# five equal intensity bands): the expression's AUs (>= intensity_min) and the stronger distractors
# (uniform in [0, DISTRACTOR_MAX]), so faces of one expression differ in their coded AUs.
AUS_THRESHOLD = 0.15


def _rendered(
    subjects, size, seed, expressions, intensity_min, noise, images_per_expression, expressiveness
):
    """Every face of the set, in manifest order: (stem, subject, expression, image, landmarks,
    AU intensities in ``ACTION_UNITS`` order).
    Each face's random stream depends only on (seed, subject, expression, image), so the files and
    :func:`synthetic_faces` hold the same faces."""
    width = max(3, len(str(subjects)))
    for s in range(subjects):
        subject = make_subject(f"S{s + 1:0{width}d}", np.random.default_rng([seed, s]))
        for e, expression in enumerate(expressions):
            for m in range(images_per_expression):
                rng = np.random.default_rng([seed, s, e + 1, m])
                intensity = au_intensities(expression, rng, intensity_min)
                image, landmarks = render_face(
                    subject, intensity, Pose.random(rng), size, rng, noise, expressiveness
                )
                stem = f"{subject.name}_{expression}"
                stem += f"_{m + 1:02d}" if images_per_expression > 1 else ""
                yield stem, subject.name, expression, image, landmarks, intensity


@dataclass(frozen=True)
class SyntheticFaces:
    """Faces in memory: images (N, size, size, 3) uint8, landmarks (N, 68, 2) float32 ``[x, y]``,
    labels (N,) int64 (index in ``EXPRESSIONS``), subjects (N,) and the AUs each face shows in
    FACS notation (N,), as the manifest's ``aus`` column."""

    images: np.ndarray
    landmarks: np.ndarray
    labels: np.ndarray
    subjects: list[str]
    aus: list[str]


def synthetic_faces(
    subjects: int = 2,
    size: int = 64,
    seed: int = 0,
    images_per_expression: int = 1,
    expressiveness: float = 1.0,
) -> SyntheticFaces:
    """The synthetic FACS faces ``ferxai synth`` renders, in memory (for the Python API and tests):
    the same faces as the files for the same settings."""
    _check_settings(subjects, size, 0.5, 0.03, images_per_expression, expressiveness)
    faces = list(
        _rendered(subjects, size, seed, EXPRESSIONS, 0.5, 0.03, images_per_expression, expressiveness)
    )
    return SyntheticFaces(
        images=np.stack([f[3] for f in faces]),
        landmarks=np.stack([f[4] for f in faces]).astype(np.float32),
        labels=np.array([EXPRESSIONS.index(f[2]) for f in faces], dtype=np.int64),
        subjects=[f[1] for f in faces],
        aus=[
            from_intensities(dict(zip(ACTION_UNITS, f[5].tolist(), strict=True)), AUS_THRESHOLD)
            for f in faces
        ],
    )


def synthesize(
    out_dir: str | Path,
    subjects: int = 20,
    size: int = 128,
    seed: int = 0,
    neutral: bool = False,
    intensity_min: float = 0.5,
    noise: float = 0.03,
    images_per_expression: int = 1,
    expressiveness: float = 1.0,
    aus_threshold: float = AUS_THRESHOLD,
) -> Path:
    """Render the dataset under ``out_dir``; return the manifest path (written last, atomically)."""
    _check_settings(subjects, size, intensity_min, noise, images_per_expression, expressiveness)
    if not 0.0 < aus_threshold <= 1.0:
        raise ConfigError(f"synth --aus-threshold: {aus_threshold} must be in (0, 1] (e.g. 0.15).")
    out = Path(out_dir)
    expressions = (*EXPRESSIONS, NEUTRAL) if neutral else EXPRESSIONS
    rows = []
    for stem, subject, expression, image, landmarks, intensity in _rendered(
        subjects, size, seed, expressions, intensity_min, noise, images_per_expression, expressiveness
    ):
        write_png(out / "images" / f"{stem}.png", image)
        _write_npy(out / "landmarks" / f"{stem}.npy", landmarks)
        rows.append(
            {
                "path": f"images/{stem}.png",
                "expression": expression,
                "subject": subject,
                "landmarks": f"landmarks/{stem}.npy",
                "aus": from_intensities(
                    dict(zip(ACTION_UNITS, intensity.tolist(), strict=True)), aus_threshold
                ),
            }
        )
    for expression in expressions:
        if expression != NEUTRAL:
            write_png(out / "cues" / f"{expression}_cue.png", cue_mask(expression))
    manifest = out / "manifest.csv"
    write_csv(manifest, rows, MANIFEST_COLUMNS)
    return manifest


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def _check_settings(
    subjects, size, intensity_min, noise, images_per_expression, expressiveness
) -> None:
    if subjects < 1:
        raise ConfigError(f"synth --subjects: {subjects} must be ≥ 1 (e.g. 20).")
    if size < 32:
        raise ConfigError(f"synth --size: {size} px is too small to draw a face; use ≥ 32 (128).")
    if not 0.0 <= intensity_min <= 1.0:
        raise ConfigError(f"synth --intensity-min: {intensity_min} must be in [0, 1] (e.g. 0.5).")
    if not 0.0 <= noise <= 1.0:
        raise ConfigError(f"synth --noise: {noise} must be in [0, 1] (std as a fraction of 255).")
    if images_per_expression < 1:
        raise ConfigError(f"synth --images-per-expression: {images_per_expression} must be ≥ 1.")
    if not 0.0 < expressiveness <= MAX_EXPRESSIVENESS:
        raise ConfigError(
            f"synth --expressiveness: {expressiveness} must be in (0, {MAX_EXPRESSIVENESS}] "
            "(1 = natural amplitudes, 2 = caricatured; larger moves features off the face)."
        )


# ------------------------------------------------------------------------------------------- CLI
def cli_synth_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", required=True, type=Path, help="dataset folder to create")
    parser.add_argument("--subjects", type=int, default=24, help="number of synthetic people")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--neutral", action="store_true", help="also render Neutral faces")
    parser.add_argument("--intensity-min", type=float, default=0.5, help="lowest AU intensity")
    parser.add_argument("--noise", type=float, default=0.03, help="noise std, fraction of 255")
    parser.add_argument("--images-per-expression", type=int, default=2)
    parser.add_argument(
        "--expressiveness", type=float, default=1.0, help="AU amplitude scale (2 = caricatured)"
    )
    parser.add_argument(
        "--aus-threshold",
        type=float,
        default=AUS_THRESHOLD,
        help="AUs at least this intense (0-1) go into the manifest's aus column",
    )
    parser.set_defaults(provenance_inputs=(), provenance_outputs=("out_dir",))


def cli_synth(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    manifest = synthesize(
        args.out_dir,
        subjects=args.subjects,
        size=args.size,
        seed=args.seed,
        neutral=args.neutral,
        intensity_min=args.intensity_min,
        noise=args.noise,
        images_per_expression=args.images_per_expression,
        expressiveness=args.expressiveness,
        aus_threshold=args.aus_threshold,
    )
    log.info("synth: wrote %s in %.1f s", manifest, time.perf_counter() - start)
