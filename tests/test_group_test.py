"""The exact permutation test of a grouping of the networks (pre-trained / from scratch)."""

from __future__ import annotations

import math
from itertools import combinations

import cv2
import numpy as np
import pytest

from ferxai.comparison.group_test import (
    correlation_distances,
    default_groups,
    group_statistic,
    group_statistics,
    group_test,
    parse_groups,
    relabellings,
)
from ferxai.core.constants import EXPRESSIONS, PRETRAINED_NETWORKS, SCRATCH_NETWORKS
from ferxai.core.errors import ConfigError

SHAPE = (275, 224)


def naive_statistic(dist, labels):
    """T by the definition, one pair at a time."""
    across, within = [], []
    for i, j in combinations(range(len(labels)), 2):
        (within if labels[i] == labels[j] else across).append(dist[i][j])
    return sum(across) / len(across) - sum(within) / len(within)


def maps_with_correlations(corr, shape=(20, 15), seed=0):
    """Maps whose pixel-value Pearson correlations are exactly ``corr`` (positive definite)."""
    rng = np.random.default_rng(seed)
    pixels = shape[0] * shape[1]
    basis = np.linalg.qr(np.column_stack([np.ones(pixels), rng.normal(size=(pixels, len(corr)))]))[
        0
    ][:, 1:]  # orthonormal, orthogonal to the constant vector: zero-mean columns
    factor = np.linalg.cholesky(np.asarray(corr, dtype=np.float64))
    return (basis @ factor.T).T.reshape(len(corr), *shape) + 5.0


def blob(center, sigma=25.0):
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma**2))


# Four networks, groups {A, B} and {C, D}; d chosen by hand.
HAND_D = np.array(
    [
        [0.0, 0.1, 0.5, 0.6],
        [0.1, 0.0, 0.7, 0.8],
        [0.5, 0.7, 0.0, 0.2],
        [0.6, 0.8, 0.2, 0.0],
    ]
)
# The 6 relabellings keeping sizes 2 + 2, as (first group, second group), with T by hand:
#   {A,B}|{C,D}: across (0.5+0.6+0.7+0.8)/4 = 0.65, within (0.1+0.2)/2 = 0.15  -> T = 0.50
#   {A,C}|{B,D}: across (0.1+0.6+0.7+0.2)/4 = 0.40, within (0.5+0.8)/2 = 0.65  -> T = -0.25
#   {A,D}|{B,C}: across (0.1+0.5+0.8+0.2)/4 = 0.40, within (0.6+0.7)/2 = 0.65  -> T = -0.25
#   and the same three with the groups' names swapped.
HAND_T = {
    ("AB", "CD"): 0.50,
    ("AC", "BD"): -0.25,
    ("AD", "BC"): -0.25,
    ("BC", "AD"): -0.25,
    ("BD", "AC"): -0.25,
    ("CD", "AB"): 0.50,
}


def test_hand_computed_four_networks():
    names = "ABCD"
    # every relabelling the test enumerates, with its T, equals the hand-made list
    labels, exact = relabellings([0, 0, 1, 1])
    assert exact and labels.shape == (6, 4)
    got = {}
    for row, t in zip(labels, group_statistics(HAND_D, labels), strict=True):
        key = (
            "".join(n for n, c in zip(names, row, strict=True) if c == 0),
            "".join(n for n, c in zip(names, row, strict=True) if c == 1),
        )
        got[key] = t
    assert got.keys() == HAND_T.keys()
    for key, t in HAND_T.items():
        assert got[key] == pytest.approx(t, abs=1e-12)
        first = [n in key[0] for n in names]
        assert naive_statistic(HAND_D, first) == pytest.approx(t, abs=1e-12)
    assert group_statistic(HAND_D, ["x", "x", "y", "y"]) == pytest.approx(0.5, abs=1e-12)

    # the same through group_test, from maps whose correlations are 1 - HAND_D
    maps = maps_with_correlations(1.0 - HAND_D)
    np.testing.assert_allclose(correlation_distances(maps), HAND_D, atol=1e-12)
    by_expr = {"Anger": dict(zip(names, maps, strict=True))}
    rows = group_test(by_expr, {"g1": ["A", "B"], "g2": ["C", "D"]})
    assert [r["expression"] for r in rows] == ["Anger", "all"]
    for row in rows:
        assert row["statistic"] == pytest.approx(0.5, abs=1e-12)
        assert row["p_value"] == pytest.approx(2 / 6)  # {AB|CD} and {CD|AB}: T = 0.5 ≥ 0.5
        assert row["permutations"] == 6


def test_vectorized_statistic_equals_definition_three_groups():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(7, 5))
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    labels, exact = relabellings([0, 0, 0, 1, 1, 2, 2])
    assert exact
    assert len(labels) == math.factorial(7) // (6 * 2 * 2) == len({tuple(r) for r in labels})
    assert all(np.bincount(row).tolist() == [3, 2, 2] for row in labels)
    fast = group_statistics(dist, labels)
    slow = [naive_statistic(dist, row) for row in labels]
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_correlation_is_opencv_tm_ccoeff_normed():
    rng = np.random.default_rng(0)
    images = (rng.random((5, *SHAPE)) * 255).astype(np.uint8)
    images[1] = np.clip(images[0].astype(int) // 2 + images[1] // 2, 0, 255)  # correlated pair
    dist = correlation_distances(images)
    for i in range(5):
        for j in range(5):
            r = cv2.matchTemplate(images[i], images[j], cv2.TM_CCOEFF_NORMED)[0, 0]
            assert 1.0 - dist[i, j] == pytest.approx(r, abs=1e-5)
            assert 1.0 - dist[i, j] == pytest.approx(
                np.corrcoef(images[i].ravel(), images[j].ravel())[0, 1], abs=1e-12
            )


def _twelve_maps(seed, separation, noise=1.0):
    """Scratch networks' maps around one blob, pre-trained ones around another, plus noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for expr in EXPRESSIONS:
        out[expr] = {}
        for net in SCRATCH_NETWORKS + PRETRAINED_NETWORKS:
            centre = (100, 112) if net in SCRATCH_NETWORKS else (100 + separation, 112)
            out[expr][net] = blob(centre) + noise * rng.random(SHAPE) * 0.5
    return out


def test_planted_split_has_the_smallest_p():
    maps = _twelve_maps(0, separation=60, noise=0.2)
    groups = default_groups(list(maps["Anger"]))
    rows = group_test(maps, groups)
    assert [r["expression"] for r in rows] == [*EXPRESSIONS, "all"]
    for row in rows:
        assert row["permutations"] == 495 == math.comb(12, 4)
        assert row["statistic"] > 0.5
        assert row["p_value"] == pytest.approx(1 / 495)


def test_identical_maps_give_p_one():
    image = blob((120, 90))
    maps = {e: {net: image.copy() for net in ("a", "b", "c", "d", "e")} for e in EXPRESSIONS}
    rows = group_test(maps, {"x": ["a", "b"], "y": ["c", "d", "e"]})
    for row in rows:
        assert row["statistic"] == pytest.approx(0.0, abs=1e-12)
        assert row["p_value"] == 1.0
        assert row["permutations"] == 10


def test_all_is_the_summed_statistic_under_the_same_relabelling():
    maps = _twelve_maps(1, separation=3, noise=4.0)  # weak structure: p strictly between
    groups = default_groups(SCRATCH_NETWORKS + PRETRAINED_NETWORKS)
    rows = {r["expression"]: r for r in group_test(maps, groups)}
    nets = groups["from_scratch"] + groups["pretrained"]
    dists = [correlation_distances(np.stack([maps[e][n] for n in nets])) for e in EXPRESSIONS]
    codes = [0] * 4 + [1] * 8
    for expr, dist in zip(EXPRESSIONS, dists, strict=True):
        assert rows[expr]["statistic"] == pytest.approx(naive_statistic(dist, codes), abs=1e-12)
    assert rows["all"]["statistic"] == pytest.approx(
        sum(rows[e]["statistic"] for e in EXPRESSIONS), abs=1e-12
    )
    # the null of `all`: each relabelling's statistics summed over the six expressions
    labels, _ = relabellings(codes)
    null = sum(group_statistics(d, labels) for d in dists)
    expected_p = np.mean(null >= rows["all"]["statistic"] - 1e-9)
    assert rows["all"]["p_value"] == pytest.approx(expected_p)
    # not simply one expression's p, nor a product of them
    assert 1 / 495 < rows["all"]["p_value"] < 1


def test_exact_and_random_branches():
    maps = _twelve_maps(2, separation=3, noise=4.0)
    groups = default_groups(SCRATCH_NETWORKS + PRETRAINED_NETWORKS)
    exact = group_test(maps, groups)
    random = group_test(maps, groups, max_exact=494, n_random=4000, seed=7)
    again = group_test(maps, groups, max_exact=494, n_random=4000, seed=7)
    other = group_test(maps, groups, max_exact=494, n_random=4000, seed=8)
    assert random == again  # seeded
    assert [r["p_value"] for r in random] != [r["p_value"] for r in other]
    for e, r in zip(exact, random, strict=True):
        assert e["permutations"] == 495
        assert r["permutations"] == 4001  # the observed relabelling + 4000 random ones
        assert r["statistic"] == pytest.approx(e["statistic"], abs=1e-12)
        se = math.sqrt(e["p_value"] * (1 - e["p_value"]) / 4000) + 1 / 4001
        assert abs(r["p_value"] - e["p_value"]) < 4 * se
        assert r["p_value"] >= 1 / 4001
    # beyond 100,000 relabellings the random branch is taken by default (24 networks, 12 + 12)
    labels, is_exact = relabellings([0] * 12 + [1] * 12, n_random=50)
    assert not is_exact and labels.shape == (51, 24)
    assert (labels[0] == [0] * 12 + [1] * 12).all()
    assert (np.bincount(labels.ravel()) == [12 * 51, 12 * 51]).all()


def test_missing_and_constant_maps_are_left_out():
    maps = _twelve_maps(0, separation=60, noise=0.2)
    del maps["Fear"]["VGG16"]
    maps["Sadness"]["WeiNet"] = np.zeros(SHAPE)  # empty heatmap: correlation undefined
    rows = {r["expression"]: r for r in group_test(maps, default_groups(NETS12))}
    assert rows["Anger"]["permutations"] == math.comb(12, 4)
    assert rows["Fear"]["permutations"] == math.comb(11, 4)
    assert rows["Sadness"]["permutations"] == math.comb(11, 3)
    assert rows["all"]["permutations"] == math.comb(10, 3)  # networks usable everywhere
    assert rows["all"]["p_value"] == pytest.approx(1 / math.comb(10, 3))


NETS12 = SCRATCH_NETWORKS + PRETRAINED_NETWORKS


def test_too_few_networks_gives_nan_row():
    maps = {"Anger": {"a": blob((90, 90)), "b": blob((150, 90))}}
    rows = group_test(maps, {"x": ["a"], "y": ["b"]})
    assert [r["permutations"] for r in rows] == [0, 0]
    assert all(math.isnan(r["p_value"]) for r in rows)


def test_default_groups_from_the_registry():
    groups = default_groups(reversed(NETS12))
    assert groups == {
        "from_scratch": list(SCRATCH_NETWORKS),
        "pretrained": list(PRETRAINED_NETWORKS),
    }
    assert default_groups(PRETRAINED_NETWORKS) is None
    assert default_groups(["WeiNet", "VGG16"]) is None  # no pair within a group
    assert default_groups(["WeiNet", "VGG16", "VGG19", "MyNet"]) == {
        "from_scratch": ["WeiNet"],
        "pretrained": ["VGG16", "VGG19"],
    }


def test_parse_groups():
    assert parse_groups(["a=WeiNet, SongNet", "b=VGG16"]) == {
        "a": ["WeiNet", "SongNet"],
        "b": ["VGG16"],
    }
    assert parse_groups(["x=n1,n2", "y=n3"], known=["n1", "n2", "n3"]) == {
        "x": ["n1", "n2"],
        "y": ["n3"],
    }


@pytest.mark.parametrize(
    "specs, match",
    [
        (["a=WeiNet,SongNet"], "1 group"),
        (["a=WeiNet,vgg16", "b=VGG19"], "unknown network 'vgg16'.*Did you mean 'VGG16'"),
        (["a=WeiNet,SongNet", "b=VGG16,WeiNet"], "'WeiNet' of group 'b' is also in group 'a'"),
        (["a=WeiNet,WeiNet", "b=VGG16"], "twice in it"),
        (["a=WeiNet", "a=SongNet", "b=VGG16"], "given twice"),
        (["WeiNet,SongNet", "b=VGG16"], "expected NAME=network"),
        (["=WeiNet,SongNet", "b=VGG16"], "expected NAME=network"),
        (["a=", "b=VGG16"], "has no networks"),
        (["a=WeiNet", "b=VGG16"], "single network"),
    ],
)
def test_parse_groups_errors(specs, match):
    with pytest.raises(ConfigError, match=match):
        parse_groups(specs)


def test_published_heatmaps(reference):
    """The table of docs/comparison.md ("Is the pre-trained / from-scratch split real?")."""
    from ferxai.heatmaps.heatmap import discover_heatmaps, load_heatmaps

    loaded = load_heatmaps(discover_heatmaps(reference / "heatmaps_by_net").by_network)
    maps: dict = {}
    for (net, expr), heatmap in loaded.items():
        maps.setdefault(expr, {})[net] = heatmap.uint8
    groups = default_groups({net for net, _ in loaded})
    rows = {r["expression"]: r for r in group_test(maps, groups)}
    published = {
        "Anger": 0.3932,
        "Disgust": 0.2612,
        "Fear": 0.2432,
        "Happiness": 0.3053,
        "Sadness": 0.4143,
        "Surprise": 0.3836,
        "all": 2.0007,
    }
    for expr, statistic in published.items():
        assert rows[expr]["statistic"] == pytest.approx(statistic, abs=5e-5)
        assert rows[expr]["p_value"] == pytest.approx(1 / 495)
        assert rows[expr]["permutations"] == 495
