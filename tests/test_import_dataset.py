"""ferxai import-dataset: the six common FER datasets, each as a miniature copy in its native layout
(written here with cv2/PIL), become a manifest that `ferxai prepare` accepts; broken layouts stop with
one message naming the missing file and the layout expected."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from ferxai.cli import main
from ferxai.core.config import validate_config
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import read_csv
from ferxai.data import import_dataset as importer_module
from ferxai.data.dataset import prepare, read_landmark_file
from ferxai.data.import_dataset import FORMATS, import_dataset, prepare_root
from tests.conftest import REPO, snakemake

SIX = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
NEUTRAL_REASON = "neutral is not one of the 6 expressions"
CONTEMPT_REASON = "contempt is not one of the 6 expressions"


def _pixels(seed: int, size: int = 40, channels: int = 3) -> np.ndarray:
    shape = (size, size, channels) if channels > 1 else (size, size)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _pil(path: Path, seed: int, fmt: str, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(seed)).convert(mode).save(path, format=fmt)


def _landmarks(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1, 39, (68, 2)).round(2)


@dataclass
class Fake:
    """A fabricated source and what importing it must give."""

    source: Path
    expressions: Counter  # expression -> images
    subjects: set = field(default_factory=set)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    landmarks: dict = field(default_factory=dict)  # image file name -> (68, 2)
    splits: Counter = field(default_factory=Counter)
    columns: tuple = ("path", "expression", "subject")


# ------------------------------------------------------------------------------------ fabricators
def make_fer2013(root: Path) -> Fake:
    """emotion 0-6 for both splits, plus a row with 2303 values and a row with a bad label."""
    lines = ["emotion,pixels,Usage"]
    seed = 0
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for emotion in range(7):
            seed += 1
            lines.append(f"{emotion},{' '.join(map(str, _pixels(seed, 48, 1).ravel()))},{usage}")
    lines.append(f"3,{' '.join(['7'] * 2303)},Training")
    lines.append(f"9,{' '.join(['7'] * 2304)},Training")
    path = root / "fer2013.csv"
    path.write_text("\n".join(lines) + "\n")
    return Fake(
        path,
        Counter({e: 3 for e in SIX}),
        skipped=Counter(
            {
                NEUTRAL_REASON: 3,
                "pixels: 2303 values, expected 2304 (48x48)": 1,
                "emotion 9 is not a FER2013 label (0-6)": 1,
            }
        ),
        splits=Counter({"Training": 6, "PublicTest": 6, "PrivateTest": 6}),
        columns=("path", "expression", "subject", "split"),
    )


CK_CODES = {1: "Anger", 3: "Disgust", 4: "Fear", 5: "Happiness", 6: "Sadness", 7: "Surprise"}


def make_ckplus(root: Path, frames: int = 1) -> Fake:
    """Two subjects; per subject a sequence of each of the six emotions (3 frames), one contempt,
    one unlabelled; S010's anger sequence lacks the peak frame's landmarks file."""
    source = root / "CK+"
    fake = Fake(source, Counter(), columns=("path", "expression", "subject", "landmarks", "aus"))
    seed = 100
    for subject in ("S005", "S010"):
        codes = [*CK_CODES, 2, None]
        for s, code in enumerate(codes, start=1):
            seq = f"{s:03d}"
            names = [f"{subject}_{seq}_{f:08d}" for f in range(1, 4)]
            for name in names:
                seed += 1
                folder = source / "cohn-kanade-images" / subject / seq
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{name}.png"), _pixels(seed, 40, 1))
                points = _landmarks(seed)
                lm_dir = source / "Landmarks" / subject / seq
                lm_dir.mkdir(parents=True, exist_ok=True)
                missing = subject == "S010" and code == 1 and name == names[-1]
                if not missing:
                    text = "".join(f"   {x:.4e}   {y:.4e}\n" for x, y in points)
                    (lm_dir / f"{name}_landmarks.txt").write_text(text)
                fake.landmarks[f"{name}.png"] = points
            emotion_dir = source / "Emotion" / subject / seq
            emotion_dir.mkdir(parents=True, exist_ok=True)  # unlabelled: present but empty
            if code is not None:
                (emotion_dir / f"{names[-1]}_emotion.txt").write_text(f"   {code:.7e}\n")
            if code is None:
                fake.skipped["unlabelled sequence (no Emotion/.../*_emotion.txt)"] += 1
            elif code == 2:
                fake.skipped[CONTEMPT_REASON] += 1
            else:
                for name in names[-frames:]:
                    if subject == "S010" and code == 1 and name == names[-1]:
                        fake.skipped["no landmark file in Landmarks/ for this frame"] += 1
                    else:
                        fake.expressions[CK_CODES[code]] += 1
    fake.subjects = {"S005", "S010"}
    return fake


KDEF_CODES = {"AF": "Fear", "AN": "Anger", "DI": "Disgust", "HA": "Happiness", "SA": "Sadness",
              "SU": "Surprise", "NE": "Neutral"}


def make_kdef(root: Path, angles=("S",)) -> Fake:
    """F01 in sessions A and B, M02 in session A; every expression at S and HL; one odd name."""
    source = root / "KDEF"
    fake = Fake(source, Counter(), columns=("path", "expression", "subject", "angle"))
    seed = 300
    for person in ("AF01", "BF01", "AM02"):
        for code, expression in KDEF_CODES.items():
            for angle in ("S", "HL"):
                seed += 1
                _pil(source / person / f"{person}{code}{angle}.JPG", seed, "JPEG")
                if angle not in angles:
                    continue
                if expression == "Neutral":
                    fake.skipped[NEUTRAL_REASON] += 1
                else:
                    fake.expressions[expression] += 1
    _pil(source / "AM02" / "AM02HAS_copy.JPG", 399, "JPEG")
    (source / "AM02" / "Thumbs.db").write_bytes(b"\0")
    fake.skipped["file name does not follow KDEF's <A|B><F|M><id><expr><angle>.JPG"] += 1
    fake.subjects = {"F01", "M02"}
    return fake


JAFFE_CODES = {"AN": "Anger", "DI": "Disgust", "FE": "Fear", "HA": "Happiness", "SA": "Sadness",
               "SU": "Surprise", "NE": "Neutral"}


def make_jaffe(root: Path) -> Fake:
    source = root / "jaffedbase"
    fake = Fake(source, Counter())
    number = 0
    for subject in ("KA", "YM"):
        for code in ("AN", "DI", "FE", "HA", "NE", "SA", "SU"):
            for n in (1, 2):
                number += 1
                _pil(source / f"{subject}.{code}{n}.{number}.tiff", 500 + number, "TIFF", "L")
                if code == "NE":
                    fake.skipped[NEUTRAL_REASON] += 1
                else:
                    fake.expressions[JAFFE_CODES[code]] += 1
    (source / "README").write_text("JAFFE")
    fake.subjects = {"KA", "YM"}
    return fake


RAF_CODES = {1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness", 6: "Anger"}


def make_rafdb(root: Path, missing: str = "test_0003.jpg") -> Fake:
    """Labels 1-7 for train and test; one listed image has no file."""
    source = root / "basic"
    fake = Fake(source, Counter(), columns=("path", "expression", "subject", "split"))
    lines = []
    for split in ("train", "test"):
        for label in range(1, 8):
            name = f"{split}_{label:04d}.jpg"
            lines.append(f"{name} {label}")
            stem = name[:-4]
            if name != missing:
                _pil(source / "Image" / "aligned" / f"{stem}_aligned.jpg", 600 + len(lines), "JPEG")
                _pil(source / "Image" / "original" / name, 700 + len(lines), "JPEG")
            if label == 7:
                fake.skipped[NEUTRAL_REASON] += 1
            elif name == missing:
                fake.skipped["image not found in Image/aligned/"] += 1
            else:
                fake.expressions[RAF_CODES[label]] += 1
                fake.splits[split] += 1
    (source / "EmoLabel").mkdir(parents=True)
    (source / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return fake


AFFECT_CODES = {1: "Happiness", 2: "Sadness", 3: "Surprise", 4: "Fear", 5: "Disgust", 6: "Anger"}
AFFECT_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
    "valence,arousal"
)


def make_affectnet(root: Path, validation_header: bool = False) -> Fake:
    """Codes 0-10 in training.csv (with header) and validation.csv (without: as some copies are);
    one row with 67 landmark points."""
    source = root / "AffectNet"
    fake = Fake(
        source,
        Counter(),
        columns=("path", "expression", "subject", "landmarks",
                 "face_x", "face_y", "face_width", "face_height", "split"),
    )
    reasons = {0: NEUTRAL_REASON, 7: CONTEMPT_REASON, 8: "AffectNet 'None' (no expression)",
               9: "AffectNet 'Uncertain'", 10: "AffectNet 'No-Face'"}
    lists = source / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    seed = 800
    for split in ("training", "validation"):
        rows = [AFFECT_HEADER] if split == "training" or validation_header else []
        for code in range(11):
            seed += 1
            relative = f"{seed % 7 + 1}/img{seed}.jpg"
            _pil(source / "Manually_Annotated_Images" / relative, seed, "JPEG")
            points = _landmarks(seed)
            count = 67 if split == "validation" and code == 2 else 68
            cell = ";".join(f"{v:.2f}" for v in points[:count].ravel())
            rows.append(f"{relative},3,4,30,31,{cell},{code},0.5,-0.25")
            if code in reasons:
                fake.skipped[reasons[code]] += 1
            elif count != 68:
                fake.skipped["unreadable landmarks (134 values, expected 68 [x, y] points)"] += 1
            else:
                fake.expressions[AFFECT_CODES[code]] += 1
                fake.landmarks[f"img{seed}.jpg"] = points
                fake.splits[split] += 1
        (lists / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return fake


MAKERS = {
    "fer2013": make_fer2013,
    "ckplus": make_ckplus,
    "kdef": make_kdef,
    "jaffe": make_jaffe,
    "rafdb": make_rafdb,
    "affectnet": make_affectnet,
}


def _import(fmt, fake, tmp_path, settings=None):
    out = tmp_path / "out"
    rows, skipped = import_dataset(fmt, fake.source, out, settings)
    return out, rows, skipped


def _check_against(fake: Fake, out: Path, rows, skipped) -> None:
    manifest = read_csv(out / "manifest.csv")
    assert tuple(manifest[0]) == fake.columns
    assert manifest == [{k: str(v) for k, v in r.items()} for r in rows]
    assert Counter(r["expression"] for r in manifest) == fake.expressions
    assert {r["subject"] for r in manifest} == (fake.subjects or {""})
    on_disk = read_csv(out / "skipped.csv")
    assert on_disk == skipped and (not on_disk or tuple(on_disk[0]) == ("item", "reason"))
    assert Counter(s["reason"] for s in on_disk) == fake.skipped
    if fake.splits:
        assert Counter(r["split"] for r in manifest) == fake.splits
    for row in manifest:
        image = Path(row["path"]) if Path(row["path"]).is_absolute() else out / row["path"]
        assert image.is_file(), row
        if "landmarks" in row:
            landmarks = Path(row["landmarks"])
            assert landmarks.is_absolute() and landmarks.is_relative_to(out), row
            points = np.load(landmarks)
            assert points.shape == (68, 2) and points.dtype == np.float32
            expected = fake.landmarks[image.name]
            np.testing.assert_allclose(points, expected, rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(read_landmark_file(landmarks), points)


def _prepare(fmt, fake, out):
    """The manifest passes `ferxai prepare` with the root the workflow gives it."""
    root = prepare_root(fmt, fake.source, out)
    table, skipped = prepare(
        out / "dataset.csv", out / "prepare_skipped.csv", manifest=out / "manifest.csv", root=root
    )
    assert skipped == []
    assert len(table) == sum(fake.expressions.values())
    assert Counter(r["expression"] for r in table) == fake.expressions
    return table


# ------------------------------------------------------------------------------------ the formats
@pytest.mark.parametrize("fmt", list(MAKERS))
def test_native_layout_gives_the_manifest_and_prepare_accepts_it(fmt, tmp_path):
    fake = MAKERS[fmt](tmp_path)
    out, rows, skipped = _import(fmt, fake, tmp_path)
    _check_against(fake, out, rows, skipped)
    table = _prepare(fmt, fake, out)
    if fake.subjects:
        assert {r["subject"] for r in table} == fake.subjects
    if "landmarks" in fake.columns:
        assert all(r["landmarks"] for r in table)


def test_registry_names_the_six_formats():
    assert list(FORMATS) == ["fer2013", "ckplus", "kdef", "jaffe", "rafdb", "affectnet"]
    assert {f for f, imp in FORMATS.items() if imp.subjects} == {"ckplus", "kdef", "jaffe"}
    assert {f for f, imp in FORMATS.items() if imp.landmarks} == {"ckplus", "affectnet"}


def test_fer2013_images_are_the_pixels_of_their_row(tmp_path):
    fake = make_fer2013(tmp_path)
    out, rows, _ = _import("fer2013", fake, tmp_path)
    assert rows[0]["path"] == "images/Training/00000.png"  # relative to the manifest's folder
    data = [line.split(",") for line in fake.source.read_text().splitlines()[1:]]
    for row in rows:
        index = int(Path(row["path"]).stem)
        image = cv2.imread(str(out / row["path"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (48, 48) and image.dtype == np.uint8
        expected = np.array(data[index][1].split(), dtype=np.uint8).reshape(48, 48)
        np.testing.assert_array_equal(image, expected)
        assert row["split"] == data[index][2]
    assert prepare_root("fer2013", fake.source, out) is None


def test_fer2013_logs_progress(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(importer_module, "PROGRESS_EVERY", 5)
    fake = make_fer2013(tmp_path)
    with caplog.at_level(logging.INFO, logger="ferxai.data.import_dataset"):
        _import("fer2013", fake, tmp_path)
    progress = [r.getMessage() for r in caplog.records if "inputs read" in r.getMessage()]
    assert len(progress) == 23 // 5
    assert "5 inputs read" in progress[0]


def test_ckplus_takes_frames_from_the_end(tmp_path):
    fake = make_ckplus(tmp_path, frames=2)
    out, rows, skipped = _import("ckplus", fake, tmp_path, {"frames": 2})
    _check_against(fake, out, rows, skipped)
    before, peak = rows[0]["path"], rows[1]["path"]
    assert Path(before).name == "S005_001_00000002.png" and Path(peak).name.endswith("03.png")
    # more frames than the sequence has: all of them
    rows, _ = import_dataset("ckplus", fake.source, tmp_path / "all", {"frames": 10})
    assert len(rows) == 3 * 12 - 1


def test_ckplus_peak_is_the_frame_the_emotion_file_names(tmp_path):
    fake = make_ckplus(tmp_path)
    seq = fake.source / "Emotion" / "S005" / "001"
    label = next(seq.glob("*_emotion.txt"))
    label.rename(seq / "S005_001_00000002_emotion.txt")
    rows, _ = import_dataset("ckplus", fake.source, tmp_path / "out")
    assert Path(rows[0]["path"]).name == "S005_001_00000002.png"


def test_ckplus_frame_with_a_bad_landmark_file_is_skipped(tmp_path):
    fake = make_ckplus(tmp_path)
    file = fake.source / "Landmarks" / "S005" / "002" / "S005_002_00000003_landmarks.txt"
    file.write_text("".join(file.read_text().splitlines(keepends=True)[:67]))
    rows, skipped = import_dataset("ckplus", fake.source, tmp_path / "out")
    assert {"item": "cohn-kanade-images/S005/002/S005_002_00000003.png",
            "reason": "landmark file is not 68 lines of 'x y' numbers"} in skipped
    assert Counter(r["expression"] for r in rows)["Disgust"] == fake.expressions["Disgust"] - 1


def test_kdef_subject_spans_both_sessions_and_angles_are_a_setting(tmp_path):
    fake = make_kdef(tmp_path, angles=("S", "HL"))
    out, rows, skipped = _import("kdef", fake, tmp_path, {"angles": ["S", "HL"]})
    _check_against(fake, out, rows, skipped)
    sessions = {Path(r["path"]).parent.name[0] for r in rows if r["subject"] == "F01"}
    assert sessions == {"A", "B"}
    assert Counter(r["angle"] for r in rows) == Counter({"S": 18, "HL": 18})
    _prepare("kdef", fake, out)


def test_rafdb_original_images(tmp_path):
    fake = make_rafdb(tmp_path, missing="none")
    out, rows, skipped = _import("rafdb", fake, tmp_path, {"images": "original"})
    assert len(rows) == 12 and all("/Image/original/" in r["path"] for r in rows)
    assert {r["split"] for r in rows} == {"train", "test"}
    assert Path(rows[0]["path"]).name == "train_0001.jpg"
    assert rows[0]["expression"] == "Surprise"
    assert Counter(s["reason"] for s in skipped) == {NEUTRAL_REASON: 2}


def test_affectnet_keeps_the_face_box(tmp_path):
    fake = make_affectnet(tmp_path, validation_header=True)
    out, rows, skipped = _import("affectnet", fake, tmp_path)
    _check_against(fake, out, rows, skipped)
    assert {(r["face_x"], r["face_y"], r["face_width"], r["face_height"]) for r in rows} == {
        ("3", "4", "30", "31")
    }
    assert Path(rows[0]["landmarks"]).relative_to(out).parts[0] == "landmarks"


def test_cli_with_flags_and_settings(tmp_path, capsys):
    fake = make_kdef(tmp_path, angles=("HL",))
    out = tmp_path / "cli"
    args = ["import-dataset", "--format", "kdef", "--source", str(fake.source), "--out-dir"]
    assert main([*args, str(out), "--angles", "HL"]) == 0
    assert Counter(r["angle"] for r in read_csv(out / "manifest.csv")) == {"HL": 18}
    assert main([*args, str(tmp_path / "json"), "--settings", '{"angles": ["S", "HL"]}']) == 0
    assert len(read_csv(tmp_path / "json" / "manifest.csv")) == 36
    assert main([*args, str(out), "--frames", "2"]) == 2
    assert "--frames is a ckplus setting" in capsys.readouterr().err


@pytest.mark.parametrize(
    "fmt, settings, match",
    [
        ("ckplus", {"frames": 0}, r"data.import.ckplus.frames: 0 must be an integer ≥ 1"),
        ("kdef", {"angles": ["S", "UP"]}, r"data.import.kdef.angles"),
        ("rafdb", {"images": "cropped"}, r"data.import.rafdb.images: 'cropped' is not one of"),
        ("jaffe", {"frames": 2}, r"data.import.jaffe: unknown setting\(s\) frames"),
    ],
)
def test_bad_settings_name_the_key(fmt, settings, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        import_dataset(fmt, tmp_path, tmp_path / "out", settings)


def test_unknown_format():
    with pytest.raises(ConfigError, match="import format 'ck' is unknown; use one of fer2013"):
        import_dataset("ck", ".", "out")


# ------------------------------------------------------------------------------- broken layouts
def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path) if path.is_dir() else path.unlink()


BROKEN = [
    # (format, what to break: a path under the source to delete, or a callable, expected pieces)
    ("ckplus", "Emotion", ["CK+/Emotion: the emotion label folder not found",
                           "cohn-kanade-images/S###/###/S###_###_########.png",
                           "Fix: point data.path (--source) at the folder that holds"]),
    ("ckplus", "Landmarks", ["CK+/Landmarks: the landmark folder not found"]),
    ("ckplus", "cohn-kanade-images", ["CK+/cohn-kanade-images: the image folder not found"]),
    ("kdef", "*", ["KDEF/AF01: a person folder like AF01/ not found",
                   "<A|B><F|M><id>/<A|B><F|M><id><expr><angle>.JPG"]),
    ("jaffe", "*.tiff", ["jaffedbase/KA.AN1.39.tiff: any .tiff image like this not found",
                         "<subject>.<expr><n>.<number>.tiff"]),
    ("rafdb", "EmoLabel/list_patition_label.txt",
     ["basic/EmoLabel/list_patition_label.txt: the label list not found", "RAF-DB (basic)"]),
    ("rafdb", "Image/aligned", ["basic/Image/aligned: the aligned image folder not found"]),
    ("affectnet", "Manually_Annotated_file_lists/validation.csv",
     ["Manually_Annotated_file_lists/validation.csv: the validation list not found",
      "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks"]),
    ("affectnet", "Manually_Annotated_Images",
     ["AffectNet/Manually_Annotated_Images: the image folder not found"]),
]


@pytest.mark.parametrize("fmt, broken, pieces", BROKEN)
def test_broken_layout_names_the_missing_file(fmt, broken, pieces, tmp_path, capsys):
    fake = MAKERS[fmt](tmp_path)
    for path in list(fake.source.glob(broken)):
        _remove(path)
    with pytest.raises(DataError) as info:
        import_dataset(fmt, fake.source, tmp_path / "out")
    message = str(info.value)
    for piece in pieces:
        assert piece in message, message
    assert not (tmp_path / "out" / "manifest.csv").exists()
    # the command prints that one message and exits 2
    args = ["import-dataset", "--format", fmt, "--source", str(fake.source), "--out-dir"]
    assert main([*args, str(tmp_path / "cli")]) == 2
    assert "\n" not in message
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"ferxai import-dataset: error: {message}"


def test_source_that_is_not_there(tmp_path):
    for fmt in FORMATS:
        with pytest.raises(
            DataError, match="(does not exist|file not found).*Fix: point data.path"
        ):
            import_dataset(fmt, tmp_path / "nowhere", tmp_path / "out")


def test_fer2013_wrong_file_or_folder(tmp_path):
    wrong = tmp_path / "train.csv"
    wrong.write_text("label,image\n1,2\n")
    with pytest.raises(DataError, match=r"train.csv: missing column\(s\) emotion, pixels, Usage"):
        import_dataset("fer2013", wrong, tmp_path / "out")
    with pytest.raises(DataError, match=r"a folder \(it holds train.csv\), but FER2013 is one CSV"):
        import_dataset("fer2013", tmp_path, tmp_path / "out")


def test_lists_with_a_byte_order_mark_or_binary(tmp_path):
    fake = make_fer2013(tmp_path)
    fake.source.write_bytes(b"\xef\xbb\xbf" + fake.source.read_bytes())
    rows, _ = import_dataset("fer2013", fake.source, tmp_path / "bom")
    assert len(rows) == 18
    binary = tmp_path / "fer2013.zip"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00\x81")
    with pytest.raises(DataError, match=r"fer2013.zip: not UTF-8 text.*Fix: point data.path"):
        import_dataset("fer2013", binary, tmp_path / "bin")


def test_kdef_parent_folder_gets_a_hint(tmp_path):
    fake = make_kdef(tmp_path)
    with pytest.raises(DataError, match="one level down there are such folders"):
        import_dataset("kdef", fake.source.parent, tmp_path / "out")


def test_nothing_usable_is_an_error(tmp_path):
    source = tmp_path / "jaffe"
    _pil(source / "KA.NE1.26.tiff", 1, "TIFF", "L")
    with pytest.raises(DataError, match=r"no image of the six expressions.*1 x neutral"):
        import_dataset("jaffe", source, tmp_path / "out")


# ------------------------------------------------------------------------------------ workflow
def test_config_requires_data_path_for_an_import_format(tmp_path):
    with pytest.raises(ConfigError, match="data.source is ckplus but data.path is not set"):
        validate_config({"data": {"source": "ckplus"}})
    with pytest.raises(ConfigError, match=r"data.path = .* does not exist.*AF01/"):
        validate_config({"data": {"source": "kdef", "path": str(tmp_path / "nope")}})
    config = validate_config({"data": {"source": "jaffe", "path": str(tmp_path)}})
    assert config["data"]["import"] == {
        "ckplus": {"frames": 1},
        "kdef": {"angles": ["S"]},
        "rafdb": {"images": "aligned"},
    }
    with pytest.raises(ConfigError, match="data.import.kdef.angles"):
        validate_config({"data": {"import": {"kdef": {"angles": []}}}})


def test_workflow_imports_then_prepares(tmp_path):
    fake = make_ckplus(tmp_path)
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["data"] = {
        "source": "ckplus",
        "path": str(fake.source),
        "import": {"ckplus": {"frames": 2}},
        "folds": 2,
    }
    path = tmp_path / "ckplus.yaml"
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(work, "-n", "--printshellcmds", "--until", "folds", configfile=path)
    text = proc.stdout + proc.stderr
    assert "rule import_dataset" in text and "rule prepare_dataset" in text, text
    assert "synth" not in text
    assert f"ferxai import-dataset --format ckplus --source {fake.source}" in text
    assert "--settings '{\"frames\":2}'" in text
    root = prepare_root("ckplus", fake.source, work / "results" / "data" / "import")
    assert f"--manifest results/data/import/manifest.csv --root {root}" in text, text
