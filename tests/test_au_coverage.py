"""Per-AU coverage of global heatmaps: the ratio, its bootstrap over images, the command."""

from __future__ import annotations

import numpy as np
import pytest

from ferxai.cli import main
from ferxai.comparison.au_atlas import atlas_masks, write_atlas_pngs
from ferxai.comparison.au_coverage import (
    COVERAGE_COLUMNS,
    bootstrap_coverage,
    coverage,
    fold_of,
    region_matrix,
)
from ferxai.comparison.localisation_scores import localisation_scores
from ferxai.core.io import Stack, read_csv, write_stack
from ferxai.heatmaps.heatmap import heatmap_stem, stretch, write_heatmap
from ferxai.heatmaps.pooling import pool_stacks

SHAPE = (275, 224)


@pytest.fixture(scope="module")
def masks():
    return atlas_masks()


def _stack(path, maps, ids, valid=None):
    n = len(maps)
    extras = {} if valid is None else {"valid": np.asarray(valid)}
    write_stack(
        path,
        Stack(np.asarray(maps, np.float32), list(ids), np.zeros(n), np.zeros(n), np.zeros((n, 6)),
              extras=extras),
    )
    return str(path)


def test_coverage_is_one_for_a_uniform_map_and_the_inverse_share_inside(masks):
    aus, matrix = region_matrix(masks)
    uniform = np.ones((1, *SHAPE))
    assert np.allclose(coverage(uniform, matrix), 1.0)
    only12 = masks[12][None].astype(float)
    got = coverage(only12, matrix)[0]
    share12 = masks[12].mean()
    assert got[aus.index(12)] == pytest.approx(1.0 / share12)
    # AU1 (forehead) does not touch AU12's region (cheeks and mouth corners).
    assert got[aus.index(1)] == 0.0
    assert np.isnan(coverage(np.zeros((1, *SHAPE)), matrix)).all()


def test_bootstrap_matches_explicit_resampling(tmp_path, masks):
    rng = np.random.default_rng(0)
    maps = rng.random((7, *SHAPE)) ** 3
    valid = [True, True, False, True, True, True, True]
    paths = [_stack(tmp_path / "a.h5", maps[:4], "abcd", valid[:4]),
             _stack(tmp_path / "b.h5", maps[4:], "efg")]
    kept = maps.astype(np.float32).astype(np.float64)[np.array(valid)]  # as stored
    _, matrix = region_matrix(masks)
    got = bootstrap_coverage(paths, matrix, 9, np.random.default_rng(5), chunk=2)
    draws = np.random.default_rng(5).integers(0, len(kept), size=(9, len(kept)))
    # Each resample's pooled mean minus the floor of the full pooled map (its stretch's minimum).
    floor = kept.mean(axis=0).min()
    expected = np.stack([coverage(kept[d].mean(axis=0)[None] - floor, matrix)[0] for d in draws])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # With every draw the full sample, the resample is the heatmap itself: its point estimate.
    point = coverage(stretch(kept.mean(axis=0))[None], matrix)[0]
    np.testing.assert_allclose(expected.mean(axis=0), point, rtol=0.05)


@pytest.mark.parametrize("quantized", [False, True])
def test_one_map_scores_equal_localisation_scores(masks, quantized):
    """The one-sort path gives localisation_scores' numbers exactly, ties included."""
    from ferxai.comparison.au_coverage import one_map_scores

    rng = np.random.default_rng(4)
    heat = rng.random(SHAPE) ** 2
    if quantized:  # many ties, as an 8-bit heatmap has
        heat = np.floor(heat * 255) / 255
    stacked = np.stack(list(masks.values()) + [np.zeros(SHAPE, bool)])
    got = one_map_scores(heat, stacked, 1000)
    want = localisation_scores(np.broadcast_to(heat, stacked.shape), stacked, k=1000)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-15, err_msg=name)
    assert np.isnan(got["auc"][-1])


def test_fold_of():
    assert fold_of("results/normalized/lime/WeiNet/fold3/Anger.h5") == 3
    assert fold_of("x/Anger.h5") is None


def _workspace(tmp_path, masks):
    """Two networks x two folds of Happiness maps: SmileNet's mass on AU12, BrowNet's on AU1."""
    rng = np.random.default_rng(1)
    stacks, heatmaps = {}, tmp_path / "heatmaps"
    for net, au in (("SmileNet", 12), ("BrowNet", 1)):
        paths = []
        for fold in (1, 2):
            maps = rng.random((5, *SHAPE)) * 0.2 + masks[au] * rng.uniform(0.5, 1.0, (5, 1, 1))
            path = tmp_path / "normalized" / net / f"fold{fold}" / "Happiness.h5"
            path.parent.mkdir(parents=True)
            paths.append(_stack(path, maps, [f"{net}{fold}_{i}" for i in range(5)]))
            stem = heatmap_stem(heatmaps, "Happiness", net, fold)
            write_heatmap(pool_stacks([paths[-1]]), f"{stem}.h5", f"{stem}.png")
        stem = heatmap_stem(heatmaps, "Happiness", net)
        write_heatmap(pool_stacks(paths), f"{stem}.h5", f"{stem}.png")
        stacks[f"{net}/Happiness"] = paths
    write_atlas_pngs(masks, tmp_path / "au")
    return stacks, heatmaps


def test_command_writes_rows_cis_and_figures(tmp_path, masks):
    import json

    from ferxai.heatmaps.heatmap import read_heatmap

    stacks, heatmaps = _workspace(tmp_path, masks)
    out = tmp_path / "au_coverage.csv"
    argv = ["au-coverage", "--heatmaps", str(heatmaps), "--stacks-json", json.dumps(stacks),
            "--au-dir", str(tmp_path / "au"), "--out", str(out), "--figure-dir",
            str(tmp_path / "fig"), "--bootstrap", "50", "--seed", "3"]
    assert main(argv) in (0, None)
    rows = read_csv(out)
    assert tuple(rows[0]) == COVERAGE_COLUMNS
    assert len(rows) == 2 * 3 * len(masks)  # 2 networks x (all + 2 folds) x AUs
    by = {(r["network"], r["fold"], int(r["au"])): r for r in rows}
    smile, brow = by[("SmileNet", "all", 12)], by[("BrowNet", "all", 12)]
    assert float(smile["coverage"]) > 2.0 > 1.0 > float(brow["coverage"])
    assert float(by[("BrowNet", "all", 1)]["coverage"]) > 2.0
    assert smile["prototype"] == "True" and by[("SmileNet", "all", 1)]["prototype"] == "False"
    for row in (smile, brow, by[("SmileNet", "2", 12)]):
        assert (
            float(row["coverage_ci_low"])
            <= float(row["coverage"])
            <= float(row["coverage_ci_high"])
        )
    assert by[("SmileNet", "all", 12)]["n_images"] == "10"
    assert by[("SmileNet", "1", 12)]["n_images"] == "5"  # a fold's CI resamples its own images
    # The localisation scores are those of the heatmap against the AU region.
    heat = read_heatmap(heatmaps / "SmileNet_Happiness_heatmap.png").stretched
    expected = localisation_scores(heat[None], masks[12][None])
    for name, values in expected.items():
        assert float(smile[name]) == pytest.approx(values[0], rel=1e-6)
    assert (tmp_path / "fig" / "Happiness.png").stat().st_size > 5000
    assert not (tmp_path / "fig" / "Anger.png").exists()


def test_command_refuses_bad_settings(tmp_path, masks, capsys):
    stacks, heatmaps = _workspace(tmp_path, masks)
    base = ["au-coverage", "--heatmaps", str(heatmaps), "--au-dir", str(tmp_path / "au"),
            "--out", str(tmp_path / "o.csv")]
    assert main([*base, "--top-k", "0"]) == 2
    assert "--top-k 0" in capsys.readouterr().err
    assert main([*base, "--bootstrap", "-1"]) == 2
    assert "--bootstrap -1" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*base[:1], "--heatmaps", str(empty), *base[3:]]) == 2
    assert f"--heatmaps {empty}" in capsys.readouterr().err
