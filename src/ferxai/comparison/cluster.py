"""``ferxai cluster``: dendrograms and similarity matrices of a folder of heatmaps.

For every expression: the networks' dendrogram (``dendrogram_by_network_{Expression}.png``, with
its ``distances_`` and ``linkage_`` CSVs), their correlation and IoU matrices, and the dendrogram of
networks × folds; then the expressions' dendrogram (all networks pooled) and the one of every
expression × network heatmap. ``excluded.csv`` lists the heatmaps left out (empty or constant).
With ``--stacks-json`` (the normalized stacks) and ``--bootstrap B`` > 0, the bootstrap support of
each clade of the networks' dendrograms (:mod:`ferxai.comparison.stability`): ``support_{Expression}.csv``,
printed at the nodes of ``dendrogram_by_network_{Expression}.png``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from ferxai.comparison.metrics import pearson_matrix
from ferxai.comparison.similarity import (
    LINKAGE_COLUMNS,
    Clustering,
    cluster_images,
    linkage_rows,
    matrix_rows,
    pairwise_iou,
)
from ferxai.comparison.stability import SUPPORT_COLUMNS, clade_support, support_rows
from ferxai.comparison.thresholds import THRESHOLD_HELP, ThresholdSpec, binarize, parse_threshold
from ferxai.core.arguments import read_stacks_json
from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError
from ferxai.core.io import write_csv
from ferxai.core.plots import plot_dendrogram, plot_matrix
from ferxai.heatmaps.heatmap import discover_heatmaps, load_heatmaps
from ferxai.heatmaps.pooling import pooled_by_expression

log = logging.getLogger(__name__)


def write_matrix_csv(path: str | os.PathLike, matrix: np.ndarray, labels) -> None:
    write_csv(path, matrix_rows(matrix, labels), ["label", *labels])


def write_clustering(
    out_dir: Path,
    name: str,
    clustering: Clustering,
    title: str,
    figure: bool = True,
    support: dict | None = None,
) -> list[Path]:
    """Write distances_{name}.csv, linkage_{name}.csv and dendrogram_{name}.png (with the clades'
    ``support`` at its nodes when given)."""
    paths = [out_dir / f"distances_{name}.csv", out_dir / f"linkage_{name}.csv"]
    write_matrix_csv(paths[0], clustering.distances, clustering.labels)
    write_csv(paths[1], linkage_rows(clustering.linkage), LINKAGE_COLUMNS)
    if figure:
        paths.append(out_dir / f"dendrogram_{name}.png")
        plot_dendrogram(clustering, title, paths[-1], support)
    return paths


def _note_rows(name: str, clustering: Clustering) -> list[dict]:
    return [
        {"clustering": name, "leaf": leaf, "note": "left out: empty or constant heatmap"}
        for leaf in clustering.excluded
    ]


def cluster_heatmap_dir(
    heatmap_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    spec: ThresholdSpec,
    stacks: dict[str, list[str]] | None = None,
    n_boot: int = 200,
    seed: int = 42,
) -> list[Path]:
    """Every clustering and similarity matrix of the heatmaps found in ``heatmap_dir``; with
    ``stacks`` ('Network/Expression' → normalized stacks) the clades' bootstrap support."""
    out = Path(out_dir)
    found = discover_heatmaps(heatmap_dir)
    by_network = load_heatmaps(found.by_network)
    by_fold = load_heatmaps(found.by_fold)
    written: list[Path] = []
    notes: list[dict] = []
    expressions = [e for e in EXPRESSIONS if any(k[1] == e for k in by_network)]

    for expr in expressions:
        keys = sorted(k for k in by_network if k[1] == expr)
        maps = [by_network[k] for k in keys]
        images = np.stack([m.uint8 for m in maps])
        labels = [k[0] for k in keys]
        empty = [m.empty for m in maps]
        result = cluster_images(images, labels, empty)
        notes += _note_rows(f"by_network_{expr}", result)
        support = None
        if stacks is not None:
            leaf_stacks = {net: stacks.get(f"{net}/{expr}", []) for net in result.labels}
            shares, note = clade_support(result, leaf_stacks, n_boot, seed, f"clusters/{expr}")
            written.append(out / f"support_{expr}.csv")
            write_csv(written[-1], support_rows(result, shares, n_boot, note), SUPPORT_COLUMNS)
            support = None if note else shares  # drawn only when the bootstrap ran
        written += write_clustering(
            out, f"by_network_{expr}", result, f"{expr}: networks", support=support
        )

        masks = np.stack([binarize(m.uint8, spec)[0] & ~m.empty for m in maps])
        iou = pairwise_iou(masks)
        corr = pearson_matrix(np.where(np.asarray(empty)[:, None, None], np.nan, images))
        for kind, matrix in (("iou", iou), ("correlation", corr)):
            csv_path = out / f"{kind}_matrix_{expr}.csv"
            png_path = out / f"{kind}_matrix_{expr}.png"
            write_matrix_csv(csv_path, matrix, labels)
            title = (
                f"{expr}: {'IoU of ' + spec.label + ' masks' if kind == 'iou' else 'correlation'}"
            )
            plot_matrix(matrix, labels, title, png_path)
            written += [csv_path, png_path]

        fold_keys = sorted(k for k in by_fold if k[1] == expr)
        if fold_keys:
            fold_maps = [by_fold[k] for k in fold_keys]
            result = cluster_images(
                np.stack([m.uint8 for m in fold_maps]),
                [f"{net}_CV{fold}" for net, _, fold in fold_keys],
                [m.empty for m in fold_maps],
            )
            notes += _note_rows(f"by_fold_{expr}", result)
            written += write_clustering(out, f"by_fold_{expr}", result, f"{expr}: networks × folds")

    totals = pooled_by_expression(load_heatmaps(found.by_expression), by_network)
    if totals:
        names = [e for e in EXPRESSIONS if e in totals]
        result = cluster_images(
            np.stack([totals[e].uint8 for e in names]), names, [totals[e].empty for e in names]
        )
        notes += _note_rows("by_expression", result)
        written += write_clustering(out, "by_expression", result, "Expressions (all networks)")

    if by_network:
        keys = sorted(by_network, key=lambda k: (EXPRESSIONS.index(k[1]), k[0]))
        result = cluster_images(
            np.stack([by_network[k].uint8 for k in keys]),
            [f"{net}_{expr}" for net, expr in keys],
            [by_network[k].empty for k in keys],
        )
        notes += _note_rows("by_expression_network", result)
        written += write_clustering(
            out, "by_expression_network", result, "Expression × network heatmaps"
        )
    notes_path = out / "excluded.csv"
    write_csv(notes_path, notes, ["clustering", "leaf", "note"])
    return [*written, notes_path]


def cli_cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heatmaps", required=True, help="folder of *_heatmap.png (searched deep)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threshold", default="otsu", help=THRESHOLD_HELP)
    parser.add_argument(
        "--stacks-json",
        default=None,
        help="'Network/Expression' → normalized stack paths (a JSON object or a .json file): "
        "adds the bootstrap support of the networks' dendrograms (support_{Expression}.csv)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=200, help="bootstrap resamples for the support"
    )
    parser.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    parser.set_defaults(provenance_inputs=("heatmaps", "stacks_json"), provenance_outputs=("out",))


def cli_cluster(args: argparse.Namespace) -> None:
    spec = parse_threshold(args.threshold)
    if spec.method == "best":
        raise ConfigError(
            "--threshold best: needs ground-truth masks, which `ferxai cluster` does not read. "
            "Use otsu, fixed:T or topk:P."
        )
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap {args.bootstrap}: must be 0 (none) or more.")
    stacks = read_stacks_json(args.stacks_json) if args.stacks_json else None
    written = cluster_heatmap_dir(args.heatmaps, args.out, spec, stacks, args.bootstrap, args.seed)
    log.info("wrote %d files into %s", len(written), args.out)
