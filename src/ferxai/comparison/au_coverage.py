"""Per-AU coverage of global heatmaps: which facial actions each network's explanation covers.

For a heatmap ``h`` (the stretched pooled map, what every threshold-free metric reads) and the
atlas region ``R`` of an action unit, the *coverage* is the share of the heatmap's mass inside
``R`` divided by ``R``'s share of the canvas::

    coverage(R) = (Σ_R h / Σ h) / (|R| / |canvas|)

1 means no preference (a uniform map gives 1 for every AU), 2 twice the mass a uniform map puts
there, 0 none. Beside it the six localisation scores of :func:`localisation_scores` against ``R``.
The 95 % CI of the coverage comes from a bootstrap over the explained images: each resample's
pooled mean is stretched like the heatmap (the images are read once per batch of resamples).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from ferxai.comparison.localisation_scores import LOCALISATION_SCORES, localisation_scores
from ferxai.constants import EXPRESSIONS
from ferxai.errors import DataError
from ferxai.heatmaps import Heatmap
from ferxai.localisation import seed_for
from ferxai.metrics import percentile_interval
from ferxai.pooling import count_maps, valid_map_chunks

COVERAGE_COLUMNS = (
    "network", "fold", "expression", "au", "prototype", "coverage", "coverage_ci_low",
    "coverage_ci_high", "region_share", *LOCALISATION_SCORES, "n_images", "n_boot", "note",
)  # fmt: skip
_FOLD = re.compile(r"fold(\d+)")


def region_matrix(masks: Mapping[int, np.ndarray]) -> tuple[list[int], np.ndarray]:
    """The AUs and a float64 (pixels, AUs) 0/1 matrix of their regions (a map @ it = region sums)."""
    aus = list(masks)
    matrix = np.stack([np.asarray(masks[au], dtype=np.float64).ravel() for au in aus], axis=1)
    return aus, matrix


def coverage(maps: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Coverage (B, AUs) of maps (B, pixels) against the regions' matrix (pixels, AUs).

    NaN for an all-zero map, or for an empty region.
    """
    maps = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    total = maps.sum(axis=1, keepdims=True)
    share = np.divide(
        maps @ matrix, total, out=np.full((len(maps), matrix.shape[1]), np.nan), where=total > 0
    )
    area = matrix.sum(axis=0) / matrix.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, share / np.where(area > 0, area, 1.0), np.nan)


def bootstrap_coverage(
    stack_paths: Sequence[str | os.PathLike],
    matrix: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    chunk: int = 64,
    batch: int = 50,
) -> np.ndarray:
    """Coverage (n_boot, AUs) of ``n_boot`` resampled pooled maps, each stretched to [0, 1].

    Resample b draws the valid maps of ``stack_paths`` with replacement (count vector c); its
    pooled mean is ``c @ maps / n``; memory is ``batch × canvas``.
    """
    _, n = count_maps(stack_paths)
    if n == 0 or n_boot == 0:
        return np.full((n_boot, matrix.shape[1]), np.nan)
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (draws + np.arange(n_boot)[:, None] * n).ravel()
    counts = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)
    out = np.empty((n_boot, matrix.shape[1]))
    for start in range(0, n_boot, batch):
        block = counts[start : start + batch]
        sums = np.zeros((len(block), matrix.shape[0]))
        offset = 0
        for maps in valid_map_chunks(stack_paths, chunk):
            sums += block[:, offset : offset + len(maps)] @ maps.reshape(len(maps), -1)
            offset += len(maps)
        means = sums / n
        # ferxai.heatmaps.stretch, row-wise: (mean - min) / (max - min) when it can be stretched.
        low, high = means.min(axis=1, keepdims=True), means.max(axis=1, keepdims=True)
        ok = (high > low) & (high > 0)
        stretched = np.where(ok, (means - low) / np.where(ok, high - low, 1.0), means)
        out[start : start + len(block)] = coverage(stretched, matrix)
    return out


def fold_of(path: str | os.PathLike) -> int | None:
    """The fold number in a stack path (``.../fold3/Anger.h5`` → 3), None when it has none."""
    found = _FOLD.findall(str(path))
    return int(found[-1]) if found else None


def coverage_rows(
    heatmaps: Mapping[tuple[str, object, str], tuple[Heatmap, object]],
    masks: Mapping[int, np.ndarray],
    prototypes: Mapping[str, Sequence[int]],
    stacks: Mapping[str, Sequence[str]] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    k: int = 1000,
) -> list[dict]:
    """One row per heatmap keyed (network, fold or 'all', expression) and atlas AU.

    The CI of a by-network heatmap resamples the images of ``stacks['Network/Expression']``; that
    of a by-fold heatmap only the stacks of that fold (found by the ``fold<k>`` in their path).
    """
    aus, matrix = region_matrix(masks)
    stacked_masks = np.stack([np.asarray(masks[au], dtype=bool) for au in aus])
    rows = []
    order = sorted(
        heatmaps, key=lambda key: (key[0], key[1] != "all", str(key[1]), EXPRESSIONS.index(key[2]))
    )
    for net, fold, expr in order:
        heatmap, where = heatmaps[(net, fold, expr)]
        if heatmap.stretched.shape != stacked_masks.shape[1:]:
            raise DataError(
                f"{where}: heatmap is {heatmap.stretched.shape}, the AU regions are "
                f"{stacked_masks.shape[1:]}; both must be on the canonical canvas (275 × 224)."
            )
        paths = list((stacks or {}).get(f"{net}/{expr}", []))
        if fold != "all":
            paths = [p for p in paths if fold_of(p) == int(fold)]
        base = {"network": net, "fold": fold, "expression": expr}
        proto = set(prototypes.get(expr, ()))
        if heatmap.empty:
            for au in aus:
                rows.append(
                    base | _empty_row(au, au in proto, matrix, aus) | {"note": "empty heatmap"}
                )
            continue
        point = coverage(heatmap.stretched[None], matrix)[0]
        scores = localisation_scores(
            np.broadcast_to(heatmap.stretched, stacked_masks.shape), stacked_masks, k=k
        )
        low = high = np.full(len(aus), np.nan)
        note = "" if paths else "no stacks given: no bootstrap"
        if paths and n_boot > 0:
            samples = bootstrap_coverage(
                paths, matrix, n_boot, seed_for(seed, f"{net}/{fold}/{expr}")
            )
            low, high = np.array([percentile_interval(samples[:, j]) for j in range(len(aus))]).T
        n_images = count_maps(paths)[1] if paths else 0
        for j, au in enumerate(aus):
            rows.append(
                base
                | {
                    "au": au,
                    "prototype": au in proto,
                    "coverage": point[j],
                    "coverage_ci_low": low[j],
                    "coverage_ci_high": high[j],
                    "region_share": matrix[:, j].mean(),
                    **{name: float(scores[name][j]) for name in LOCALISATION_SCORES},
                    "n_images": n_images,
                    "n_boot": n_boot if paths else 0,
                    "note": note,
                }
            )
    return rows


def _empty_row(au: int, prototype: bool, matrix: np.ndarray, aus: list[int]) -> dict:
    nan = float("nan")
    return {
        "au": au,
        "prototype": prototype,
        "coverage": nan,
        "coverage_ci_low": nan,
        "coverage_ci_high": nan,
        "region_share": matrix[:, aus.index(au)].mean(),
        **dict.fromkeys(LOCALISATION_SCORES, nan),
        "n_images": 0,
        "n_boot": 0,
    }


# ------------------------------------------------------------------------------------- figures


def plot_coverage(rows: Sequence[Mapping], expression: str, path: str | os.PathLike) -> None:
    """Network × AU matrix of the by-network coverage of one expression (log2 colours centred on
    1 = no preference), its prototype AUs boxed and starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    from ferxai.io import save_figure

    chosen = [r for r in rows if r["expression"] == expression and str(r["fold"]) == "all"]
    nets = sorted({r["network"] for r in chosen})
    aus = sorted({int(r["au"]) for r in chosen})
    proto = {int(r["au"]) for r in chosen if str(r["prototype"]) in ("True", "true", "1")}
    values = np.full((len(nets), len(aus)), np.nan)
    for r in chosen:
        values[nets.index(r["network"]), aus.index(int(r["au"]))] = float(r["coverage"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.42 * len(aus), 1.4 + 0.36 * max(1, len(nets))))
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log2(np.clip(values, 1 / 16, 16))
    image = ax.imshow(logs, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -4.0, 4.0), aspect="auto")
    for i in range(len(nets)):
        for j in range(len(aus)):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=6)
    for j, au in enumerate(aus):
        if au in proto:
            ax.add_patch(
                plt.Rectangle((j - 0.5, -0.5), 1, len(nets), fill=False, lw=1.6, ec="black")
            )
    ax.set_xticks(range(len(aus)), [f"AU{au}{'*' if au in proto else ''}" for au in aus])
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set_yticks(range(len(nets)), nets, fontsize=7)
    ax.set_title(f"{expression}: heatmap mass per AU region / region's share (* prototype)")
    bar = fig.colorbar(image, ax=ax, fraction=0.03)
    bar.set_ticks([-4, -2, 0, 2, 4], labels=["1/16", "1/4", "1", "4", "16"])
    fig.tight_layout()
    save_figure(fig, path)
