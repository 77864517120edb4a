"""The synthetic faces' model: a mean face on the iBUG 68-point layout, the FACS action units
(AUs) that move its landmarks, the prototype AUs of each expression, and the subjects' looks.

The mean face is our own parametric shape (jaw super-ellipse, arched brows, almond eyes, nose line,
two-arc lips) in a unit frame whose origin is the middle of the jaw's top points and whose unit is
half the face width; it is close to, but not read from, the paper's canonical points. Rendering
and the planted-cue masks live in :mod:`ferxai.data.synth`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ferxai.core.constants import NEUTRAL

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

FOREHEAD_POINTS = 15  # arc above the brows that closes the face outline (not a landmark)


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
    ]
    pts[INNER_LIPS] = [
        [-0.34, 1.07], [-0.12, 1.09], [0.0, 1.095], [0.12, 1.09],
        [0.34, 1.07], [0.12, 1.10], [0.0, 1.105], [-0.12, 1.10],
    ]
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
AU_INDEX = {au: i for i, au in enumerate(ACTION_UNITS)}
AU_BASIS = np.stack([_FIELDS[au] for au in ACTION_UNITS])  # (n_AU, 68, 2)

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
                                [120, 120, 120], [15, 15, 15]], dtype=float))
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
