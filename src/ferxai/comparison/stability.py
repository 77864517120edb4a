"""How stable are the dendrograms' clusters: bootstrap support of each clade.

For one expression, every network's explained images are resampled with replacement (each network
its own images, independently), its heatmap re-pooled from the normalized maps, stretched and
quantized to uint8 exactly as the aggregate stage does, and the networks' dendrogram rebuilt as the
observed one (1 − Pearson correlation of the uint8 heatmaps, average linkage;
:mod:`ferxai.comparison.similarity`). The support of a clade of the observed dendrogram is the share of the B
bootstrap dendrograms that contain exactly that set of leaves as a clade.

A resample of network m is a count vector over its valid maps; the maps are streamed once per
batch of resamples (:func:`ferxai.heatmaps.pooling.resampled_heatmaps`), never copied per resample.
Pure computation on the stack paths and the clustering it is given; the command
(:mod:`ferxai.comparison.cluster`) finds, reads and writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ferxai.comparison.localisation import resample_counts, seed_for
from ferxai.comparison.similarity import Clustering, cluster_images
from ferxai.heatmaps.heatmap import CANVAS_SHAPE
from ferxai.heatmaps.pooling import count_maps, resampled_heatmaps

SUPPORT_COLUMNS = ("node", "height", "size", "support", "n_boot", "leaves", "note")


def clades(linkage: np.ndarray, labels: Sequence[str]) -> list[frozenset[str]]:
    """Leaf sets of the inner nodes of a scipy ``linkage`` over ``labels``, in linkage-row order
    (row i is scipy's node ``len(labels) + i``; the last one is the root)."""
    members: list[frozenset[str]] = [frozenset([label]) for label in labels]
    for a, b, *_ in np.asarray(linkage).reshape(-1, 4):
        members.append(members[int(a)] | members[int(b)])
    return members[len(labels) :]


def bootstrap_clade_counts(
    stacks: Mapping[str, Sequence[str | os.PathLike]],
    labels: Sequence[str],
    n_boot: int = 200,
    rng: np.random.Generator | None = None,
    chunk: int = 64,
    batch: int = 100,
) -> dict[frozenset[str], int]:
    """How many of ``n_boot`` bootstrap dendrograms of ``labels`` contain each clade.

    ``stacks[label]``: the normalized stacks of that leaf (e.g. a network's fold stacks for one
    expression); each must hold at least one valid map. Resample b draws each leaf's valid maps
    with replacement (as many as it has) from ``rng``, leaf after leaf in ``labels`` order. A leaf
    whose resampled heatmap is constant is left out of that replicate (as the observed clustering
    does), so no clade holding it counts there. Memory: ``batch × len(labels)`` uint8 canvases.
    """
    rng = rng or np.random.default_rng(0)
    labels = list(labels)
    sizes = [count_maps(stacks[label])[1] for label in labels]
    counts = [resample_counts(n, n_boot, rng) for n in sizes]
    found: dict[frozenset[str], int] = {}
    for start in range(0, n_boot, batch):
        stop = min(start + batch, n_boot)
        images = np.empty((stop - start, len(labels), *CANVAS_SHAPE), dtype=np.uint8)
        for i, (label, leaf_counts) in enumerate(zip(labels, counts)):
            images[:, i] = resampled_heatmaps(stacks[label], leaf_counts[start:stop], chunk)
        for replicate in images:  # (leaves, H, W)
            result = cluster_images(replicate, labels, [False] * len(labels))
            for clade in set(clades(result.linkage, result.labels)):
                found[clade] = found.get(clade, 0) + 1
    return found


def clade_support(
    clustering: Clustering,
    stacks: Mapping[str, Sequence[str | os.PathLike]],
    n_boot: int = 200,
    seed: int = 0,
    key: str = "",
    chunk: int = 64,
    batch: int = 100,
) -> tuple[dict[frozenset[str], float], str]:
    """Support (share of ``n_boot`` bootstrap dendrograms) of every clade of ``clustering``, and
    a note (empty when the bootstrap ran).

    ``stacks``: label → that leaf's normalized stacks. The generator is
    :func:`ferxai.comparison.localisation.seed_for` ``(seed, key)`` (e.g. the expression), so a clustering's
    support does not depend on the order the clusterings are processed in. With fewer than three
    leaves, without stacks or valid maps for a leaf, or with ``n_boot`` 0 every clade gets NaN.
    """
    observed = clades(clustering.linkage, clustering.labels)
    nan = dict.fromkeys(observed, float("nan"))
    if n_boot <= 0:
        return nan, "no bootstrap (B = 0)"
    if len(clustering.labels) < 3:
        return nan, f"{len(clustering.labels)} networks clustered: no clade to support"
    missing = [label for label in clustering.labels if not stacks.get(label)]
    if missing:
        return nan, f"no normalized stacks for {', '.join(missing)}: no bootstrap"
    empty = [label for label in clustering.labels if count_maps(stacks[label])[1] == 0]
    if empty:
        return nan, f"no valid maps in the stacks of {', '.join(empty)}: no bootstrap"
    found = bootstrap_clade_counts(
        stacks, clustering.labels, n_boot, seed_for(seed, key), chunk, batch
    )
    return {clade: found.get(clade, 0) / n_boot for clade in observed}, ""


def support_rows(
    clustering: Clustering, support: Mapping[frozenset[str], float], n_boot: int, note: str = ""
) -> list[dict]:
    """One row per inner node of ``clustering`` (:data:`SUPPORT_COLUMNS`): scipy's node id, its
    merge height, its number of leaves, its support and its leaves (``;``-separated, sorted)."""
    n = len(clustering.labels)
    rows = []
    for i, (clade, row) in enumerate(
        zip(clades(clustering.linkage, clustering.labels), np.asarray(clustering.linkage))
    ):
        rows.append(
            {
                "node": n + i,
                "height": float(row[2]),
                "size": len(clade),
                "support": float(support.get(clade, float("nan"))),
                "n_boot": n_boot if not note else 0,
                "leaves": ";".join(sorted(clade)),
                "note": note,
            }
        )
    return rows
