"""Similarity (1 − normalized correlation), average linkage and the `ferxai cluster` outputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist

from ferxai.cli import main
from ferxai.comparison.similarity import (
    cluster_images,
    correlation_distances,
    pairwise_iou,
    top_split,
)
from ferxai.core.io import read_csv, write_png
from ferxai.heatmaps.heatmap import stretch, to_uint8

SHAPE = (275, 224)


def _blob(center, sigma=20.0):
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return to_uint8(
        stretch(np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma**2)))
    )


def test_distance_is_one_minus_tm_ccoeff_normed():
    rng = np.random.default_rng(0)
    images = (rng.random((4, 30, 25)) * 255).astype(np.uint8)
    distances, defined = correlation_distances(images)
    assert defined.all()
    for i in range(4):
        for j in range(4):
            ccoeff = cv2.matchTemplate(images[i], images[j], cv2.TM_CCOEFF_NORMED)[0, 0]
            assert distances[i, j] == pytest.approx(1 - ccoeff, abs=1e-5)


def test_linkage_is_scipy_average_on_correlation_distance():
    rng = np.random.default_rng(1)
    images = rng.random((6, 12, 10))
    result = cluster_images(images, list("abcdef"), [False] * 6)
    expected = linkage(pdist(images.reshape(6, -1), metric="correlation"), method="average")
    np.testing.assert_allclose(result.linkage, expected, atol=1e-10)


def test_top_split_finds_two_groups_and_constant_leaves_are_excluded():
    left = [_blob((80, 60 + d)) for d in (0, 4, 8)]
    right = [_blob((200, 160 + d)) for d in (0, 4)]
    flat = np.full(SHAPE, 9, np.uint8)  # constant: correlation undefined
    zero = np.zeros(SHAPE, np.uint8)
    labels = ["L1", "L2", "L3", "R1", "R2", "flat", "zero"]
    result = cluster_images(np.stack([*left, *right, flat, zero]), labels, [False] * 6 + [True])
    assert result.labels == ["L1", "L2", "L3", "R1", "R2"]
    assert result.excluded == ["zero", "flat"]
    groups = set(map(frozenset, top_split(result.linkage, result.labels)))
    assert groups == {frozenset({"L1", "L2", "L3"}), frozenset({"R1", "R2"})}
    assert np.all(np.diff(result.linkage[:, 2]) >= 0)  # average linkage is monotone


def test_pairwise_iou():
    masks = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], bool)
    iou = pairwise_iou(masks)
    assert iou[0, 1] == pytest.approx(1 / 3) and iou[0, 0] == 1 and iou[0, 2] == 0
    assert np.isnan(iou[2, 2])


def test_cluster_cli_writes_documented_files(tmp_path):
    heatmaps = tmp_path / "heatmaps"
    networks = ("NetA", "NetB", "NetC")
    for i, expr in enumerate(("Anger", "Fear")):
        for j, net in enumerate(networks):
            image = _blob((90 + 60 * i, 70 + 40 * j))
            write_png(heatmaps / "by_network" / f"{net}_{expr}_heatmap.png", image)
            for fold in (1, 2):
                write_png(
                    heatmaps / "by_fold" / f"{net}_CV{fold}_{expr}_heatmap.png",
                    np.roll(image, 3 * fold, axis=0),
                )
    out = tmp_path / "clustering"
    assert main(["cluster", "--heatmaps", str(heatmaps), "--out", str(out)]) == 0
    for expr in ("Anger", "Fear"):
        for name in (f"by_network_{expr}", f"by_fold_{expr}"):
            for kind in ("dendrogram_{}.png", "distances_{}.csv", "linkage_{}.csv"):
                assert (out / kind.format(name)).is_file(), kind.format(name)
        for kind in ("iou", "correlation"):
            matrix = read_csv(out / f"{kind}_matrix_{expr}.csv")
            assert [r["label"] for r in matrix] == list(networks)
            assert float(matrix[0]["NetA"]) == pytest.approx(1.0)
            assert (out / f"{kind}_matrix_{expr}.png").is_file()
    # no by_expression heatmaps in the folder: pooled from the by-network ones
    assert [r["label"] for r in read_csv(out / "distances_by_expression.csv")] == ["Anger", "Fear"]
    assert len(read_csv(out / "linkage_by_expression_network.csv")) == 5
    assert len(read_csv(out / "linkage_by_fold_Anger.csv")) == 5
    assert read_csv(out / "excluded.csv") == []


def test_by_expression_pooled_from_by_network_h5_is_exact(tmp_path):
    from ferxai.heatmaps.heatmap import (
        discover_heatmaps,
        load_heatmaps,
        read_heatmap,
        write_heatmap,
    )
    from ferxai.heatmaps.pooling import heatmap_from_sum, pooled_by_expression

    rng = np.random.default_rng(3)
    maps = {"NetA": rng.random((1, *SHAPE)), "NetB": rng.random((3, *SHAPE)) + 1.0}
    for net, stack in maps.items():
        heatmap = heatmap_from_sum(stack.sum(0), len(stack))
        base = tmp_path / f"{net}_Anger_heatmap"
        write_heatmap(heatmap, base.with_suffix(".h5"), base.with_suffix(".png"))
    found = discover_heatmaps(tmp_path)
    by_network = load_heatmaps(found.by_network)
    pooled = pooled_by_expression(load_heatmaps(found.by_expression), by_network)["Anger"]
    expected = heatmap_from_sum(np.concatenate(list(maps.values())).sum(0), 4)
    np.testing.assert_allclose(pooled.stretched, expected.stretched, atol=1e-6)
    assert read_heatmap(tmp_path / "NetA_Anger_heatmap.png").count == 1


def test_cluster_errors_are_user_facing(tmp_path):
    assert main(["cluster", "--heatmaps", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert (
        main(
            ["cluster", "--heatmaps", str(tmp_path), "--out", str(tmp_path), "--threshold", "best"]
        )
        == 2
    )
