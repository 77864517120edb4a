"""ferxai folds: subject-disjoint, stratified, deterministic; impossible splits fail with a fix."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from ferxai.cli import main
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import read_csv, write_csv
from ferxai.data.folds import FOLD_COLUMNS, assign_folds

SIX = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")


def _grid(subjects=12, per=2):
    expressions, people = [], []
    for s in range(subjects):
        for expression in SIX:
            expressions += [expression] * per
            people += [f"S{s:02d}"] * per
    return expressions, people


def test_grouped_folds_keep_subjects_together_and_every_class_in_every_fold():
    expressions, subjects = _grid()
    folds = assign_folds(expressions, subjects, k=4, seed=3)
    assert set(folds.tolist()) == {1, 2, 3, 4}
    folds_of = defaultdict(set)
    for subject, fold in zip(subjects, folds, strict=True):
        folds_of[subject].add(int(fold))
    assert all(len(f) == 1 for f in folds_of.values())
    for fold in range(1, 5):
        assert {e for e, f in zip(expressions, folds, strict=True) if f == fold} == set(SIX)
    sizes = Counter(folds.tolist())
    assert max(sizes.values()) - min(sizes.values()) <= 12  # whole subjects of 12 images


def test_folds_are_deterministic_for_a_seed():
    expressions, subjects = _grid()
    first = assign_folds(expressions, subjects, k=3, seed=1)
    np.testing.assert_array_equal(first, assign_folds(expressions, subjects, k=3, seed=1))
    assert not np.array_equal(first, assign_folds(expressions, subjects, k=3, seed=2))


def test_without_subjects_folds_are_stratified_by_image():
    expressions, _ = _grid(subjects=5)
    folds = assign_folds(expressions, [""] * len(expressions), k=5, seed=0)
    for expression in SIX:
        counts = Counter(f for e, f in zip(expressions, folds, strict=True) if e == expression)
        assert sorted(counts.values()) == [2, 2, 2, 2, 2]


def test_rows_without_subject_never_split_a_known_subject():
    expressions, subjects = _grid(subjects=10)
    subjects = [s if i % 3 else "" for i, s in enumerate(subjects)]
    folds = assign_folds(expressions, subjects, k=3, seed=0)
    for subject in {s for s in subjects if s}:
        assert len({f for s, f in zip(subjects, folds, strict=True) if s == subject}) == 1


def test_too_few_subjects_or_images_fail_with_the_fix():
    expressions, subjects = _grid(subjects=3)
    with pytest.raises(DataError, match="only 3 subject.*k = 5.*lower data.folds"):
        assign_folds(expressions, subjects, k=5)
    with pytest.raises(DataError, match=r"Fear \(2\).*fewer than k = 3.*lower data.folds"):
        expressions2 = ["Fear", "Fear"] + ["Anger"] * 6
        assign_folds(expressions2, [""] * 8, k=3)
    expressions3, subjects3 = _grid(subjects=6)
    subjects3 = ["S00" if e == "Fear" else s for e, s in zip(expressions3, subjects3, strict=True)]
    with pytest.raises(DataError, match=r"Fear \(1 subjects\)"):
        assign_folds(expressions3, subjects3, k=3)
    with pytest.raises(ConfigError, match="k ≥ 2"):
        assign_folds(expressions, subjects, k=1)


def test_cli_writes_the_fold_table(tmp_path):
    expressions, subjects = _grid(subjects=6, per=1)
    rows = [
        {"image_id": f"i{i:03d}.png", "path": "", "expression": e, "label": SIX.index(e),
         "subject": s, "width": 48, "height": 48, "landmarks": "", "sha1": str(i)}
        for i, (e, s) in enumerate(zip(expressions, subjects, strict=True))
    ]
    columns = ("image_id", "path", "expression", "label", "subject", "width", "height",
               "landmarks", "sha1")
    write_csv(tmp_path / "dataset.csv", rows, columns)
    argv = ["folds", "--dataset", str(tmp_path / "dataset.csv"), "--k", "3", "--seed", "0",
            "--out", str(tmp_path / "folds.csv")]
    assert main(argv) == 0
    table = read_csv(tmp_path / "folds.csv")
    assert list(table[0]) == list(FOLD_COLUMNS)
    assert [r["image_id"] for r in table] == [r["image_id"] for r in rows]
    assert {r["fold"] for r in table} == {"1", "2", "3"}
    assert main(["folds", "--dataset", str(tmp_path / "none.csv"), "--k", "3",
                 "--out", str(tmp_path / "f.csv")]) == 2
