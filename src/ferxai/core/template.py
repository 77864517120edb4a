"""The paper's canonical face space: the 224 × 275 canvas, its 89-point mesh and triangles.

Canonical space (Gaya-Morey et al. 2024): a 224 wide x 275 high canvas whose 68 landmarks are what
dlib's 68-point shape predictor returns on an all-black image for the face box (0, 0, 224, 250).
The mesh has 89 points, numbered as in the paper's figure (0-based here):

* 0-67: the 68 landmarks (iBUG/dlib order);
* 68-84: the 17 jaw points (0-16) copied to the top edge (y = 0), so the forehead is warped too;
* 85-88: the canvas corners top-left, bottom-left, top-right, bottom-right.

As the reference implementation (its ``get_points``), the corners are (0, 0), (0, H), (W, 0),
(W, H), on the canvas and in every source image of width W and height H, so an image of the
canvas size with the canonical landmarks warps onto itself exactly. The template is shipped as
``resources/canonical_template.json``; ``ferxai make-template``
(:mod:`ferxai.normalization.make_template`) regenerates it from dlib.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, FACE_BOX
from ferxai.core.errors import ConfigError

log = logging.getLogger(__name__)

TEMPLATE_FORMAT = "ferxai-canonical-template/1"
TEMPLATE_RESOURCE = "canonical_template.json"
N_LANDMARKS = 68
N_JAW = 17
N_POINTS = N_LANDMARKS + N_JAW + 4


# ------------------------------------------------------------------------------------- template


@dataclass(frozen=True, eq=False)
class CanonicalTemplate:
    """The canonical mesh: canvas size, face box, 68 landmarks, 89 mesh points and triangles."""

    canvas_width: int
    canvas_height: int
    face_box: tuple[int, int, int, int]
    landmarks: np.ndarray  # (68, 2) [x, y]
    points: np.ndarray  # (89, 2) [x, y]
    triangles: np.ndarray  # (T, 3) int, indices into points

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape of a canonical map: (height, width)."""
        return self.canvas_height, self.canvas_width

    def key(self) -> str:
        """Content digest, so warp tables are cached per distinct mesh, not per object."""
        digest = hashlib.sha1(np.asarray(self.shape, np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.points, np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.triangles, np.int64).tobytes())
        return digest.hexdigest()

    def to_json(self) -> dict:
        x0, y0, x1, y1 = self.face_box
        return {
            "format": TEMPLATE_FORMAT,
            "canvas_width": self.canvas_width,
            "canvas_height": self.canvas_height,
            "face_box": [x0, y0, x1, y1],
            "margin_bottom": self.canvas_height - y1,
            "point_order": (
                "0-67 dlib/iBUG 68 landmarks; 68-84 jaw points 0-16 copied to y=0; "
                "85-88 canvas corners top-left, bottom-left, top-right, bottom-right"
            ),
            "landmarks_68": _as_json_numbers(self.landmarks),
            "points_89": _as_json_numbers(self.points),
            "triangles": self.triangles.astype(int).tolist(),
        }


def _as_json_numbers(array: np.ndarray) -> list:
    """Integers stay integers in the JSON (dlib returns whole pixels)."""
    array = np.asarray(array, dtype=np.float64)
    if np.array_equal(array, np.round(array)):
        return array.astype(np.int64).tolist()
    return array.tolist()


def mesh_points(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """The 89 mesh points of landmarks (..., 68, 2) in a ``width`` x ``height`` grid: (..., 89, 2).

    Landmarks, then the jaw (points 0-16) copied to y = 0, then the corners TL, BL, TR, BR at
    (0, 0), (0, height), (width, 0), (width, height), as the reference implementation.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (N_LANDMARKS, 2):
        raise ValueError(f"landmarks must be (..., 68, 2) [x, y], got {landmarks.shape}")
    top = landmarks[..., :N_JAW, :].copy()
    top[..., 1] = 0.0
    right, bottom = float(width), float(height)
    corners = np.array([[0.0, 0.0], [0.0, bottom], [right, 0.0], [right, bottom]])
    corners = np.broadcast_to(corners, (*landmarks.shape[:-2], 4, 2))
    return np.concatenate([landmarks, top, corners], axis=-2)


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (T, 3) int32 of the canonical mesh points (qhull's order, kept as is)."""
    from scipy.spatial import Delaunay

    mesh = Delaunay(np.asarray(points, dtype=np.float64))
    if len(mesh.coplanar):
        # A point equal to another (e.g. a top-edge jaw point on a corner) is in no triangle;
        # its twin carries the mesh there, so the warp is unaffected.
        log.warning(
            "canonical mesh points %s coincide with others and are in no triangle",
            sorted(mesh.coplanar[:, 0].tolist()),
        )
    return mesh.simplices.astype(np.int32)


def build_template(
    landmarks: np.ndarray,
    canvas_width: int = CANVAS_WIDTH,
    canvas_height: int = CANVAS_HEIGHT,
    face_box: tuple[int, int, int, int] = FACE_BOX,
) -> CanonicalTemplate:
    """Template from 68 canonical landmarks: adds the 21 extra points and triangulates."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    points = mesh_points(landmarks, canvas_width, canvas_height)
    return CanonicalTemplate(
        canvas_width=int(canvas_width),
        canvas_height=int(canvas_height),
        face_box=tuple(int(v) for v in face_box),
        landmarks=landmarks,
        points=points,
        triangles=triangulate(points),
    )


def check_canvas(width: int, height: int, face_box) -> None:
    x0, y0, x1, y1 = face_box
    if width < 2 or height < 2:
        raise ConfigError(f"canvas size {width}x{height}: use at least 2x2 pixels.")
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ConfigError(
            f"face box {tuple(face_box)} is not inside the {width}x{height} canvas; "
            "use x0 < x1 <= width and y0 < y1 <= height (the paper: 0 0 224 250 on 224x275)."
        )


def packaged_template_path() -> Path:
    return Path(str(resources.files("ferxai") / "resources" / TEMPLATE_RESOURCE))


def load_template(path: str | Path | None = None) -> CanonicalTemplate:
    """The shipped template (``path=None``, cached) or a JSON written by ``make-template``."""
    if path is None:
        return _packaged_template()
    return _read_template(Path(path))


@functools.cache
def _packaged_template() -> CanonicalTemplate:
    return _read_template(packaged_template_path())


def _read_template(path: Path) -> CanonicalTemplate:
    from ferxai.core.io import read_json

    fix = "regenerate it with `ferxai make-template --out PATH`"
    try:
        data = read_json(path)
        template = CanonicalTemplate(
            canvas_width=int(data["canvas_width"]),
            canvas_height=int(data["canvas_height"]),
            face_box=tuple(int(v) for v in data["face_box"]),
            landmarks=np.asarray(data["landmarks_68"], dtype=np.float64),
            points=np.asarray(data["points_89"], dtype=np.float64),
            triangles=np.asarray(data["triangles"], dtype=np.int32),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable canonical template ({exc!r}); {fix}.") from exc
    problems = []
    if template.landmarks.shape != (N_LANDMARKS, 2):
        problems.append(f"landmarks_68 has shape {template.landmarks.shape}, not (68, 2)")
    if template.points.shape != (N_POINTS, 2):
        problems.append(f"points_89 has shape {template.points.shape}, not (89, 2)")
    tri = template.triangles
    if (
        tri.ndim != 2
        or tri.shape[1] != 3
        or tri.min(initial=0) < 0
        or tri.max(initial=0) >= N_POINTS
    ):
        problems.append(f"triangles has shape {tri.shape} or indices outside 0..88")
    if problems:
        raise ConfigError(f"{path}: invalid canonical template: {'; '.join(problems)}; {fix}.")
    return template


def canonical_landmarks(template: CanonicalTemplate | None = None) -> np.ndarray:
    """The 68 canonical landmarks (68, 2) float64, ``[x, y]`` on the canvas."""
    return (template or load_template()).landmarks.copy()


def canonical_points(template: CanonicalTemplate | None = None) -> np.ndarray:
    """The 89 canonical mesh points (89, 2) float64 (see the module docstring for the order)."""
    return (template or load_template()).points.copy()


def canonical_triangles(template: CanonicalTemplate | None = None) -> np.ndarray:
    """The mesh triangles (T, 3) int32, vertex indices into :func:`canonical_points`."""
    return (template or load_template()).triangles.copy()
