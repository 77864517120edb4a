"""`ferxai compare`, `cluster`, `extended-metrics`, `sanity` and `tables`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferxai.cli import main
from ferxai.comparison.localisation import bootstrap_iou
from ferxai.comparison.similarity import top_split
from ferxai.core.constants import EXPRESSIONS, PRETRAINED_NETWORKS, SCRATCH_NETWORKS
from ferxai.core.errors import DataError
from ferxai.core.io import Stack, read_csv, write_png, write_stack
from ferxai.heatmaps.heatmap import discover_heatmaps, stretch, to_uint8

REFERENCE = Path(
    os.environ.get(
        "FERXAI_REFERENCE_DIR",
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "gaya-morey-2024",
    )
)
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "heatmaps_by_net").is_dir() or not (REFERENCE / "ekman_gt").is_dir(),
    reason=f"published heatmaps/masks not found under {REFERENCE}",
)
SHAPE = (275, 224)


def _linkage(path: Path) -> np.ndarray:
    rows = read_csv(path)
    return np.array(
        [[float(r[k]) for k in ("cluster_a", "cluster_b", "distance", "size")] for r in rows]
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    argv = [
        "compare",
        "--heatmaps",
        str(REFERENCE / "heatmaps_by_net"),
        "--gt",
        str(REFERENCE / "ekman_gt"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert main(["cluster", "--heatmaps", argv[2], "--out", str(out / "clustering")]) == 0
    return out


@needs_reference
def test_published_metrics_equal_an_independent_recomputation(published):
    rows = read_csv(published / "metrics.csv")
    assert list(rows[0]) == ["network", "fold", "expression", "iou", "f1", "precision", "recall"]
    assert len(rows) == 72 and {r["fold"] for r in rows} == {"all"}
    for row in rows:
        heat = cv2.imread(
            str(
                REFERENCE / "heatmaps_by_net" / f"{row['network']}_{row['expression']}_heatmap.png"
            ),
            cv2.IMREAD_GRAYSCALE,
        )
        gt = (
            cv2.imread(
                str(REFERENCE / "ekman_gt" / f"{row['expression']}_gt.png"), cv2.IMREAD_GRAYSCALE
            )
            > 127
        )
        _, otsu = cv2.threshold(heat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        pred = otsu > 0
        tp = np.sum(pred & gt)
        fp = np.sum(pred & ~gt)
        fn = np.sum(~pred & gt)
        assert float(row["iou"]) == pytest.approx(tp / (tp + fp + fn), abs=1e-12)
        assert float(row["f1"]) == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
        assert float(row["precision"]) == pytest.approx(tp / (tp + fp), abs=1e-12)
        assert float(row["recall"]) == pytest.approx(tp / (tp + fn), abs=1e-12)


@needs_reference
def test_published_group_test_is_written_by_compare(published):
    """`ferxai compare` writes the permutation test of the registry's 4 + 8 split
    (docs/comparison.md: T per expression, p = 1/495 everywhere)."""
    rows = {r["expression"]: r for r in read_csv(published / "group_test.csv")}
    assert list(rows) == [*EXPRESSIONS, "all"]
    expected = {"Anger": 0.3932, "Disgust": 0.2612, "Fear": 0.2432, "Happiness": 0.3053,
                "Sadness": 0.4143, "Surprise": 0.3836, "all": 2.0007}
    for expression, statistic in expected.items():
        row = rows[expression]
        assert float(row["statistic"]) == pytest.approx(statistic, abs=5e-5)
        assert float(row["p_value"]) == pytest.approx(1 / 495) and row["permutations"] == "495"


@needs_reference
def test_published_iou_matches_the_paper(published):
    rows = read_csv(published / "metrics.csv")
    by_network = {
        n: np.mean([float(r["iou"]) for r in rows if r["network"] == n])
        for n in {r["network"] for r in rows}
    }
    assert np.mean([float(r["iou"]) for r in rows]) == pytest.approx(0.27, abs=0.005)
    assert max(by_network.values()) == pytest.approx(0.3269, abs=5e-5)
    assert min(by_network.values()) == pytest.approx(0.2066, abs=5e-5)


@needs_reference
@pytest.mark.parametrize("expression", ["Disgust", "Happiness", "Sadness", "Surprise"])
def test_published_dendrogram_top_split_separates_scratch_from_pretrained(published, expression):
    clustering = published / "clustering"
    linkage = _linkage(clustering / f"linkage_by_network_{expression}.csv")
    labels = sorted(SCRATCH_NETWORKS + PRETRAINED_NETWORKS)  # leaves in sorted network order
    distances = read_csv(clustering / f"distances_by_network_{expression}.csv")
    assert [r["label"] for r in distances] == labels
    assert linkage.shape == (11, 4)
    groups = top_split(linkage, labels)
    assert set(map(frozenset, groups)) == {
        frozenset(SCRATCH_NETWORKS),
        frozenset(PRETRAINED_NETWORKS),
    }


def _blob(center, sigma=20.0):
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma**2))


def _synthetic_folder(root: Path) -> dict[str, np.ndarray]:
    """By-network and by-fold heatmaps of 3 networks for 2 expressions (+ one empty) and masks."""
    masks = {}
    for i, expr in enumerate(("Anger", "Happiness")):
        mask = np.zeros(SHAPE, bool)
        mask[60 + 80 * i : 120 + 80 * i, 50:170] = True
        masks[expr] = mask
        write_png(root / "gt" / f"{expr}_gt.png", mask.astype(np.uint8) * 255)
        for j, net in enumerate(("NetA", "NetB", "NetC")):
            heat = _blob((90 + 80 * i, 80 + 30 * j))
            empty = expr == "Happiness" and net == "NetC"
            image = np.zeros(SHAPE, np.uint8) if empty else to_uint8(stretch(heat))
            write_png(root / "maps" / "by_network" / f"{net}_{expr}_heatmap.png", image)
            for fold in (1, 2):
                shifted = to_uint8(stretch(np.roll(heat, 5 * fold, axis=1)))
                write_png(root / "maps" / "by_fold" / f"{net}_CV{fold}_{expr}_heatmap.png", shifted)
    return masks


def test_compare_synthetic_folds_and_empty_heatmap(tmp_path):
    masks = _synthetic_folder(tmp_path)
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--heatmaps",
                str(tmp_path / "maps"),
                "--gt",
                str(tmp_path / "gt"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = read_csv(out / "metrics.csv")
    assert len(rows) == 6 + 12
    assert {r["fold"] for r in rows} == {"all", "1", "2"}
    empty = [
        r
        for r in rows
        if r["network"] == "NetC" and r["expression"] == "Happiness" and r["fold"] == "all"
    ]
    assert len(empty) == 1 and empty[0]["iou"] == "nan"
    thresholds = read_csv(out / "thresholds.csv")
    assert [(r["network"], r["fold"], r["expression"]) for r in thresholds] == [
        (r["network"], r["fold"], r["expression"]) for r in rows
    ]
    notes = {(r["network"], r["fold"], r["expression"]): r["note"] for r in thresholds}
    assert "empty" in notes[("NetC", "all", "Happiness")]
    written = sorted(p.name for p in out.iterdir() if not p.name.endswith(".prov.json"))
    assert written == ["metrics.csv", "thresholds.csv"]  # no registry groups: no group test
    ok = [r for r in rows if r["iou"] != "nan"]
    assert all(0 <= float(r["iou"]) <= 1 for r in ok)
    assert set(masks) == {"Anger", "Happiness"}


def test_cluster_leaves_out_the_empty_heatmap(tmp_path):
    _synthetic_folder(tmp_path)
    out = tmp_path / "clustering"
    assert main(["cluster", "--heatmaps", str(tmp_path / "maps"), "--out", str(out)]) == 0
    excluded = read_csv(out / "excluded.csv")
    assert {(r["clustering"], r["leaf"]) for r in excluded} >= {("by_network_Happiness", "NetC")}
    assert _linkage(out / "linkage_by_network_Happiness.csv").shape == (1, 4)
    assert _linkage(out / "linkage_by_network_Anger.csv").shape == (2, 4)
    assert (out / "dendrogram_by_network_Happiness.png").is_file()


def test_compare_best_threshold_is_labelled_optimistic_and_not_worse(tmp_path):
    _synthetic_folder(tmp_path)
    base = [
        "compare",
        "--heatmaps",
        str(tmp_path / "maps" / "by_network"),
        "--gt",
        str(tmp_path / "gt"),
    ]
    assert main([*base, "--out", str(tmp_path / "otsu")]) == 0
    assert main([*base, "--out", str(tmp_path / "best"), "--threshold", "best"]) == 0
    otsu = read_csv(tmp_path / "otsu" / "metrics.csv")
    best = read_csv(tmp_path / "best" / "metrics.csv")
    for a, b in zip(otsu, best):
        if a["iou"] != "nan":
            assert float(b["iou"]) >= float(a["iou"]) - 1e-12
    assert all(
        "optimistic" in r["threshold_method"]
        for r in read_csv(tmp_path / "best" / "thresholds.csv")
    )


def test_empty_attr_in_h5_beside_png_makes_heatmap_empty(tmp_path):
    import h5py

    _synthetic_folder(tmp_path)
    png = tmp_path / "maps" / "by_network" / "NetA_Anger_heatmap.png"
    with h5py.File(png.with_suffix(".h5"), "w") as h5:
        h5["stretched"] = np.zeros(SHAPE, np.float32)
        h5.attrs["empty"] = True
        h5.attrs["reason"] = "no explained images"
    out = tmp_path / "cmp"
    main(
        [
            "compare",
            "--heatmaps",
            str(png.parent),
            "--gt",
            str(tmp_path / "gt"),
            "--out",
            str(out),
        ]
    )
    row = [r for r in read_csv(out / "metrics.csv") if r["network"] == "NetA"][0]
    assert row["iou"] == "nan"
    main(
        [
            "compare",
            "--heatmaps",
            str(png.parent),
            "--gt",
            str(tmp_path / "gt"),
            "--out",
            str(tmp_path / "png_only"),
            "--empty-from",
            "none",
        ]
    )
    row = [r for r in read_csv(tmp_path / "png_only" / "metrics.csv") if r["network"] == "NetA"][0]
    assert row["iou"] != "nan"


def test_discover_rejects_duplicates_and_empty_folders(tmp_path):
    image = np.ones(SHAPE, np.uint8)
    write_png(tmp_path / "a" / "NetA_Anger_heatmap.png", image)
    write_png(tmp_path / "b" / "NetA_Anger_heatmap.png", image)
    with pytest.raises(DataError, match="two heatmaps"):
        discover_heatmaps(tmp_path)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no heatmap"):
        discover_heatmaps(tmp_path / "none")
    found = discover_heatmaps(tmp_path / "a")
    assert list(found.by_network) == [("NetA", "Anger")]


def _stack(path, maps):
    n = len(maps)
    write_stack(
        path,
        Stack(
            np.asarray(maps, np.float32),
            [f"i{k}" for k in range(n)],
            np.zeros(n),
            np.zeros(n),
            np.ones((n, 6)) / 6,
            extras={"valid": np.ones(n, bool)},
        ),
    )
    return path


def test_bootstrap_equals_naive_reaggregation(tmp_path):
    rng = np.random.default_rng(0)
    maps = np.stack([_blob((rng.integers(60, 200), rng.integers(40, 180)), 25) for _ in range(7)])
    maps = (maps + 0.1 * rng.random(maps.shape)).astype(np.float32)
    paths = [_stack(tmp_path / "a.h5", maps[:3]), _stack(tmp_path / "b.h5", maps[3:])]
    mask = np.zeros(SHAPE, bool)
    mask[80:160, 60:160] = True
    got = bootstrap_iou(paths, mask, n_boot=6, rng=np.random.default_rng(9), chunk=2, batch=4)
    draws = np.random.default_rng(9).integers(0, 7, size=(6, 7))
    for value, idx in zip(got, draws):
        image = to_uint8(stretch(maps[idx].astype(np.float64).mean(0)))
        _, otsu = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        pred = otsu > 0
        assert value == pytest.approx((pred & mask).sum() / (pred | mask).sum(), abs=1e-9)


def test_extended_metrics_cli_is_deterministic(tmp_path):
    _synthetic_folder(tmp_path)
    rng = np.random.default_rng(1)
    maps = np.stack([_blob((90, 80 + rng.integers(-10, 10))) for _ in range(5)])
    stack = _stack(tmp_path / "s.h5", maps)
    (tmp_path / "stacks.json").write_text(json.dumps({"NetA/Anger": [str(stack)]}))
    base = [
        "extended-metrics",
        "--heatmaps",
        str(tmp_path / "maps" / "by_network"),
        "--stacks-json",
        str(tmp_path / "stacks.json"),
        "--gt",
        str(tmp_path / "gt"),
        "--bootstrap",
        "20",
        "--seed",
        "3",
    ]
    assert main([*base, "--out", str(tmp_path / "x1.csv")]) == 0
    assert main([*base, "--out", str(tmp_path / "x2.csv")]) == 0
    first = (tmp_path / "x1.csv").read_text()
    assert first == (tmp_path / "x2.csv").read_text()
    rows = {(r["network"], r["expression"]): r for r in read_csv(tmp_path / "x1.csv")}
    a = rows[("NetA", "Anger")]
    assert float(a["iou_ci_low"]) <= float(a["iou_ci_high"]) and a["n_images"] == "5"
    assert 0.5 < float(a["roc_auc"]) <= 1 and 0 < float(a["mass_inside"]) < 1
    assert float(a["nss"]) > 0 and float(a["pearson_cc"]) > 0
    assert rows[("NetB", "Anger")]["iou_ci_low"] == "nan"  # no stacks given for it
    assert rows[("NetC", "Happiness")]["note"] == "empty heatmap"


def test_sanity_cli(tmp_path):
    _synthetic_folder(tmp_path)
    rng = np.random.default_rng(2)
    for expr in ("Anger", "Happiness"):
        write_png(
            tmp_path / "rand" / f"NetA_{expr}_heatmap.png",
            (rng.random(SHAPE) * 255).astype(np.uint8),
        )
        write_png(
            tmp_path / "cues" / f"{expr}_cue.png",
            cv2.imread(str(tmp_path / "gt" / f"{expr}_gt.png"), cv2.IMREAD_GRAYSCALE),
        )
    out = tmp_path / "sanity.csv"
    assert (
        main(
            [
                "sanity",
                "--trained",
                str(tmp_path / "maps" / "by_network"),
                "--randomized",
                str(tmp_path / "rand"),
                "--reference",
                str(tmp_path / "cues"),
                "--pattern",
                "{Expression}_cue.png",
                "--out",
                str(out),
                "--figure",
                str(tmp_path / "sanity.png"),
                "--summary",
                str(tmp_path / "summary.csv"),
                "--grid",
                str(tmp_path / "grid.png"),
            ]
        )
        == 0
    )
    summary = read_csv(tmp_path / "summary.csv")
    assert [r["network"] for r in summary] == ["NetA", "all"]
    assert summary[-1]["pairs"] == "2" and summary[-1]["trained_wins"] == "2"
    assert summary[-1]["wilcoxon_p"] == "nan"  # two pairs: too few for a test
    rows = read_csv(out)
    assert [(r["network"], r["expression"]) for r in rows] == [
        ("NetA", "Anger"),
        ("NetA", "Happiness"),
    ]
    for r in rows:
        assert abs(float(r["spearman"])) < 0.2
        assert float(r["iou_trained"]) > float(r["iou_randomized"])
        assert float(r["auc_trained"]) > 0.8 and abs(float(r["auc_randomized"]) - 0.5) < 0.1
    assert (tmp_path / "sanity.png").stat().st_size > 1000
    assert (tmp_path / "grid.png").stat().st_size > 1000
    one_sided = ["sanity", "--trained", str(tmp_path / "maps" / "by_network"), "--randomized",
                 str(tmp_path / "rand"), "--reference", str(tmp_path / "cues"), "--pattern",
                 "{Expression}_cue.png", "--out", str(out), "--trained-stacks-json", "{}"]
    assert main(one_sided) == 2  # a per-image test needs both sides


def test_sanity_summary_counts_wins_and_tests_the_gain():
    from ferxai.sanity.randomization import sanity_summary

    rng = np.random.default_rng(0)
    rows = [
        {"network": net, "expression": expr, "auc_trained": 0.7 + 0.1 * rng.random(),
         "auc_randomized": 0.5 + 0.05 * rng.standard_normal(), "iou_trained": 0.3,
         "iou_randomized": 0.2}
        for net in ("NetA", "NetB") for expr in EXPRESSIONS
    ]
    rows[0]["auc_trained"] = float("nan")  # an empty heatmap drops its pair
    summary = {r["network"]: r for r in sanity_summary(rows)}
    assert summary["NetA"]["pairs"] == 5 and summary["NetB"]["pairs"] == 6
    assert summary["all"]["trained_wins"] == 11
    assert summary["all"]["auc_gain"] > 0.15
    assert summary["all"]["wilcoxon_p"] < 0.001 and np.isnan(summary["NetA"]["wilcoxon_p"])


def _image_stack(path, maps, ids, valid):
    n = len(maps)
    write_stack(path, Stack(maps=np.asarray(maps, np.float32), image_id=list(ids),
                            true_label=np.zeros(n, np.int64), predicted=np.zeros(n, np.int64),
                            probabilities=np.ones((n, 6), np.float32) / 6,
                            extras={"valid": np.asarray(valid, bool)}))
    return str(path)


def test_sanity_per_image_pairs_explanations_by_image(tmp_path):
    from ferxai.heatmaps.pooling import valid_maps_by_image
    from ferxai.sanity.randomization import sanity_image_rows, sanity_summary

    rng = np.random.default_rng(1)
    mask = np.zeros(SHAPE, bool)
    mask[100:180, 50:170] = True
    ids = [f"img{i}" for i in range(12)]
    trained = rng.random((12, *SHAPE)) + 2.0 * mask  # relevance on the reference
    trained[3] = 0.0  # an empty explanation ignores the reference: AUC 0.5
    randomized = rng.random((12, *SHAPE))
    randomized[3] += 2.0 * mask  # ... where the randomized twin's does not
    valid = np.ones(12, bool)
    valid[5] = False  # a map normalization rejected drops its pair
    order = rng.permutation(12)  # the randomized stack lists the images in another order
    stacks = {
        "trained": {"NetA/Anger": [_image_stack(tmp_path / "t.h5", trained, ids, valid)]},
        "randomized": {"NetA/Anger": [_image_stack(tmp_path / "r.h5", randomized[order],
                                                   [ids[i] for i in order], np.ones(12))]},
    }
    stacks["randomized"]["NetA/Happiness"] = stacks["randomized"]["NetA/Anger"]  # unpaired key
    maps = {kind: {key: valid_maps_by_image(paths) for key, paths in by_key.items()}
            for kind, by_key in stacks.items()}
    rows = sanity_image_rows(maps["trained"], maps["randomized"], {"Anger": mask})
    by_id = {r["image_id"]: r for r in rows}
    assert sorted(by_id) == sorted(set(ids) - {"img5"})
    assert by_id["img3"]["auc_trained"] == 0.5 and by_id["img3"]["auc_randomized"] == 1.0
    for image_id, row in by_id.items():
        if image_id != "img3":
            assert row["auc_trained"] == 1.0 and abs(row["auc_randomized"] - 0.5) < 0.05
    global_rows = [{"network": "NetA", "expression": "Anger", "auc_trained": 0.9,
                    "auc_randomized": 0.5, "iou_trained": 0.5, "iou_randomized": 0.1}]
    summary = sanity_summary(global_rows, rows)
    assert summary[0]["images"] == 11 and summary[0]["image_wins"] == 10
    assert summary[0]["image_wilcoxon_p"] < 0.01
    assert np.isnan(sanity_summary(global_rows)[0]["image_wilcoxon_p"])  # no per-image input


def test_tables_have_average_column_and_row(tmp_path):
    _synthetic_folder(tmp_path)
    assert (
        main(
            [
                "compare",
                "--heatmaps",
                str(tmp_path / "maps"),
                "--gt",
                str(tmp_path / "gt"),
                "--out",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    prefix = tmp_path / "tables" / "t"
    assert (
        main(
            [
                "tables",
                "--metrics",
                str(tmp_path / "cmp" / "metrics.csv"),
                "--out-prefix",
                str(prefix),
            ]
        )
        == 0
    )
    rows = read_csv(tmp_path / "tables" / "t_iou_by_network.csv")
    assert [r["Network"] for r in rows] == ["NetA", "NetB", "NetC", "Average"]
    net_a = rows[0]
    values = [float(net_a[e]) for e in ("Anger", "Happiness")]
    assert float(net_a["Average"]) == pytest.approx(np.mean(values))
    assert rows[-1]["Anger"] == repr(float(np.mean([float(r["Anger"]) for r in rows[:3]])))
    assert rows[2]["Happiness"] == "nan"  # empty heatmap, skipped in the averages
    assert float(rows[-1]["Happiness"]) == pytest.approx(
        np.mean([float(r["Happiness"]) for r in rows[:2]])
    )
    by_fold = read_csv(tmp_path / "tables" / "t_iou_by_fold.csv")
    assert len(by_fold) == 3 * 2 + 1 and by_fold[0]["Fold"] == "1"
    fold_mean = read_csv(tmp_path / "tables" / "t_iou_fold_mean.csv")
    a_folds = [float(r["Anger"]) for r in by_fold if r["Network"] == "NetA"]
    assert float(fold_mean[0]["Anger"]) == pytest.approx(np.mean(a_folds))
    for metric in ("iou", "f1", "precision", "recall"):
        for kind in ("by_network", "by_fold", "fold_mean"):
            for ext in ("csv", "md", "tex"):
                assert (tmp_path / "tables" / f"t_{metric}_{kind}.{ext}").is_file()
    assert "\\begin{tabular}" in (tmp_path / "tables" / "t_iou_by_network.tex").read_text()
    assert "| Average |" in (tmp_path / "tables" / "t_iou_by_network.md").read_text()
    assert set(EXPRESSIONS) >= {"Anger", "Happiness"}


def test_compare_user_errors_name_the_problem(tmp_path, capsys):
    _synthetic_folder(tmp_path)
    (tmp_path / "gt" / "Happiness_gt.png").unlink()
    argv = ["compare", "--heatmaps", str(tmp_path / "maps"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--gt", str(tmp_path / "gt")]) == 2
    assert "no ground-truth mask for Happiness" in capsys.readouterr().err
    assert main([*argv, "--gt", str(tmp_path / "maps")]) == 2
    assert "no mask named" in capsys.readouterr().err
    assert main([*argv, "--gt", str(tmp_path / "gt"), "--threshold", "top:5"]) == 2
    assert not (tmp_path / "o" / "metrics.csv").exists()
