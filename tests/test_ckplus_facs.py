"""CK+'s FACS files: the peak frames carry their action units into the manifest and dataset.csv."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ferxai.core.errors import DataError
from ferxai.core.io import read_csv, write_csv
from ferxai.data.dataset import prepare
from ferxai.data.import_dataset import import_dataset
from tests.test_import_dataset import make_ckplus


def _facs(source: Path, subject: str, seq: str, frame: int, text: str) -> Path:
    folder = source / "FACS" / subject / seq
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{subject}_{seq}_{frame:08d}_facs.txt"
    path.write_text(text)
    return path


def _line(au: float, level: float) -> str:
    return f"   {au:.7e}   {level:.7e}\n"  # as CK+ ships them: 1.0000000e+00   3.0000000e+00


@pytest.fixture
def ckplus(tmp_path):
    fake = make_ckplus(tmp_path, frames=2)
    source = fake.source
    # S005: 001 anger, 004 happiness coded; 002 disgust an empty file; 003 fear a 0 line only.
    _facs(source, "S005", "001", 3, _line(4, 3) + _line(5, 0) + _line(7, 2) + _line(23, 5))
    _facs(source, "S005", "002", 3, "")
    _facs(source, "S005", "003", 3, _line(0, 0) + "\n")
    _facs(source, "S005", "004", 3, _line(12, 4) + _line(6, 3) + _line(25, 1))
    return fake


def test_peak_frames_carry_their_action_units(ckplus, tmp_path):
    rows, _ = import_dataset("ckplus", ckplus.source, tmp_path / "out", {"frames": 2})
    by_name = {Path(r["path"]).name: r["aus"] for r in rows}
    assert by_name["S005_001_00000003.png"] == "4C+5+7B+23E"  # intensity 0 = no letter
    assert by_name["S005_001_00000002.png"] == ""  # before the peak: not coded
    assert by_name["S005_002_00000003.png"] == ""  # empty file
    assert by_name["S005_003_00000003.png"] == ""  # only an AU 0 line
    assert by_name["S005_004_00000003.png"] == "6C+12D+25A"  # sorted by AU
    assert by_name["S010_004_00000003.png"] == ""  # no FACS file
    manifest = read_csv(tmp_path / "out" / "manifest.csv")
    assert "aus" in manifest[0]
    # ... and prepare carries them into dataset.csv.
    dataset, skipped = tmp_path / "dataset.csv", tmp_path / "skipped.csv"
    prepare(dataset, skipped, manifest=tmp_path / "out" / "manifest.csv", root=tmp_path)
    coded = {Path(r["path"]).name: r["aus"] for r in read_csv(dataset)}
    assert coded["S005_001_00000003.png"] == "4C+5+7B+23E"
    assert coded["S005_004_00000002.png"] == ""


def test_without_a_facs_folder_nothing_is_coded(tmp_path):
    fake = make_ckplus(tmp_path)
    rows, _ = import_dataset("ckplus", fake.source, tmp_path / "out")
    assert rows and all(r["aus"] == "" for r in rows)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (_line(4, 3) + "   4.0000000e+00\n", "line 2: '4.0000000e\\+00' is not an AU code"),
        (_line(4, 7), "line 1: .* intensity 0-5"),
        (_line(4.5, 1), "line 1: .*not an AU code"),
        (_line(1, 1) + "one two\n", "line 2: 'one two'"),
        (_line(3, 1), "line 1: AU3"),
        (_line(1, 1) + _line(1, 2), "AU1 is coded twice"),
    ],
)
def test_broken_lines_are_named_with_file_and_line(ckplus, tmp_path, text, match):
    path = _facs(ckplus.source, "S010", "002", 3, text)
    with pytest.raises(DataError, match=f"{re.escape(str(path))}.*{match}"):
        import_dataset("ckplus", ckplus.source, tmp_path / "out")


def test_prepare_refuses_bad_aus_naming_the_row(tmp_path):
    from PIL import Image

    for name in ("a", "b"):
        Image.new("RGB", (40, 40), (120, 90, 60) if name == "a" else (10, 200, 30)).save(
            tmp_path / f"{name}.png"
        )
    for bad, match in (("1+2+3", "AU3"), ("5F", "intensity 'F'")):
        write_csv(
            tmp_path / "manifest.csv",
            [{"path": "a.png", "expression": "Anger", "aus": "4+5"},
             {"path": "b.png", "expression": "Happiness", "aus": bad}],
            ("path", "expression", "aus"),
        )
        with pytest.raises(DataError, match=f"manifest.csv row 3, column aus: .*{match}"):
            prepare(
                tmp_path / "d.csv", tmp_path / "s.csv", manifest=tmp_path / "manifest.csv",
                expressions=["Anger", "Happiness"],
            )
    write_csv(
        tmp_path / "manifest.csv",
        [{"path": "a.png", "expression": "Anger", "aus": "23+4c+L7"},
         {"path": "b.png", "expression": "Happiness", "aus": ""}],
        ("path", "expression", "aus"),
    )
    prepare(
        tmp_path / "d.csv", tmp_path / "s.csv", manifest=tmp_path / "manifest.csv",
        expressions=["Anger", "Happiness"],
    )
    assert [r["aus"] for r in read_csv(tmp_path / "d.csv")] == ["4C+L7+23", ""]
