"""Ground-truth masks: YAML spec, derived points, published-mask reproduction, references, CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferxai.cli import main
from ferxai.comparison import groundtruth
from ferxai.comparison.groundtruth import (
    draw_masks,
    ekman_masks,
    load_reference_image,
    load_spec,
    order_corners,
    region_polygons,
    resolve_point,
)
from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS
from ferxai.core.errors import ConfigError, DataError


def _reference_dir() -> Path:
    env = os.environ.get("FERXAI_REFERENCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "reference" / "gaya-morey-2024"


REFERENCE = _reference_dir()
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "ekman_gt").is_dir(),
    reason=f"published Gaya-Morey et al. material not found at {REFERENCE} "
    "(set FERXAI_REFERENCE_DIR to its folder)",
)


def _reference_points89() -> np.ndarray:
    """The 89 points as the paper built them: 68 landmarks, jaw at y = 0, four corners."""
    landmarks = np.array(
        json.loads((REFERENCE / "canonical_landmarks_68.json").read_text())["landmarks_68"], float
    )
    top = np.column_stack([landmarks[:17, 0], np.zeros(17)])
    corners = [(0, 0), (0, CANVAS_HEIGHT), (CANVAS_WIDTH, 0), (CANVAS_WIDTH, CANVAS_HEIGHT)]
    return np.vstack([landmarks, top, corners])


def _package_points89() -> np.ndarray | None:
    try:
        return groundtruth.canonical_points89()
    except ImportError:
        return None


@pytest.fixture(scope="module")
def points89() -> np.ndarray:
    """ferxai's canonical points when ferxai.core.template provides them, else the paper's."""
    points = _package_points89()
    if points is not None:
        return points
    if (REFERENCE / "canonical_landmarks_68.json").is_file():
        return _reference_points89()
    pytest.skip("neither ferxai.core.template.canonical_points nor the reference landmarks exist")


@pytest.fixture
def fixed_points(monkeypatch, points89):
    """Make the default-points code paths (ekman_masks, CLI) use ``points89``."""
    monkeypatch.setattr(groundtruth, "canonical_points89", lambda: points89.copy())
    return points89


def _published(expression: str) -> np.ndarray:
    return cv2.imread(str(REFERENCE / "ekman_gt" / f"{expression}_gt.png"), 0) > 127


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# ------------------------------------------------------------------------ published masks


@needs_reference
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_shipped_spec_reproduces_published_masks_pixel_for_pixel(expression):
    masks = draw_masks(load_spec(), points=_reference_points89())
    published = _published(expression)
    assert _iou(masks[expression], published) >= 0.99
    assert np.array_equal(masks[expression], published)


@needs_reference
def test_package_canonical_points_reproduce_published_masks():
    if _package_points89() is None:
        pytest.skip("ferxai.core.template.canonical_points is not available yet")
    masks = ekman_masks()
    for expression in EXPRESSIONS:
        assert _iou(masks[expression], _published(expression)) >= 0.99, expression


def test_ekman_masks_are_six_boolean_canvas_masks(fixed_points):
    masks = ekman_masks()
    assert list(masks) == list(EXPRESSIONS)
    for name, mask in masks.items():
        assert mask.dtype == bool and mask.shape == (CANVAS_HEIGHT, CANVAS_WIDTH), name
        assert 0.1 < mask.mean() < 0.5, name  # a face region, neither empty nor the canvas
    assert not np.array_equal(masks["Anger"], masks["Fear"])


def test_shipped_spec_lists_action_units_and_regions():
    spec = load_spec()
    happiness = spec["expressions"]["Happiness"]
    assert [u["au"] for u in happiness["action_units"]] == [6, 12]
    assert all(region["aus"] for region in happiness["regions"])
    assert list(spec["expressions"]) == list(EXPRESSIONS)


# --------------------------------------------------------------------------- point refs


@pytest.fixture
def grid_points() -> np.ndarray:
    points = np.zeros((89, 2))
    points[:, 0] = np.arange(1, 90)  # point k has x = k
    points[:, 1] = 1000 + 10 * np.arange(1, 90)  # and y = 1000 + 10 k
    return points


def test_resolve_point_every_kind(grid_points):
    assert resolve_point(5, grid_points) == (5.0, 1050.0)
    assert resolve_point({"mid": [2, 5]}, grid_points) == (3.5, 1035.0)
    assert resolve_point({"x_of": 3, "y_of": 7}, grid_points) == (3.0, 1070.0)
    assert resolve_point({"lerp": [1, 11, 0.25]}, grid_points) == (3.5, 1035.0)
    assert resolve_point({"lerp": [1, 11, 0]}, grid_points) == (1.0, 1010.0)
    assert resolve_point({"offset": [4, -2.5, 3]}, grid_points) == (1.5, 1043.0)
    named = {"a": {"mid": [1, 3]}, "b": {"offset": ["a", 1, 0]}}
    assert resolve_point("b", grid_points, named) == (3.0, 1020.0)
    assert resolve_point({"mid": ["a", {"x_of": 9, "y_of": 1}]}, grid_points, named) == (
        5.5,
        1015.0,
    )


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (0, "point 0 does not exist"),
        (90, "point 90 does not exist"),
        ("nose", "unknown point name 'nose'"),
        ({"mid": [1]}, r"needs mid: \[a, b\]"),
        ({"lerp": [1, 2, "half"]}, "lerp t must be a finite number"),
        ({"x_of": 1}, "use exactly one of"),
        ({"mid": [1, 2], "offset": [1, 0, 0]}, "use exactly one of"),
        (1.5, "is not an integer"),
        (True, "is not an integer"),
    ],
)
def test_resolve_point_rejects_bad_refs(grid_points, ref, message):
    with pytest.raises(ConfigError, match=message):
        resolve_point(ref, grid_points)


def test_resolve_point_detects_cycles(grid_points):
    with pytest.raises(ConfigError, match="refers to itself"):
        resolve_point("a", grid_points, {"a": {"mid": ["b", 1]}, "b": {"offset": ["a", 0, 0]}})


def test_order_corners_maps_by_position(grid_points):
    points = grid_points.copy()
    points[85:] = [(224, 275), (0, 0), (224, 0), (0, 275)]  # some other storage order
    ordered = order_corners(points)
    assert ordered[85:].tolist() == [[0, 0], [0, 275], [224, 0], [224, 275]]
    assert np.array_equal(ordered[:85], points[:85])
    points[85:] = [(0, 0), (0, 0), (224, 0), (224, 275)]
    with pytest.raises(ConfigError, match="not the four canvas corners"):
        order_corners(points)


def test_region_polygons_splits_strips_and_fans(grid_points):
    region = {"strips": [[1, 2, 3, 4, 5]], "fans": [[6, 7, 8, 9]], "polygons": [[1, 2, 3, 4]]}
    pieces = region_polygons(region, grid_points, {})
    assert [p[:, 0].tolist() for p in pieces] == [
        [1, 2, 3],
        [2, 3, 4],
        [3, 4, 5],
        [6, 7, 8],
        [6, 8, 9],
        [1, 2, 3, 4],
    ]
    assert all(p.dtype == np.int32 for p in pieces)


# ----------------------------------------------------------------------------- custom specs


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gt.yaml"
    path.write_text(text)
    return path


def test_custom_spec_fills_polygons_with_edges_and_floors_derived_points(tmp_path, grid_points):
    spec = load_spec(
        _write(
            tmp_path,
            """
points:
  corner: {offset: [1, 8.7, -1009.6]}   # (9.7, 0.4) floors to (9, 0)
expressions:
  Anger:
    action_units: [{au: 4, name: Brow lowerer}]
    regions:
      - name: box
        aus: [4]
        polygons: [[corner, {offset: [corner, 10, 0]}, {offset: [corner, 10, 20]},
                    {offset: [corner, 0, 20]}]]
""",
        )
    )
    masks = draw_masks(spec, canvas=(40, 30), points=grid_points)
    assert list(masks) == ["Anger"]
    rows, cols = np.nonzero(masks["Anger"])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 20, 9, 19)
    assert masks["Anger"].sum() == 21 * 11  # edges included


def test_ekman_masks_needs_all_six(tmp_path, fixed_points):
    path = _write(
        tmp_path,
        "expressions:\n  Fear:\n    action_units: []\n    regions:\n"
        "      - {name: r, triangles: [[1, 2, 3]]}\n",
    )
    with pytest.raises(ConfigError, match=r"gt\.yaml: no regions for Anger, Disgust"):
        ekman_masks(path)


REGION_HEAD = (
    "expressions:\n  Anger:\n    action_units: [{au: 4, name: Brow lowerer}]\n    regions:\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expressions: [", "not valid YAML"),
        ("- 1\n", "expected a mapping"),
        ("expressions: {}\n", "'expressions' must be a non-empty mapping"),
        ("version: 2\nexpressions: {}\n", "version 2 is not supported"),
        ("expressions:\n  Contempt: {}\n", "unknown expression.*Contempt"),
        ("colour: red\nexpressions: {Anger: {}}\n", "unknown key.*colour"),
        (
            REGION_HEAD + "      - {name: brow, aus: [4], triangles: [[1, 2, 95]]}\n",
            r"gt\.yaml: Anger: region 'brow': triangles: point 95 does not exist",
        ),
        (
            REGION_HEAD + "      - {name: brow, triangles: [[1, 2]]}\n",
            r"Anger: region 'brow': triangle \[1, 2\] has 2 points",
        ),
        (
            REGION_HEAD + "      - {name: brow, strips: [[1, 2]]}\n",
            "region 'brow': strips entry .* at least 3",
        ),
        (
            REGION_HEAD + "      - {name: brow, fans: [1, 2, 3]}\n",
            "region 'brow': 'fans' must be a list of point lists",
        ),
        (REGION_HEAD + "      - {name: brow}\n", "region 'brow': no shape"),
        (
            REGION_HEAD + "      - {name: brow, aus: [9], triangles: [[1, 2, 3]]}\n",
            "region 'brow': AU 9 not in the expression's action_units",
        ),
        (
            REGION_HEAD + "      - {name: brow, polygon: [[1, 2, 3]]}\n",
            "region 'brow': unknown key.*polygon",
        ),
        (
            REGION_HEAD + "      - {name: brow, triangles: [[1, 2, {mid: [1, eye]}]]}\n",
            "region 'brow': triangles: unknown point name 'eye'",
        ),
        (
            "points:\n  a: {lerp: [1, 2]}\nexpressions: {}\n",
            r"points: a: derived point needs lerp: \[a, b, t\]",
        ),
        (
            "expressions:\n  Anger:\n    action_units: [{au: 4}]\n    regions: []\n",
            "Anger: 'regions' must be a non-empty list",
        ),
        (
            "expressions:\n  Anger:\n    action_units: [{au: x}]\n    regions: []\n",
            "Anger: action unit .* positive integer 'au'",
        ),
    ],
)
def test_bad_specs_raise_config_errors_naming_the_place(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_missing_spec_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the ground-truth spec"):
        load_spec(tmp_path / "nope.yaml")


# -------------------------------------------------------------------------- user references


def _write_gray(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def test_reference_image_on_canvas_is_continuous_or_thresholded(tmp_path):
    image = np.zeros((CANVAS_HEIGHT, CANVAS_WIDTH), np.uint8)
    image[100:150, 50:120] = 200
    image[120:130, 60:70] = 255
    path = _write_gray(tmp_path / "fixations.png", image)
    values = load_reference_image(path)
    assert values.dtype == np.float32 and values.shape == image.shape
    assert values.max() == 1.0 and values[0, 0] == 0.0
    assert np.isclose(values[100, 50], 200 / 255)
    strict = load_reference_image(path, threshold=0.9)
    assert strict.dtype == bool and strict.sum() == 100
    assert load_reference_image(path, threshold="otsu").sum() == 50 * 70


def test_reference_image_of_another_size_is_resized_with_a_warning(tmp_path, caplog):
    image = np.zeros((550, 448), np.uint8)
    image[:275] = 255  # top half white
    path = _write_gray(tmp_path / "big.png", image)
    with caplog.at_level(logging.WARNING, logger="ferxai.comparison.groundtruth"):
        values = load_reference_image(path)
    assert "resized" in caplog.text and "big.png" in caplog.text
    assert values.shape == (CANVAS_HEIGHT, CANVAS_WIDTH)
    assert values[:137].min() == 1.0 and values[138:].max() == 0.0


def test_reference_image_errors(tmp_path):
    path = _write_gray(tmp_path / "flat.png", np.full((CANVAS_HEIGHT, CANVAS_WIDTH), 7, np.uint8))
    with pytest.raises(ConfigError, match="must lie in"):
        load_reference_image(path, threshold=3)
    with pytest.raises(ConfigError, match="use a number"):
        load_reference_image(path, threshold="mean")
    with pytest.raises(DataError, match="uniform"):
        load_reference_image(path, threshold="otsu")
    with pytest.raises(DataError, match="cannot read"):
        load_reference_image(tmp_path / "missing.png")


# ------------------------------------------------------------------------------------- CLI


def test_cli_writes_six_masks_and_the_figure(tmp_path, fixed_points):
    out = tmp_path / "groundtruth"
    figure = tmp_path / "fig" / "masks.png"
    assert main(["groundtruth", "--out-dir", str(out), "--figure", str(figure)]) == 0
    expected = ekman_masks()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{e}_gt.png" for e in EXPRESSIONS)
    for expression in EXPRESSIONS:
        written = cv2.imread(str(out / f"{expression}_gt.png"), cv2.IMREAD_UNCHANGED)
        assert written.dtype == np.uint8 and written.shape == (CANVAS_HEIGHT, CANVAS_WIDTH)
        assert set(np.unique(written)) == {0, 255}
        assert np.array_equal(written == 255, expected[expression])
    assert cv2.imread(str(figure)) is not None


def test_cli_reports_bad_spec_without_traceback(tmp_path, capsys):
    spec = _write(tmp_path, "expressions:\n  Joy: {}\n")
    code = main(["groundtruth", "--out-dir", str(tmp_path / "o"), "--spec", str(spec)])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown expression" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
