"""``ferxai extended-metrics``: threshold-free metrics and Quantus's localisation scores
(:mod:`ferxai.comparison.localisation_scores`) of the by-network heatmaps and the
bootstrap 95 % CI of their Otsu IoU over the explained images (``extended_metrics.csv``); with
``--differences`` the paired bootstrap CIs of the IoU differences between every two networks and
between the groups' means (``iou_differences.csv``, drawn by ``--differences-figure``)."""

from __future__ import annotations

import argparse

from ferxai.comparison.groundtruth import load_masks
from ferxai.comparison.groups import GROUPS_HELP, add_groups_argument, selected_groups
from ferxai.comparison.localisation import (
    DIFFERENCE_COLUMNS,
    EXTENDED_METRIC_COLUMNS,
    extended_metric_rows,
    iou_difference_rows,
)
from ferxai.core.arguments import read_stacks_json
from ferxai.core.errors import ConfigError
from ferxai.core.io import write_csv
from ferxai.heatmaps.heatmap import discover_heatmaps, load_heatmaps


def cli_extended_metrics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heatmaps", required=True, help="folder of by-network heatmaps")
    parser.add_argument(
        "--stacks-json",
        default=None,
        help="'Network/Expression' → normalized stack paths: a JSON object or a .json file",
    )
    parser.add_argument("--gt", default=None, help="folder of {Expression}_gt.png or 'default'")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    parser.add_argument(
        "--top-k",
        type=int,
        default=1000,
        help="pixels of the top_k_intersection column (Quantus's k; at most the canvas's pixels)",
    )
    parser.add_argument(
        "--differences", default=None, help="output CSV of the paired IoU differences (optional)"
    )
    parser.add_argument(
        "--differences-figure", default=None, help="output PNG of the differences (optional)"
    )
    add_groups_argument(parser, "groups whose mean IoUs are compared: " + GROUPS_HELP)
    parser.set_defaults(
        provenance_inputs=("heatmaps", "stacks_json", "gt"),
        provenance_outputs=("out", "differences", "differences_figure"),
    )


def cli_extended_metrics(args: argparse.Namespace) -> None:
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap {args.bootstrap}: must be 0 (none) or more.")
    found = discover_heatmaps(args.heatmaps)
    heatmaps = load_heatmaps(found.by_network)
    heatmaps = {key: (heatmaps[key], path) for key, path in found.by_network.items()}
    masks, stacks = load_masks(args.gt), read_stacks_json(args.stacks_json)
    pixels = min((h.uint8.size for h, _ in heatmaps.values()), default=args.top_k)
    if not 1 <= args.top_k <= pixels:
        raise ConfigError(
            f"--top-k {args.top_k} (config quality.top_k): must lie in 1..{pixels}, the pixels "
            "of a heatmap. Lower it."
        )
    rows = extended_metric_rows(heatmaps, masks, stacks, args.bootstrap, args.seed, args.top_k)
    write_csv(args.out, rows, EXTENDED_METRIC_COLUMNS)
    if args.differences is None and args.differences_figure is None:
        return
    groups = selected_groups({net for net, _ in heatmaps}, args.groups) or {}
    rows = iou_difference_rows(heatmaps, masks, stacks, groups, args.bootstrap, args.seed)
    if args.differences is not None:
        write_csv(args.differences, rows, DIFFERENCE_COLUMNS)
    if args.differences_figure is not None:
        from ferxai.core.plots import plot_iou_differences

        plot_iou_differences(rows, args.differences_figure, list(groups))
