"""Similarity of heatmaps and their hierarchical clustering, as the paper.

Distance = 1 − normalized correlation coefficient (OpenCV TM_CCOEFF_NORMED on equal-size images,
i.e. the Pearson correlation of the pixels), average linkage (scipy). Heatmaps without a defined
correlation (empty or constant) are left out of the clustering and listed in a note.
Correlation is computed on the uint8 heatmaps, as the paper did on its PNGs.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferxai.constants import EXPRESSIONS
from ferxai.errors import ConfigError
from ferxai.io import write_csv
from ferxai.metrics import pearson_matrix
from ferxai.thresholds import THRESHOLD_HELP, ThresholdSpec, binarize, parse_threshold

log = logging.getLogger(__name__)

LINKAGE_COLUMNS = ("cluster_a", "cluster_b", "distance", "size")


@dataclass
class Clustering:
    """Leaves kept (labels), their distance matrix, the scipy linkage and the excluded leaves."""

    labels: list[str]
    distances: np.ndarray
    linkage: np.ndarray
    excluded: list[str]


def correlation_distances(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1 − Pearson) distance matrix of ``images`` and a mask of the images it is defined for."""
    corr = pearson_matrix(images)
    defined = np.isfinite(np.diag(corr))
    distances = 1.0 - corr[np.ix_(defined, defined)]
    return distances, defined


def average_linkage(distances: np.ndarray) -> np.ndarray:
    """scipy average-linkage of a square distance matrix (symmetrized, diagonal zeroed)."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    if len(distances) < 2:
        return np.empty((0, 4))
    square = np.clip((distances + distances.T) / 2.0, 0.0, None)
    np.fill_diagonal(square, 0.0)
    return linkage(squareform(square, checks=False), method="average")


def cluster_images(images: np.ndarray, labels: Sequence[str], empty: Sequence[bool]) -> Clustering:
    """Cluster the non-empty images; empty or constant ones are listed in ``excluded``."""
    labels = list(labels)
    keep = ~np.asarray(empty, dtype=bool)
    kept_labels = [lab for lab, k in zip(labels, keep) if k]
    excluded = [lab for lab, k in zip(labels, keep) if not k]
    if keep.sum() == 0:
        return Clustering([], np.empty((0, 0)), np.empty((0, 4)), excluded)
    distances, defined = correlation_distances(np.asarray(images)[keep])
    excluded += [lab for lab, d in zip(kept_labels, defined) if not d]
    kept_labels = [lab for lab, d in zip(kept_labels, defined) if d]
    return Clustering(kept_labels, distances, average_linkage(distances), excluded)


def top_split(linkage: np.ndarray, labels: Sequence[str]) -> tuple[set[str], set[str]]:
    """The two leaf sets joined by the last (top) merge of ``linkage``."""
    from scipy.cluster.hierarchy import to_tree

    root = to_tree(linkage)
    return (
        {labels[i] for i in root.get_left().pre_order()},
        {labels[i] for i in root.get_right().pre_order()},
    )


def write_linkage_csv(path: str | os.PathLike, linkage: np.ndarray) -> None:
    """scipy linkage rows: the two merged clusters, their distance and the new cluster's size."""
    rows = [
        {"cluster_a": int(a), "cluster_b": int(b), "distance": float(d), "size": int(s)}
        for a, b, d, s in np.asarray(linkage).reshape(-1, 4)
    ]
    write_csv(path, rows, LINKAGE_COLUMNS)


def write_matrix_csv(path: str | os.PathLike, matrix: np.ndarray, labels: Sequence[str]) -> None:
    """Square matrix with its labels as the first column and the header."""
    rows = [
        {"label": label, **{col: float(v) for col, v in zip(labels, row)}}
        for label, row in zip(labels, np.asarray(matrix))
    ]
    write_csv(path, rows, ["label", *labels])


def pairwise_iou(masks: np.ndarray) -> np.ndarray:
    """IoU of every pair of boolean masks (n, ...) → (n, n); NaN where both are empty."""
    flat = np.asarray(masks, dtype=bool).reshape(len(masks), -1).astype(np.int64)
    inter = flat @ flat.T
    area = flat.sum(axis=1)
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def write_clustering(
    out_dir: Path, name: str, clustering: Clustering, title: str, figure: bool = True
) -> list[Path]:
    """Write distances_{name}.csv, linkage_{name}.csv and dendrogram_{name}.png."""
    from ferxai.figures import plot_dendrogram

    paths = [out_dir / f"distances_{name}.csv", out_dir / f"linkage_{name}.csv"]
    write_matrix_csv(paths[0], clustering.distances, clustering.labels)
    write_linkage_csv(paths[1], clustering.linkage)
    if figure:
        paths.append(out_dir / f"dendrogram_{name}.png")
        plot_dendrogram(clustering, title, paths[-1])
    return paths


def _note_rows(name: str, clustering: Clustering) -> list[dict]:
    return [
        {"clustering": name, "leaf": leaf, "note": "left out: empty or constant heatmap"}
        for leaf in clustering.excluded
    ]


def cluster_heatmap_dir(
    heatmap_dir: str | os.PathLike, out_dir: str | os.PathLike, spec: ThresholdSpec
) -> list[Path]:
    """Every clustering and similarity matrix of the heatmaps found in ``heatmap_dir``."""
    from ferxai.compare import discover_heatmaps, load_heatmaps, pooled_by_expression
    from ferxai.figures import plot_matrix

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
        written += write_clustering(out, f"by_network_{expr}", result, f"{expr}: networks")

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

    totals = pooled_by_expression(found, by_network)
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


def cli_cluster(args: argparse.Namespace) -> None:
    spec = parse_threshold(args.threshold)
    if spec.method == "best":
        raise ConfigError(
            "--threshold best: needs ground-truth masks, which `ferxai cluster` does not read. "
            "Use otsu, fixed:T or topk:P."
        )
    written = cluster_heatmap_dir(args.heatmaps, args.out, spec)
    log.info("wrote %d files into %s", len(written), args.out)
