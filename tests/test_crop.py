"""Faces in photos: cropping to the face (box, landmarks, dlib's detector) with the landmarks carried
into the crop, the plausibility check of landmarks, and the landmark QA figure; end to end on a
miniature CK+ made of synthetic faces pasted into larger photos."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ferxai.cli import main
from ferxai.core.config import validate_config
from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError
from ferxai.core.io import Stack, read_csv, read_stack, write_csv, write_png, write_stack
from ferxai.data.crop import (
    Square,
    box_square,
    carry,
    crop_square,
    landmark_square,
    output_names,
)
from ferxai.data.dataset import prepare
from ferxai.data.images import load_rgb
from ferxai.data.synth import Pose, au_intensities, make_subject, render_face
from ferxai.normalization.plausibility import (
    DEFAULT_MAX_RESIDUAL,
    procrustes_residual,
    sample_per_expression,
    template_landmarks,
)
from tests.conftest import REPO, snakemake

PHOTO = (200, 260)  # height, width of the photos the faces are pasted into
FACE = 96


def photo_with_face(seed: int, expression: str = "Happiness", gray: bool = False):
    """A synthetic face (known landmarks) pasted at a random place of a larger noisy photo:
    (photo uint8, landmarks (68, 2) in the photo's pixels, paste offset (x, y))."""
    rng = np.random.default_rng(seed)
    subject = make_subject(f"S{seed}", np.random.default_rng([seed, 0]))
    face, points = render_face(
        subject, au_intensities(expression, rng), Pose.random(rng), FACE, rng, 0.03
    )
    photo = rng.integers(60, 120, (*PHOTO, 3), dtype=np.uint8)
    x, y = int(rng.integers(0, PHOTO[1] - FACE)), int(rng.integers(0, PHOTO[0] - FACE))
    photo[y : y + FACE, x : x + FACE] = face
    if gray:
        photo = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    return photo, points.astype(np.float64) + [x, y], (x, y)


# ------------------------------------------------------------------------------------ geometry
def test_square_about_the_landmarks_with_margin():
    points = np.array([[10.0, 20.0], [50.0, 100.0]] * 34)
    square = landmark_square(points, 0.25)
    assert square.side == 120  # 1.5 x the larger extent (80)
    # centred: the extent's centre (30, 60) lies within half a pixel of the crop's (59.5, 59.5)
    assert abs(30 - square.x - 59.5) <= 0.5 and abs(60 - square.y - 59.5) <= 0.5
    assert box_square((0, 0, 40, 40), 0.0) == Square(0, 0, 40)
    assert box_square((10, 20, 40, 20), 0.5).side == 80


def test_crop_pads_with_black_and_carries_points():
    rgb = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    square = Square(-5, 10, 16)
    crop = crop_square(rgb, square)
    assert crop.shape == (16, 16, 3)
    assert (crop[:, :5] == 0).all() and (crop[10:] == 0).all()
    np.testing.assert_array_equal(crop[:10, 5:], rgb[10:20, 0:11])
    point = np.array([[3.0, 12.0]])
    inside = carry(point, square)
    np.testing.assert_array_equal(inside, [[8.0, 2.0]])
    assert (crop[2, 8] == rgb[12, 3]).all()


def test_output_names_keep_folders_and_disambiguate():
    assert output_names(["a/b/x.jpg", "a/b/y.png", "c/x.jpg"]) == ["a/b/x", "a/b/y", "c/x"]
    assert output_names(["d/x.jpg", "d/x.png"]) == ["d/x.jpg", "d/x.png"]


# --------------------------------------------------------------------------- prepare --crop
def _photo_manifest(tmp_path, n_per_class=2, box=False, gray=False):
    """A manifest of photos with a pasted face each (landmarks files, optional face boxes)."""
    root = tmp_path / "data"
    rows, truth = [], {}
    for e, expression in enumerate(EXPRESSIONS):
        for k in range(n_per_class):
            seed = 10 * e + k
            photo, points, offset = photo_with_face(seed, expression, gray)
            name = f"{expression}_{k}"
            write_png(root / "img" / f"{name}.png", photo)
            (root / "lm").mkdir(parents=True, exist_ok=True)
            np.save(root / "lm" / f"{name}.npy", points)
            row = {"path": f"img/{name}.png", "expression": expression,
                   "subject": f"s{k}", "landmarks": f"lm/{name}.npy"}
            if box:  # the face's square at the paste place
                row.update(face_x=offset[0], face_y=offset[1], face_width=FACE, face_height=FACE)
            rows.append(row)
            truth[f"img/{name}.png"] = (photo, points, offset)
    columns = list(rows[0])
    write_csv(root / "manifest.csv", rows, columns)
    return root, rows, truth


def test_prepare_crops_to_the_landmarks_and_carries_them(tmp_path):
    root, _, truth = _photo_manifest(tmp_path)
    out = tmp_path / "crops"
    table, skipped = prepare(
        tmp_path / "dataset.csv", tmp_path / "skipped.csv", manifest=root / "manifest.csv",
        crop="landmarks", crop_dir=out,
    )
    assert skipped == [] and len(table) == len(truth)
    for row in table:
        photo, points, _ = truth[row["image_id"]]
        crop = load_rgb(row["path"])
        assert Path(row["path"]).resolve().is_relative_to(out) and row["path"].endswith(".png")
        assert crop.shape[0] == crop.shape[1] == int(row["width"]) == int(row["height"])
        extent = (points.max(0) - points.min(0)).max()
        assert abs(crop.shape[0] - 1.5 * extent) <= 1
        carried = np.load(row["landmarks"])
        assert carried.dtype == np.float32 and Path(row["landmarks"]).resolve().is_relative_to(out)
        shift = points - carried  # one integer offset for all 68 points
        np.testing.assert_allclose(shift, np.round(shift[0]).repeat(68).reshape(2, 68).T, atol=1e-3)
        x0, y0 = np.round(shift[0]).astype(int)
        for px, py in np.round(points[::7]).astype(int):  # same pixels at the same points
            assert (crop[py - y0, px - x0] == photo[py, px]).all()
        # the face is centred, with the margin on every side
        lo, hi = carried.min(0), carried.max(0)
        assert abs((lo + hi).mean() / 2 - (crop.shape[0] - 1) / 2) <= 1
        assert lo.min() >= 0.2 * extent and hi.max() <= crop.shape[0] - 1 - 0.2 * extent


def test_prepare_crop_box_and_missing_faces_are_skipped(tmp_path):
    root, rows, truth = _photo_manifest(tmp_path, n_per_class=3, box=True)
    rows[0].update(face_x="", face_y="", face_width="", face_height="")  # no box
    rows[1].update(landmarks="")  # no landmarks: box mode crops it anyway
    write_csv(root / "manifest.csv", rows, list(rows[0]))
    table, skipped = prepare(
        tmp_path / "dataset.csv", tmp_path / "skipped.csv", manifest=root / "manifest.csv",
        crop="box", crop_margin=0.0, crop_dir=tmp_path / "crops",
    )
    assert [s["reason"] for s in skipped] == [
        "crop box: no face box (face_x,face_y,face_width,face_height empty or not numbers)"
    ]
    assert skipped[0]["path"] == str((root / rows[0]["path"]).resolve())
    assert read_csv(tmp_path / "skipped.csv") == skipped
    by_id = {r["image_id"]: r for r in table}
    assert by_id[rows[1]["path"]]["landmarks"] == ""
    for image_id, row in by_id.items():
        photo, _, (x, y) = truth[image_id]
        np.testing.assert_array_equal(load_rgb(row["path"]), photo[y : y + FACE, x : x + FACE])
    # landmarks mode: the row without landmarks is the one skipped
    _, skipped = prepare(
        tmp_path / "d2.csv", tmp_path / "s2.csv", manifest=root / "manifest.csv",
        crop="landmarks", crop_dir=tmp_path / "crops2",
    )
    assert [s["reason"] for s in skipped] == [
        "crop landmarks: no landmarks given to crop to (landmarks column empty)"
    ]


def test_crop_box_without_boxes_and_bad_settings_fail_early(tmp_path):
    root, _, _ = _photo_manifest(tmp_path, n_per_class=2)
    with pytest.raises(ConfigError, match="face_x,face_y,face_width,face_height"):
        prepare(tmp_path / "d.csv", tmp_path / "s.csv", manifest=root / "manifest.csv",
                crop="box", crop_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="crop_margin"):
        prepare(tmp_path / "d.csv", tmp_path / "s.csv", manifest=root / "manifest.csv",
                crop="landmarks", crop_margin=3.0, crop_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="data.crop is box but data.source synthetic"):
        validate_config({"data": {"crop": "box"}})
    with pytest.raises(ConfigError, match="data.crop is landmarks but data.source jaffe"):
        validate_config({"data": {"source": "jaffe", "path": str(tmp_path), "crop": "landmarks"}})


def test_crop_detector_finds_the_astronaut_and_skips_a_blank_photo(tmp_path):
    pytest.importorskip("dlib")
    from skimage.data import astronaut

    photo = np.zeros((700, 760, 3), np.uint8)
    photo[150:662, 200:712] = astronaut()
    write_png(tmp_path / "astro.png", photo)
    write_png(tmp_path / "blank.png", np.full((120, 120, 3), 90, np.uint8))
    rows = [{"image_id": n, "path": str(tmp_path / f"{n}.png"), "landmarks": ""}
            for n in ("astro", "blank")]
    from ferxai.data.crop import crop_rows

    kept, skipped = crop_rows(rows, "detector", tmp_path / "crops", margin=0.25)
    assert skipped == [{"path": rows[1]["path"],
                        "reason": "crop detector: no face found by dlib's face detector"}]
    crop = load_rgb(kept[0]["path"])
    # her face is about x 175-265, y 76-166 of the astronaut picture: 1.5 x a ~90-110 px box
    assert 110 <= crop.shape[0] <= 200 and crop.shape[0] == crop.shape[1]
    assert kept[0]["landmarks"] == "" and int(kept[0]["width"]) == crop.shape[0]
    from ferxai.normalization.landmarks import make_landmark_source

    # the face fills the crop's middle: dlib's predictor fits it with the crop as its box
    points = make_landmark_source("dlib")(crop)
    assert procrustes_residual(points) < DEFAULT_MAX_RESIDUAL
    assert np.linalg.norm(points.mean(0) - (crop.shape[0] - 1) / 2) < 0.15 * crop.shape[0]


# -------------------------------------------------------------------------------- plausibility
def test_procrustes_residual_ignores_pose_and_size_and_flags_shuffled_points():
    template = template_landmarks()
    angle = np.radians(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = template @ rotation.T * 3.7 + [400, -20]
    assert procrustes_residual(moved) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    assert procrustes_residual(template[rng.permutation(68)]) > 0.9
    assert procrustes_residual(template * [-1, 1]) > 0.9  # mirrored labelling
    assert procrustes_residual(template[:, ::-1]) > 0.9  # x and y swapped
    assert procrustes_residual(np.roll(template, 1, axis=0)) > DEFAULT_MAX_RESIDUAL  # off by one
    batch = np.stack([template, template + rng.normal(0, 3, (68, 2))])
    residual = procrustes_residual(batch)
    assert residual.shape == (2,) and residual[1] < 0.1
    assert np.isnan(procrustes_residual(np.full((68, 2), np.nan)))


def test_qa_sample_is_seeded_per_expression():
    rows = [{"expression": EXPRESSIONS[k % 6]} for k in range(60)]
    first = sample_per_expression(rows, EXPRESSIONS, 3, seed=5)
    assert first == sample_per_expression(rows, EXPRESSIONS, 3, seed=5)
    assert all(len(v) == 3 and all(rows[i]["expression"] == e for i in v) for e, v in first.items())
    assert sample_per_expression(rows[:6], EXPRESSIONS, 3, seed=5)["Anger"] == [0]


# ---------------------------------------------------------------------- miniature CK+, end to end
CK_CODES = {"Anger": 1, "Disgust": 3, "Fear": 4, "Happiness": 5, "Sadness": 6, "Surprise": 7}
SUBJECTS = ("S005", "S010", "S011", "S022", "S026", "S032")  # .test: 6 subjects x 6 expressions
CORRUPT = ("S010", "Happiness")  # this face's landmark file is shuffled


def make_ckplus_photos(root: Path) -> tuple[Path, dict]:
    """CK+ as distributed (cohn-kanade-images/, Emotion/, Landmarks/), one peak frame per sequence:
    grey photos with a synthetic face pasted somewhere; returns (source, {frame name: (photo,
    landmarks as written, corrupted?)})."""
    source, truth = root / "CK+", {}
    for s, subject in enumerate(SUBJECTS):
        for e, expression in enumerate(EXPRESSIONS):
            seq = f"{e + 1:03d}"
            name = f"{subject}_{seq}_00000001"
            photo, points, _ = photo_with_face(100 * s + e, expression, gray=True)
            folder = source / "cohn-kanade-images" / subject / seq
            folder.mkdir(parents=True)
            cv2.imwrite(str(folder / f"{name}.png"), photo[:, :, 0])
            corrupt = (subject, expression) == CORRUPT
            written = points[np.random.default_rng(0).permutation(68)] if corrupt else points
            lm_dir = source / "Landmarks" / subject / seq
            lm_dir.mkdir(parents=True)
            text = "".join(f"   {x:.7e}   {y:.7e}\n" for x, y in written)
            (lm_dir / f"{name}_landmarks.txt").write_text(text)
            emotion = source / "Emotion" / subject / seq
            emotion.mkdir(parents=True)
            (emotion / f"{name}_emotion.txt").write_text(f"   {CK_CODES[expression]:.7e}\n")
            truth[f"{name}.png"] = (photo, written, corrupt)
    return source, truth


def test_ckplus_photos_cropped_to_landmarks_end_to_end(tmp_path):
    """import -> prepare (crop: landmarks) -> folds -> landmarks (given, carried) -> landmark QA;
    then the normalize command on maps of every image: the corrupted face is listed in
    failures.csv and its map is not valid."""
    source, truth = make_ckplus_photos(tmp_path)
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["data"] = {"source": "ckplus", "path": str(source), "crop": "landmarks", "folds": 2}
    configfile = tmp_path / "ckplus.yaml"
    configfile.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    start = time.perf_counter()
    snakemake(work, "--cores", "2", "--until", "landmarks_qa", "folds", configfile=configfile)
    seconds = time.perf_counter() - start
    results = work / "results"
    print(f"ckplus crop run (import, prepare+crop, folds, landmarks, QA): {seconds:.1f} s")

    dataset = read_csv(results / "data" / "dataset.csv")
    assert len(dataset) == len(truth) == 36 and read_csv(results / "data" / "skipped.csv") == []
    assert Counter(r["expression"] for r in dataset) == Counter({e: 6 for e in EXPRESSIONS})
    crops = (results / "data" / "crops").resolve()
    for row in dataset:
        name = Path(row["image_id"]).name
        photo, written, _ = truth[name]
        path = (work / row["path"]).resolve()
        assert path.is_relative_to(crops) and not Path(row["path"]).is_absolute()
        crop = load_rgb(path)
        assert crop.shape[:2] == (int(row["height"]), int(row["width"])) and crop.shape[0] < 200
        carried = np.load(work / row["landmarks"])
        offset = written[0] - carried[0]
        np.testing.assert_allclose(written - carried, np.tile(offset, (68, 1)), atol=1e-3)
        for px, py in np.round(written[::9]).astype(int):
            cx, cy = px - int(round(offset[0])), py - int(round(offset[1]))
            if 0 <= cx < crop.shape[1] and 0 <= cy < crop.shape[0]:
                assert crop[cy, cx, 0] == photo[py, px, 0]

    failures = read_csv(results / "landmarks" / "failures.csv")
    corrupt_id = next(r["image_id"] for r in dataset if truth[Path(r["image_id"]).name][2])
    assert [f["image_id"] for f in failures] == [corrupt_id]
    assert failures[0]["reason"].startswith("implausible landmarks (Procrustes residual ")
    qa = results / "figures" / "landmarks_qa.png"
    assert qa.is_file() and qa.stat().st_size > 50_000

    # maps of every image through the normalize command: the implausible face's map is not valid
    ids = [r["image_id"] for r in dataset]
    n = len(ids)
    stack = Stack(
        maps=np.ones((n, 48, 48), np.float32), image_id=ids,
        true_label=np.array([int(r["label"]) for r in dataset]), predicted=np.zeros(n, int),
        probabilities=np.full((n, 6), 1 / 6, np.float32),
    )
    write_stack(tmp_path / "maps.h5", stack)
    assert main(["normalize", "--stack", str(tmp_path / "maps.h5"),
                 "--landmarks", str(results / "landmarks" / "landmarks.h5"),
                 "--dataset", str(results / "data" / "dataset.csv"),
                 "--out", str(tmp_path / "normalized.h5")]) == 0
    normalized = read_stack(tmp_path / "normalized.h5")
    valid = normalized.extras["valid"]
    assert [i for i, v in zip(ids, valid) if not v] == [corrupt_id]
    assert not normalized.maps[ids.index(corrupt_id)].any() and normalized.maps[valid].any()
    from ferxai.heatmaps.pooling import stack_valid

    assert stack_valid(tmp_path / "normalized.h5").sum() == n - 1


AFFECT_CODES = {"Happiness": 1, "Sadness": 2, "Surprise": 3, "Fear": 4, "Disgust": 5, "Anger": 6}


def test_affectnet_photos_cropped_to_their_face_box(tmp_path):
    """AffectNet's manifest keeps face_x,face_y,face_width,face_height: `crop: box` cuts exactly
    that square out of the (JPEG) photo and carries the landmarks by its corner."""
    from ferxai.data.import_dataset import import_dataset, prepare_root

    source = tmp_path / "AffectNet"
    lists = source / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    header = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
              "expression,valence,arousal")
    truth, path_of = {}, {}
    for split in ("training", "validation"):
        lines = [header]
        for e, expression in enumerate(EXPRESSIONS):
            seed = 50 * (split == "validation") + e
            photo, points, (x, y) = photo_with_face(seed, expression)
            relative = f"{e + 1}/{split}_{expression}.jpg"
            path = source / "Manually_Annotated_Images" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), photo[:, :, ::-1])
            cell = ";".join(f"{v:.3f}" for v in points.ravel())
            lines.append(f"{relative},{x},{y},{FACE},{FACE},{cell},{AFFECT_CODES[expression]},0,0")
            truth[path.name] = (np.round(points, 3), (x, y))
            path_of[path.name] = relative
        (lists / f"{split}.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "import"
    import_dataset("affectnet", source, out)
    table, skipped = prepare(
        tmp_path / "dataset.csv", tmp_path / "skipped.csv", manifest=out / "manifest.csv",
        root=prepare_root("affectnet", source, out), crop="box", crop_margin=0.0,
        crop_dir=tmp_path / "crops",
    )
    assert skipped == [] and len(table) == 12
    for row in table:
        name = Path(row["image_id"]).name
        points, (x, y) = truth[name]
        original = load_rgb(source / "Manually_Annotated_Images" / path_of[name])
        crop = load_rgb(row["path"])
        np.testing.assert_array_equal(crop, original[y : y + FACE, x : x + FACE])
        np.testing.assert_allclose(np.load(row["landmarks"]), points - [x, y], atol=1e-3)
