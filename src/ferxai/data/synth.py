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

from ferxai.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS, NEUTRAL
from ferxai.errors import ConfigError
from ferxai.io import atomic_path, write_csv, write_png

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- iBUG index groups
JAW = np.arange(0, 17)
RIGHT_BROW = np.arange(17, 22)  # image left, outer → inner
LEFT_BROW = np.arange(22, 27)  # image right, inner → outer
NOSE_BRIDGE = np.arange(27, 31)
NOSTRILS = np.arange(31, 36)
RIGHT_EYE = np.arange(36, 42)  # outer corner, upper lid (37, 38), inner corner, lower lid (40, 41)
LEFT_EYE = np.arange(42, 48)  # inner corner, upper lid (43, 44), outer corner, lower lid (46, 47)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)
UPPER_LIDS = np.array([37, 38, 43, 44])
LOWER_LIDS = np.array([40, 41, 46, 47])
MOUTH_CORNERS = np.array([48, 54, 60, 64])
UPPER_OUTER_LIP = np.arange(49, 54)
LOWER_OUTER_LIP = np.arange(55, 60)
LOWER_INNER_LIP = np.arange(65, 68)

_FOREHEAD_POINTS = 15  # arc above the brows that closes the face outline (not a landmark)


def _mean_shape() -> np.ndarray:
    """Our neutral 68-point face in the unit frame: x right, y down, jaw top at y = 0."""
    pts = np.zeros((68, 2))
    t = np.linspace(0.0, math.pi, 17)
    cos, sin = np.cos(t), np.sin(t)
    # Super-ellipse jaw: squarer than an ellipse at the cheeks, 1.86 units from jaw top to chin.
    pts[JAW, 0] = -np.sign(cos) * np.abs(cos) ** 0.8
    pts[JAW, 1] = 1.86 * np.abs(sin) ** 1.25
    u = np.linspace(0.0, 1.0, 5)
    pts[RIGHT_BROW, 0] = np.linspace(-0.80, -0.16, 5)
    pts[RIGHT_BROW, 1] = -0.30 - 0.12 * np.sin(math.pi * u)
    pts[LEFT_BROW] = pts[RIGHT_BROW][::-1] * [-1, 1]
    pts[NOSE_BRIDGE, 0] = 0.0
    pts[NOSE_BRIDGE, 1] = np.linspace(-0.11, 0.50, 4)
    pts[NOSTRILS] = [[-0.22, 0.64], [-0.11, 0.69], [0.0, 0.72], [0.11, 0.69], [0.22, 0.64]]
    pts[RIGHT_EYE] = _eye(-0.45, -0.11, half_width=0.17, upper=0.07, lower=0.045)
    pts[LEFT_EYE] = (pts[RIGHT_EYE] * [-1, 1])[[3, 2, 1, 0, 5, 4]]
    pts[OUTER_LIPS] = [
        [-0.40, 1.07], [-0.26, 0.99], [-0.11, 0.96], [0.0, 0.98], [0.11, 0.96], [0.26, 0.99],
        [0.40, 1.07], [0.27, 1.21], [0.12, 1.28], [0.0, 1.29], [-0.12, 1.28], [-0.27, 1.21],
    ]  # fmt: skip
    pts[INNER_LIPS] = [
        [-0.34, 1.07], [-0.12, 1.09], [0.0, 1.095], [0.12, 1.09],
        [0.34, 1.07], [0.12, 1.10], [0.0, 1.105], [-0.12, 1.10],
    ]  # fmt: skip
    return pts


def _eye(cx: float, cy: float, half_width: float, upper: float, lower: float) -> np.ndarray:
    """Right-eye points in iBUG order: outer corner, two upper-lid points, inner corner, lower lid."""
    third = half_width / 3
    return np.array(
        [
            [cx - half_width, cy],
            [cx - third, cy - upper],
            [cx + third, cy - upper],
            [cx + half_width, cy + 0.01],
            [cx + third, cy + lower],
            [cx - third, cy + lower],
        ]
    )


MEAN_SHAPE = _mean_shape()
# Which side a point is on (-1 image left, +1 image right, 0 midline): AUs move points outwards.
_SIDE = np.sign(np.round(MEAN_SHAPE[:, 0], 6))


# ----------------------------------------------------------------------------------- action units
def _au_fields() -> dict[int, np.ndarray]:
    """Landmark displacement (68, 2) of each AU at full intensity, in unit-frame units."""
    fields: dict[int, np.ndarray] = {}

    def field(au: int) -> np.ndarray:
        return fields.setdefault(au, np.zeros((68, 2)))

    inner_weight = np.array([0.0, 0.15, 0.4, 0.75, 1.0])  # along the right brow, outer → inner
    brow_weights = np.concatenate([inner_weight, inner_weight[::-1]])  # both brows, image order
    brows = np.concatenate([RIGHT_BROW, LEFT_BROW])
    field(1)[brows, 1] = -0.14 * brow_weights  # AU1 inner brow raiser
    field(2)[brows, 1] = -0.14 * (1.0 - brow_weights)  # AU2 outer brow raiser
    field(4)[brows, 1] = 0.08  # AU4 brow lowerer: down and together
    field(4)[brows, 0] = -0.07 * brow_weights * _SIDE[brows]
    field(5)[UPPER_LIDS, 1] = -0.06  # AU5 upper lid raiser: eyes wide open
    field(6)[LOWER_LIDS, 1] = -0.03  # AU6 cheek raiser pushes the lower lids up
    field(7)[LOWER_LIDS, 1] = -0.035  # AU7 lid tightener narrows the eye from both lids
    field(7)[UPPER_LIDS, 1] = 0.02
    field(9)[NOSTRILS, 1] = -0.06  # AU9 nose wrinkler lifts the wings, upper lip and inner brows
    field(9)[[29, 30], 1] = -0.03
    field(9)[UPPER_OUTER_LIP, 1] = -0.04
    field(9)[[21, 22], 1] = 0.03
    field(12)[MOUTH_CORNERS] = np.stack([0.08 * _SIDE[MOUTH_CORNERS], np.full(4, -0.10)], 1)
    field(12)[[49, 53, 55, 59], 1] = -0.05  # AU12 lip corner puller: smile
    field(12)[[49, 53, 55, 59], 0] = 0.03 * _SIDE[[49, 53, 55, 59]]
    field(15)[MOUTH_CORNERS, 1] = 0.09  # AU15 lip corner depressor
    field(15)[[55, 59], 1] = 0.03
    field(16)[LOWER_OUTER_LIP, 1] = 0.10 * np.array([0.6, 1.0, 1.0, 1.0, 0.6])  # AU16
    field(16)[LOWER_INNER_LIP, 1] = 0.10
    field(20)[MOUTH_CORNERS] = np.stack([0.10 * _SIDE[MOUTH_CORNERS], np.full(4, 0.01)], 1)
    field(20)[[49, 53, 55, 59], 0] = 0.05 * _SIDE[[49, 53, 55, 59]]  # AU20 lip stretcher
    field(23)[UPPER_OUTER_LIP, 1] = 0.04  # AU23 lip tightener: thin lips, narrower mouth
    field(23)[LOWER_OUTER_LIP, 1] = -0.05
    field(23)[MOUTH_CORNERS, 0] = -0.03 * _SIDE[MOUTH_CORNERS]
    field(26)[LOWER_OUTER_LIP, 1] = 0.22  # AU26 jaw drop: open mouth, lower chin
    field(26)[LOWER_INNER_LIP, 1] = 0.22
    field(26)[MOUTH_CORNERS, 1] = 0.08
    field(26)[JAW[5:12], 1] = 0.18 * np.array([0.3, 0.6, 0.85, 1.0, 0.85, 0.6, 0.3])
    return fields


_FIELDS = _au_fields()
ACTION_UNITS: tuple[int, ...] = tuple(sorted(_FIELDS))
_AU_INDEX = {au: i for i, au in enumerate(ACTION_UNITS)}
_AU_BASIS = np.stack([_FIELDS[au] for au in ACTION_UNITS])  # (n_AU, 68, 2)

# The prototypes the brief asks for (Ekman & Friesen / EMFACS); neutral has none.
EXPRESSION_AUS: dict[str, tuple[int, ...]] = {
    "Anger": (4, 5, 7, 23),
    "Disgust": (9, 15, 16),
    "Fear": (1, 2, 4, 5, 20, 26),
    "Happiness": (6, 12),
    "Sadness": (1, 4, 15),
    "Surprise": (1, 2, 5, 26),
    NEUTRAL: (),
}

# Beyond ~2.5x the open jaw leaves the face outline and the brows reach the hair line.
MAX_EXPRESSIVENESS = 2.5

# Weak random AU activity on every image (blinks, talking...), so one AU alone never decides.
DISTRACTOR_MAX = 0.2


# --------------------------------------------------------------------------------- subject styles
@dataclass(frozen=True)
class Subject:
    """Everything that identifies a synthetic person: geometry and colours."""

    name: str
    shape: np.ndarray  # (68, 2) neutral landmarks in the unit frame
    skin: np.ndarray  # RGB float
    lips: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    background: np.ndarray
    forehead_height: float


def make_subject(name: str, rng: np.random.Generator) -> Subject:
    """Draw one subject: face width/height, eye distance, mouth width, nose length, colours."""

    def vary(mean: float, std: float) -> float:  # clipped at 2 std: every face stays in frame
        return float(np.clip(rng.normal(mean, std), mean - 2 * std, mean + 2 * std))

    shape = MEAN_SHAPE.copy()
    shape[:, 0] *= vary(1.0, 0.05)  # face width
    shape[:, 1] *= vary(1.0, 0.05)  # face height
    eyes = np.concatenate([RIGHT_EYE, LEFT_EYE, RIGHT_BROW, LEFT_BROW])
    shape[eyes, 0] += _SIDE[eyes] * vary(0.0, 0.03)  # eye distance
    shape[np.concatenate([RIGHT_BROW, LEFT_BROW]), 1] += vary(0.0, 0.03)  # brow height
    mouth = np.concatenate([OUTER_LIPS, INNER_LIPS])
    shape[mouth, 0] *= vary(1.0, 0.07)  # mouth width
    nose_root = shape[27, 1]
    nose = np.concatenate([NOSE_BRIDGE, NOSTRILS])
    shape[nose, 1] = nose_root + (shape[nose, 1] - nose_root) * vary(1.0, 0.06)
    shape += np.clip(rng.normal(0.0, 0.008, size=shape.shape), -0.02, 0.02)  # asymmetry

    darkness = rng.uniform(0.0, 1.0)
    skin = (1 - darkness) * np.array([236, 200, 176]) + darkness * np.array([98, 64, 44])
    skin = np.clip(skin * rng.normal(1.0, 0.04, 3), 0, 255)
    hair = rng.choice(np.array([[30, 22, 18], [70, 45, 25], [140, 100, 50], [200, 170, 110],
                                [120, 120, 120], [15, 15, 15]], dtype=float))  # fmt: skip
    return Subject(
        name=name,
        shape=shape,
        skin=skin,
        lips=np.clip(skin * np.array([0.80, 0.52, 0.52]) + [25, 0, 0], 0, 255),
        hair=np.clip(hair * rng.normal(1.0, 0.1, 3), 0, 255),
        iris=rng.choice(np.array([[60, 40, 25], [90, 60, 35], [60, 90, 130], [70, 100, 60]])),
        background=rng.uniform(30, 225, 3),
        forehead_height=rng.uniform(0.9, 1.1),
    )


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
        intensity[_AU_INDEX[au]] = rng.uniform(intensity_min, 1.0)
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
    unit = subject.shape + expressiveness * np.einsum("a,aij->ij", intensity, _AU_BASIS)
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
    forehead = _arc(top_center, half_width, height, 0.0, -math.pi, _FOREHEAD_POINTS)[1:-1]
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
    from ferxai.normalize import canonical_landmarks

    return np.asarray(canonical_landmarks(), dtype=float)


# ------------------------------------------------------------------------------------ synthesize
MANIFEST_COLUMNS = ("path", "expression", "subject", "landmarks")


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
) -> Path:
    """Render the dataset under ``out_dir``; return the manifest path (written last, atomically)."""
    _check_settings(subjects, size, intensity_min, noise, images_per_expression, expressiveness)
    out = Path(out_dir)
    expressions = (*EXPRESSIONS, NEUTRAL) if neutral else EXPRESSIONS
    width = max(3, len(str(subjects)))
    rows = []
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
                write_png(out / "images" / f"{stem}.png", image)
                _write_npy(out / "landmarks" / f"{stem}.npy", landmarks)
                rows.append(
                    {
                        "path": f"images/{stem}.png",
                        "expression": expression,
                        "subject": subject.name,
                        "landmarks": f"landmarks/{stem}.npy",
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
    parser.add_argument("--subjects", type=int, default=20, help="number of synthetic people")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--neutral", action="store_true", help="also render Neutral faces")
    parser.add_argument("--intensity-min", type=float, default=0.5, help="lowest AU intensity")
    parser.add_argument("--noise", type=float, default=0.03, help="noise std, fraction of 255")
    parser.add_argument("--images-per-expression", type=int, default=1)
    parser.add_argument(
        "--expressiveness", type=float, default=1.0, help="AU amplitude scale (2 = caricatured)"
    )


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
    )
    log.info("synth: wrote %s in %.1f s", manifest, time.perf_counter() - start)
