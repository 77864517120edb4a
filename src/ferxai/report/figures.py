"""``ferxai figures``: the report's figures of one method's heatmaps and metric tables, and the
methods side by side."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ferxai.comparison.groundtruth import load_masks
from ferxai.comparison.metrics import BINARY_METRICS
from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError
from ferxai.core.io import read_csv, read_png_gray
from ferxai.core.plots import gt_masks_figure, heatmap_grid, plot_iou_ci, plot_sorted_bars
from ferxai.heatmaps.heatmap import discover_heatmaps, heatmap_stem, load_heatmaps

log = logging.getLogger(__name__)


def make_figures(
    heatmap_dir: str | os.PathLike,
    gt_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    metrics_csv: str | os.PathLike | None = None,
    extended_csv: str | os.PathLike | None = None,
) -> list[Path]:
    """heatmap_grid.png, gt_masks.png, and {metric}_bars.png / iou_ci.png when tables are given."""
    out = Path(out_dir)
    heatmaps = load_heatmaps(discover_heatmaps(heatmap_dir).by_network)
    written = [out / "heatmap_grid.png", out / "gt_masks.png"]
    heatmap_grid({key: heatmap.uint8 for key, heatmap in heatmaps.items()}, written[0])
    gt_masks_figure(load_masks(gt_dir), written[1])
    if metrics_csv:
        rows = [r for r in read_csv(metrics_csv) if r["fold"] == "all"]
        for metric in BINARY_METRICS:
            written.append(out / f"{metric}_bars.png")
            plot_sorted_bars(rows, metric, written[-1])
    if extended_csv:
        written.append(out / "iou_ci.png")
        plot_iou_ci(read_csv(extended_csv), written[-1])
    return written


def methods_figure(method_dirs: Sequence[str | os.PathLike], path: str | os.PathLike) -> None:
    """Per-expression heatmaps (pooled over networks and folds) of each method, side by side.

    Each folder is one method's heatmap folder (named after the method) holding
    ``total/{Expression}_heatmap.png``.
    """
    grid = {}
    for folder in map(Path, method_dirs):
        for expression in EXPRESSIONS:
            png = Path(heatmap_stem(folder / "total", expression) + ".png")
            if png.is_file():
                grid[(folder.name, expression)] = read_png_gray(png)
    heatmap_grid(grid, path, title="Explanation methods side by side (all networks and folds)")


def cli_figures_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heatmaps", help="folder of by-network heatmaps")
    parser.add_argument("--gt", default=None, help="folder of {Expression}_gt.png (default: own)")
    parser.add_argument("--out-dir", help="output folder")
    parser.add_argument("--metrics", default=None, help="metrics.csv of `ferxai compare`")
    parser.add_argument("--extended", default=None, help="CSV of `ferxai extended-metrics`")
    parser.add_argument("--methods", nargs="+", help="heatmap folders of several methods")
    parser.add_argument("--methods-out", help="PNG comparing the --methods side by side")
    parser.set_defaults(
        provenance_inputs=("heatmaps", "gt", "metrics", "extended", "methods"),
        provenance_outputs=("out_dir", "methods_out"),
    )


def cli_figures(args: argparse.Namespace) -> None:
    if args.methods:
        if not args.methods_out:
            raise ConfigError("figures: --methods needs --methods-out.")
        methods_figure(args.methods, args.methods_out)
    if args.heatmaps:
        if not args.out_dir:
            raise ConfigError("figures: --heatmaps needs --out-dir.")
        written = make_figures(args.heatmaps, args.gt, args.out_dir, args.metrics, args.extended)
        log.info("wrote %d figures into %s", len(written), args.out_dir)
    if not (args.methods or args.heatmaps):
        raise ConfigError("figures: give --heatmaps DIR --out-dir DIR and/or --methods DIR...")
