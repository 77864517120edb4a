"""``ferxai sanity``: the model-randomization check (:mod:`ferxai.sanity.randomization`) on the trained
and the randomized networks' heatmaps, and per explained image on their normalized stacks."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping

import numpy as np

from ferxai.comparison.groundtruth import load_masks
from ferxai.core.arguments import read_stacks_json
from ferxai.core.constants import network_order
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import write_csv
from ferxai.core.plots import heatmap_grid, plot_sanity
from ferxai.heatmaps.heatmap import Heatmap, discover_heatmaps, load_heatmaps
from ferxai.heatmaps.pooling import valid_maps_by_image
from ferxai.sanity.randomization import (
    SANITY_COLUMNS,
    SANITY_IMAGE_COLUMNS,
    SANITY_SUMMARY_COLUMNS,
    sanity_image_rows,
    sanity_rows,
    sanity_summary,
)

log = logging.getLogger(__name__)


def cli_sanity_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trained", required=True, help="heatmaps of the trained networks")
    parser.add_argument("--randomized", required=True, help="heatmaps of re-initialized networks")
    parser.add_argument("--reference", required=True, help="folder of reference masks")
    parser.add_argument(
        "--pattern",
        default="{Expression}_gt.png",
        help="mask file names, e.g. {Expression}_cue.png",
    )
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--summary", default=None, help="optional per-network summary CSV")
    parser.add_argument("--grid", default=None, help="optional PNG: reference, trained and "
                        "randomized heatmaps, networks x expressions")
    parser.add_argument("--figure", default=None, help="optional bar chart PNG")
    for kind in ("trained", "randomized"):
        parser.add_argument(f"--{kind}-stacks-json", default=None,
                            help=f"'Network/Expression' → normalized stacks of the {kind} "
                            "networks (JSON object or .json file): adds the per-image test")
    parser.add_argument("--per-image", default=None, help="optional per-image CSV")
    parser.set_defaults(
        provenance_inputs=("trained", "randomized", "reference", "trained_stacks_json",
                           "randomized_stacks_json"),
        provenance_outputs=("out", "summary", "grid", "figure", "per_image"),
    )


def _by_network(folder) -> dict[tuple[str, str], Heatmap]:
    return load_heatmaps(discover_heatmaps(folder).by_network)


def _maps_by_image(stacks: Mapping[str, list[str]]) -> dict[str, dict[str, np.ndarray]]:
    return {key: valid_maps_by_image(paths) for key, paths in stacks.items()}


def cli_sanity(args: argparse.Namespace) -> None:
    masks = load_masks(args.reference, args.pattern)
    trained, randomized = _by_network(args.trained), _by_network(args.randomized)
    if not set(trained) & set(randomized):
        raise DataError(
            f"--trained {args.trained} and --randomized {args.randomized}: no network × "
            "expression heatmap in both. Aggregate the randomized network's maps with the same "
            "names."
        )
    rows = sanity_rows(trained, randomized, masks, where=args.trained)
    write_csv(args.out, rows, SANITY_COLUMNS)
    image_rows = []
    if args.trained_stacks_json and args.randomized_stacks_json:
        image_rows = sanity_image_rows(
            _maps_by_image(read_stacks_json(args.trained_stacks_json, "--trained-stacks-json")),
            _maps_by_image(
                read_stacks_json(args.randomized_stacks_json, "--randomized-stacks-json")
            ),
            masks,
        )
    elif args.trained_stacks_json or args.randomized_stacks_json:
        raise ConfigError("--trained-stacks-json and --randomized-stacks-json go together: the "
                          "per-image test pairs each image's two explanations.")
    if args.per_image:
        write_csv(args.per_image, image_rows, SANITY_IMAGE_COLUMNS)
    summary = sanity_summary(rows, image_rows)
    overall = summary[-1]
    log.info("sanity: ROC-AUC with the reference, trained %.3f vs randomized %.3f; trained higher "
             "in %d of %d network x expression pairs (Wilcoxon one-sided p = %.3g)",
             overall["auc_trained"], overall["auc_randomized"], overall["trained_wins"],
             overall["pairs"], overall["wilcoxon_p"])
    if image_rows:
        log.info("sanity per image: ROC-AUC trained %.3f vs randomized %.3f; trained higher for %d "
                 "of %d images (Wilcoxon one-sided p = %.3g)", overall["image_auc_trained"],
                 overall["image_auc_randomized"], overall["image_wins"], overall["images"],
                 overall["image_wilcoxon_p"])
    if args.summary:
        write_csv(args.summary, summary, SANITY_SUMMARY_COLUMNS)
    if args.figure:
        plot_sanity(summary, args.figure)
    if args.grid:
        images = {("reference", e): m.astype(np.uint8) * 255 for e, m in masks.items()}
        for kind, heatmaps in (("trained", trained), ("randomized", randomized)):
            images |= {(f"{n}_{kind}", e): h.uint8 for (n, e), h in heatmaps.items()}
        networks = network_order(sorted({n for n, _ in trained} | {n for n, _ in randomized}))
        grid_rows = ["reference"] + [f"{n}_{kind}" for n in networks
                                     for kind in ("trained", "randomized")]
        title = "Model randomization check: trained vs randomized heatmaps"
        heatmap_grid(images, args.grid, title, grid_rows)
