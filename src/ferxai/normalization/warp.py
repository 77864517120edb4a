"""The piecewise-affine warp of maps onto the canonical face (:mod:`ferxai.core.template`).

Canonical space (Gaya-Morey et al. 2024): a 224 wide x 275 high canvas whose 68 landmarks are what
dlib's 68-point shape predictor returns on an all-black image for the face box (0, 0, 224, 250).
The mesh has 89 points, numbered as in the paper's figure (0-based here):

* 0-67: the 68 landmarks (iBUG/dlib order);
* 68-84: the 17 jaw points (0-16) copied to the top edge (y = 0), so the forehead is warped too;
* 85-88: the canvas corners top-left, bottom-left, top-right, bottom-right.

As the reference implementation (its ``get_points``), the corners are (0, 0), (0, H), (W, 0),
(W, H), on the canvas and in every source image of width W and height H, so an image of the
canvas size with the canonical landmarks warps onto itself exactly.

Triangles (``triangulation``): ``per_face`` (the reference, its ``transform_mask``) uses the
Delaunay triangulation of each source image's own 89 points, applied to the canonical points (a
canvas pixel takes the first of those triangles, in qhull's order, that contains it); ``canonical``
uses the Delaunay triangulation of the canonical points for every image (as scikit-image's
``PiecewiseAffineTransform.estimate(canonical, source)``). The two differ only for faces whose
source points are not Delaunay in the canonical topology (measured in docs/normalization.md).

The warp is destination-driven: each canvas pixel's triangle and barycentric weights are computed
once per template; a map's source coordinates are then those weights applied to the triangle's
source vertices (one sparse product for a chunk of maps), and the map is sampled there with
``cv2.remap`` (nearest as the paper, or bilinear). ``per_face``: a vectorized in-circle test finds
the maps whose own Delaunay triangles are the canonical ones (nothing more to do); the others get
their coordinates from their own triangles, cut into row runs on the canvas (vectorized per face;
where triangles overlap, the first wins, as the reference). Canvas pixels whose source point falls outside the source grid (nearest: beyond half a pixel from
it) are 0.
"""

from __future__ import annotations

import logging

import numpy as np

from ferxai.core.errors import ConfigError
from ferxai.core.template import (
    N_LANDMARKS,
    N_POINTS,
    CanonicalTemplate,
    load_template,
    mesh_points,
)

log = logging.getLogger(__name__)

ORDERS = ("nearest", "bilinear")
TRIANGULATIONS = ("per_face", "canonical")
DEFAULT_TRIANGULATION = "per_face"
_OUTSIDE = -1.0e4  # source coordinate of the virtual vertex 89: outside any source grid
_CHUNK = 8  # maps per sparse product: amortizes its overhead, keeps coordinates in cache


# ----------------------------------------------------------------------------------------- warp


class CanonicalWarper:
    """Per-canvas-pixel triangle vertices and barycentric weights of one template, precomputed.

    The weights form a sparse (pixels x 90) matrix, three entries per row (column 89 is a virtual
    vertex far outside any source, used by canvas pixels in no triangle). Source coordinates of a
    chunk of maps are then one sparse product with their stacked mesh points, and each map is
    sampled there by ``cv2.remap``. With ``triangulation="per_face"`` the maps whose own Delaunay
    triangles differ from the canonical ones get their coordinates from their own triangles
    (each face's triangles cut into row runs on the canvas, vectorized: :func:`_face_coordinates`).
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
        triangles = np.asarray(template.triangles, dtype=np.int64)
        self._triangles = triangles
        points = np.asarray(template.points, dtype=np.float64)
        self._orientation = np.sign(_orientations(points[None], triangles)[0])
        self._edges = _interior_edges(triangles, self._orientation)
        self._sorted_triangles = _sorted_rows(triangles)

    # ------------------------------------------------------------------------------ topology

    def canonical_is_delaunay(self, source_points: np.ndarray) -> np.ndarray:
        """(N,) bool: the canonical triangles are the (unique) Delaunay triangulation of each
        (89, 2) point set of ``source_points`` (N, 89, 2).

        True when every triangle keeps its orientation and every interior edge is strictly
        locally Delaunay (the opposite vertex strictly outside the circumcircle), with a margin
        for rounding; False may be a near tie, which :meth:`face_triangles` settles with qhull.
        """
        points = np.asarray(source_points, dtype=np.float64).reshape(-1, N_POINTS, 2)
        span = np.ptp(points.reshape(len(points), -1), axis=1) + 1.0  # (N,)
        orient = _orientations(points, self._triangles) * self._orientation
        if len(self._edges) == 0:
            return (orient > 1e-9 * span[:, None] ** 2).all(axis=1)
        a, b, c, d = (points[:, self._edges[:, k]] for k in range(4))  # (N, E, 2); abc CCW
        rows = [p - d for p in (a, b, c)]
        lifted = [np.einsum("nec,nec->ne", r, r) for r in rows]
        (ax, ay), (bx, by), (cx, cy) = ((r[..., 0], r[..., 1]) for r in rows)
        incircle = (
            ax * (by * lifted[2] - lifted[1] * cy)
            - ay * (bx * lifted[2] - lifted[1] * cx)
            + lifted[0] * (bx * cy - by * cx)
        )  # with (a, b, c) positively oriented (checked above): > 0 iff d inside their circle
        outside = incircle < -1e-9 * span[:, None] ** 4
        return (orient > 1e-9 * span[:, None] ** 2).all(axis=1) & outside.all(axis=1)

    def face_triangles(self, source_points: np.ndarray) -> np.ndarray:
        """Delaunay triangles (T, 3) of one image's 89 mesh points, qhull's order (the reference's
        ``Delaunay(points).simplices``)."""
        from scipy.spatial import Delaunay

        return Delaunay(np.asarray(source_points, dtype=np.float64)).simplices.astype(np.int64)

    def is_canonical_topology(self, triangles: np.ndarray) -> bool:
        """Whether ``triangles`` (T, 3) are the canonical triangles (as a set, any order)."""
        triangles = np.asarray(triangles, dtype=np.int64)
        return triangles.shape == self._triangles.shape and np.array_equal(
            _sorted_rows(triangles), self._sorted_triangles
        )

    # -------------------------------------------------------------------------------- warp

    def source_coordinates(
        self, source_points: np.ndarray, triangulation: str = DEFAULT_TRIANGULATION
    ) -> np.ndarray:
        """Where each canvas pixel comes from: (..., 89, 2) mesh points -> (..., H, W, 2) [x, y]."""
        import cv2

        check_triangulation(triangulation)
        points = np.asarray(source_points, dtype=np.float32)
        batch = points.reshape(-1, N_POINTS, 2)
        coords = np.empty((len(batch), *self.shape, 2), dtype=np.float32)  # filled below
        shared = np.ones(len(batch), dtype=bool)  # maps that use the canonical triangles
        if triangulation == "per_face" and len(batch):
            exact = np.asarray(source_points, dtype=np.float64).reshape(-1, N_POINTS, 2)
            faces, own = [], []
            for k in np.flatnonzero(~self.canonical_is_delaunay(exact)):
                triangles = self.face_triangles(exact[k])
                if not self.is_canonical_topology(triangles):
                    faces.append(k)
                    own.append(triangles)
            if faces:
                shared[faces] = False
                coords[faces] = _per_face_coordinates(
                    np.asarray(self.template.points, dtype=np.float64),
                    exact[faces],
                    own,
                    self.shape,
                )
        n = int(shared.sum())
        if n:
            stacked = np.full((N_POINTS + 1, n, 2), _OUTSIDE, dtype=np.float32)
            stacked[:N_POINTS] = batch[shared].transpose(1, 0, 2)
            product = self._matrix @ stacked.reshape(N_POINTS + 1, 2 * n)  # (pixels, n * 2)
            # (pixels, n) 2-channel -> (n, pixels) 2-channel: OpenCV's blocked transpose is fast.
            product = cv2.transpose(product.reshape(-1, n, 2)).reshape(n, *self.shape, 2)
            if n == len(batch):
                coords = product
            else:
                coords[shared] = product
        return coords.reshape(*points.shape[:-2], *self.shape, 2)

    def warp(
        self,
        arrays: np.ndarray,
        landmarks: np.ndarray,
        order: str = "nearest",
        triangulation: str = DEFAULT_TRIANGULATION,
    ) -> np.ndarray:
        """Warp (N, h, w[, C]) arrays with their (N, 68, 2) landmarks onto the canvas.

        Returns (N, H, W[, C]) of the input dtype. Rows whose landmarks are not finite are 0.
        """
        import cv2

        interpolation = interpolation_flag(order)
        check_triangulation(triangulation)
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
            coords = self.source_coordinates(
                mesh_points(landmarks[chunk], width, height), triangulation
            )
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


def _sorted_rows(triangles: np.ndarray) -> np.ndarray:
    """Triangles with sorted vertices, in lexicographic order: a canonical form of the set."""
    rows = np.sort(np.asarray(triangles, dtype=np.int64), axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def check_triangulation(triangulation: str) -> None:
    if triangulation not in TRIANGULATIONS:
        raise ConfigError(
            f"triangulation: unknown value {triangulation!r}; use one of "
            f"{', '.join(TRIANGULATIONS)} (normalization.triangulation, --triangulation)."
        )


def _orientations(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle (T, 3) for each point set (N, P, 2): (N, T)."""
    a, b, c = (points[:, triangles[:, k]] for k in range(3))
    u, v = b - a, c - a
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _interior_edges(triangles: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """(E, 4) vertex indices (a, b, c, d) of each edge (a, b) shared by two triangles: (a, b, c)
    is one of them with the positive orientation of the canonical points, d the other's third."""
    owners: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for t, tri in enumerate(triangles.tolist()):
        for k in range(3):
            a, b, c = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
            owners.setdefault((min(a, b), max(a, b)), []).append((t, c))
    edges = []
    for pair in owners.values():
        if len(pair) != 2:
            continue
        (t, c), (_, d) = pair
        tri = triangles[t].tolist()
        # order (a, b, c) as the triangle's own cyclic order, then fix its sign to positive
        i = tri.index(c)
        a2, b2 = tri[(i + 1) % 3], tri[(i + 2) % 3]
        if orientation[t] < 0:
            a2, b2 = b2, a2
        edges.append((a2, b2, c, d))
    return np.array(edges, dtype=np.int64).reshape(-1, 4)


def _triangle_pixels(
    points: np.ndarray, tri: np.ndarray, shape: tuple[int, int], eps: float = 1e-9
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Canvas pixels (ys, xs) inside the triangle (edges included) and their weights (m, 3)."""
    height, width = shape
    a, b, c = points[tri]
    x0, y0 = np.floor(np.minimum(np.minimum(a, b), c)).astype(int).clip(0)
    x1, y1 = np.ceil(np.maximum(np.maximum(a, b), c)).astype(int) + 1
    ys, xs = (g.ravel() for g in np.mgrid[y0 : min(y1, height), x0 : min(x1, width)])
    edges = np.array([b - a, c - a]).T  # columns: the edges leaving vertex a
    if abs(np.linalg.det(edges)) < eps:
        return (ys[:0], xs[:0]), np.zeros((0, 3))  # a degenerate triangle covers no area
    wb, wc = np.linalg.solve(edges, np.stack([xs - a[0], ys - a[1]]))
    wa = 1.0 - wb - wc
    inside = (wa >= -eps) & (wb >= -eps) & (wc >= -eps)
    return (ys[inside], xs[inside]), np.stack([wa, wb, wc], axis=1)[inside]


def _triangle_runs(canvas_points: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]):
    """Row-by-row pixel runs of triangles (M, 3) over ``canvas_points`` on the canvas.

    Returns (triangle, y, x_first, x_last) int64 arrays, one entry per non-empty run, grouped by
    triangle in their order. A pixel is in a triangle when its three barycentric weights are
    >= -1e-9 (edges included), as :func:`_triangle_pixels`: each weight is linear in x along a
    row, which bounds x on one side.
    """
    height, width = shape
    eps = 1e-9
    corners = canvas_points[triangles]  # (M, 3, 2)
    a = corners[:, 0]
    e1, e2 = corners[:, 1] - a, corners[:, 2] - a
    det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    usable = np.abs(det) >= eps  # a degenerate triangle covers no area
    det = np.where(usable, det, 1.0)
    # wb = i00 (x - ax) + i01 (y - ay); wc = i10 (x - ax) + i11 (y - ay); wa = 1 - wb - wc
    i00, i01 = e2[:, 1] / det, -e2[:, 0] / det
    i10, i11 = -e1[:, 1] / det, e1[:, 0] / det
    y_low = np.maximum(np.ceil(corners[..., 1].min(axis=1) - 1e-6), 0).astype(np.int64)
    y_high = np.minimum(np.floor(corners[..., 1].max(axis=1) + 1e-6), height - 1).astype(np.int64)
    rows = np.where(usable, np.maximum(y_high - y_low + 1, 0), 0)
    t = np.repeat(np.arange(len(triangles)), rows)  # one entry per (triangle, row)
    y = y_low[t] + np.arange(len(t)) - np.repeat(np.cumsum(rows) - rows, rows)
    dy = y - a[t, 1]
    slopes = np.stack([i00[t], i10[t], -(i00[t] + i10[t])])  # d(weight)/dx of wb, wc, wa
    at_ax = np.stack([i01[t] * dy, i11[t] * dy, np.zeros(len(t))])  # the weights at x = ax
    at_ax[2] = 1.0 - at_ax[0] - at_ax[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = a[t, 0] + (-eps - at_ax) / slopes  # weight = -eps there
    low = np.where(slopes > 0, bound, -np.inf).max(axis=0)
    high = np.where(slopes < 0, bound, np.inf).min(axis=0)
    flat_ok = np.where(slopes == 0, at_ax >= -eps, True).all(axis=0)
    x_first = np.maximum(np.ceil(low - 1e-7), 0)
    x_last = np.minimum(np.floor(high + 1e-7), width - 1)
    keep = flat_ok & (x_last >= x_first)
    return t[keep], y[keep], x_first[keep].astype(np.int64), x_last[keep].astype(np.int64)


def _lowest_wins(label: np.ndarray, pixel: np.ndarray, owner: np.ndarray, fresh=False) -> None:
    """label[pixel] = the lowest of its value (unless ``fresh``) and every ``owner`` given for it."""
    if fresh:
        label[pixel] = owner
    while True:
        late = label[pixel] > owner
        if not late.any():
            return
        label[pixel[late]] = owner[late]


def _per_face_coordinates(
    canvas_points: np.ndarray,
    source_points: np.ndarray,
    triangles: list[np.ndarray],
    shape: tuple[int, int],
) -> np.ndarray:
    """Source coordinates (n, H, W, 2) float32 of n faces, each with its own triangles (T_i, 3)
    (priority order) over the canvas points (89, 2) and its source points (n, 89, 2)."""
    height, width = shape
    xs = np.tile(np.arange(width, dtype=np.float64), height)
    out = np.empty((len(triangles), height * width, 2), dtype=np.float32)
    for k, own in enumerate(triangles):
        own = np.asarray(own, dtype=np.int64)
        out[k] = _face_coordinates(canvas_points, source_points[k], own, shape, xs)
    return out.reshape(len(triangles), height, width, 2)


def _face_coordinates(
    canvas_points: np.ndarray,
    source_points: np.ndarray,
    triangles: np.ndarray,
    shape: tuple[int, int],
    xs: np.ndarray,
) -> np.ndarray:
    """Source coordinates (H * W, 2) float32 of one face with its own triangles (T, 3), in
    priority order: each canvas pixel takes the first triangle containing it; in none,
    :data:`_OUTSIDE`.

    Every triangle is cut into row runs (:func:`_triangle_runs`). A pixel takes the run that
    starts last at or before it in its row, or a gap; the source point is linear along a run.
    Pixels shared by two runs (the end of one, the start of the next) and runs that overlap
    others by two pixels or more (triangles folded over on the canvas) are then settled pixel by
    pixel: the lowest triangle index wins.
    """
    height, width = shape
    n_pixels = height * width
    t, y, x_first, x_last = _triangle_runs(canvas_points, triangles, shape)
    start, end = y * width + x_first, y * width + x_last
    order = np.argsort(start * width + x_last)  # by start, then end: equal starts, longest last
    t, y, start, end = t[order], y[order], start[order], end[order]
    m = len(t)
    affine = _affine_maps(canvas_points[triangles], source_points[triangles])  # (T + 1, 6)
    # run coefficients: source = a * x + b along the run's row; row m: gaps (holes)
    per_run = affine[t]
    slope = np.vstack([per_run[:, [0, 3]], [0.0, 0.0]])
    offset = np.vstack([per_run[:, [1, 4]] * y[:, None] + per_run[:, [2, 5]], [_OUTSIDE] * 2])
    # cover[i]: how far right runs 0..i reach (and which run), within their row
    key = np.maximum.accumulate(end * (m + 1) + np.arange(m)) if m else end
    reach, reach_run = np.divmod(key, m + 1)
    new_row = np.r_[True, y[1:] != y[:-1]] if m else np.zeros(0, bool)
    previous = np.where(new_row, y * width - 1, np.r_[-1, reach[:-1]] if m else reach)
    previous_run = np.r_[-1, reach_run[:-1]] if m else reach_run
    last_of_row = np.r_[new_row[1:], True] if m else new_row
    # gaps: before a run, after the last run of a row, and rows without runs
    row_has_run = np.zeros(height, dtype=bool)
    row_has_run[y] = True
    gaps = np.concatenate(
        [
            (previous + 1)[start > previous + 1],
            (reach + 1)[last_of_row & (reach % width != width - 1)],
            np.flatnonzero(~row_has_run) * width,
        ]
    )
    events = np.concatenate([start, gaps])
    owner = np.concatenate([np.arange(m), np.full(len(gaps), m)])
    sort = np.argsort(events * (m + 1) + owner)  # equal starts: the longest run (last) wins
    events, owner = events[sort], owner[sort]
    keep = np.r_[events[1:] != events[:-1], True]
    first = np.zeros(n_pixels, dtype=np.int32)
    first[events[keep]] = np.flatnonzero(keep)
    run = owner[np.maximum.accumulate(first)]
    out = np.empty((n_pixels, 2), dtype=np.float32)
    out[:, 0] = np.take(slope[:, 0], run) * xs + np.take(offset[:, 0], run)
    out[:, 1] = np.take(slope[:, 1], run) * xs + np.take(offset[:, 1], run)

    # settle shared pixels and folds by the lowest triangle index
    touch = (start == previous) & ~new_row
    folded = start < previous
    folded_next = np.r_[(start[1:] < end[:-1]) & ~new_row[1:], False] if m else folded
    complex_run = folded | folded_next
    if touch.any() or complex_run.any():
        label = np.full(n_pixels, len(triangles), dtype=np.int64)
        pixels = [start[touch], start[touch]]
        owners = [t[touch], t[previous_run[touch]]]
        counts = (end - start + 1)[complex_run]
        expand = np.repeat(np.arange(counts.size), counts)
        pixels.append(
            start[complex_run][expand]
            + np.arange(expand.size)
            - np.repeat(np.cumsum(counts) - counts, counts)
        )
        owners.append(t[complex_run][expand])
        pixels, owners = np.concatenate(pixels), np.concatenate(owners)
        _lowest_wins(label, pixels, owners, fresh=True)
        settled = np.flatnonzero(label < len(triangles))
        winner = label[settled]
        py, px = np.divmod(settled, width)
        coefficients = affine[winner]
        out[settled, 0] = coefficients[:, 0] * px + coefficients[:, 1] * py + coefficients[:, 2]
        out[settled, 1] = coefficients[:, 3] * px + coefficients[:, 4] * py + coefficients[:, 5]
    return out


def _affine_maps(canvas: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Per triangle (T, 3, 2) pair, the affine map canvas -> source as rows (ax, bx, cx, ay, by,
    cy) of x' = ax x + bx y + cx; a last row maps everything to :data:`_OUTSIDE` (label -1)."""
    a = canvas[:, 0]
    (ux, uy), (vx, vy) = (canvas[:, 1] - a).T, (canvas[:, 2] - a).T  # the two edges from a
    det = ux * vy - vx * uy
    det = np.where(np.abs(det) < 1e-9, 1.0, det)  # degenerate: never a label, any value
    inverse = np.stack([np.stack([vy, -vx], 1), np.stack([-uy, ux], 1)], 1) / det[:, None, None]
    source_edges = np.stack([source[:, 1] - source[:, 0], source[:, 2] - source[:, 0]], axis=2)
    matrix = source_edges @ inverse  # (T, 2, 2)
    offset = source[:, 0] - np.einsum("tij,tj->ti", matrix, a)
    affine = np.concatenate([matrix, offset[:, :, None]], axis=2).reshape(-1, 6)
    return np.vstack([affine, [0.0, 0.0, _OUTSIDE, 0.0, 0.0, _OUTSIDE]])


def interpolation_flag(order: str) -> int:
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
    for tri in np.asarray(triangles):
        (ys, xs), w = _triangle_pixels(points, tri, shape)
        fresh = ~covered[ys, xs]
        py, px = ys[fresh], xs[fresh]
        covered[py, px] = True
        vertex[py, px] = tri
        weight[py, px] = w[fresh]
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
    triangulation: str = DEFAULT_TRIANGULATION,
) -> np.ndarray:
    """Warp maps (N, H, W) with landmarks (N, 68, 2) ``[x, y]`` in their grid: (N, 275, 224) float32.

    Images (N, H, W, C) are accepted too and come back (N, 275, 224, C) float32 (see
    :func:`warp_images` to keep uint8). ``order``: ``nearest`` (the paper) or ``bilinear``.
    Canvas pixels whose source falls outside the map are 0; maps with non-finite landmarks are 0.
    ``triangulation``: ``per_face`` (the reference: each map's own Delaunay triangles) or
    ``canonical`` (the canonical points' triangles for every map).
    """
    maps = np.asarray(maps, dtype=np.float32)
    return get_warper(template).warp(maps, landmarks, order, triangulation)


def warp_images(
    images: np.ndarray,
    landmarks: np.ndarray,
    order: str = "bilinear",
    template: CanonicalTemplate | None = None,
    triangulation: str = DEFAULT_TRIANGULATION,
) -> np.ndarray:
    """Warp images (N, H, W, C) or (N, H, W) onto the canvas, keeping their dtype (for figures)."""
    return get_warper(template).warp(np.asarray(images), landmarks, order, triangulation)
