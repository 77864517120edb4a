"""``ferxai trust``: which explanation can be trusted, per method × network and pooled per method.

Joins, per explained image, the faithfulness areas and randomisation similarities of the quality
jobs (``ferxai quality``) with Quantus's localisation scores of its normalized map against its
expression's mask (:mod:`ferxai.comparison.localisation_scores`), writes them per method
(``--method-scores``), and summarises every score per method × network and per method (network
``all``) as the mean over images with a bootstrap 95 % CI over images (``--table``). The methods are
ranked per score by their pooled means, in each score's better direction, and by their mean rank
(``--ranking``). ``--figure``: the mean deletion and insertion curve of every method.
"""

from __future__ import annotations

import argparse
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from ferxai.comparison.localisation_scores import (
    DEFAULT_K,
    LOCALISATION_SCORES,
    localisation_scores,
)
from ferxai.core.constants import EXPRESSIONS, network_order
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import read_csv, read_h5, read_stack, write_csv
from ferxai.quality.job import SCORE_COLUMNS

KEY = ("method", "network", "fold", "expression", "image_id")
QUALITY_SCORES = SCORE_COLUMNS[len(KEY) :]
# +1: higher is more trustworthy, -1: lower is. region_perturbation_auc flips with the order.
DIRECTIONS = {
    "deletion_auc": -1,
    "insertion_auc": +1,
    "pixel_flipping_auc": -1,
    "region_perturbation_auc": +1,
    "road_auc": -1,
    "mprt_spearman": -1,
    "mprt_ssim": -1,
    "random_logit_ssim": -1,
    **dict.fromkeys(LOCALISATION_SCORES, +1),
}
IMAGE_COLUMNS = (*KEY, *QUALITY_SCORES, *LOCALISATION_SCORES)
TABLE_COLUMNS = ("method", "network", "score", "better", "mean", "ci_low", "ci_high", "n_images")


def cli_trust_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scores", nargs="+", required=True, help="CSVs of `ferxai quality`")
    parser.add_argument("--curves", nargs="*", default=[], help="HDF5s of `ferxai quality`")
    parser.add_argument(
        "--normalized", nargs="*", default=[], help="normalized stacks of the same methods, folds"
    )
    parser.add_argument("--gt", default=None, help="folder of {Expression}_gt.png or 'default'")
    parser.add_argument("--methods", nargs="+", required=True, help="methods, in report order")
    parser.add_argument(
        "--method-scores", nargs="+", required=True, help="output CSV per method (per image)"
    )
    parser.add_argument("--table", required=True, help="output CSV: the trust table")
    parser.add_argument("--ranking", required=True, help="output CSV: the methods ranked")
    parser.add_argument("--figure", default=None, help="output PNG: mean deletion/insertion")
    parser.add_argument("--order", default="morf", choices=("morf", "lerf"),
                        help="RegionPerturbation's order (decides its better direction)")
    parser.add_argument("--top-k", type=int, default=DEFAULT_K, help="k of top_k_intersection")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    parser.set_defaults(
        provenance_inputs=("scores", "curves", "normalized", "gt"),
        provenance_outputs=("method_scores", "table", "ranking", "figure"),
    )


def cli_trust(args: argparse.Namespace) -> None:
    if len(args.methods) != len(args.method_scores):
        raise ConfigError(
            f"trust: {len(args.methods)} --methods but {len(args.method_scores)} --method-scores; "
            "give one output per method."
        )
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap {args.bootstrap}: must be 0 (none) or more.")
    rows = image_rows(args.scores, args.normalized, args.gt, args.top_k)
    for method, path in zip(args.methods, args.method_scores, strict=True):
        write_csv(path, [r for r in rows if r["method"] == method], IMAGE_COLUMNS)
    directions = {**DIRECTIONS, "region_perturbation_auc": 1 if args.order == "morf" else -1}
    table = trust_table(rows, args.methods, directions, args.bootstrap, args.seed)
    write_csv(args.table, table, TABLE_COLUMNS)
    ranking = rank_methods(table, args.methods, directions)
    write_csv(args.ranking, ranking, ranking_columns(directions))
    if args.figure:
        plot_mean_curves(args.curves, args.methods, args.figure)


# ------------------------------------------------------------------------------ per image


def image_rows(score_paths, normalized_paths, gt, top_k: int = DEFAULT_K) -> list[dict]:
    """One row per explained image: the quality jobs' scores joined with its localisation scores
    (images only normalized, or only measured, get NaN in the other's columns)."""
    rows: dict[tuple, dict] = {}
    for path in score_paths:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
        missing = [c for c in (*KEY, *QUALITY_SCORES) if c not in header]
        if missing:
            raise DataError(
                f"{path}: no column(s) {', '.join(missing)}; it was written by another version of "
                "`ferxai quality`. Delete it and rerun that quality job."
            )
        for row in read_csv(path):
            key = tuple(str(row[k]) for k in KEY)
            rows[key] = {**dict(zip(KEY, key, strict=True)),
                         **{s: float(row[s]) for s in QUALITY_SCORES}}
    if normalized_paths:
        from ferxai.comparison.groundtruth import load_masks, mask_for

        masks = load_masks(gt)
        for path in normalized_paths:
            stack = read_stack(path)
            if not len(stack):
                continue
            attrs = stack.attrs
            expression = attrs["expression"]
            mask = mask_for(masks, expression, stack.maps.shape[1:], path)
            valid = np.asarray(stack.extras.get("valid", np.ones(len(stack), bool)), bool).ravel()
            finite = np.isfinite(stack.maps).reshape(len(stack), -1).all(axis=1)
            usable = valid & finite
            if not usable.any():
                continue
            scores = localisation_scores(stack.maps[usable], mask, k=top_k)
            ids = [i for i, keep in zip(stack.image_id, usable, strict=True) if keep]
            for j, image_id in enumerate(ids):
                key = (str(attrs["method"]), str(attrs["network"]), str(attrs["fold"]),
                       expression, image_id)
                row = rows.setdefault(
                    key,
                    {
                        **dict(zip(KEY, key, strict=True)),
                        **dict.fromkeys(QUALITY_SCORES, float("nan")),
                    },
                )
                row.update({name: float(scores[name][j]) for name in LOCALISATION_SCORES})
    for row in rows.values():
        for name in LOCALISATION_SCORES:
            row.setdefault(name, float("nan"))
    order = {e: i for i, e in enumerate(EXPRESSIONS)}
    return sorted(rows.values(), key=lambda r: (r["method"], r["network"], int(r["fold"]),
                                                order[r["expression"]], r["image_id"]))


# ------------------------------------------------------------------------------ trust table


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means over the finite values of ``n_boot`` resamples (with replacement) of the images."""
    finite = np.isfinite(values)
    v = values[finite]
    if not len(v) or n_boot <= 0:
        return np.full(max(n_boot, 0), np.nan)
    draws = rng.integers(0, len(v), size=(n_boot, len(v)))
    return v[draws].mean(axis=1)


def trust_table(rows, methods, directions, n_boot: int = 200, seed: int = 42) -> list[dict]:
    """Mean and bootstrap 95 % CI of every score per method × network and per method ('all')."""
    from ferxai.comparison.metrics import percentile_interval

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["network"])].append(row)
        groups[(row["method"], "all")].append(row)
    table = []
    for method in methods:
        networks = network_order([n for m, n in groups if m == method and n != "all"])
        for network in [*networks, "all"]:
            members = groups.get((method, network), [])
            for score, better in directions.items():
                values = np.array([r[score] for r in members], dtype=np.float64)
                finite = values[np.isfinite(values)]
                if not len(finite):
                    continue
                key = f"{method}/{network}/{score}"
                rng = np.random.default_rng(
                    np.random.SeedSequence([seed, zlib.crc32(key.encode())])
                )
                low, high = (percentile_interval(bootstrap_means(values, n_boot, rng))
                             if n_boot > 0 else (float("nan"), float("nan")))
                table.append(
                    {"method": method, "network": network, "score": score,
                     "better": "higher" if better > 0 else "lower", "mean": float(finite.mean()),
                     "ci_low": low, "ci_high": high, "n_images": int(len(finite))}
                )
    return table


def ranking_columns(directions) -> tuple[str, ...]:
    return ("method", *(f"rank_{s}" for s in directions), "mean_rank", "rank")


def rank_methods(table, methods, directions) -> list[dict]:
    """Rank of each method per score (1 = most trustworthy; ties share the better rank), their
    mean over the scores measured for every method, and the overall rank by that mean."""
    pooled = {(r["method"], r["score"]): r["mean"] for r in table if r["network"] == "all"}
    rows = {m: {"method": m} for m in methods}
    shared = []
    for score, better in directions.items():
        means = {m: pooled.get((m, score), np.nan) for m in methods}
        if all(np.isfinite(v) for v in means.values()):
            shared.append(score)
        for m in methods:
            value = means[m]
            if not np.isfinite(value):
                rows[m][f"rank_{score}"] = float("nan")
                continue
            others = [v for v in means.values() if np.isfinite(v)]
            rows[m][f"rank_{score}"] = 1 + sum(better * (o - value) > 0 for o in others)
    for m in methods:
        ranks = [rows[m][f"rank_{s}"] for s in shared]
        rows[m]["mean_rank"] = float(np.mean(ranks)) if ranks else float("nan")
    order = sorted(methods, key=lambda m: (np.nan_to_num(rows[m]["mean_rank"], nan=np.inf), m))
    for position, m in enumerate(order, start=1):
        rows[m]["rank"] = position
    return [rows[m] for m in order]


# ------------------------------------------------------------------------------ figure


def mean_curves(curve_paths, methods) -> dict[str, dict[str, np.ndarray]]:
    """Per method, every image's deletion and insertion curve (images × steps + 1)."""
    curves: dict[str, dict[str, list]] = {m: {"deletion": [], "insertion": []} for m in methods}
    for path in curve_paths:
        import h5py

        with h5py.File(path, "r") as h5:
            method = str(h5.attrs["method"])
            names = [f"{e}/{kind}" for e in EXPRESSIONS for kind in ("deletion", "insertion")]
            present = [n for n in names if n in h5]
        if method not in curves or not present:
            continue
        arrays, _ = read_h5(path, present, what="quality curves")
        for name, values in arrays.items():
            if values.ndim == 2 and len(values):
                curves[method][name.split("/")[1]].append(values)
    out = {}
    for method, kinds in curves.items():
        if kinds["deletion"]:
            lengths = {v.shape[1] for k in kinds.values() for v in k}
            if len(lengths) != 1:
                raise DataError(f"quality curves of {method} have different steps {lengths}; "
                                "rerun the quality jobs with one quality.steps.")
            out[method] = {k: np.concatenate(v) for k, v in kinds.items()}
    return out


def plot_mean_curves(curve_paths, methods, out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ferxai.core.io import save_figure

    curves = mean_curves(curve_paths, methods)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for method, kinds in curves.items():
            values = kinds[kind]
            x = np.linspace(0, 1, values.shape[1])
            mean = values.mean(axis=0)
            se = values.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0 * mean
            area = np.trapezoid(mean, x)
            ax.plot(x, mean, label=f"{method} (area {area:.3f}, n={len(values)})")
            ax.fill_between(x, mean - 1.96 * se, mean + 1.96 * se, alpha=0.2)
        ax.set_title(f"{kind} ({'lower' if kind == 'deletion' else 'higher'} is more faithful)")
        ax.set_xlabel(f"fraction of pixels {'removed' if kind == 'deletion' else 'inserted'}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("probability of the explained class")
    if not curves:
        fig.suptitle("no explained images were measured")
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)
