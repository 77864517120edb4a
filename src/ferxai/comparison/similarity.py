"""Similarity of heatmaps and their hierarchical clustering, as the paper.

Distance = 1 − normalized correlation coefficient (OpenCV TM_CCOEFF_NORMED on equal-size images,
i.e. the Pearson correlation of the pixels), average linkage (scipy). Heatmaps without a defined
correlation (empty or constant) are left out of the clustering and listed in ``excluded``.
Correlation is computed on the uint8 heatmaps, as the paper did on its PNGs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ferxai.comparison.metrics import pearson_matrix

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


def cluster_heatmaps(heatmaps: Mapping[str, np.ndarray]) -> Clustering:
    """Average-linkage clustering of labelled heatmaps on 1 − normalized correlation, as the
    paper's dendrograms; all-zero heatmaps are left out (``Clustering.excluded``). Draw it with
    ``scipy.cluster.hierarchy.dendrogram(result.linkage, labels=result.labels)``."""
    labels = list(heatmaps)
    images = np.stack([np.asarray(heatmaps[k], dtype=np.float64) for k in labels])
    empty = [not np.any(image) for image in images]
    return cluster_images(images, labels, empty)


def top_split(linkage: np.ndarray, labels: Sequence[str]) -> tuple[set[str], set[str]]:
    """The two leaf sets joined by the last (top) merge of ``linkage``."""
    from scipy.cluster.hierarchy import to_tree

    root = to_tree(linkage)
    return (
        {labels[i] for i in root.get_left().pre_order()},
        {labels[i] for i in root.get_right().pre_order()},
    )


def linkage_rows(linkage: np.ndarray) -> list[dict]:
    """scipy linkage rows: the two merged clusters, their distance and the new cluster's size."""
    return [
        {"cluster_a": int(a), "cluster_b": int(b), "distance": float(d), "size": int(s)}
        for a, b, d, s in np.asarray(linkage).reshape(-1, 4)
    ]


def matrix_rows(matrix: np.ndarray, labels: Sequence[str]) -> list[dict]:
    """Rows of a square matrix with its labels as the first column (``label``) and the header."""
    return [
        {"label": label, **{col: float(v) for col, v in zip(labels, row)}}
        for label, row in zip(labels, np.asarray(matrix))
    ]


def pairwise_iou(masks: np.ndarray) -> np.ndarray:
    """IoU of every pair of boolean masks (n, ...) → (n, n); NaN where both are empty."""
    flat = np.asarray(masks, dtype=bool).reshape(len(masks), -1).astype(np.int64)
    inter = flat @ flat.T
    area = flat.sum(axis=1)
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
