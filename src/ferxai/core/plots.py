"""Figures for the report: heatmap grid, ground-truth masks, sorted metric bars, dendrograms,
similarity matrices, bootstrap intervals and the sanity check. Matplotlib runs headless (Agg).

Each function draws the arrays and rows it is given into one file; none looks for input files
(the commands in :mod:`ferxai.comparison` find and read them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ferxai.core.constants import EXPRESSIONS, PRETRAINED_NETWORKS, SCRATCH_NETWORKS, network_order
from ferxai.core.io import jet_rgb, save_figure

SCRATCH_COLOUR = "#d95f02"
PRETRAINED_COLOUR = "#1b9e77"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(label: str) -> str:
    """Orange for the from-scratch networks, green for the pre-trained ones, black otherwise.

    Leaf labels such as ``WeiNet_CV2`` or ``WeiNet_Anger`` are coloured by their network.
    """
    network = label.split("_")[0]
    if network in SCRATCH_NETWORKS:
        return SCRATCH_COLOUR
    return PRETRAINED_COLOUR if network in PRETRAINED_NETWORKS else "black"


def node_positions(linkage: np.ndarray, leaves: Sequence[int]) -> list[tuple[float, float]]:
    """(height, position along the leaf axis) of each inner node of a scipy ``linkage``, in row
    order, as scipy's ``dendrogram`` draws it: leaf k of ``leaves`` (its ``leaves`` order) at
    5 + 10 k, an inner node midway between its two children."""
    n = len(leaves)
    position = {int(leaf): 5.0 + 10.0 * k for k, leaf in enumerate(leaves)}
    nodes = []
    for i, (a, b, height, _) in enumerate(np.asarray(linkage).reshape(-1, 4)):
        position[n + i] = (position[int(a)] + position[int(b)]) / 2.0
        nodes.append((float(height), position[n + i]))
    return nodes


def plot_dendrogram(
    clustering,
    title: str,
    path: str | os.PathLike,
    support: Mapping[frozenset, float] | None = None,
) -> None:
    """Dendrogram as the paper: leaves and labels on the left, distance axis 0–1 to the right.

    ``support`` (clade = frozenset of leaf labels → share of bootstrap dendrograms holding it) is
    printed at each inner node."""
    from scipy.cluster.hierarchy import dendrogram

    plt = _pyplot()
    n = len(clustering.labels)
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.28 * n + 1.2)))
    if n >= 2:
        drawn = dendrogram(
            clustering.linkage,
            labels=clustering.labels,
            orientation="right",
            color_threshold=0,
            above_threshold_color="black",
            ax=ax,
        )
        for tick in ax.get_yticklabels():
            tick.set_color(_colour(tick.get_text()))
        ax.set_xlim(0, max(1.0, float(np.max(clustering.linkage[:, 2])) * 1.02))
        if support is not None:
            members = [frozenset([label]) for label in clustering.labels]
            for a, b, *_ in np.asarray(clustering.linkage):
                members.append(members[int(a)] | members[int(b)])
            nodes = node_positions(clustering.linkage, drawn["leaves"])
            for clade, (height, y) in zip(members[n:], nodes):
                share = support.get(clade, float("nan"))
                text = "–" if not np.isfinite(share) else f"{share:.2f}"
                ax.text(height, y, text, ha="right", va="bottom", fontsize=7, color="#1f4e9c")
            ax.set_title(f"{title}\n(bootstrap support at each node)", fontsize=10)
    else:
        ax.text(0.5, 0.5, "fewer than 2 heatmaps to cluster", ha="center", va="center")
        ax.set_xlim(0, 1)
        ax.set_yticks([])
    ax.set_xlabel("distance (1 − normalized correlation)")
    if support is None or n < 2:
        ax.set_title(title)
    if clustering.excluded:
        note = "left out (empty/constant): " + ", ".join(clustering.excluded)
        fig.text(0.01, -0.02, note, fontsize=7, ha="left", va="top", wrap=True)
    save_figure(fig, path)


def plot_matrix(
    matrix: np.ndarray, labels: Sequence[str], title: str, path: str | os.PathLike
) -> None:
    """Annotated square matrix (values in [-1, 1] or [0, 1]); NaN cells are left blank."""
    plt = _pyplot()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.5 * n + 2))
    low = -1.0 if np.nanmin(np.nan_to_num(matrix, nan=0.0)) < 0 else 0.0
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=low, vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            colour = "white" if value < (low + 1.0) / 2 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title)
    save_figure(fig, path)


def plot_sorted_bars(
    rows: Sequence[Mapping], metric: str, path: str | os.PathLike, subtitle: str = ""
) -> None:
    """One panel per expression, networks sorted by ``metric`` (best on top); NaN shown as 'empty'."""
    plt = _pyplot()
    expressions = [e for e in EXPRESSIONS if any(r["expression"] == e for r in rows)] or [""]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), squeeze=False)
    finite = [float(r[metric]) for r in rows if np.isfinite(float(r[metric]))]
    # One scale for every panel, so bars compare across expressions.
    x_max = 1.0 if metric != "iou" else min(1.0, max(0.5, max(finite, default=0) * 1.2))
    for ax, expr in zip(axes.ravel(), expressions):
        values = {r["network"]: float(r[metric]) for r in rows if r["expression"] == expr}
        order = sorted(values, key=lambda n: (np.isnan(values[n]), -np.nan_to_num(values[n])))
        order = order[::-1]  # barh draws from the bottom
        heights = [0.0 if np.isnan(values[n]) else values[n] for n in order]
        ax.barh(order, heights, color=[_colour(n) for n in order])
        for y, name in enumerate(order):
            text = "empty" if np.isnan(values[name]) else f"{values[name]:.3f}"
            ax.text(heights[y] + 0.005, y, text, va="center", fontsize=7)
        ax.set_xlim(0, x_max)
        ax.set_title(expr)
        ax.tick_params(axis="y", labelsize=8)
    for ax in axes.ravel()[len(expressions) :]:
        ax.axis("off")
    fig.suptitle(f"{metric.upper()} per network ({subtitle})" if subtitle else metric.upper())
    # Fixed margins: tight_layout costs seconds per figure and the layout never changes.
    fig.subplots_adjust(left=0.11, right=0.98, top=0.9, bottom=0.06, wspace=0.55, hspace=0.25)
    save_figure(fig, path, dpi=100)


def heatmap_grid(
    heatmaps: Mapping[tuple[str, str], np.ndarray],
    path: str | os.PathLike,
    title: str = "",
    rows: Sequence[str] | None = None,
) -> None:
    """Networks (rows, in the paper's order unless ``rows`` is given) × expressions (columns)
    JET heatmaps, labelled."""
    plt = _pyplot()
    networks = list(rows) if rows else network_order(sorted({k[0] for k in heatmaps}))
    expressions = [e for e in EXPRESSIONS if any(k[1] == e for k in heatmaps)]
    fig, axes = plt.subplots(
        len(networks),
        len(expressions),
        figsize=(1.5 * len(expressions) + 1.2, 1.85 * len(networks) + 0.6),
        squeeze=False,
        layout="constrained",  # makes room for the title above the column titles
    )
    for i, net in enumerate(networks):
        for j, expr in enumerate(expressions):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            image = heatmaps.get((net, expr))
            if image is None or not np.any(image):
                ax.text(
                    0.5,
                    0.5,
                    "empty" if image is not None else "missing",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=8,
                )
            else:
                ax.imshow(jet_rgb(image))
            if i == 0:
                ax.set_title(expr, fontsize=10)
            if j == 0:
                ax.set_ylabel(net, fontsize=9, color=_colour(net))
    if title:
        fig.suptitle(title)
    save_figure(fig, path, dpi=110)


def gt_masks_figure(masks: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """The ground-truth masks side by side."""
    plt = _pyplot()
    names = [e for e in EXPRESSIONS if e in masks]
    fig, axes = plt.subplots(1, len(names), figsize=(1.8 * len(names), 2.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.imshow(masks[name], cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_figure(fig, path)


def plot_iou_ci(rows: Sequence[Mapping], path: str | os.PathLike) -> None:
    """IoU with its bootstrap 95 % interval, one panel per expression."""
    plt = _pyplot()
    expressions = [e for e in EXPRESSIONS if any(r["expression"] == e for r in rows)]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    if not rows:
        axes[0, 0].text(0.5, 0.5, "fewer than 2 networks with explained images", ha="center")
    for ax, expr in zip(axes.ravel(), expressions if rows else []):
        sub = [r for r in rows if r["expression"] == expr]
        names = network_order([r["network"] for r in sub])
        by_name = {r["network"]: r for r in sub}
        iou = np.array([float(by_name[n]["iou"]) for n in names])
        low = np.array([float(by_name[n]["iou_ci_low"]) for n in names])
        high = np.array([float(by_name[n]["iou_ci_high"]) for n in names])
        err = np.vstack([np.clip(iou - low, 0, None), np.clip(high - iou, 0, None)])
        ax.errorbar(
            np.nan_to_num(iou),
            range(len(names)),
            xerr=np.nan_to_num(err),
            fmt="o",
            capsize=3,
            color="black",
        )
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(expr)
    for ax in axes.ravel()[len(expressions) :]:
        ax.axis("off")
    fig.suptitle("Otsu IoU with bootstrap 95 % CI (resampled explained images)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_sanity(summary: Sequence[Mapping], path: str | os.PathLike) -> None:
    """Per network (and over all): mean ROC-AUC and Otsu IoU of the trained vs the randomized
    network's heatmaps against the reference, side by side; AUC 0.5 is a heatmap that ignores it."""
    plt = _pyplot()
    labels = [str(r["network"]) for r in summary]
    x = np.arange(len(summary))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.9 * len(summary) + 3), 4.2))
    for ax, metric, title in (
        (axes[0], "auc", "ROC-AUC of the heatmap vs the reference"),
        (axes[1], "iou", "IoU after Otsu vs the reference"),
    ):
        for offset, name, colour in ((-0.2, "trained", "#1b9e77"), (0.2, "randomized", "#7570b3")):
            values = np.array([float(r[f"{metric}_{name}"]) for r in summary])
            ax.bar(x + offset, np.nan_to_num(values), width=0.4, label=name, color=colour)
        if metric == "auc":
            ax.axhline(0.5, color="0.4", lw=1, ls="--")
            ax.set_ylim(0, 1.15)  # headroom for the legend
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0].legend(loc="upper left", ncol=2, fontsize=8)
    overall = summary[-1]
    fig.suptitle(
        f"Model randomization check (Adebayo et al. 2018): trained AUC higher in "
        f"{overall['trained_wins']} of {overall['pairs']} network × expression pairs",
        fontsize=11,
    )
    fig.tight_layout()
    save_figure(fig, path)


def plot_iou_differences(
    rows: Sequence[Mapping], path: str | os.PathLike, groups: Sequence[str] = ()
) -> None:
    """One panel per expression: the matrix of Otsu-IoU differences, row network − column network
    (rows of ``iou_difference_rows``), a circle on the cells whose paired-bootstrap 95 % CI
    excludes 0 ("resolved"); the rows between ``groups`` (their names) are written under the panel.
    """
    plt = _pyplot()
    expressions = [e for e in EXPRESSIONS if any(r["expression"] == e for r in rows)] or [""]
    group_names = set(groups)
    nets = {n for r in rows for n in (r["network_a"], r["network_b"])} - group_names
    values = [abs(float(r["difference"])) for r in rows if np.isfinite(float(r["difference"]))]
    scale = max(values, default=0.1) or 0.1
    fig, axes = plt.subplots(2, 3, figsize=(16, 11), squeeze=False)
    resolved_total = pairs_total = 0
    n_boot = max((int(r["n_boot"]) for r in rows), default=0)
    images = [int(r[k]) for r in rows if r["network_a"] in nets for k in ("n_a", "n_b")]
    resolved_of = {id(r): str(r["resolved"]) in ("True", "true", "1") for r in rows}
    if not rows:
        axes[0, 0].text(0.5, 0.5, "fewer than 2 networks with explained images", ha="center")
    for ax, expr in zip(axes.ravel(), expressions if rows else []):
        sub = [r for r in rows if r["expression"] == expr]
        names = network_order({n for r in sub for n in (r["network_a"], r["network_b"])} & nets)
        index = {name: k for k, name in enumerate(names)}
        matrix = np.full((len(names), len(names)), np.nan)
        notes = []
        for r in sub:
            a, b, diff = r["network_a"], r["network_b"], float(r["difference"])
            resolved = resolved_of[id(r)]
            if a in index and b in index:
                matrix[index[a], index[b]], matrix[index[b], index[a]] = diff, -diff
                pairs_total += 1
                resolved_total += resolved
                if resolved:
                    for i, j in ((index[a], index[b]), (index[b], index[a])):
                        ax.plot(j, i, "o", ms=5, mfc="none", mec="black", mew=1.2)
            else:
                low, high = float(r["ci_low"]), float(r["ci_high"])
                mark = "resolved" if resolved else "not resolved"
                notes.append(f"{a} − {b}: {diff:+.3f} [{low:+.3f}, {high:+.3f}], {mark}")
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        for tick in (*ax.get_xticklabels(), *ax.get_yticklabels()):
            tick.set_color(_colour(tick.get_text()))
        resolved_here = sum(resolved_of[id(r)] for r in sub if r["network_a"] in index)
        pairs_here = sum(r["network_a"] in index for r in sub)
        title = f"{expr}: {resolved_here} of {pairs_here} pairs resolved"
        ax.set_title("\n".join([title, *notes]), fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    for ax in axes.ravel()[len(expressions) if rows else 0 :]:
        ax.axis("off")
    size = (
        (f"{min(images)}" if min(images) == max(images) else f"{min(images)}–{max(images)}")
        if images
        else "?"
    )
    fig.suptitle(
        "Otsu-IoU difference, row − column network; ○ = paired-bootstrap 95 % CI excludes 0 "
        f"(resolved)\n{resolved_total} of {pairs_total} network pairs resolved with B = {n_boot} "
        f"resamples of {size} explained images per network and expression",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.09, right=0.97, top=0.9, bottom=0.1, wspace=0.45, hspace=0.55)
    save_figure(fig, path, dpi=100)
