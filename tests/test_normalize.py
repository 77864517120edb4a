"""Canonical template and the piecewise-affine warp onto the canonical face."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ferxai.cli import main
from ferxai.core import template as normalize_template
from ferxai.core.errors import ConfigError
from ferxai.core.io import Stack, read_stack, write_csv, write_stack
from ferxai.core.template import (
    canonical_landmarks,
    canonical_points,
    canonical_triangles,
    load_template,
    mesh_points,
)
from ferxai.normalization import warp as normalize
from ferxai.normalization.landmarks import LandmarkTable, write_landmarks
from ferxai.normalization.make_template import dlib_canonical_landmarks
from ferxai.normalization.warp import warp_images, warp_to_canonical

H, W = 275, 224


def _blocky_maps(rng, n, size, block=8):
    """LIME-like maps: constant patches, so nearest sampling is stable under tiny coordinate noise."""
    cells = size // block
    return np.kron(rng.random((n, cells, cells)), np.ones((block, block))).astype(np.float32)


def _jittered_landmarks(rng, n, size, sigma=2.0):
    base = canonical_landmarks() * np.array([size / W, size / H])
    return base + rng.normal(0.0, sigma, (n, 68, 2))


# ------------------------------------------------------------------------------------ template


def test_template_equals_published_68_points(reference):
    published = json.loads((reference / "canonical_landmarks_68.json").read_text())
    assert np.array_equal(canonical_landmarks(), np.asarray(published["landmarks_68"], float))
    template = load_template()
    assert (template.canvas_width, template.canvas_height) == (
        published["canvas_width"],
        published["canvas_height"],
    )
    assert list(template.face_box) == published["face_box"]


def test_template_points_follow_the_paper_numbering():
    points = canonical_points()
    assert points.shape == (89, 2)
    assert np.array_equal(points[:68], canonical_landmarks())
    assert np.array_equal(points[68:85, 0], points[:17, 0])  # jaw copied...
    assert np.all(points[68:85, 1] == 0)  # ...to the top edge
    assert points[85:].tolist() == [[0, 0], [0, H], [W, 0], [W, H]]  # as the reference


def test_triangles_tile_the_whole_canvas_without_overlap():
    points, triangles = canonical_points(), canonical_triangles()
    assert triangles.dtype == np.int32 and triangles.shape[1] == 3
    assert len(np.unique(triangles)) == 89  # every point is a vertex
    a, b, c = (points[triangles[:, k]] for k in range(3))
    (ux, uy), (vx, vy) = (b - a).T, (c - a).T
    areas = 0.5 * np.abs(ux * vy - uy * vx)
    assert areas.min() > 1.0
    assert areas.sum() == pytest.approx(W * H)  # exact tiling of the corner hull
    warper = normalize.get_warper()
    assert warper.vertex_index.max() < 89  # every pixel lies in a triangle (89 = none)
    assert warper.weights.min() >= -1e-6
    assert np.allclose(warper.weights.sum(axis=2), 1.0, atol=1e-5)


def test_shipped_template_is_what_dlib_returns():
    pytest.importorskip("dlib")
    regenerated = normalize_template.build_template(dlib_canonical_landmarks())
    shipped = load_template()
    assert np.array_equal(regenerated.points, shipped.points)
    assert np.array_equal(regenerated.triangles, shipped.triangles)


def test_make_template_cli_custom_canvas(tmp_path):
    pytest.importorskip("dlib")
    out = tmp_path / "template.json"
    code = main(
        ["make-template", "--out", str(out), "--canvas-width", "112", "--canvas-height", "140"]
        + ["--face-box", "0", "0", "112", "125"]
    )
    assert code == 0
    template = load_template(out)
    assert template.shape == (140, 112)
    assert template.points[:68, 0].max() < 112 and template.points[:68, 1].max() < 140
    maps = np.ones((1, 140, 112), np.float32)
    warped = warp_to_canonical(maps, template.landmarks[None], template=template)
    assert warped.shape == (1, 140, 112) and np.all(warped == 1)


def test_bad_template_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"canvas_width": 10}))
    with pytest.raises(ConfigError, match="bad.json.*make-template"):
        load_template(bad)


# ---------------------------------------------------------------------------------------- warp


@pytest.mark.parametrize("order", ["nearest", "bilinear"])
def test_canonical_landmarks_leave_a_canvas_map_unchanged(order):
    rng = np.random.default_rng(0)
    maps = rng.random((3, H, W)).astype(np.float32)
    landmarks = np.repeat(canonical_landmarks()[None], 3, axis=0)
    warped = warp_to_canonical(maps, landmarks, order=order)
    assert warped.shape == (3, H, W) and warped.dtype == np.float32
    if order == "nearest":
        assert np.array_equal(warped, maps)
    else:
        np.testing.assert_allclose(warped, maps, atol=1e-4)


def test_known_affine_distortion_is_undone_within_one_pixel():
    """Encode each canonical pixel's own (x, y) in a distorted map; warping must bring it home."""
    size = 256
    affine = np.array([[0.9, 0.12, 20.0], [-0.08, 0.8, 15.0]])  # canonical -> source pixels
    inverse = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    source_xy = np.stack([xs, ys, np.ones_like(xs)])
    coord_maps = np.einsum("ij,jhw->ihw", inverse, source_xy).astype(np.float32)  # (2, S, S)
    landmarks = canonical_landmarks() @ affine[:, :2].T + affine[:, 2]
    # The canonical triangles (per_face: the test of the reference rule below covers it).
    warped = warp_to_canonical(
        coord_maps, np.repeat(landmarks[None], 2, axis=0), triangulation="canonical"
    )

    # Only triangles made of the 68 landmarks follow the affine; the top edge and corners stay put.
    inner = [t for t in canonical_triangles() if t.max() < 68]
    from matplotlib.path import Path as PolyPath

    cy, cx = np.mgrid[0:H, 0:W]
    pixels = np.stack([cx.ravel(), cy.ravel()], axis=1)
    mask = np.zeros(H * W, dtype=bool)
    for tri in inner:
        mask |= PolyPath(canonical_points()[tri]).contains_points(pixels, radius=-0.5)
    assert mask.sum() > 20_000
    error_x = np.abs(warped[0].ravel() - pixels[:, 0])[mask]
    error_y = np.abs(warped[1].ravel() - pixels[:, 1])[mask]
    assert max(error_x.max(), error_y.max()) <= 1.0


def _reference_mesh(landmarks, width, height):
    """The reference implementation's 89 points (its get_points): corners at (width, height)."""
    top = np.array(landmarks, dtype=np.float64)[:17].copy()
    top[:, 1] = 0
    corners = [[0, 0], [0, height], [width, 0], [width, height]]
    return np.concatenate([landmarks, top, corners]).astype(np.float64)


def test_mesh_points_are_the_reference_mesh():
    rng = np.random.default_rng(2)
    landmarks = _jittered_landmarks(rng, 3, 100)
    for k in range(3):
        assert np.array_equal(
            mesh_points(landmarks[k], 100, 80), _reference_mesh(landmarks[k], 100, 80)
        )
    reference_canvas = _reference_mesh(canonical_landmarks(), W, H)
    assert np.array_equal(canonical_points(), reference_canvas)


@pytest.mark.parametrize("size", [224, 150])
def test_nearest_matches_scikit_image_on_the_reference_mesh_with_noise_maps(size):
    """White noise shows every one-pixel slip (block-shaped maps hide them)."""
    from skimage.transform import PiecewiseAffineTransform, warp

    rng = np.random.default_rng(3)
    maps = rng.random((4, size, size)).astype(np.float32)
    landmarks = _jittered_landmarks(rng, 4, size)
    ours = warp_to_canonical(maps, landmarks, order="nearest", triangulation="canonical")
    for k in range(4):
        transform = PiecewiseAffineTransform()  # triangulates the canonical points, as "canonical"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # estimate() renamed in skimage 0.26
            transform.estimate(
                _reference_mesh(canonical_landmarks(), W, H),
                _reference_mesh(landmarks[k], size, size),
            )
        theirs = warp(maps[k], transform, output_shape=(H, W), order=0, preserve_range=True)
        interior = (ours[k] == theirs)[1:-1, 1:-1]
        assert interior.mean() >= 0.999


def _per_face_by_definition(source_points):
    """The reference's rule, pixel by pixel: Delaunay of the face's own 89 points; each canvas
    pixel takes the first of those triangles (qhull's order) containing it on the canvas, and
    its source point is the barycentric combination of that triangle's source vertices."""
    from scipy.spatial import Delaunay

    canvas = canonical_points()
    ys, xs = np.mgrid[0:H, 0:W]
    pixel = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    out = np.full((H * W, 2), np.nan)
    for tri in Delaunay(source_points).simplices:
        a, b, c = canvas[tri]
        matrix = np.array([b - a, c - a]).T
        if abs(np.linalg.det(matrix)) < 1e-9:
            continue
        wb, wc = np.linalg.solve(matrix, (pixel - a).T)
        weights = np.stack([1 - wb - wc, wb, wc], axis=1)
        inside = (weights >= -1e-9).all(axis=1) & np.isnan(out[:, 0])
        out[inside] = weights[inside] @ source_points[tri]
    return out.reshape(H, W, 2)


@pytest.mark.parametrize("sigma, jaw_outside", [(1.0, False), (4.0, False), (1.0, True)])
def test_per_face_triangulation_follows_the_reference_rule(sigma, jaw_outside):
    rng = np.random.default_rng(7)
    size = 224  # a square grid: the face is squeezed vertically, so its own Delaunay differs
    landmarks = _jittered_landmarks(rng, 3, size, sigma=sigma)
    if jaw_outside:  # jaw point 16 right of the map (dlib does that): folds leave holes
        landmarks[:, 16, 0] = size + 5
    points = mesh_points(landmarks, size, size)
    warper = normalize.get_warper()
    ours = warper.source_coordinates(points, "per_face")
    folds = 0
    for k in range(3):
        expected = _per_face_by_definition(points[k])
        hole = np.isnan(expected[..., 0])
        assert np.array_equal(ours[k][..., 0] < -1000, hole)  # holes read outside: stay 0
        np.testing.assert_allclose(ours[k][~hole], expected[~hole], atol=1e-3)
        triangles = warper.face_triangles(points[k])
        assert not warper.is_canonical_topology(triangles)
        canvas_area = normalize._orientations(canonical_points()[None], triangles)[0]
        source_area = normalize._orientations(points[k][None], triangles)[0]
        folds += int((np.sign(canvas_area) != np.sign(source_area)).sum())
    assert folds > 0  # the case with overlapping (folded) triangles on the canvas is covered
    if jaw_outside:
        assert (ours[..., 0] < -1000).sum() > 1000  # and holes


def test_per_face_equals_canonical_when_the_topology_is_canonical():
    rng = np.random.default_rng(8)
    landmarks = canonical_landmarks() + rng.normal(0.0, 0.05, (40, 68, 2))  # tiny moves
    points = mesh_points(landmarks, W, H)
    warper = normalize.get_warper()
    # the canonical points have a cocircular quadruple (an eye): a move may flip its diagonal
    same = [warper.is_canonical_topology(warper.face_triangles(p)) for p in points]
    landmarks = landmarks[same]
    assert len(landmarks) >= 2
    maps = rng.random((len(landmarks), H, W)).astype(np.float32)
    per_face = warp_to_canonical(maps, landmarks, triangulation="per_face")
    assert np.array_equal(per_face, warp_to_canonical(maps, landmarks, triangulation="canonical"))


def test_in_circle_shortcut_agrees_with_qhull():
    rng = np.random.default_rng(9)
    warper = normalize.get_warper()
    base = canonical_landmarks()
    landmarks = base + rng.normal(0.0, 1.5, (60, 68, 2)) * rng.random((60, 1, 1))
    points = mesh_points(landmarks, W, H)
    shortcut = warper.canonical_is_delaunay(points)
    qhull = np.array([warper.is_canonical_topology(warper.face_triangles(p)) for p in points])
    assert shortcut.any() and (~qhull).any()
    assert not (shortcut & ~qhull).any()  # the shortcut never says "canonical" wrongly


def test_pixels_whose_source_is_outside_the_map_are_zero():
    size = 100
    landmarks = canonical_landmarks()[None] * np.array([size / W, size / H])
    landmarks = landmarks - np.array([40.0, 0.0])  # face shifted left: left side leaves the map
    warper = normalize.get_warper()
    xy = warper.source_coordinates(mesh_points(landmarks[0], size, size))
    warped = warp_to_canonical(np.ones((1, size, size), np.float32), landmarks)[0]
    outside = ((xy < -0.5) | (xy > size - 0.5)).any(axis=-1)  # holes of folds read -1e4 too
    inside = ((xy > -0.49) & (xy < size - 0.51)).all(axis=-1)
    assert np.all(warped[outside] == 0)
    assert np.all(warped[inside] == 1)
    assert (xy[..., 0] < -0.5).sum() > 1000


def test_batched_warp_equals_one_by_one_and_nan_landmarks_give_zeros():
    rng = np.random.default_rng(4)
    maps = rng.random((4, 64, 64)).astype(np.float32)
    landmarks = _jittered_landmarks(rng, 4, 64, sigma=1.0)
    landmarks[2] = np.nan
    batch = warp_to_canonical(maps, landmarks)
    for k in (0, 1, 3):
        assert np.array_equal(batch[k], warp_to_canonical(maps[k : k + 1], landmarks[k : k + 1])[0])
    assert not batch[2].any()


def test_images_keep_dtype_and_match_map_warp_per_channel():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (2, 80, 60, 5), dtype=np.uint8)  # 5 channels: two remap calls
    landmarks = canonical_landmarks()[None] * np.array([60 / W, 80 / H]) + rng.normal(
        0, 1, (2, 1, 2)
    )
    warped = warp_images(images, landmarks, order="nearest")
    assert warped.shape == (2, H, W, 5) and warped.dtype == np.uint8
    for channel in (0, 4):
        expected = warp_to_canonical(images[..., channel], landmarks, order="nearest")
        assert np.array_equal(warped[..., channel], expected.astype(np.uint8))


def test_bad_order_and_shapes_are_rejected():
    maps = np.zeros((1, 32, 32), np.float32)
    with pytest.raises(ConfigError, match="order"):
        warp_to_canonical(maps, canonical_landmarks()[None], order="cubic")
    with pytest.raises(ValueError, match="68, 2"):
        warp_to_canonical(maps, canonical_landmarks()[None, :10])
    with pytest.raises(ConfigError, match="triangulation.*per_face, canonical"):
        warp_to_canonical(maps, canonical_landmarks()[None], triangulation="delaunay")


# ----------------------------------------------------------------------------------------- CLI


def _stage_inputs(tmp_path, n=3, size=32, failed=(1,)):
    rng = np.random.default_rng(6)
    ids = [f"img{k}" for k in range(n)]
    widths, heights = [64, 96, 128][:n], [80, 120, 160][:n]
    stack = Stack(
        maps=rng.random((n, size, size)).astype(np.float32),
        image_id=ids,
        true_label=np.arange(n) % 6,
        predicted=np.arange(n) % 6,
        probabilities=np.full((n, 6), 1 / 6, np.float32),
        attrs={"method": "lime", "network": "WeiNet"},
    )
    write_stack(tmp_path / "in.h5", stack)
    image_landmarks = np.stack(
        [canonical_landmarks() * np.array([w / W, h / H]) for w, h in zip(widths, heights)]
    ).astype(np.float32)
    ok = np.array([k not in failed for k in range(n)])
    image_landmarks[~ok] = np.nan
    write_landmarks(
        tmp_path / "landmarks.h5",
        LandmarkTable(
            image_id=ids,
            paths=[f"/data/{i}.png" for i in ids],
            landmarks=image_landmarks,
            ok=ok,
            reason=["" if good else "no face found" for good in ok],
            attrs={"source": "given"},
        ),
    )
    rows = [
        {"image_id": i, "path": f"/data/{i}.png", "width": w, "height": h}
        for i, w, h in zip(ids, widths, heights)
    ]
    write_csv(tmp_path / "dataset.csv", rows, ["image_id", "path", "width", "height"])
    return stack, image_landmarks, widths, heights


def _normalize_cli(tmp_path, *extra):
    return main(
        ["normalize", "--stack", str(tmp_path / "in.h5"), "--landmarks"]
        + [str(tmp_path / "landmarks.h5"), "--dataset", str(tmp_path / "dataset.csv")]
        + ["--out", str(tmp_path / "out.h5"), *extra]
    )


def test_normalize_cli_writes_a_canonical_stack(tmp_path):
    stack, image_landmarks, widths, heights = _stage_inputs(tmp_path)
    assert _normalize_cli(tmp_path, "--order", "nearest") == 0
    out = read_stack(tmp_path / "out.h5")
    assert out.maps.shape == (3, H, W) and out.image_id == stack.image_id
    assert out.extras["valid"].tolist() == [True, False, True]
    assert not out.maps[1].any() and out.maps[0].any()
    expected = image_landmarks[2] * np.array([32 / widths[2], 32 / heights[2]])
    np.testing.assert_allclose(out.extras["landmarks"][2], expected, rtol=1e-5)
    assert out.attrs["normalized"] and out.attrs["order"] == "nearest"
    assert out.attrs["triangulation"] == "per_face"  # the reference's, by default
    assert out.attrs["landmark_failures"] == 1 and out.attrs["network"] == "WeiNet"
    np.testing.assert_array_equal(out.predicted, stack.predicted)


def test_normalize_cli_triangulation_flag(tmp_path):
    _stage_inputs(tmp_path)
    assert _normalize_cli(tmp_path, "--triangulation", "canonical", "--order", "bilinear") == 0
    canonical = read_stack(tmp_path / "out.h5")
    assert canonical.attrs["triangulation"] == "canonical"
    assert _normalize_cli(tmp_path, "--triangulation", "per_face", "--order", "bilinear") == 0
    per_face = read_stack(tmp_path / "out.h5")
    assert per_face.attrs["triangulation"] == "per_face"
    assert not np.array_equal(per_face.maps[2], canonical.maps[2])  # a squeezed face: its own mesh


def test_normalize_cli_refuses_images_without_landmark_rows(tmp_path, capsys):
    _stage_inputs(tmp_path)
    write_landmarks(
        tmp_path / "landmarks.h5",
        LandmarkTable(["img0"], [""], np.zeros((1, 68, 2), np.float32), np.ones(1, bool), [""]),
    )
    assert _normalize_cli(tmp_path) == 2
    message = capsys.readouterr().err
    assert "in.h5" in message and "img1" in message and "ferxai landmarks" in message
    assert not (tmp_path / "out.h5").exists()


def test_normalize_cli_empty_stack(tmp_path):
    _stage_inputs(tmp_path)
    empty = Stack(np.zeros((0, 32, 32), np.float32), [], np.zeros(0), np.zeros(0), np.zeros((0, 6)))
    write_stack(tmp_path / "in.h5", empty)
    assert _normalize_cli(tmp_path) == 0
    out = read_stack(tmp_path / "out.h5")
    assert out.maps.shape == (0, H, W) and out.extras["valid"].shape == (0,)
