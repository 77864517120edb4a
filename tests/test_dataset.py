"""ferxai prepare: every bad-data case is converted, recorded in skipped.csv, or fails early."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from ferxai.cli import main
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import read_csv
from ferxai.data.dataset import DATASET_COLUMNS, prepare, read_landmark_file

SIX = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")


def _image(path, seed, size=40, mode="RGB"):
    """A distinct small image (distinct bytes, so no accidental duplicates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def _manifest(root, rows, header="path,expression,subject,landmarks"):
    text = header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    (root / "manifest.csv").write_text(text)
    return root / "manifest.csv"


@pytest.fixture
def data_root(tmp_path):
    """Two images per expression from two subjects, plus a manifest listing them."""
    rows = []
    for e, expression in enumerate(SIX):
        for s in range(2):
            name = f"img/s{s}_{expression.lower()}.png"
            _image(tmp_path / name, seed=10 * e + s)
            rows.append((name, expression, f"p{s}", ""))
    return tmp_path, rows


def _run(root, rows, tmp_path=None, **kwargs):
    out = (tmp_path or root) / "out"
    manifest = _manifest(root, rows)
    result = prepare(out / "dataset.csv", out / "skipped.csv", manifest=manifest, **kwargs)
    return result, out


def _reasons(skipped):
    return {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in skipped}


def test_valid_manifest_gives_the_contract_table(data_root):
    root, rows = data_root
    (table, skipped), out = _run(root, rows)
    assert skipped == []
    written = read_csv(out / "dataset.csv")
    assert list(written[0]) == list(DATASET_COLUMNS)
    assert [r["image_id"] for r in written] == sorted(r["image_id"] for r in written)
    first = written[0]
    assert first["image_id"] == "img/s0_anger.png"
    assert first["path"] == str((root / "img/s0_anger.png").resolve())
    assert (first["expression"], first["label"], first["subject"]) == ("Anger", "0", "p0")
    assert (first["width"], first["height"]) == ("40", "40") and len(first["sha1"]) == 40
    assert {r["label"] for r in written} == {str(i) for i in range(6)}
    assert read_csv(out / "skipped.csv") == []


def test_label_aliases_default_and_custom(data_root):
    root, rows = data_root
    spelled = ["ANGRY", "disgusted", "afraid", " Happy ", "sad", "Surprised"]
    rows = [(r[0], spelled[i // 2], r[2], "") for i, r in enumerate(rows)]
    rows[0] = (rows[0][0], "rage", "p0", "")
    (table, _), _ = _run(root, rows, aliases={"Rage": "Anger"})
    assert [r["expression"] for r in table if r["image_id"].endswith("anger.png")] == ["Anger"] * 2
    assert sorted({r["expression"] for r in table}) == sorted(SIX)


def test_unknown_labels_fail_with_rows_and_fix(data_root):
    root, rows = data_root
    rows[3] = (rows[3][0], "contempt", "p1", "")
    with pytest.raises(
        DataError, match=r"unknown expression labels \(row 5: 'contempt'\).*label_aliases"
    ):
        _run(root, rows)


def test_alias_to_a_non_expression_is_a_config_error(data_root):
    root, rows = data_root
    with pytest.raises(ConfigError, match="label_aliases.*'Boredom'"):
        _run(root, rows, aliases={"bored": "Boredom"})


def test_neutral_is_skipped_unless_requested(data_root):
    root, rows = data_root
    rows.append(("img/n.png", "neutral", "p0", ""))
    _image(root / "img/n.png", seed=99)
    (table, skipped), _ = _run(root, rows)
    assert _reasons(skipped) == {"n.png": "neutral is not one of the 6 expressions"}
    (table, skipped), _ = _run(root, rows, expressions=[*SIX, "Neutral"])
    assert skipped == [] and [r["label"] for r in table if r["expression"] == "Neutral"] == [6]


@pytest.mark.parametrize("bad_path", ["../outside.png", "img/../../outside.png"])
def test_paths_escaping_the_root_fail_early(tmp_path, bad_path):
    root = tmp_path / "data"
    _image(tmp_path / "outside.png", seed=1)
    rows = [(bad_path, "Anger", "", "")]
    root.mkdir()
    with pytest.raises(
        DataError, match=r"manifest.csv row 2: path .* outside the data root.*data\.root"
    ):
        _run(root, rows, tmp_path)


def test_symlink_escaping_the_root_fails_early(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "link.png").symlink_to(_image(tmp_path / "elsewhere.png", seed=1))
    with pytest.raises(DataError, match="row 2: path 'link.png' resolves to .*elsewhere.png"):
        _run(root, [("link.png", "Anger", "", "")], tmp_path)


def test_unreadable_truncated_and_tiny_images_are_skipped(data_root):
    root, rows = data_root
    (root / "img/text.png").write_text("hello")
    whole = _image(root / "img/whole.jpg", seed=5, size=64).read_bytes()
    (root / "img/cut.jpg").write_bytes(whole[: len(whole) // 2])
    _image(root / "img/tiny.png", seed=6, size=16)
    rows += [
        (f"img/{n}", "Fear", "p2", "") for n in ("text.png", "cut.jpg", "tiny.png", "gone.png")
    ]
    (table, skipped), out = _run(root, rows)
    reasons = _reasons(skipped)
    assert "not an image" in reasons["text.png"]
    assert "truncated" in reasons["cut.jpg"]
    assert reasons["tiny.png"] == "too small: 16x16 px, below --min-size 32 px"
    assert "does not exist" in reasons["gone.png"] or "No such file" in reasons["gone.png"]
    assert len(table) == 12
    assert len(read_csv(out / "skipped.csv")) == 4


def test_converted_modes_are_kept(data_root):
    root, rows = data_root
    _image(root / "img/gray.png", seed=7, mode="L")
    _image(root / "img/rgba.png", seed=8, mode="RGBA")
    _image(root / "img/pal.png", seed=9, mode="P")
    cv2.imwrite(str(root / "img/deep.png"), np.full((40, 40), 40000, np.uint16))
    names = ("gray.png", "rgba.png", "pal.png", "deep.png")
    rows += [(f"img/{n}", "Sadness", "p3", "") for n in names]
    (table, skipped), _ = _run(root, rows)
    assert skipped == [] and len(table) == 16


def test_duplicates_are_skipped_or_fail(data_root):
    root, rows = data_root
    (root / "img/copy.png").write_bytes((root / "img/s0_anger.png").read_bytes())
    rows.append(("img/copy.png", "Anger", "p9", ""))
    (table, skipped), _ = _run(root, rows)
    # image ids sort "img/copy.png" first, so the original listed earlier is the later duplicate
    assert _reasons(skipped) == {
        "s0_anger.png": f"duplicate of {(root / 'img/copy.png').resolve()}"
    }
    with pytest.raises(DataError, match="identical bytes to .*copy.png.*data.duplicates"):
        _run(root, rows, duplicates="error")


def test_same_file_listed_twice_fails(data_root):
    root, rows = data_root
    rows.append(rows[0])
    with pytest.raises(DataError, match="listed 2 times"):
        _run(root, rows)


def test_landmark_files_are_checked(data_root):
    root, rows = data_root
    (root / "lm").mkdir()
    np.save(root / "lm/good.npy", np.zeros((68, 2), np.float32))
    np.save(root / "lm/bad.npy", np.zeros((5, 2)))
    rows[0] = (rows[0][0], rows[0][1], "p0", "lm/good.npy")
    rows[1] = (rows[1][0], rows[1][1], "p1", "lm/bad.npy")
    rows[2] = (rows[2][0], rows[2][1], "p0", "lm/none.npy")
    (table, skipped), _ = _run(root, rows)
    reasons = _reasons(skipped)
    assert "shape (5x2), expected (68, 2)" in reasons["s1_anger.png"]
    assert "lm/none.npy does not exist" in reasons["s0_disgust.png"]
    kept = {r["image_id"]: r["landmarks"] for r in table}
    assert kept["img/s0_anger.png"] == str((root / "lm/good.npy").resolve())


def test_landmark_text_formats(tmp_path):
    points = np.arange(136, dtype=float).reshape(68, 2)
    (tmp_path / "a.txt").write_text("\n".join(f"{x} {y}" for x, y in points))
    (tmp_path / "a.csv").write_text("\n".join(f"{x},{y}" for x, y in points))
    body = "\n".join(f"{x} {y}" for x, y in points)
    (tmp_path / "a.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    for suffix in ("txt", "csv", "pts"):
        np.testing.assert_array_equal(read_landmark_file(tmp_path / f"a.{suffix}"), points)
    (tmp_path / "b.txt").write_text("1 2\n3 4\n")
    with pytest.raises(DataError, match=r"b.txt: landmarks have shape \(2x2\)"):
        read_landmark_file(tmp_path / "b.txt")


def test_a_class_with_every_image_skipped_fails(data_root):
    root, rows = data_root
    for name in ("img/s0_fear.png", "img/s1_fear.png"):
        (root / name).write_bytes(b"broken")
    with pytest.raises(DataError, match="no usable image for Fear.*s0_fear.png"):
        _run(root, rows)


def test_manifest_without_required_columns_fails(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,label\na.png,Anger\n")
    with pytest.raises(DataError, match="m.csv: missing column.*expression, path"):
        prepare(tmp_path / "d.csv", tmp_path / "s.csv", manifest=manifest)


def _class_tree(root, names=("angry", "Disgust", "fear", "HAPPY", "sad", "surprise")):
    for i, name in enumerate(names):
        for j in range(2):
            _image(root / name / f"{j}.png", seed=100 * i + j)
    return root


def test_folder_per_class_with_aliases(tmp_path):
    root = _class_tree(tmp_path / "tree")
    (root / "fear" / "README.txt").write_text("notes")
    table, skipped = prepare(tmp_path / "d.csv", tmp_path / "s.csv", folder=root)
    assert len(table) == 12 and {r["subject"] for r in table} == {""}
    assert table[0]["image_id"] == "Disgust/0.png" and table[0]["label"] == 1
    assert _reasons(skipped) == {"README.txt": "not an image file (extension)"}


def test_missing_class_folder_fails(tmp_path):
    root = _class_tree(tmp_path / "tree", names=("angry", "disgust", "happy", "sad", "surprise"))
    with pytest.raises(DataError, match=r"no class folder for Fear .*afraid.*fix: add .*Fear"):
        prepare(tmp_path / "d.csv", tmp_path / "s.csv", folder=root)


def test_empty_class_folder_fails(tmp_path):
    root = _class_tree(tmp_path / "tree")
    for file in (root / "sad").iterdir():
        file.unlink()
    with pytest.raises(DataError, match="no usable image for Sadness"):
        prepare(tmp_path / "d.csv", tmp_path / "s.csv", folder=root)


def test_unknown_class_folder_fails(tmp_path):
    root = _class_tree(tmp_path / "tree")
    _image(root / "contempt" / "0.png", seed=1)
    with pytest.raises(DataError, match="unknown expression folders.*'contempt'"):
        prepare(tmp_path / "d.csv", tmp_path / "s.csv", folder=root)


def test_cli_prints_the_message_without_traceback(tmp_path, capsys):
    root = tmp_path / "tree"
    root.mkdir()
    code = main(["prepare", "--folder", str(root), "--out", str(tmp_path / "d.csv"),
                 "--skipped", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "ferxai prepare: error:" in err and "Traceback" not in err
    assert "no class folder for Anger" in err


def test_cli_with_json_options_and_warning(data_root, caplog):
    root, rows = data_root
    rows.append(("img/n.png", "calm", "p0", ""))
    _image(root / "img/n.png", seed=99)
    _manifest(root, rows)
    out = root / "out"
    argv = ["prepare", "--manifest", str(root / "manifest.csv"), "--out", str(out / "d.csv"),
            "--skipped", str(out / "s.csv"), "--aliases", '{"calm": "Neutral"}',
            "--expressions", '["Anger","Disgust","Fear","Happiness","Sadness","Surprise"]',
            "--min-size", "8", "--duplicates", "error"]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    assert read_csv(out / "s.csv")[0]["reason"] == "neutral is not one of the 6 expressions"
    assert "skipped 1 input(s)" in caplog.text
