"""``ferxai groundtruth``: the human references on the canonical face, in one job.

The Ekman/FACS masks per expression (:mod:`ferxai.comparison.groundtruth`) and, with ``--au-dir`` /
``--au-figure``, the region of every action unit of the AU atlas
(:mod:`ferxai.comparison.au_atlas`): ``AU{n}.png`` and a figure of them all.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ferxai.comparison import groundtruth
from ferxai.comparison.au_atlas import (
    atlas_masks,
    load_atlas,
    save_atlas_figure,
    write_atlas_pngs,
)

log = logging.getLogger(__name__)


def cli_groundtruth_args(parser: argparse.ArgumentParser) -> None:
    groundtruth.cli_groundtruth_args(parser)
    parser.add_argument(
        "--atlas",
        type=Path,
        default=None,
        metavar="YAML",
        help="action-unit atlas YAML (default: the shipped FACS atlas)",
    )
    parser.add_argument(
        "--au-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write one AU{n}.png (0/255) per atlas action unit here",
    )
    parser.add_argument(
        "--au-figure",
        type=Path,
        default=None,
        metavar="PATH",
        help="also draw the atlas, one panel per action unit",
    )
    parser.set_defaults(
        provenance_inputs=("spec", "atlas"),
        provenance_outputs=("out_dir", "figure", "au_dir", "au_figure"),
    )


def cli_groundtruth(args: argparse.Namespace) -> None:
    # The atlas is checked before anything is written: a bad atlas leaves no half-made folder.
    atlas = load_atlas(args.atlas)
    groundtruth.cli_groundtruth(args)
    if args.au_dir is None and args.au_figure is None:
        return
    masks = atlas_masks(atlas, points=groundtruth.canonical_points89())
    if args.au_dir is not None:
        write_atlas_pngs(masks, args.au_dir)
        log.info("wrote %d action-unit regions to %s", len(masks), args.au_dir)
    if args.au_figure is not None:
        save_atlas_figure(atlas, masks, args.au_figure)
        log.info("wrote %s", args.au_figure)
