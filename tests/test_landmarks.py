"""Landmark sources, the landmark table and the `ferxai landmarks` command."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ferxai.cli import main
from ferxai.core.errors import ConfigError
from ferxai.core.io import write_csv, write_png
from ferxai.normalization import landmarks as lm

COLUMNS = ["image_id", "path", "expression", "label", "subject", "width", "height"]
COLUMNS += ["landmarks", "sha1"]


def _points(width=100, height=120, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(5, width - 5, 68), rng.uniform(5, height - 5, 68)])


def _face_points(width=100, height=120, seed=0):
    """The canonical face's 68 points fitted into the image, slightly jittered: a plausible face."""
    from ferxai.normalization.plausibility import template_landmarks

    rng = np.random.default_rng(seed)
    points = template_landmarks() * np.array([width / 224 * 0.8, height / 275 * 0.8])
    return points + np.array([width * 0.1, height * 0.1]) + rng.normal(0, 0.5, (68, 2))


def _row(image_id, landmarks="", path="", width=100, height=120):
    return {
        "image_id": image_id,
        "path": str(path) or f"/nowhere/{image_id}.png",
        "expression": "Anger",
        "label": "0",
        "subject": "s1",
        "width": str(width),
        "height": str(height),
        "landmarks": str(landmarks),
        "sha1": "",
    }


# ---------------------------------------------------------------------------- given landmarks


@pytest.mark.parametrize("suffix", [".npy", ".txt", ".csv", ".pts"])
def test_given_landmark_files_of_every_format(tmp_path, suffix):
    points = np.round(_points(), 3)
    path = tmp_path / f"face{suffix}"
    if suffix == ".npy":
        np.save(path, points)
    elif suffix == ".pts":
        body = "\n".join(f"{x} {y}" for x, y in points)
        path.write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    else:
        sep = "," if suffix == ".csv" else " "
        path.write_text("\n".join(f"{x}{sep}{y}" for x, y in points) + "\n")
    np.testing.assert_allclose(lm.row_landmarks(_row("a", path), None), points)


def test_given_landmark_problems_become_reasons(tmp_path):
    np.save(tmp_path / "short.npy", np.zeros((3, 2)))
    outside = _points()
    outside[0] = (-3.0, 10.0)
    np.save(tmp_path / "outside.npy", outside)
    cases = {
        "": lm.NO_FILE,
        str(tmp_path / "absent.npy"): lm.FILE_MISSING,
        str(tmp_path / "short.npy"): "landmark file has shape (3, 2) not (68, 2)",
        str(tmp_path / "outside.npy"): lm.OUTSIDE,
    }
    for cell, reason in cases.items():
        with pytest.raises(lm.LandmarkFailure) as failure:
            lm.row_landmarks(_row("a", cell), None)
        assert failure.value.reason == reason
    # a tolerance accepts points just outside the image
    assert lm.row_landmarks(_row("a", tmp_path / "outside.npy"), None, tolerance=3).shape == (68, 2)


def test_landmarks_inside_uses_pixel_centres():
    points = np.zeros((68, 2))
    points[0] = (99, 119)
    assert lm.landmarks_inside(points, 100, 120)
    points[0] = (99.5, 119)
    assert not lm.landmarks_inside(points, 100, 120)
    assert lm.landmarks_inside(points, 100, 120, tolerance=0.5)
    points[0] = np.nan
    assert not lm.landmarks_inside(points, 100, 120, tolerance=10)


# ------------------------------------------------------------------------------------ registry


@lm.register_landmark_source("test-fixed")
class FixedSource:
    """Returns the same points for any non-blank image; a blank image has no face."""

    def __init__(self, points=None):
        self.points = _points(32, 32) if points is None else points

    def __call__(self, rgb):
        if rgb.max() == rgb.min():
            raise lm.LandmarkFailure(lm.NO_FACE)
        return self.points


def _image_rows(tmp_path, count=6):
    rng = np.random.default_rng(1)
    rows = []
    for k in range(count):
        path = tmp_path / f"im{k}.png"
        blank = k % 3 == 0
        image = np.zeros((32, 32, 3), np.uint8) if blank else rng.integers(0, 255, (32, 32, 3))
        write_png(path, image.astype(np.uint8))
        rows.append(_row(f"im{k}", path=path, width=32, height=32))
    rows.append(_row("broken", path=tmp_path / "broken.png", width=32, height=32))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    return rows


def test_registered_source_records_failures_and_runs_in_parallel(tmp_path):
    rows = _image_rows(tmp_path)
    serial = lm.extract_landmarks(rows, source="test-fixed", threads=1)
    assert serial.ok.tolist() == [False, True, True, False, True, True, False]
    assert serial.reason == [lm.NO_FACE, "", "", lm.NO_FACE, "", "", lm.IMAGE_UNREADABLE]
    assert np.isnan(serial.landmarks[0]).all() and np.isfinite(serial.landmarks[1]).all()
    parallel = lm.extract_landmarks(rows, source="test-fixed", threads=2)
    assert parallel.reason == serial.reason
    np.testing.assert_array_equal(parallel.landmarks, serial.landmarks)


def test_unknown_source_is_a_config_error():
    with pytest.raises(ConfigError, match="nope.*given, dlib, dlib-detector"):
        lm.make_landmark_source("nope")


def test_table_round_trip(tmp_path):
    table = lm.extract_landmarks(_image_rows(tmp_path), source="test-fixed")
    lm.write_landmarks(tmp_path / "lm.h5", table)
    back = lm.read_landmarks(tmp_path / "lm.h5")
    assert back.image_id == table.image_id and back.reason == table.reason
    np.testing.assert_array_equal(back.landmarks, table.landmarks)
    assert back.attrs["complete"] and back.attrs["failures"] == 3 and back.attrs["count"] == 7
    points, ok = back.select(["im1", "im0"], "x")
    assert ok.tolist() == [True, False] and points.shape == (2, 68, 2)


# ----------------------------------------------------------------------------------------- dlib


@pytest.fixture(scope="module")
def dlib_sources():
    pytest.importorskip("dlib")
    return lm.make_landmark_source("dlib"), lm.make_landmark_source("dlib-detector")


def test_dlib_finds_the_astronaut_face(dlib_sources):
    from skimage.data import astronaut

    points = dlib_sources[1](astronaut())
    assert points.shape == (68, 2)
    # her face is about x 175-265, y 76-166 in this 512x512 picture
    assert 160 < points[:, 0].min() and points[:, 0].max() < 290
    assert 70 < points[:, 1].min() and points[:, 1].max() < 200
    left_eye, right_eye = points[36:42].mean(0), points[42:48].mean(0)
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 15


def test_dlib_blank_image_is_a_recorded_failure(tmp_path, dlib_sources):
    for source in dlib_sources:
        with pytest.raises(lm.LandmarkFailure) as failure:
            source(np.zeros((64, 64, 3), np.uint8))
        assert failure.value.reason == lm.NO_FACE
    write_png(tmp_path / "blank.png", np.full((64, 64, 3), 128, np.uint8))
    table = lm.extract_landmarks([_row("blank", path=tmp_path / "blank.png")], source="dlib")
    assert table.ok.tolist() == [False] and table.reason == [lm.NO_FACE]


def test_predictor_is_located_without_importing_its_package():
    pytest.importorskip("dlib")
    assert lm.dlib_predictor_path().name == lm.PREDICTOR_FILE


# ------------------------------------------------------------------------------------------ CLI


def _given_dataset(tmp_path, bad=1, total=4):
    rows = []
    for k in range(total):
        cell = ""
        if k >= bad:
            cell = tmp_path / f"lm{k}.npy"
            np.save(cell, _face_points(seed=k))
        rows.append(_row(f"id{k}", cell))
    write_csv(tmp_path / "dataset.csv", rows, COLUMNS)
    return tmp_path / "dataset.csv"


def _landmarks_cli(tmp_path, dataset, fraction):
    return main(
        ["landmarks", "--dataset", str(dataset), "--source", "given"]
        + ["--max-failure-fraction", str(fraction), "--out", str(tmp_path / "lm.h5")]
        + ["--failures", str(tmp_path / "failures.csv"), "--threads", "1"]
    )


def test_landmarks_cli_given(tmp_path):
    dataset = _given_dataset(tmp_path, bad=1, total=4)
    assert _landmarks_cli(tmp_path, dataset, 0.25) == 0
    table = lm.read_landmarks(tmp_path / "lm.h5")
    assert table.ok.tolist() == [False, True, True, True]
    assert table.attrs["source"] == "given" and table.attrs["failures"] == 1
    np.testing.assert_allclose(table.landmarks[2], _face_points(seed=2), rtol=1e-6)
    with open(tmp_path / "failures.csv", newline="") as fh:
        failures = list(csv.DictReader(fh))
    assert failures == [{"image_id": "id0", "path": "/nowhere/id0.png", "reason": lm.NO_FILE}]


def test_landmarks_cli_fails_above_the_failure_fraction(tmp_path, capsys):
    dataset = _given_dataset(tmp_path, bad=2, total=4)
    assert _landmarks_cli(tmp_path, dataset, 0.2) == 2
    message = capsys.readouterr().err
    assert "dataset.csv" in message and "2 of 4 images (50.0%)" in message
    assert "max_failure_fraction=0.2" in message and "failures.csv" in message
    assert not (tmp_path / "lm.h5").exists()


# ------------------------------------------------------------------------------ plausibility


def test_implausible_landmarks_are_listed_failures_not_used(tmp_path):
    """A face whose points are shuffled (or scattered) is recorded in failures.csv with its residual;
    its points leave the table (NaN, ok False) and are kept as rejected for the QA figure."""
    dataset = _given_dataset(tmp_path, bad=0, total=5)
    rng = np.random.default_rng(3)
    np.save(tmp_path / "lm1.npy", _face_points(seed=1)[rng.permutation(68)])
    np.save(tmp_path / "lm3.npy", _points(seed=3))  # scattered over the image
    assert _landmarks_cli(tmp_path, dataset, 0.5) == 0
    table = lm.read_landmarks(tmp_path / "lm.h5")
    assert table.ok.tolist() == [True, False, True, False, True]
    assert np.isnan(table.landmarks[[1, 3]]).all() and np.isfinite(table.landmarks[[0, 2, 4]]).all()
    assert table.attrs["implausible"] == 2 and table.attrs["max_residual"] == 0.4
    assert (table.residual[[1, 3]] > 0.9).all() and (table.residual[[0, 2, 4]] < 0.05).all()
    np.testing.assert_allclose(table.rejected[3], _points(seed=3), rtol=1e-6)
    assert np.isfinite(table.rejected[1]).all() and np.isnan(table.rejected[[0, 2, 4]]).all()
    with open(tmp_path / "failures.csv", newline="") as fh:
        failures = {row["image_id"]: row["reason"] for row in csv.DictReader(fh)}
    assert set(failures) == {"id1", "id3"}
    assert all(
        r.startswith("implausible landmarks (Procrustes residual ") for r in failures.values()
    )
    assert failures["id1"].endswith(" > 0.4)")


def test_plausibility_can_be_turned_off_and_counts_toward_the_failure_fraction(tmp_path):
    dataset = _given_dataset(tmp_path, bad=0, total=4)
    np.save(tmp_path / "lm2.npy", _points(seed=2))
    base = ["landmarks", "--dataset", str(dataset), "--out", str(tmp_path / "lm.h5")]
    base += ["--failures", str(tmp_path / "failures.csv"), "--threads", "1"]
    assert main([*base, "--max-residual", "0"]) == 0
    table = lm.read_landmarks(tmp_path / "lm.h5")
    assert table.ok.all() and table.residual[2] > 0.9 and table.attrs["implausible"] == 0
    assert main([*base, "--max-failure-fraction", "0.1"]) == 2  # 1 of 4 implausible: 25 %
