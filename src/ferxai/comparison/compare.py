"""``ferxai compare``: binary metrics of every heatmap of a folder against the ground truth.

Works on any folder in the published layout (:mod:`ferxai.heatmaps.heatmap`), so heatmaps made elsewhere
are scored exactly as ferxai's own. Writes ``metrics.csv`` (network, fold, expression, IoU, F1,
precision, recall; fold ``all`` = the by-network heatmap) and ``thresholds.csv`` (how each heatmap
was binarized: threshold, areas, notes such as empty heatmaps); and ``group_test.csv``, the exact
permutation test of a grouping of the networks on their by-network heatmaps
(:mod:`ferxai.comparison.group_test`), when the networks include both of the registry's groups (pre-trained,
from scratch) or ``--groups`` names the groups.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ferxai.comparison.groundtruth import load_masks
from ferxai.comparison.group_test import GROUP_TEST_COLUMNS, group_test
from ferxai.comparison.groups import GROUPS_HELP, add_groups_argument, selected_groups
from ferxai.comparison.localisation import METRICS_COLUMNS, THRESHOLD_COLUMNS, metric_rows
from ferxai.comparison.thresholds import THRESHOLD_HELP, ThresholdSpec, parse_threshold
from ferxai.core.errors import ConfigError
from ferxai.core.io import write_csv
from ferxai.heatmaps.heatmap import discover_heatmaps, load_heatmaps

log = logging.getLogger(__name__)

OUTPUT_FILES = ("metrics.csv", "thresholds.csv")
GROUP_TEST_FILE = "group_test.csv"


def compare_heatmap_folder(
    heatmap_dir,
    out_dir,
    masks,
    spec: ThresholdSpec | None = None,
    empty_from: str | None = None,
    groups: list[str] | None = None,
    group_test_enabled: bool = True,
    seed: int = 0,
) -> list[Path]:
    """Score every by-network and by-fold heatmap of ``heatmap_dir``; write ``OUTPUT_FILES`` and,
    when there are groups to test (:func:`test_groups`), ``group_test.csv``."""
    spec = spec or ThresholdSpec("otsu")
    use_h5 = empty_from is None or str(empty_from).lower() != "none"
    h5_dir = empty_from if use_h5 else None
    found = discover_heatmaps(heatmap_dir)
    by_network = load_heatmaps(found.by_network, h5_dir, use_h5)
    by_fold = load_heatmaps(found.by_fold, h5_dir, use_h5)
    heatmaps = {(n, "all", e): (h, found.by_network[(n, e)]) for (n, e), h in by_network.items()}
    heatmaps |= {(n, k, e): (h, found.by_fold[(n, e, k)]) for (n, e, k), h in by_fold.items()}
    rows = metric_rows(heatmaps, masks, spec)
    out = Path(out_dir)
    written = [out / name for name in OUTPUT_FILES]
    write_csv(written[0], [{k: r[k] for k in METRICS_COLUMNS} for r in rows], METRICS_COLUMNS)
    write_csv(written[1], [{k: r[k] for k in THRESHOLD_COLUMNS} for r in rows], THRESHOLD_COLUMNS)
    tested = selected_groups({net for net, _ in by_network}, groups)
    if group_test_enabled and tested is not None:
        maps: dict[str, dict] = {}
        for (net, expr), heatmap in by_network.items():
            if not heatmap.empty:  # the dendrograms' images: uint8, empty ones left out
                maps.setdefault(expr, {})[net] = heatmap.uint8
        written.append(out / GROUP_TEST_FILE)
        write_csv(written[-1], group_test(maps, tested, seed=seed), GROUP_TEST_COLUMNS)
    return written


def cli_compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heatmaps", required=True, help="folder of *_heatmap.png (searched deep)")
    parser.add_argument(
        "--gt", default=None, help="folder of {Expression}_gt.png (default: ferxai's Ekman masks)"
    )
    parser.add_argument("--out", required=True, help=f"output folder ({', '.join(OUTPUT_FILES)})")
    parser.add_argument("--threshold", default="otsu", help=THRESHOLD_HELP)
    parser.add_argument(
        "--empty-from",
        default=None,
        help="folder of the heatmaps' .h5 (attr empty) if not beside the PNGs; 'none' = PNGs only",
    )
    add_groups_argument(parser, f"groups of networks for the permutation test ({GROUP_TEST_FILE}): "
                        + GROUPS_HELP)
    parser.add_argument(
        "--no-group-test", action="store_true", help=f"do not write {GROUP_TEST_FILE}"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random relabellings (over 100,000 only)"
    )
    parser.set_defaults(
        provenance_inputs=("heatmaps", "gt"),
        provenance_outputs=(
            lambda args: (
                [Path(args.out) / name for name in OUTPUT_FILES]
                + ([] if args.no_group_test else [Path(args.out) / GROUP_TEST_FILE])
            ),
        ),
    )


def cli_compare(args: argparse.Namespace) -> None:
    spec = parse_threshold(args.threshold)
    if args.groups and args.no_group_test:
        raise ConfigError("--groups with --no-group-test: give one or the other.")
    written = compare_heatmap_folder(
        args.heatmaps, args.out, load_masks(args.gt), spec, args.empty_from, args.groups,
        not args.no_group_test, args.seed,
    )
    log.info("wrote %s", ", ".join(map(str, written)))
