"""Cluster support (bootstrap over explained images), paired IoU differences, the group test in
`ferxai compare`: planted structure is found, identical maps are not."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import dendrogram

from ferxai.cli import main
from ferxai.comparison.localisation import iou_difference_rows, paired_bootstrap_ious
from ferxai.comparison.similarity import cluster_images
from ferxai.comparison.stability import clade_support, clades, support_rows
from ferxai.core.io import Stack, read_csv, write_png, write_stack
from ferxai.core.plots import node_positions
from ferxai.heatmaps.heatmap import Heatmap, stretch, to_uint8, write_heatmap
from ferxai.heatmaps.pooling import pool_stacks, resampled_heatmaps, valid_image_ids

SHAPE = (275, 224)
MASK = np.zeros(SHAPE, bool)
MASK[60:140, 40:180] = True


def _blob(center, sigma=18.0):
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma**2))


def _stack(path: Path, maps, ids, valid=None) -> str:
    n = len(maps)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid)
    stack = Stack(np.asarray(maps, np.float32), list(ids), np.zeros(n), np.zeros(n),
                  np.ones((n, 6)) / 6, extras={"valid": valid})
    write_stack(path, stack)
    return str(path)


def _maps(rng, center, n, jitter=25):
    """n noisy maps around ``center`` (each a blob moved by up to ``jitter`` px, plus noise)."""
    return np.stack([
        _blob((center[0] + rng.integers(-jitter, jitter), center[1] + rng.integers(-jitter, jitter)))
        + 0.3 * rng.random(SHAPE)
        for _ in range(n)
    ])


def _planted(tmp_path, identical=False, n=8):
    """Six networks, two folds each: A1-A3 explain on the mask, B1-B3 far below it (or, with
    ``identical``, every network the same maps of the same images)."""
    rng = np.random.default_rng(3)
    shared = [_maps(rng, (100, 110), n // 2) for _ in range(2)]
    stacks = {}
    for net in ("A1", "A2", "A3", "B1", "B2", "B3"):
        paths = []
        for fold in (1, 2):
            if identical:
                maps, ids = shared[fold - 1], [f"f{fold}_{k}" for k in range(n // 2)]
            else:
                center = (100, 110) if net.startswith("A") else (220, 110)
                maps = _maps(rng, center, n // 2)
                ids = [f"{net}_f{fold}_{k}" for k in range(n // 2)]
            paths.append(_stack(tmp_path / f"{net}_{fold}.h5", maps, ids))
        stacks[net] = paths
    return stacks


def _clustering(stacks):
    labels = sorted(stacks)
    images = np.zeros((len(labels), *SHAPE), np.uint8)
    for i, label in enumerate(labels):
        images[i] = pool_stacks(stacks[label]).uint8
    return cluster_images(images, labels, [False] * len(labels))


# ------------------------------------------------------------------------------- re-pooling


def test_resampled_heatmaps_repool_as_the_aggregate_stage(tmp_path):
    rng = np.random.default_rng(0)
    maps = _maps(rng, (120, 100), 7)
    valid = [True, False, True, True, True, False, True]
    paths = [_stack(tmp_path / "a.h5", maps[:3], "abc", valid[:3]),
             _stack(tmp_path / "b.h5", maps[3:], "defg", valid[3:])]
    assert valid_image_ids(paths) == ["a", "c", "d", "e", "g"]
    kept = maps[np.array(valid)].astype(np.float64)
    counts = np.array([[1, 1, 1, 1, 1], [2, 0, 0, 3, 0], [0, 0, 0, 0, 0]])
    images = resampled_heatmaps(paths, counts, chunk=2)
    assert images.dtype == np.uint8 and images.shape == (3, *SHAPE)
    # every map once: the aggregate stage's heatmap (up to the rounding of the sum's order)
    assert np.abs(images[0].astype(int) - pool_stacks(paths).uint8).max() <= 1
    expected = to_uint8(stretch((2 * kept[0] + 3 * kept[3]) / 5))
    assert np.abs(images[1].astype(int) - expected).max() <= 1
    assert not images[2].any()  # a resample without maps


# ------------------------------------------------------------------------------ cluster support


def test_clades_are_the_inner_nodes_of_the_linkage():
    linkage = np.array([[0, 1, 0.1, 2], [2, 3, 0.2, 2], [4, 5, 0.5, 4]], float)
    assert clades(linkage, list("abcd")) == [
        frozenset("ab"), frozenset("cd"), frozenset("abcd")
    ]


def test_planted_groups_have_full_support(tmp_path):
    stacks = _planted(tmp_path)
    clustering = _clustering(stacks)
    support, note = clade_support(clustering, stacks, n_boot=60, seed=1, key="clusters/Anger")
    assert note == ""
    group_a, group_b = frozenset({"A1", "A2", "A3"}), frozenset({"B1", "B2", "B3"})
    assert support[group_a] >= 0.95 and support[group_b] >= 0.95
    rows = support_rows(clustering, support, 60)
    assert [r["node"] for r in rows] == list(range(6, 11))
    assert {r["leaves"] for r in rows if r["support"] >= 0.95} >= {"A1;A2;A3", "B1;B2;B3"}
    again, _ = clade_support(clustering, stacks, n_boot=60, seed=1, key="clusters/Anger")
    assert again == support  # seeded


def test_identical_maps_get_no_support(tmp_path):
    stacks = _planted(tmp_path, identical=True)
    clustering = _clustering(stacks)
    support, _ = clade_support(clustering, stacks, n_boot=60, seed=1, key="clusters/Anger")
    inner = [share for clade, share in support.items() if len(clade) < len(stacks)]
    assert inner and max(inner) < 0.95


def test_support_without_stacks_is_nan_with_a_note(tmp_path):
    stacks = _planted(tmp_path)
    clustering = _clustering(stacks)
    support, note = clade_support(clustering, {**stacks, "B3": []}, n_boot=10)
    assert "B3" in note and all(np.isnan(v) for v in support.values())


def test_fewer_than_three_leaves_have_nothing_to_support(tmp_path):
    stacks = _planted(tmp_path)
    for labels in ([], ["A1"], ["A1", "B1"]):
        clustering = _clustering({label: stacks[label] for label in labels})
        support, note = clade_support(clustering, stacks, n_boot=10)
        assert "no clade to support" in note and all(np.isnan(v) for v in support.values())
        assert len(support_rows(clustering, support, 10)) == max(len(labels) - 1, 0)


def test_node_positions_are_where_scipy_draws_the_nodes(tmp_path):
    clustering = _clustering(_planted(tmp_path))
    drawn = dendrogram(clustering.linkage, labels=clustering.labels, no_plot=True)
    expected = sorted((d[1], (i[1] + i[2]) / 2) for i, d in zip(drawn["icoord"], drawn["dcoord"]))
    got = sorted(node_positions(clustering.linkage, drawn["leaves"]))
    assert np.allclose(got, expected)


# --------------------------------------------------------------------------- IoU differences


def _heatmaps(stacks):
    return {(net, "Anger"): (pool_stacks(paths), net) for net, paths in stacks.items()}


def test_planted_difference_is_resolved(tmp_path):
    stacks = _planted(tmp_path)
    json_stacks = {f"{net}/Anger": paths for net, paths in stacks.items()}
    groups = {"on": ["A1", "A2", "A3"], "off": ["B1", "B2", "B3"]}
    rows = iou_difference_rows(_heatmaps(stacks), {"Anger": MASK}, json_stacks, groups, 60, 5)
    assert len(rows) == 15 + 1
    for row in rows:
        across = row["network_a"][0] != row["network_b"][0]
        assert row["difference"] == pytest.approx(row["iou_a"] - row["iou_b"])
        assert row["ci_low"] <= row["ci_high"]
        if across:  # on the mask vs off it
            assert row["resolved"] and row["ci_low"] > 0, row
    group = rows[-1]
    assert (group["network_a"], group["network_b"]) == ("on", "off")
    assert group["resolved"] and group["n_a"] == group["n_b"] == 24


def test_identical_maps_differ_by_nothing(tmp_path):
    stacks = _planted(tmp_path, identical=True)
    json_stacks = {f"{net}/Anger": paths for net, paths in stacks.items()}
    groups = {"on": ["A1", "A2", "A3"], "off": ["B1", "B2", "B3"]}
    rows = iou_difference_rows(_heatmaps(stacks), {"Anger": MASK}, json_stacks, groups, 40, 5)
    assert rows and not any(r["resolved"] for r in rows)
    assert all(r["ci_low"] <= 0 <= r["ci_high"] for r in rows)


def test_paired_resamples_share_the_drawn_images(tmp_path):
    rng = np.random.default_rng(1)
    maps = _maps(rng, (100, 110), 6)
    # b explains images 2..5 of a's 0..5: where the same images are drawn, the maps are the same
    stacks = {"a": [_stack(tmp_path / "a.h5", maps, "012345")],
              "b": [_stack(tmp_path / "b.h5", maps[2:], "2345")]}
    ious = paired_bootstrap_ious(stacks, MASK, 30, np.random.default_rng(2))
    again = paired_bootstrap_ious(stacks, MASK, 30, np.random.default_rng(2))
    assert all(np.array_equal(ious[k], again[k], equal_nan=True) for k in ious)
    same = paired_bootstrap_ious({"a": stacks["a"], "c": stacks["a"]}, MASK, 30)
    assert np.array_equal(same["a"], same["c"])  # identical stacks: identical replicates


# -------------------------------------------------------------------------------- commands


REGISTRY = {"A1": "WeiNet", "A2": "SongNet", "A3": "SilNet",
            "B1": "VGG16", "B2": "VGG19", "B3": "ResNet50"}


def _folder(tmp_path, stacks):
    """The planted networks under registry names, as a heatmap folder with .h5 and a stacks map."""
    folder = tmp_path / "heatmaps"
    stack_map = {}
    for net, paths in stacks.items():
        name = REGISTRY[net]
        heatmap = pool_stacks(paths)
        stem = folder / "by_network" / f"{name}_Anger_heatmap"
        write_heatmap(heatmap, f"{stem}.h5", f"{stem}.png")
        stack_map[f"{name}/Anger"] = paths
    empty = Heatmap(np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.float32), np.zeros(SHAPE), 0,
                    True, "none")
    stem = folder / "by_network" / "AlexNet_Anger_heatmap"
    write_heatmap(empty, f"{stem}.h5", f"{stem}.png")
    write_png(tmp_path / "gt" / "Anger_gt.png", MASK.astype(np.uint8) * 255)
    (tmp_path / "stacks.json").write_text(json.dumps(stack_map))
    return folder


def test_commands_write_support_differences_and_group_test(tmp_path):
    folder = _folder(tmp_path, _planted(tmp_path))
    gt, stacks_json = str(tmp_path / "gt"), str(tmp_path / "stacks.json")
    plain, boot = tmp_path / "plain", tmp_path / "boot"
    assert main(["cluster", "--heatmaps", str(folder), "--out", str(plain)]) == 0
    assert main(["cluster", "--heatmaps", str(folder), "--out", str(boot), "--stacks-json",
                 stacks_json, "--bootstrap", "30", "--seed", "4"]) == 0
    # the clustering CSVs do not change; support is added
    for path in plain.glob("*.csv"):
        assert (boot / path.name).read_bytes() == path.read_bytes(), path.name
    assert (
        not list(plain.glob("support_*")) and (boot / "dendrogram_by_network_Anger.png").is_file()
    )
    support = read_csv(boot / "support_Anger.csv")
    assert {r["leaves"] for r in support if float(r["support"]) >= 0.95} >= {
        "SilNet;SongNet;WeiNet", "ResNet50;VGG16;VGG19"
    }

    compared = tmp_path / "compare"
    assert main(["compare", "--heatmaps", str(folder), "--gt", gt, "--out", str(compared)]) == 0
    rows = read_csv(compared / "group_test.csv")
    assert [r["expression"] for r in rows] == ["Anger", "all"]
    # 3 + 3: the observed split and its swap are the two most separated of C(6, 3) = 20
    assert float(rows[0]["p_value"]) == pytest.approx(2 / 20) and rows[0]["permutations"] == "20"
    off = tmp_path / "off"
    assert main(["compare", "--heatmaps", str(folder), "--gt", gt, "--out", str(off),
                 "--no-group-test"]) == 0
    assert not (off / "group_test.csv").exists()
    assert (off / "metrics.csv").read_bytes() == (compared / "metrics.csv").read_bytes()
    custom = tmp_path / "custom"
    assert main(["compare", "--heatmaps", str(folder), "--gt", gt, "--out", str(custom),
                 "--groups", "x=WeiNet,VGG16,SilNet", "y=SongNet,VGG19,ResNet50"]) == 0
    assert float(read_csv(custom / "group_test.csv")[0]["p_value"]) > 0.2
    for bad in (
        ["--groups", "x=WeiNet,VGG16"],
        ["--groups", "x=WeiNet", "y=VGG", "--no-group-test"],
    ):
        assert main(["compare", "--heatmaps", str(folder), "--out", str(off), *bad]) == 2

    base = ["extended-metrics", "--heatmaps", str(folder), "--stacks-json", stacks_json,
            "--gt", gt, "--bootstrap", "30", "--seed", "3"]
    assert main([*base, "--out", str(tmp_path / "x1.csv")]) == 0
    differences, figure = tmp_path / "iou_differences.csv", tmp_path / "iou_differences.png"
    assert main([*base, "--out", str(tmp_path / "x2.csv"), "--differences", str(differences),
                 "--differences-figure", str(figure)]) == 0
    assert (tmp_path / "x1.csv").read_bytes() == (tmp_path / "x2.csv").read_bytes()
    rows = read_csv(differences)
    pairs = [(r["network_a"], r["network_b"]) for r in rows]
    names = ["WeiNet", "SongNet", "SilNet", "VGG16", "VGG19", "ResNet50"]  # AlexNet is empty
    assert pairs == [*combinations(names, 2), ("from_scratch", "pretrained")]
    assert rows[-1]["resolved"] == "True" and float(rows[-1]["ci_low"]) > 0
    assert figure.stat().st_size > 0
