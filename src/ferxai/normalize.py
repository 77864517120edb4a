"""The paper's canonical face space and the piecewise-affine warp onto it.

Canonical space (Gaya-Morey et al. 2024): a 224 wide x 275 high canvas whose 68 landmarks are what
dlib's 68-point shape predictor returns on an all-black image for the face box (0, 0, 224, 250).
The mesh has 89 points, numbered as in the paper's figure (0-based here):

* 0-67: the 68 landmarks (iBUG/dlib order);
* 68-84: the 17 jaw points (0-16) copied to the top edge (y = 0), so the forehead is warped too;
* 85-88: the canvas corners top-left, bottom-left, top-right, bottom-right.

Corners are pixel centres: (0, 0) ... (W - 1, H - 1), on the canvas and in every source image, so
an image of the canvas size with the canonical landmarks warps onto itself exactly. The mesh is
Delaunay-triangulated once, on the canonical points; every source image uses the same triangles
(same vertex indices) over its own 89 points.

The warp is destination-driven: each canvas pixel's triangle and barycentric weights are computed
once per template; a map's source coordinates are then those weights applied to the triangle's
source vertices (one sparse product for a chunk of maps), and the map is sampled there with
``cv2.remap`` (nearest as the paper, or bilinear). Canvas pixels whose source point falls outside
the source grid (nearest: beyond half a pixel from it) are 0.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ferxai.constants import CANVAS_HEIGHT, CANVAS_WIDTH, FACE_BOX
from ferxai.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TEMPLATE_FORMAT = "ferxai-canonical-template/1"
TEMPLATE_RESOURCE = "canonical_template.json"
N_LANDMARKS = 68
N_JAW = 17
N_POINTS = N_LANDMARKS + N_JAW + 4
ORDERS = ("nearest", "bilinear")
_OUTSIDE = -1.0e4  # source coordinate of the virtual vertex 89: outside any source grid
_CHUNK = 8  # maps per sparse product: amortizes its overhead, keeps coordinates in cache


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

    Landmarks, then the jaw (points 0-16) copied to y = 0, then the corners TL, BL, TR, BR.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (N_LANDMARKS, 2):
        raise ValueError(f"landmarks must be (..., 68, 2) [x, y], got {landmarks.shape}")
    top = landmarks[..., :N_JAW, :].copy()
    top[..., 1] = 0.0
    right, bottom = width - 1.0, height - 1.0
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


def dlib_canonical_landmarks(
    canvas_width: int = CANVAS_WIDTH,
    canvas_height: int = CANVAS_HEIGHT,
    face_box: tuple[int, int, int, int] = FACE_BOX,
) -> np.ndarray:
    """What dlib's 68-point predictor returns on an all-black canvas for ``face_box``: (68, 2)."""
    import dlib

    from ferxai.landmarks import load_dlib_predictor

    _check_canvas(canvas_width, canvas_height, face_box)
    predictor = load_dlib_predictor()
    black = np.zeros((canvas_height, canvas_width, 3), dtype=np.uint8)
    shape = predictor(black, dlib.rectangle(*(int(v) for v in face_box)))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def _check_canvas(width: int, height: int, face_box) -> None:
    x0, y0, x1, y1 = face_box
    if width < 2 or height < 2:
        raise ConfigError(f"canvas size {width}x{height}: use at least 2x2 pixels.")
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ConfigError(
            f"face box {tuple(face_box)} is not inside the {width}x{height} canvas; "
            "use x0 < x1 <= width and y0 < y1 <= height (the paper: 0 0 224 250 on 224x275)."
        )


def make_template(
    out: str | Path,
    canvas_width: int = CANVAS_WIDTH,
    canvas_height: int = CANVAS_HEIGHT,
    face_box: tuple[int, int, int, int] = FACE_BOX,
) -> CanonicalTemplate:
    """Regenerate a template JSON from dlib's predictor (the shipped one comes from this)."""
    from ferxai.io import write_json

    landmarks = dlib_canonical_landmarks(canvas_width, canvas_height, face_box)
    template = build_template(landmarks, canvas_width, canvas_height, face_box)
    write_json(out, template.to_json())
    return template


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
    from ferxai.io import read_json

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


# ----------------------------------------------------------------------------------------- warp


class CanonicalWarper:
    """Per-canvas-pixel triangle vertices and barycentric weights of one template, precomputed.

    The weights form a sparse (pixels x 90) matrix, three entries per row (column 89 is a virtual
    vertex far outside any source, used by canvas pixels in no triangle). Source coordinates of a
    chunk of maps are then one sparse product with their stacked mesh points, and each map is
    sampled there by ``cv2.remap``.
    """

    def __init__(self, template: CanonicalTemplate):
        import scipy.sparse

        self.template = template
        self.shape = template.shape
        self.vertex_index, self.weights = _pixel_barycentrics(
            template.points, template.triangles, self.shape
        )
        pixels = self.shape[0] * self.shape[1]
        self._matrix = scipy.sparse.csr_matrix(
            (
                self.weights.ravel(),
                (np.repeat(np.arange(pixels), 3), self.vertex_index.ravel()),
            ),
            shape=(pixels, N_POINTS + 1),
            dtype=np.float32,
        )

    def source_coordinates(self, source_points: np.ndarray) -> np.ndarray:
        """Where each canvas pixel comes from: (..., 89, 2) mesh points -> (..., H, W, 2) [x, y]."""
        import cv2

        points = np.asarray(source_points, dtype=np.float32)
        batch = points.reshape(-1, N_POINTS, 2)
        n = len(batch)
        stacked = np.full((N_POINTS + 1, n, 2), _OUTSIDE, dtype=np.float32)
        stacked[:N_POINTS] = batch.transpose(1, 0, 2)
        coords = self._matrix @ stacked.reshape(N_POINTS + 1, 2 * n)  # (pixels, n * 2)
        # (pixels, n) 2-channel -> (n, pixels) 2-channel: OpenCV's blocked transpose is fast.
        coords = cv2.transpose(coords.reshape(-1, n, 2)).reshape(n, *self.shape, 2)
        return coords.reshape(*points.shape[:-2], *self.shape, 2)

    def warp(self, arrays: np.ndarray, landmarks: np.ndarray, order: str = "nearest") -> np.ndarray:
        """Warp (N, h, w[, C]) arrays with their (N, 68, 2) landmarks onto the canvas.

        Returns (N, H, W[, C]) of the input dtype. Rows whose landmarks are not finite are 0.
        """
        import cv2

        interpolation = _interpolation(order)
        arrays = np.asarray(arrays)
        landmarks = np.asarray(landmarks, dtype=np.float64)
        if arrays.ndim not in (3, 4):
            raise ValueError(f"expected maps (N, H, W) or images (N, H, W, C), got {arrays.shape}")
        if landmarks.shape != (len(arrays), N_LANDMARKS, 2):
            raise ValueError(
                f"landmarks must be ({len(arrays)}, 68, 2) for {len(arrays)} maps, "
                f"got {landmarks.shape}"
            )
        height, width = arrays.shape[1:3]
        out = np.zeros((len(arrays), *self.shape, *arrays.shape[3:]), dtype=arrays.dtype)
        border = {"borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        rows = np.flatnonzero(np.isfinite(landmarks).all(axis=(1, 2)))
        for lo in range(0, len(rows), _CHUNK):
            chunk = rows[lo : lo + _CHUNK]
            coords = self.source_coordinates(mesh_points(landmarks[chunk], width, height))
            for i, xy in zip(chunk, coords):
                if arrays.ndim == 3:
                    source = np.ascontiguousarray(arrays[i])
                    cv2.remap(source, xy, None, interpolation, dst=out[i], **border)
                    continue
                for c in range(0, arrays.shape[3], 4):  # OpenCV remaps at most 4 channels a call
                    block = np.ascontiguousarray(arrays[i, ..., c : c + 4])
                    warped = cv2.remap(block, xy, None, interpolation, **border)
                    out[i, ..., c : c + block.shape[2]] = warped.reshape(*self.shape, -1)
        return out


def _interpolation(order: str) -> int:
    import cv2

    if order == "nearest":
        return cv2.INTER_NEAREST
    if order == "bilinear":
        return cv2.INTER_LINEAR
    raise ConfigError(f"order: unknown value {order!r}; use one of {', '.join(ORDERS)}.")


def _pixel_barycentrics(
    points: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) int32 vertex indices and (H, W, 3) float32 barycentric weights per canvas pixel.

    A pixel on a shared edge takes the first triangle; both give the same point there. Pixels in no
    triangle (possible only for a custom template) get weight 1 on the virtual vertex 89, whose
    coordinate is :data:`_OUTSIDE`, so they read outside the source and stay 0.
    """
    height, width = shape
    points = np.asarray(points, dtype=np.float64)
    vertex = np.full((height, width, 3), N_POINTS, dtype=np.int32)
    weight = np.zeros((height, width, 3), dtype=np.float32)
    covered = np.zeros((height, width), dtype=bool)
    eps = 1e-9
    for tri in np.asarray(triangles):
        a, b, c = points[tri]
        x0, y0 = np.floor(np.minimum(np.minimum(a, b), c)).astype(int).clip(0)
        x1, y1 = np.ceil(np.maximum(np.maximum(a, b), c)).astype(int) + 1
        ys, xs = (g.ravel() for g in np.mgrid[y0 : min(y1, height), x0 : min(x1, width)])
        edges = np.array([b - a, c - a]).T  # columns: the edges leaving vertex a
        if abs(np.linalg.det(edges)) < eps:
            continue  # a degenerate triangle covers no area
        wb, wc = np.linalg.solve(edges, np.stack([xs - a[0], ys - a[1]]))
        wa = 1.0 - wb - wc
        inside = (wa >= -eps) & (wb >= -eps) & (wc >= -eps) & ~covered[ys, xs]
        py, px = ys[inside], xs[inside]
        covered[py, px] = True
        vertex[py, px] = tri
        weight[py, px] = np.stack([wa, wb, wc], axis=1)[inside]
    weight[~covered, 0] = 1.0
    return vertex, weight


_WARPERS: dict[str, CanonicalWarper] = {}  # template digest -> its precomputed warper


def get_warper(template: CanonicalTemplate | None = None) -> CanonicalWarper:
    """The warper of ``template`` (default: the shipped one), built once per distinct mesh."""
    template = template or load_template()
    key = template.key()
    if key not in _WARPERS:
        _WARPERS[key] = CanonicalWarper(template)
    return _WARPERS[key]


def warp_to_canonical(
    maps: np.ndarray,
    landmarks: np.ndarray,
    order: str = "nearest",
    template: CanonicalTemplate | None = None,
) -> np.ndarray:
    """Warp maps (N, H, W) with landmarks (N, 68, 2) ``[x, y]`` in their grid: (N, 275, 224) float32.

    Images (N, H, W, C) are accepted too and come back (N, 275, 224, C) float32 (see
    :func:`warp_images` to keep uint8). ``order``: ``nearest`` (the paper) or ``bilinear``.
    Canvas pixels whose source falls outside the map are 0; maps with non-finite landmarks are 0.
    """
    maps = np.asarray(maps, dtype=np.float32)
    return get_warper(template).warp(maps, landmarks, order)


def warp_images(
    images: np.ndarray,
    landmarks: np.ndarray,
    order: str = "bilinear",
    template: CanonicalTemplate | None = None,
) -> np.ndarray:
    """Warp images (N, H, W, C) or (N, H, W) onto the canvas, keeping their dtype (for figures)."""
    return get_warper(template).warp(np.asarray(images), landmarks, order)


# ---------------------------------------------------------------------------------- stage / CLI


def normalize_stack(
    stack,
    landmarks,
    sizes: dict[str, tuple[int, int]],
    order: str = "nearest",
    template: CanonicalTemplate | None = None,
    where: str = "stack",
):
    """Warp a :class:`ferxai.io.Stack` of maps onto the canvas.

    ``landmarks`` is a :class:`ferxai.landmarks.LandmarkTable` (image pixels) and ``sizes`` maps
    image_id -> (width, height) of the original image; landmarks are scaled into the map grid.
    Images without landmarks keep an all-zero map and ``valid=False``.
    """
    from ferxai.io import Stack

    _interpolation(order)  # reject a bad order before any work
    template = template or load_template()
    points, ok = landmarks.select(stack.image_id, where)
    map_height, map_width = stack.maps.shape[1:3]
    scale = np.ones((len(stack), 1, 2), dtype=np.float64)
    for k, image_id in enumerate(stack.image_id):
        if image_id not in sizes:
            raise DataError(
                f"{where}: image {image_id!r} is not in the dataset table; fix: use the "
                "dataset.csv the attributions were computed from."
            )
        width, height = sizes[image_id]
        scale[k, 0] = (map_width / width, map_height / height)
    grid_landmarks = np.where(ok[:, None, None], points * scale, np.nan)
    maps = warp_to_canonical(stack.maps, grid_landmarks, order, template)
    attrs = {k: v for k, v in stack.attrs.items() if k not in ("format", "count", "complete")}
    attrs.update(
        order=order,
        normalized=True,
        landmark_failures=int((~ok).sum()),
        canvas_width=template.canvas_width,
        canvas_height=template.canvas_height,
        template=template.key(),
    )
    return Stack(
        maps=maps,
        image_id=list(stack.image_id),
        true_label=stack.true_label,
        predicted=stack.predicted,
        probabilities=stack.probabilities,
        attrs=attrs,
        extras={"valid": ok.astype(bool), "landmarks": grid_landmarks.astype(np.float32)},
    )


def dataset_sizes(path: str | Path) -> dict[str, tuple[int, int]]:
    """image_id -> (width, height) from dataset.csv."""
    from ferxai.io import read_csv

    try:
        sizes = {row["image_id"]: (int(row["width"]), int(row["height"])) for row in read_csv(path)}
    except FileNotFoundError as exc:
        raise DataError(f"{path}: dataset table not found; fix: run `ferxai prepare`.") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{path}: needs image_id, width and height columns with integer sizes ({exc!r}); "
            "fix: regenerate it with `ferxai prepare`."
        ) from exc
    bad = [image_id for image_id, (w, h) in sizes.items() if w <= 0 or h <= 0]
    if bad:
        raise DataError(
            f"{path}: images {bad[:5]} have a width or height <= 0; "
            "fix: regenerate it with `ferxai prepare`."
        )
    return sizes


def cli_normalize_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", required=True, type=Path, nargs="+", help="attribution stack(s) (HDF5)"
    )
    parser.add_argument("--landmarks", required=True, type=Path, help="landmarks.h5 (`landmarks`)")
    parser.add_argument("--dataset", required=True, type=Path, help="dataset.csv (image sizes)")
    parser.add_argument(
        "--order", choices=ORDERS, default="nearest", help="sampling (paper: nearest)"
    )
    parser.add_argument(
        "--out", required=True, type=Path, nargs="+", help="normalized stack(s), one per --stack"
    )
    parser.add_argument(
        "--template", type=Path, default=None, help="template JSON (default: the shipped one)"
    )


def cli_normalize(args: argparse.Namespace) -> None:
    import cv2

    from ferxai.device import job_cpus
    from ferxai.errors import FerxaiError
    from ferxai.io import read_stack, write_stack
    from ferxai.landmarks import read_landmarks

    if len(args.stack) != len(args.out):
        raise FerxaiError(f"normalize: {len(args.stack)} --stack but {len(args.out)} --out paths.")
    cv2.setNumThreads(job_cpus())  # the job's CPUs, not the whole node's
    template = load_template(args.template)
    landmarks = read_landmarks(args.landmarks)
    sizes = dataset_sizes(args.dataset)
    for source, out in zip(args.stack, args.out, strict=True):
        stack = read_stack(source)
        result = normalize_stack(
            stack, landmarks, sizes, order=args.order, template=template, where=str(source)
        )
        write_stack(out, result)
        log.info(
            "%s: %d maps normalized (%s), %d without landmarks",
            out,
            len(result),
            args.order,
            result.attrs["landmark_failures"],
        )


def cli_make_template_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON to write (default: the shipped template)"
    )
    parser.add_argument(
        "--canvas-width", type=int, default=CANVAS_WIDTH, help="canvas width (paper: 224)"
    )
    parser.add_argument(
        "--canvas-height", type=int, default=CANVAS_HEIGHT, help="canvas height (paper: 275)"
    )
    parser.add_argument(
        "--face-box",
        type=int,
        nargs=4,
        default=list(FACE_BOX),
        metavar=("X0", "Y0", "X1", "Y1"),
        help="dlib face box on the canvas; rows below Y1 are the margin (paper: 0 0 224 250)",
    )


def cli_make_template(args: argparse.Namespace) -> None:
    out = args.out or packaged_template_path()
    template = make_template(out, args.canvas_width, args.canvas_height, tuple(args.face_box))
    log.info(
        "%s: %dx%d canvas, face box %s, %d triangles",
        out,
        template.canvas_width,
        template.canvas_height,
        template.face_box,
        len(template.triangles),
    )
