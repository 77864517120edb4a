"""The landmark QA figure: sampled faces with their 68 points, and the same faces on the canonical
canvas. Draws the arrays it is given into one file (``ferxai landmarks-qa`` finds and reads them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ferxai.core.io import save_figure
from ferxai.normalization.plausibility import REGION_COLORS, REGIONS, region_colors


@dataclass(frozen=True)
class QAPanel:
    """One face: the image (H, W, 3) uint8, its points (68, 2) or None, the image warped onto the
    canvas (or None when it has no landmarks), a title and a note (reason, residual)."""

    image: np.ndarray
    points: np.ndarray | None
    warped: np.ndarray | None
    title: str
    note: str = ""
    failed: bool = False


def landmark_qa_figure(
    rows: Mapping[str, Sequence[QAPanel]],
    canonical: np.ndarray,
    path: str | os.PathLike,
    title: str = "Landmark QA",
) -> None:
    """One row per key of ``rows`` (expressions, then e.g. "rejected"); per face two panels: the
    image with its 68 points coloured by region, and its warp onto the canonical canvas with the
    canonical points (white) on top, where the warped features should sit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = list(rows)
    per_row = max([len(panels) for panels in rows.values()] + [1])
    fig, axes = plt.subplots(
        max(1, len(names)),
        2 * per_row,
        figsize=(2.0 * 2 * per_row, 2.35 * max(1, len(names)) + 0.9),
        squeeze=False,
    )
    colors = region_colors()
    for r, name in enumerate(names):
        axes[r, 0].set_ylabel(name, fontsize=10)
        for c in range(per_row):
            left, right = axes[r, 2 * c], axes[r, 2 * c + 1]
            for ax in (left, right):
                ax.set_xticks([])
                ax.set_yticks([])
            if c >= len(rows[name]):
                if c:
                    left.axis("off")
                else:  # keep the row's label
                    left.set_frame_on(False)
                right.axis("off")
                continue
            panel = rows[name][c]
            left.imshow(panel.image)
            if panel.points is not None:
                left.scatter(*np.asarray(panel.points).T, s=4, c=colors, linewidths=0)
            left.set_title(panel.title, fontsize=7, color="firebrick" if panel.failed else "black")
            if panel.note:
                left.set_xlabel(
                    panel.note, fontsize=6, color="firebrick" if panel.failed else "black"
                )
            if panel.warped is None:
                right.set_facecolor("0.85")
                right.text(0.5, 0.5, "not warped", ha="center", va="center", fontsize=7,
                           transform=right.transAxes)
                continue
            right.imshow(panel.warped)
            right.scatter(*np.asarray(canonical).T, s=1.5, c="white", linewidths=0, alpha=0.8)
            right.set_title("on the canonical face", fontsize=7)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=REGION_COLORS[name], label=name)
        for name in REGIONS
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    save_figure(fig, path)
