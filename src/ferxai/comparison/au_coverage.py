"""Per-AU coverage of global heatmaps: which facial actions each network's explanation covers.

For a heatmap ``h`` (the stretched pooled map, what every threshold-free metric reads) and the
atlas region ``R`` of an action unit, the *coverage* is the share of the heatmap's mass inside
``R`` divided by ``R``'s share of the canvas::

    coverage(R) = (Σ_R h / Σ h) / (|R| / |canvas|)

1 means no preference (a uniform map gives 1 for every AU), 2 twice the mass a uniform map puts
there, 0 none. Beside it the six localisation scores of :func:`localisation_scores` against ``R``.
The 95 % CI of the coverage comes from a bootstrap over the explained images (percentile interval;
see :func:`bootstrap_coverage` for how the stretch's floor is held).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from ferxai.comparison.localisation import seed_for
from ferxai.comparison.localisation_scores import LOCALISATION_SCORES
from ferxai.comparison.metrics import percentile_interval
from ferxai.core.constants import EXPRESSIONS, network_order
from ferxai.core.errors import DataError
from ferxai.heatmaps.heatmap import Heatmap
from ferxai.heatmaps.pooling import count_maps, valid_map_chunks

COVERAGE_COLUMNS = (
    "network", "fold", "expression", "au", "prototype", "coverage", "coverage_ci_low",
    "coverage_ci_high", "region_share", *LOCALISATION_SCORES, "n_images", "n_boot", "note",
)
_FOLD = re.compile(r"fold(\d+)")


def region_matrix(masks: Mapping[int, np.ndarray]) -> tuple[list[int], np.ndarray]:
    """The AUs and a float64 (pixels, AUs) 0/1 matrix of their regions (a map @ it = region sums)."""
    aus = list(masks)
    matrix = np.stack([np.asarray(masks[au], dtype=np.float64).ravel() for au in aus], axis=1)
    # Column-major: maps (B, pixels) @ it runs ~3x faster in BLAS than with a row-major copy.
    return aus, np.asfortranarray(matrix)


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
    cache: dict | None = None,
) -> np.ndarray:
    """Coverage (n_boot, AUs) of ``n_boot`` resampled pooled maps of ``stack_paths``.

    Resample b draws the valid maps with replacement (count vector c); its pooled mean is
    ``c @ maps / n``. Coverage does not depend on the stretch's scale, only on its floor (the
    map's minimum): the floor is held at that of the pooled map of all images, so each resample
    only needs the images' region sums (read once) and the interval is free of the bias that the
    minimum of a resampled mean has (fewer distinct images, a lower minimum). ``cache`` (path →
    its region sums) lets the by-fold and by-network heatmaps read each stack once.
    """
    cache = {} if cache is None else cache
    parts = []
    for path in stack_paths:
        if path not in cache:
            cache[path] = _region_sums(path, matrix, chunk)
        parts.append(cache[path])
    if not any(len(p[1]) for p in parts) or n_boot == 0:
        return np.full((n_boot, matrix.shape[1]), np.nan)
    sums, totals = [p[0] for p in parts], [p[1] for p in parts]
    floor_map = np.sum([p[2] for p in parts], axis=0)
    region_sums, image_totals = np.concatenate(sums), np.concatenate(totals)
    n = len(image_totals)
    mean = floor_map / n
    low = mean.min() if mean.max() > mean.min() and mean.max() > 0 else 0.0
    draws = rng.integers(0, n, size=(n_boot, n))
    flat_draws = (draws + np.arange(n_boot)[:, None] * n).ravel()
    counts = np.bincount(flat_draws, minlength=n_boot * n).reshape(n_boot, n) / n
    area = matrix.sum(axis=0)
    inside = counts @ region_sums - low * area  # Σ_R (mean - low) per resample and AU
    total = counts @ image_totals - low * matrix.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (inside / total[:, None]) / np.where(area > 0, area / matrix.shape[0], np.nan)


def _region_sums(path, matrix: np.ndarray, chunk: int) -> tuple:
    """(region sums (n, AUs), totals (n,), sum map (pixels,)) of the valid maps of one stack."""
    sums, totals = [np.zeros((0, matrix.shape[1]))], [np.zeros(0)]
    floor_map = np.zeros(matrix.shape[0])
    for maps in valid_map_chunks([path], chunk):
        flat = maps.reshape(len(maps), -1).astype(np.float64)
        sums.append(flat @ matrix)
        totals.append(flat.sum(axis=1))
        floor_map += flat.sum(axis=0)
    return np.concatenate(sums), np.concatenate(totals), floor_map


def one_map_scores(heatmap: np.ndarray, masks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """:func:`localisation_scores` of one map against M masks (M, H, W): the same numbers.

    ``localisation_scores(broadcast(map), masks)`` sorts and ranks the same map M times; here it
    is sorted and ranked once (the same unstable ``argsort(-a)``, so ties break identically, and
    the same midranks), which makes the 19 AU regions of a heatmap cost about one. Equality with
    :func:`localisation_scores` is tested (tests/test_au_coverage.py).
    """
    from scipy.stats import rankdata

    a = np.asarray(heatmap, dtype=np.float64).ravel()
    s = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    if not 1 <= int(k) <= a.size:
        raise ValueError(f"k = {k} must lie in 1..{a.size} (the number of pixels of a map)")
    peak = np.abs(a).max()
    a = a / (peak if peak else 1.0)
    inside = s.sum(axis=1)
    sf = s.astype(np.float64)
    pointing = np.any(s & (a == a.max()), axis=1).astype(np.float64)
    magnitude = np.abs(a)
    localisation = sf @ magnitude / (magnitude.sum() + 1e-9)
    localisation[localisation > 1] = np.nan
    hits = s[:, np.argsort(-a)]
    top_k = hits[:, : int(k)].mean(axis=1)
    cumulative = np.cumsum(hits, axis=1)
    rank = cumulative[np.arange(len(s)), np.maximum(inside - 1, 0)] / np.maximum(inside, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mass = sf @ a / a.sum()
        negatives = a.size - inside
        auc = (sf @ rankdata(a) - inside * (inside + 1) / 2.0) / (inside * negatives)
    auc[(inside == 0) | (negatives == 0)] = np.nan
    scores = {
        "pointing_game": pointing,
        "attribution_localisation": localisation,
        "top_k_intersection": top_k.astype(np.float64),
        "relevance_rank_accuracy": rank.astype(np.float64),
        "relevance_mass_accuracy": mass,
        "auc": auc,
    }
    for values in scores.values():
        values[inside == 0] = np.nan
    return scores


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
    cache: dict = {}
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
        scores = one_map_scores(heatmap.stretched, stacked_masks, k)
        low = high = np.full(len(aus), np.nan)
        note = "" if paths else "no stacks given: no bootstrap"
        if paths and n_boot > 0:
            samples = bootstrap_coverage(
                paths, matrix, n_boot, seed_for(seed, f"{net}/{fold}/{expr}"), cache=cache
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

    from ferxai.core.io import save_figure

    chosen = [r for r in rows if r["expression"] == expression and str(r["fold"]) == "all"]
    nets = network_order({r["network"] for r in chosen})
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


# ----------------------------------------------------------------------------------------- CLI


def cli_au_coverage_args(parser) -> None:
    parser.add_argument("--heatmaps", required=True, help="folder of by-network/by-fold heatmaps")
    parser.add_argument(
        "--stacks-json",
        default=None,
        help="'Network/Expression' → normalized stack paths (JSON object or .json): the CIs",
    )
    parser.add_argument("--au-dir", required=True, help="folder of AU{n}.png (groundtruth)")
    parser.add_argument(
        "--spec", default=None, help="Ekman spec YAML whose prototype AUs are marked (shipped)"
    )
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--figure-dir", default=None, help="folder for {Expression}.png figures")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    parser.add_argument(
        "--top-k", type=int, default=1000, help="k of top_k_intersection (pixels, default 1000)"
    )
    parser.set_defaults(
        provenance_inputs=("heatmaps", "stacks_json", "au_dir", "spec"),
        provenance_outputs=("out", "figure_dir"),
    )


def cli_au_coverage(args) -> None:
    from pathlib import Path

    from ferxai.comparison.au_atlas import prototype_aus, read_atlas_dir
    from ferxai.comparison.groundtruth import load_spec
    from ferxai.core.arguments import read_stacks_json
    from ferxai.core.errors import ConfigError
    from ferxai.core.io import write_csv
    from ferxai.heatmaps.heatmap import CANVAS_SHAPE, discover_heatmaps, load_heatmaps

    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap {args.bootstrap}: must be 0 (none) or more.")
    if not 1 <= args.top_k <= CANVAS_SHAPE[0] * CANVAS_SHAPE[1]:
        raise ConfigError(
            f"--top-k {args.top_k}: must be 1..{CANVAS_SHAPE[0] * CANVAS_SHAPE[1]} (the canvas)."
        )
    found = discover_heatmaps(args.heatmaps)
    files = {(net, "all", expr): path for (net, expr), path in found.by_network.items()}
    files |= {(net, fold, expr): path for (net, expr, fold), path in found.by_fold.items()}
    if not files:
        raise DataError(
            f"{args.heatmaps}: no by-network or by-fold heatmap ({{Network}}_{{Expression}}_"
            "heatmap.png); point --heatmaps at `ferxai aggregate`'s folder."
        )
    loaded = load_heatmaps(files)
    heatmaps = {key: (loaded[key], path) for key, path in files.items()}
    masks = read_atlas_dir(args.au_dir)
    prototypes = prototype_aus(load_spec(args.spec))
    rows = coverage_rows(
        heatmaps, masks, prototypes, read_stacks_json(args.stacks_json), args.bootstrap,
        args.seed, args.top_k,
    )
    write_csv(args.out, rows, COVERAGE_COLUMNS)
    if args.figure_dir is not None:
        for expression in EXPRESSIONS:
            if any(r["expression"] == expression for r in rows):
                plot_coverage(rows, expression, Path(args.figure_dir) / f"{expression}.png")
