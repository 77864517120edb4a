"""Per-face ground truth: each image against its own AUs' regions and its prototype, paired."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ferxai.cli import main
from ferxai.comparison.au_atlas import atlas_masks, union_mask, write_atlas_pngs
from ferxai.comparison.per_face import (
    IMAGE_COLUMNS,
    SUMMARY_COLUMNS,
    face_masks,
    paired_summary,
    per_face_rows,
)
from ferxai.comparison.thresholds import ThresholdSpec
from ferxai.core.io import Stack, read_csv, write_csv, write_stack
from ferxai.data.dataset import DATASET_COLUMNS

SHAPE = (275, 224)
PROTOTYPES = {"Happiness": (6, 12), "Surprise": (1, 2, 5, 26)}


@pytest.fixture(scope="module")
def atlas():
    return atlas_masks()


def _stack(path, maps, ids):
    n = len(maps)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_stack(path, Stack(np.asarray(maps, np.float32), list(ids), np.zeros(n), np.zeros(n),
                            np.zeros((n, 6))))
    return str(path)


def test_face_masks_union_fallback_and_unknown_regions(atlas):
    prototype = union_mask((6, 12), atlas)
    codes = {"a": "6C+12D", "b": "12E+25A", "c": "", "d": "43E"}
    masks, kinds, ignored = face_masks(["a", "b", "c", "d", "e"], codes, atlas, prototype)
    assert kinds == ["aus", "aus", "prototype", "prototype", "prototype"]
    assert (masks[0] == prototype).all()
    assert (masks[1] == (atlas[12] | atlas[25])).all()
    assert (masks[2] == prototype).all() and (masks[4] == prototype).all()
    assert ignored == ["43"]  # eyes closed: no region in the atlas


def _faces(tmp_path, atlas):
    """Happiness faces whose maps light exactly their own AUs: two smiles without AU6 (lips part
    instead), one uncoded. A Surprise face coded with its prototype."""
    rng = np.random.default_rng(0)
    codes = {"h1": "12D+25B", "h2": "12C+25A", "h3": "", "s1": "1C+2C+5B+26C"}

    def lit(code_aus):
        return union_mask(code_aus, atlas).astype(float) + rng.random(SHAPE) * 0.05

    stacks = {
        "Net/Happiness": [
            _stack(tmp_path / "n/Net/fold1/Happiness.h5", [lit((12, 25)), lit((12, 25))], ["h1", "h2"]),
            _stack(tmp_path / "n/Net/fold2/Happiness.h5", [lit((6, 12))], ["h3"]),
        ],
        "Net/Surprise": [
            _stack(tmp_path / "n/Net/fold1/Surprise.h5", [lit((1, 2, 5, 26))], ["s1"])
        ],
    }
    return stacks, codes


def test_rows_own_mask_beats_the_prototype_when_maps_follow_the_aus(tmp_path, atlas):
    stacks, codes = _faces(tmp_path, atlas)
    rows, ignored = per_face_rows(stacks, codes, atlas, PROTOTYPES, ThresholdSpec("otsu"))
    assert ignored == []
    by_id = {r["image_id"]: r for r in rows}
    assert [r["image_id"] for r in rows] == ["h1", "h2", "h3", "s1"]
    assert by_id["h1"]["fold"] == 1 and by_id["h3"]["fold"] == 2
    assert by_id["h1"]["mask"] == "aus" and by_id["h3"]["mask"] == "prototype"
    assert by_id["h1"]["iou_own"] == pytest.approx(1.0)  # the map is its own AUs' regions
    assert by_id["h1"]["iou_prototype"] < 0.6
    assert (
        by_id["h1"]["attribution_localisation_own"]
        > by_id["h1"]["attribution_localisation_prototype"]
    )
    for name in ("iou", "pointing_game", "auc"):  # fallback: the same mask twice
        assert by_id["h3"][f"{name}_own"] == by_id["h3"][f"{name}_prototype"]
    assert by_id["s1"]["iou_own"] == pytest.approx(by_id["s1"]["iou_prototype"])


def test_paired_summary_counts_fallbacks_and_resolves_the_difference(tmp_path, atlas):
    stacks, codes = _faces(tmp_path, atlas)
    rows, _ = per_face_rows(stacks, codes, atlas, PROTOTYPES, ThresholdSpec("otsu"))
    summary = paired_summary(rows, n_boot=200, seed=1)
    happy = {r["metric"]: r for r in summary if r["expression"] == "Happiness"}
    iou = happy["iou"]
    assert (iou["n_images"], iou["n_coded"], iou["n_fallback"]) == (3, 2, 1)
    own = np.mean([r["iou_own"] for r in rows if r["expression"] == "Happiness"])
    assert iou["own"] == pytest.approx(own)
    assert iou["difference"] == pytest.approx(iou["own"] - iou["prototype"])
    assert 0 <= iou["ci_low"] <= iou["difference"] <= iou["ci_high"]
    surprise = {r["metric"]: r for r in summary if r["expression"] == "Surprise"}
    assert surprise["iou"]["difference"] == pytest.approx(0.0)
    assert not surprise["iou"]["resolved"]
    # The same seed gives the same intervals.
    assert paired_summary(rows, n_boot=200, seed=1) == summary


def test_command(tmp_path, atlas):
    stacks, codes = _faces(tmp_path, atlas)
    write_atlas_pngs(atlas, tmp_path / "au")
    dataset = tmp_path / "dataset.csv"
    write_csv(dataset, [dict.fromkeys(DATASET_COLUMNS, "") | {"image_id": i, "aus": c}
                        for i, c in codes.items()], DATASET_COLUMNS)
    argv = ["per-face", "--stacks-json", json.dumps(stacks), "--dataset", str(dataset),
            "--au-dir", str(tmp_path / "au"), "--out", str(tmp_path / "faces.csv"),
            "--summary", str(tmp_path / "summary.csv"), "--figure", str(tmp_path / "f.png"),
            "--bootstrap", "50"]
    assert main(argv) in (0, None)
    assert tuple(read_csv(tmp_path / "faces.csv")[0]) == IMAGE_COLUMNS
    summary = read_csv(tmp_path / "summary.csv")
    assert tuple(summary[0]) == SUMMARY_COLUMNS
    assert len(summary) == 2 * 7  # 2 expressions x (IoU + 6 localisation scores)
    assert (tmp_path / "f.png").stat().st_size > 5000
    # A bad code in dataset.csv names the image.
    write_csv(dataset, [dict.fromkeys(DATASET_COLUMNS, "") | {"image_id": "h1", "aus": "12Z"}],
              DATASET_COLUMNS)
    assert main(argv) == 2
