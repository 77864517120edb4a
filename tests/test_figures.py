"""Report figures: heatmap grid, masks, sorted bars, CI bars and the dendrogram's look."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferxai.cli import main
from ferxai.comparison.similarity import cluster_images
from ferxai.core import plots as figures
from ferxai.core.constants import network_order
from ferxai.core.io import write_csv, write_png

SHAPE = (275, 224)


def _heatmaps(root):
    rng = np.random.default_rng(0)
    for expr in ("Anger", "Surprise"):
        for net in ("VGG16", "WeiNet"):
            image = (rng.random(SHAPE) * 255).astype(np.uint8)
            write_png(root / "maps" / f"{net}_{expr}_heatmap.png", image)
        mask = np.zeros(SHAPE, np.uint8)
        mask[50:100, 40:180] = 255
        write_png(root / "gt" / f"{expr}_gt.png", mask)


def test_figures_cli_writes_every_figure(tmp_path):
    _heatmaps(tmp_path)
    rows = [
        {
            "network": n,
            "fold": "all",
            "expression": e,
            "iou": v,
            "f1": v,
            "precision": v,
            "recall": v,
        }
        for n, v in (("VGG16", 0.3), ("WeiNet", float("nan")))
        for e in ("Anger", "Surprise")
    ]
    write_csv(tmp_path / "metrics.csv", rows, list(rows[0]))
    extended = [
        {
            "network": r["network"],
            "expression": r["expression"],
            "iou": 0.3,
            "iou_ci_low": 0.25,
            "iou_ci_high": 0.35,
        }
        for r in rows
    ]
    write_csv(tmp_path / "ext.csv", extended, list(extended[0]))
    out = tmp_path / "fig"
    assert (
        main(
            [
                "figures",
                "--heatmaps",
                str(tmp_path / "maps"),
                "--gt",
                str(tmp_path / "gt"),
                "--out-dir",
                str(out),
                "--metrics",
                str(tmp_path / "metrics.csv"),
                "--extended",
                str(tmp_path / "ext.csv"),
            ]
        )
        == 0
    )
    names = [
        "heatmap_grid.png",
        "gt_masks.png",
        "iou_bars.png",
        "f1_bars.png",
        "precision_bars.png",
        "recall_bars.png",
        "iou_ci.png",
    ]
    for name in names:
        image = cv2.imread(str(out / name))
        assert image is not None and image.std() > 5, name  # not a blank canvas
    grid = cv2.imread(str(out / "heatmap_grid.png"))
    assert grid.shape[0] > grid.shape[1]  # 2 networks × 2 expressions of tall faces


def test_dendrogram_has_leaves_left_and_distance_axis_0_to_1(tmp_path, monkeypatch):
    captured = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path, dpi=150: captured.update(fig=fig))
    rng = np.random.default_rng(1)
    images = rng.random((20, 20)) + 0.8 * rng.random((4, 20, 20))  # positively correlated
    result = cluster_images(images, ["SilNet", "VGG16", "a", "b"], [False] * 4)
    result.excluded.append("WeiNet")
    figures.plot_dendrogram(result, "t", tmp_path / "d.png")
    ax = captured["fig"].axes[0]
    assert ax.get_xlim() == pytest.approx((0.0, 1.0))
    tick = ax.yaxis.get_major_ticks()[0]
    assert tick.label1.get_visible() and not tick.label2.get_visible()  # labels on the left
    xs = np.concatenate([np.asarray(seg)[:, 0] for seg in ax.collections[0].get_segments()])
    assert xs.min() == 0.0  # leaves at distance 0, i.e. at the left edge
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == ["SilNet", "VGG16", "a", "b"]
    assert any("WeiNet" in t.get_text() for t in captured["fig"].texts)  # excluded leaf noted


def test_network_order_is_the_papers_then_alphabetical():
    assert network_order(["zeta", "VGG16", "WeiNet", "alpha"]) == [
        "WeiNet",
        "VGG16",
        "alpha",
        "zeta",
    ]
