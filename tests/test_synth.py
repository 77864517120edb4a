"""ferxai.data.synth: deterministic, complete, learnable synthetic FACS faces and their cue masks."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

import ferxai.data.face_model as face_model
import ferxai.data.synth as synth
from ferxai.cli import main
from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS, NEUTRAL
from ferxai.core.errors import ConfigError
from ferxai.core.io import read_csv

# A stand-in for ferxai.normalization.normalize.canonical_landmarks (owned by another module): our mean face laid
# on the canvas the way the paper's points are (jaw top at y = 90, half face width 96 px).
CANONICAL = face_model.MEAN_SHAPE * 96.0 + [112.0, 90.0]


@pytest.fixture
def canonical(monkeypatch):
    monkeypatch.setattr(synth, "_canonical_points", lambda: CANONICAL.copy())
    return CANONICAL


def _digests(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_mean_shape_is_a_plausible_symmetric_face():
    shape = face_model.MEAN_SHAPE
    assert shape.shape == (68, 2)
    mirrored = shape * [-1, 1]
    # iBUG mirror pairs: jaw i <-> 16 - i; brows 17..21 <-> 26..22.
    np.testing.assert_allclose(mirrored[face_model.JAW], shape[face_model.JAW][::-1], atol=1e-9)
    np.testing.assert_allclose(
        mirrored[face_model.RIGHT_BROW], shape[face_model.LEFT_BROW][::-1], atol=1e-9
    )
    brows, eyes = shape[17:27, 1].mean(), shape[36:48, 1].mean()
    nose_tip, mouth, chin = shape[30, 1], shape[48:60, 1].mean(), shape[8, 1]
    assert brows < eyes < nose_tip < mouth < chin


def test_synthesize_writes_images_landmarks_cues_and_manifest(tmp_path, canonical):
    manifest = synth.synthesize(tmp_path, subjects=3, size=64, seed=1, neutral=True)
    rows = read_csv(manifest)
    assert list(rows[0]) == ["path", "expression", "subject", "landmarks", "aus"]
    assert len(rows) == 3 * 7
    assert {r["expression"] for r in rows} == {*EXPRESSIONS, NEUTRAL}
    assert rows[0]["path"] == "images/S001_Anger.png"
    for row in rows:
        image = cv2.imread(str(tmp_path / row["path"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 64, 3)
        points = np.load(tmp_path / row["landmarks"])
        assert points.shape == (68, 2) and points.dtype == np.float32
        assert (points > 0).all() and (points < 64).all()
    for expression in EXPRESSIONS:
        cue = cv2.imread(str(tmp_path / "cues" / f"{expression}_cue.png"), cv2.IMREAD_UNCHANGED)
        assert cue.shape == (CANVAS_HEIGHT, CANVAS_WIDTH) and cue.dtype == np.uint8
        assert set(np.unique(cue)) == {0, 255}
    assert not (tmp_path / "cues" / "Neutral_cue.png").exists()


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path, canonical):
    synth.synthesize(tmp_path / "a", subjects=2, size=48, seed=7)
    synth.synthesize(tmp_path / "b", subjects=2, size=48, seed=7)
    synth.synthesize(tmp_path / "c", subjects=2, size=48, seed=8)
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b
    images = [k for k in a if k.startswith("images/")]
    assert all(a[k] != c[k] for k in images)


def test_several_images_per_expression_are_numbered_and_distinct(tmp_path, canonical):
    rows = read_csv(synth.synthesize(tmp_path, subjects=1, size=48, images_per_expression=2))
    assert len(rows) == 12
    assert rows[0]["path"] == "images/S001_Anger_01.png"
    assert rows[1]["path"] == "images/S001_Anger_02.png"
    first, second = ((tmp_path / rows[i]["path"]).read_bytes() for i in (0, 1))
    assert first != second


def test_manifest_is_not_written_when_rendering_fails(tmp_path, canonical, monkeypatch):
    calls = []

    def failing_write_png(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")

    monkeypatch.setattr(synth, "write_png", failing_write_png)
    with pytest.raises(OSError):
        synth.synthesize(tmp_path, subjects=2, size=48)
    assert not (tmp_path / "manifest.csv").exists()


def _neutral_pose_landmarks(expression: str, intensity_value: float = 1.0) -> np.ndarray:
    subject = synth.make_subject("S", np.random.default_rng(0))
    intensity = np.zeros(len(synth.ACTION_UNITS))
    for au in synth.EXPRESSION_AUS[expression]:
        intensity[synth.ACTION_UNITS.index(au)] = intensity_value
    pose = synth.Pose(0.0, 1.0, (0.0, 0.0))
    _, points = synth.render_face(subject, intensity, pose, 128, np.random.default_rng(0))
    return points


def test_action_units_move_the_landmarks_they_should():
    neutral = _neutral_pose_landmarks(NEUTRAL)
    happy = _neutral_pose_landmarks("Happiness")
    sad = _neutral_pose_landmarks("Sadness")
    surprise = _neutral_pose_landmarks("Surprise")
    corners = [48, 54]
    assert (happy[corners, 1] < neutral[corners, 1] - 2).all()  # AU12 lifts the corners (y up)
    assert (sad[corners, 1] > neutral[corners, 1] + 2).all()  # AU15 lowers them
    assert (surprise[17:27, 1] < neutral[17:27, 1] - 1).all()  # AU1+2 raise both brows
    mouth_gap = surprise[66, 1] - surprise[62, 1]
    assert mouth_gap > 5 * (neutral[66, 1] - neutral[62, 1])  # AU26 opens the mouth
    np.testing.assert_allclose(happy[17:27], neutral[17:27])  # smiles leave brows alone


def test_stronger_intensity_moves_further():
    neutral = _neutral_pose_landmarks(NEUTRAL)
    weak = _neutral_pose_landmarks("Happiness", 0.5)
    strong = _neutral_pose_landmarks("Happiness", 1.0)
    lift_weak, lift_strong = (neutral[48, 1] - p[48, 1] for p in (weak, strong))
    assert lift_strong == pytest.approx(2 * lift_weak, rel=1e-4)


def test_expressions_change_pixels_where_their_action_units_act():
    subject = synth.make_subject("S", np.random.default_rng(3))
    pose = synth.Pose(0.0, 1.0, (0.0, 0.0))
    zero = np.zeros(len(synth.ACTION_UNITS))
    neutral, points = synth.render_face(subject, zero, pose, 128, np.random.default_rng(1), 0.0)
    happy_intensity = zero.copy()
    happy_intensity[[synth.ACTION_UNITS.index(6), synth.ACTION_UNITS.index(12)]] = 1.0
    happy, _ = synth.render_face(subject, happy_intensity, pose, 128, np.random.default_rng(1), 0.0)
    diff = np.abs(happy.astype(int) - neutral.astype(int)).sum(axis=2)
    lower = diff[int(points[30, 1]) :].sum()  # from the nose tip down: mouth and folds
    upper = diff[: int(points[19, 1]) - 2].sum()  # forehead above the brows
    assert lower > 0 and upper == 0


def test_cue_masks_cover_moved_landmarks_and_spare_unrelated_regions():
    for expression in EXPRESSIONS:
        mask = synth.cue_mask(expression, CANONICAL)
        assert mask.shape == (CANVAS_HEIGHT, CANVAS_WIDTH)
        moved = np.zeros(68, bool)
        for au in synth.EXPRESSION_AUS[expression]:
            moved |= np.abs(face_model._FIELDS[au]).sum(axis=1) > 0
        x, y = np.round(CANONICAL[moved]).astype(int).T
        inside = (0 <= y) & (y < CANVAS_HEIGHT)
        assert (mask[y[inside], x[inside]] == 255).all(), expression

    def covered(expression, index):
        x, y = np.round(CANONICAL[index]).astype(int)
        return synth.cue_mask(expression, CANONICAL)[y, x] == 255

    assert not covered("Happiness", 19) and covered("Happiness", 54)  # smile: mouth, not brows
    assert covered("Sadness", 21) and not covered("Sadness", 33)
    assert covered("Disgust", 29) and not covered("Disgust", 19)
    assert covered("Surprise", 8)  # AU26 drops the chin


def test_the_task_is_learnable_but_not_trivial():
    from sklearn.linear_model import LogisticRegression

    features, labels, subjects = [], [], []
    for s in range(24):
        subject = synth.make_subject(f"S{s}", np.random.default_rng([5, s]))
        for e, expression in enumerate(EXPRESSIONS):
            rng = np.random.default_rng([5, s, e])
            intensity = synth.au_intensities(expression, rng)
            image, _ = synth.render_face(subject, intensity, synth.Pose.random(rng), 64, rng)
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            features.append(cv2.resize(gray, (24, 24), interpolation=cv2.INTER_AREA).ravel())
            labels.append(e)
            subjects.append(s)
    x = np.asarray(features, float) / 255.0
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y, train = np.asarray(labels), np.asarray(subjects) < 16
    model = LogisticRegression(C=0.05, max_iter=500).fit(x[train], y[train])
    held_out = model.score(x[~train], y[~train])
    assert 0.4 < held_out < 1.0  # chance is 1/6 ≈ 0.17


def test_expressiveness_scales_every_displacement():
    rng = np.random.default_rng(3)
    subject = synth.make_subject("S1", rng)
    intensity = synth.au_intensities("Surprise", np.random.default_rng(4))
    pose = synth.Pose(angle_deg=0.0, scale=1.0, shift=(0.0, 0.0))

    def landmarks(expressiveness, active):
        _, points = synth.render_face(subject, intensity * active, pose, 128,
                                      np.random.default_rng(0), 0.0, expressiveness)
        return points

    neutral = landmarks(1.0, 0.0)
    natural, caricature = (landmarks(x, 1.0) - neutral for x in (1.0, 2.0))
    np.testing.assert_allclose(caricature, 2 * natural, atol=1e-3)
    assert np.abs(natural).max() > 1.0  # the surprise AUs do move points


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("subjects", 0, "--subjects"),
        ("size", 16, "--size"),
        ("intensity_min", 1.5, "intensity"),
        ("expressiveness", 0.0, "--expressiveness"),
        ("expressiveness", 3.0, "--expressiveness"),
    ],
)
def test_bad_settings_raise_config_error(tmp_path, setting, value, message):
    with pytest.raises(ConfigError, match=message):
        synth.synthesize(tmp_path, **{setting: value})


def test_cli_writes_the_dataset(tmp_path, canonical, capsys):
    out = tmp_path / "synth"
    argv = ["synth", "--out-dir", str(out), "--subjects", "2", "--size", "40", "--seed", "3",
            "--noise", "0.01", "--intensity-min", "0.6", "--images-per-expression", "1"]
    assert main(argv) == 0
    assert len(read_csv(out / "manifest.csv")) == 12
    assert main(["synth", "--out-dir", str(out), "--subjects", "0"]) == 2
    assert "--subjects" in capsys.readouterr().err


def test_cues_use_the_project_canonical_landmarks(tmp_path):
    normalize = pytest.importorskip("ferxai.core.template", reason="ferxai.core.template not written yet")
    try:
        points = np.asarray(normalize.canonical_landmarks())
    except ConfigError as exc:  # its packaged template is generated by another stage
        pytest.skip(f"canonical template not available yet: {exc}")
    assert points.shape == (68, 2)
    mask = synth.cue_mask("Happiness")
    x, y = np.round(points[54]).astype(int)
    assert mask[y, x] == 255
