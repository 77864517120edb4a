"""FACS notation: parsing, canonical writing, the errors that name the row."""

from __future__ import annotations

import pytest

from ferxai.core.errors import DataError
from ferxai.data.facs import (
    ActionUnit,
    au_numbers,
    format_aus,
    from_intensities,
    intensity_letter,
    normalize_aus,
    parse_aus,
)


def test_parse_plain_intensities_and_sides():
    assert parse_aus("1+2+5B+26") == (
        ActionUnit(1), ActionUnit(2), ActionUnit(5, "B"), ActionUnit(26)
    )
    assert parse_aus(" L12A + R14 ") == (ActionUnit(12, "A", "L"), ActionUnit(14, "", "R"))
    assert parse_aus("") == () and parse_aus(None) == () and parse_aus("  ") == ()
    assert parse_aus("6c") == (ActionUnit(6, "C"),)  # lower-case letters are accepted


def test_canonical_writing_keeps_sides_and_intensities():
    assert normalize_aus("26+1+5b+L12") == "1+5B+L12+26"
    assert format_aus(parse_aus("R12+L12")) == "L12+R12"
    assert au_numbers("L12A+R12+6") == (6, 12)


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("1+3", "AU3 .* not a FACS action unit"),
        ("1+99", "AU99"),
        ("5F", "intensity 'F' of AU5"),
        ("1++2", "'' in '1\\+\\+2' is not a FACS term"),
        ("12X3", "not a FACS term"),
        ("B12", "not a FACS term"),
        ("1+1B", "AU1 is coded twice"),
    ],
)
def test_bad_codes_name_where_and_what(code, match):
    with pytest.raises(DataError, match=f"manifest.csv row 7: .*{match}"):
        parse_aus(code, "manifest.csv row 7")


def test_same_au_on_both_sides_is_two_terms():
    assert len(parse_aus("L12+R12")) == 2


def test_intensity_letters():
    assert [intensity_letter(v) for v in (0, 1, 2, 3, 4, 5)] == ["", "A", "B", "C", "D", "E"]
    with pytest.raises(ValueError, match="2.5"):
        intensity_letter(2.5)
    assert from_intensities({1: 0.95, 2: 0.1, 26: 0.5, 5: 0.31}, 0.3) == "1E+5B+26C"
    assert from_intensities({1: 0.1}, 0.3) == ""


def test_synth_writes_the_aus_it_rendered(tmp_path):
    from ferxai.core.io import read_csv
    from ferxai.data import synth
    from ferxai.data.face_model import EXPRESSION_AUS

    rows = read_csv(synth.synthesize(tmp_path, subjects=2, size=48, seed=3, neutral=True))
    for row in rows:
        coded = set(au_numbers(row["aus"]))
        # The expression's AUs are at least intensity_min (0.5, letter C or more); distractors,
        # at most 0.2, show only above the threshold (0.15) and as trace (A).
        assert set(EXPRESSION_AUS[row["expression"]]) <= coded
        for unit in parse_aus(row["aus"]):
            if unit.au not in EXPRESSION_AUS[row["expression"]]:
                assert unit.intensity == "A"
            else:
                assert unit.intensity in "CDE"
    assert any(set(au_numbers(r["aus"])) - set(EXPRESSION_AUS[r["expression"]]) for r in rows)
    strict = read_csv(
        synth.synthesize(tmp_path / "b", subjects=2, size=48, seed=3, aus_threshold=0.3)
    )
    assert all(set(au_numbers(r["aus"])) == set(EXPRESSION_AUS[r["expression"]]) for r in strict)
