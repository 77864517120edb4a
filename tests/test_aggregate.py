"""Aggregation: pooled (not mean-of-means) semantics, validity, streaming, stretching edge cases."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ferxai.cli import main
from ferxai.core.errors import DataError
from ferxai.core.io import Stack, read_png_gray, write_stack
from ferxai.heatmaps.heatmap import read_heatmap, stretch, to_uint8, write_heatmap
from ferxai.heatmaps.pooling import NO_IMAGES_REASON, pool_stacks

SHAPE = (275, 224)


def _write_stack(path, maps, valid=None):
    n = len(maps)
    extras = {} if valid is None else {"valid": np.asarray(valid, bool)}
    stack = Stack(
        maps=np.asarray(maps, np.float32),
        image_id=[f"img{i}" for i in range(n)],
        true_label=np.zeros(n, np.int64),
        predicted=np.zeros(n, np.int64),
        probabilities=np.ones((n, 6), np.float32) / 6,
        extras=extras,
    )
    write_stack(path, stack)
    return path


def _maps(rng, n):
    return rng.random((n, *SHAPE)).astype(np.float32)


def test_pooled_mean_weights_every_map_not_every_fold(tmp_path):
    rng = np.random.default_rng(0)
    fold1, fold2 = _maps(rng, 1), _maps(rng, 3)
    a = _write_stack(tmp_path / "f1.h5", fold1, [True])
    b = _write_stack(tmp_path / "f2.h5", fold2, [True] * 3)
    pooled = pool_stacks([a, b])
    expected = np.concatenate([fold1, fold2]).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(pooled.mean, expected, rtol=1e-6)
    mean_of_means = (fold1.mean(0) + fold2.mean(0)) / 2
    assert not np.allclose(pooled.mean, mean_of_means, rtol=1e-3)
    assert pooled.count == 4 and not pooled.empty
    # per-fold heatmap = mean of that job's maps
    np.testing.assert_allclose(pool_stacks([b]).mean, fold2.mean(0), rtol=1e-6)


def test_invalid_maps_are_left_out_and_streaming_is_chunk_independent(tmp_path):
    rng = np.random.default_rng(1)
    maps = _maps(rng, 5)
    maps[1] += 100.0  # an invalid (failed-landmark) map must not leak in
    path = _write_stack(tmp_path / "s.h5", maps, [True, False, True, True, True])
    one = pool_stacks([path], chunk=1)
    many = pool_stacks([path], chunk=64)
    np.testing.assert_allclose(one.mean, maps[[0, 2, 3, 4]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(one.mean, many.mean, rtol=1e-12)
    assert one.count == 4 and one.attrs["n_invalid"] == 1


def test_stretch_and_uint8():
    values = np.array([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_allclose(stretch(values), [[0, 0.25], [0.5, 1.0]])
    assert to_uint8(np.array([0.0, 0.999, 1.0, 0.5])).tolist() == [0, 254, 255, 127]
    constant = np.full((2, 2), 0.4)
    np.testing.assert_array_equal(stretch(constant), constant)  # constant: left as is
    np.testing.assert_array_equal(stretch(np.zeros((2, 2))), 0.0)  # all zero
    negative = np.array([[-3.0, -1.0]])
    np.testing.assert_array_equal(stretch(negative), negative)  # max <= 0: left as is
    assert to_uint8(negative).tolist() == [[0, 0]]
    assert to_uint8(np.array([2.0])).tolist() == [255]


def test_cli_writes_h5_png_jet_and_attrs(tmp_path):
    rng = np.random.default_rng(2)
    maps = _maps(rng, 3)
    stack = _write_stack(tmp_path / "s.h5", maps, [True] * 3)
    out = tmp_path / "out"
    argv = ["aggregate", "--stacks", str(stack), "--out-h5", str(out / "V_Anger_heatmap.h5")]
    argv += ["--out-png", str(out / "V_Anger_heatmap.png"), "--out-jet", str(out / "V_jet.png")]
    argv += ["--attrs", '{"network": "VGG16", "fold": "all", "expression": "Anger"}']
    assert main(argv) == 0
    with h5py.File(out / "V_Anger_heatmap.h5") as h5:
        mean, stretched, u8 = h5["mean"][...], h5["stretched"][...], h5["uint8"][...]
        assert h5["mean"].dtype == np.float64 and h5["stretched"].dtype == np.float32
        assert h5.attrs["count"] == 3 and not h5.attrs["empty"]
        assert h5.attrs["network"] == "VGG16" and h5.attrs["expression"] == "Anger"
    np.testing.assert_allclose(mean, maps.astype(np.float64).mean(0), rtol=1e-6)
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    np.testing.assert_array_equal(read_png_gray(out / "V_Anger_heatmap.png"), u8)
    np.testing.assert_array_equal(u8, to_uint8(stretch(mean)))
    assert read_png_gray(out / "V_jet.png").shape == SHAPE
    loaded = read_heatmap(out / "V_Anger_heatmap.png")
    assert not loaded.empty and loaded.count == 3
    np.testing.assert_allclose(loaded.stretched, stretched)


def test_no_images_gives_explicit_empty_heatmap(tmp_path):
    stack = _write_stack(tmp_path / "empty.h5", np.zeros((0, *SHAPE)), np.zeros(0, bool))
    heatmap = pool_stacks([stack])
    assert heatmap.empty and heatmap.count == 0 and heatmap.reason == NO_IMAGES_REASON
    write_heatmap(heatmap, tmp_path / "e.h5", tmp_path / "e.png")
    assert not read_png_gray(tmp_path / "e.png").any()
    loaded = read_heatmap(tmp_path / "e.png")
    assert loaded.empty and "no explained images" in loaded.reason


def test_all_invalid_gives_empty_with_landmark_reason(tmp_path):
    stack = _write_stack(tmp_path / "bad.h5", _maps(np.random.default_rng(3), 2), [False, False])
    heatmap = pool_stacks([stack])
    assert heatmap.empty and "failed normalization" in heatmap.reason


def test_wrong_canvas_is_a_data_error(tmp_path):
    stack = _write_stack(tmp_path / "raw.h5", np.zeros((2, 224, 224)), [True, True])
    with pytest.raises(DataError, match="canonical"):
        pool_stacks([stack])
    assert (
        main(
            [
                "aggregate",
                "--stacks",
                str(stack),
                "--out-h5",
                str(tmp_path / "x.h5"),
                "--out-png",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "x.png").exists()
