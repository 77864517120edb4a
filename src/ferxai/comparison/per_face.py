"""Per-face ground truth: each explained image against the regions of the AUs its face shows.

A face coded with action units (``dataset.csv``'s ``aus``, FACS notation) has its own mask: the
union of the AU atlas regions of its AUs. Each explained image's normalized map is compared with
that mask and, paired, with its expression's prototype mask (the atlas union of the prototype AUs
of the Ekman spec): IoU after the configured threshold (per-image map stretched to 8 bits, as a
heatmap) and the six localisation scores. The paired bootstrap over the images of a network ×
expression gives the 95 % CI of the mean difference own − prototype: by how much the prototype
over- or under-states what the network attends to on the faces it explained. Faces without codes
fall back to the prototype (difference 0) and are counted (``n_fallback``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ferxai.comparison.au_coverage import fold_of
from ferxai.comparison.localisation import seed_for
from ferxai.comparison.localisation_scores import LOCALISATION_SCORES, localisation_scores
from ferxai.comparison.metrics import percentile_interval
from ferxai.comparison.thresholds import ThresholdSpec, binarize, otsu_thresholds, parse_threshold
from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, EXPRESSIONS, network_order
from ferxai.core.errors import ConfigError, DataError
from ferxai.data.facs import au_numbers
from ferxai.heatmaps.heatmap import stretch, to_uint8
from ferxai.heatmaps.pooling import valid_image_ids, valid_map_chunks

METRICS = ("iou", *LOCALISATION_SCORES)
IMAGE_COLUMNS = (
    "network", "fold", "expression", "image_id", "aus", "mask",
    *(f"{m}_{which}" for m in METRICS for which in ("own", "prototype")),
)
SUMMARY_COLUMNS = (
    "network", "expression", "metric", "own", "prototype", "difference", "ci_low", "ci_high",
    "resolved", "n_images", "n_coded", "n_fallback", "n_boot", "note",
)


def face_masks(
    image_ids: Sequence[str],
    codes: Mapping[str, str],
    atlas: Mapping[int, np.ndarray],
    prototype: np.ndarray,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Own masks (N, H, W) of ``image_ids``; which each is ("aus" or "prototype"); AUs ignored.

    A face whose code names no AU of the atlas falls back to the prototype; AUs without an atlas
    region (e.g. 43, eyes closed) are left out of its mask and reported.
    """
    masks = np.empty((len(image_ids), *prototype.shape), dtype=bool)
    kinds, ignored = [], set()
    cache: dict[tuple[int, ...], np.ndarray] = {}
    for i, image_id in enumerate(image_ids):
        numbers = au_numbers(codes.get(image_id, ""), f"dataset.csv image {image_id}, aus")
        drawn = tuple(au for au in numbers if au in atlas)
        ignored.update(str(au) for au in numbers if au not in atlas)
        if not drawn:
            masks[i], kind = prototype, "prototype"
        else:
            if drawn not in cache:
                cache[drawn] = np.logical_or.reduce([atlas[au] for au in drawn])
            masks[i], kind = cache[drawn], "aus"
        kinds.append(kind)
    return masks, kinds, sorted(ignored, key=int)


def image_scores(
    maps: np.ndarray, masks: np.ndarray, spec: ThresholdSpec, k: int
) -> dict[str, np.ndarray]:
    """IoU after ``spec`` and the localisation scores of per-image maps (N, H, W) vs masks."""
    images = np.stack([to_uint8(stretch(m)) for m in maps])
    if spec.method == "otsu":
        predicted = images > otsu_thresholds(images)[:, None, None]
    else:
        predicted = np.stack([binarize(im, spec, mask)[0] for im, mask in zip(images, masks)])
    pred = predicted.reshape(len(maps), -1)
    gt = np.asarray(masks, dtype=bool).reshape(len(maps), -1)
    inter = np.logical_and(pred, gt).sum(axis=1)
    union = np.logical_or(pred, gt).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
    return {"iou": ious, **localisation_scores(maps, masks, k=k)}


def per_face_rows(
    stacks: Mapping[str, Sequence[str]],
    codes: Mapping[str, str],
    atlas: Mapping[int, np.ndarray],
    prototypes: Mapping[str, Sequence[int]],
    spec: ThresholdSpec,
    k: int = 1000,
    chunk: int = 64,
) -> tuple[list[dict], list[str]]:
    """Per-image rows (:data:`IMAGE_COLUMNS`) of every 'Network/Expression' of ``stacks``, and
    the AU numbers found in codes that the atlas has no region for."""
    from ferxai.comparison.au_atlas import union_mask

    rows, ignored = [], set()
    for key in sorted(stacks, key=_key_order):
        network, expression = key.split("/", 1)
        prototype = union_mask(prototypes.get(expression, ()), atlas, f"{expression} prototype")
        for path in stacks[key]:
            ids = valid_image_ids([path])
            offset = 0
            for maps in valid_map_chunks([path], chunk):
                chunk_ids = ids[offset : offset + len(maps)]
                offset += len(maps)
                own, kinds, missing = face_masks(chunk_ids, codes, atlas, prototype)
                ignored.update(missing)
                mine = image_scores(maps, own, spec, k)
                theirs = image_scores(maps, np.broadcast_to(prototype, own.shape), spec, k)
                for i, image_id in enumerate(chunk_ids):
                    row = {
                        "network": network, "fold": fold_of(path) or "", "expression": expression,
                        "image_id": image_id, "aus": codes.get(image_id, ""), "mask": kinds[i],
                    }
                    for m in METRICS:
                        row[f"{m}_own"], row[f"{m}_prototype"] = mine[m][i], theirs[m][i]
                    rows.append(row)
    return rows, sorted(ignored, key=int)


def _key_order(key: str) -> tuple:
    network, _, expression = key.partition("/")
    return network, EXPRESSIONS.index(expression) if expression in EXPRESSIONS else 99


def paired_summary(rows: Sequence[Mapping], n_boot: int = 200, seed: int = 0) -> list[dict]:
    """Per network × expression × metric: the means own / prototype, the mean paired difference
    own − prototype and its percentile bootstrap 95 % CI over the images (NaN pairs dropped)."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for row in rows:
        groups.setdefault((row["network"], row["expression"]), []).append(row)
    out = []
    for (network, expression), members in sorted(
        groups.items(), key=lambda item: (item[0][0], EXPRESSIONS.index(item[0][1]))
    ):
        coded = sum(r["mask"] == "aus" for r in members)
        rng = seed_for(seed, f"per-face/{network}/{expression}")
        draws = rng.integers(0, len(members), size=(n_boot, len(members))) if n_boot else None
        for metric in METRICS:
            own = np.array([float(r[f"{metric}_own"]) for r in members])
            proto = np.array([float(r[f"{metric}_prototype"]) for r in members])
            diff = own - proto
            ok = np.isfinite(diff)
            low = high = float("nan")
            if draws is not None and ok.any():
                # Resamples of the images; each mean over the finite pairs it drew.
                weights = np.zeros((n_boot, len(members)))
                np.add.at(weights, (np.arange(n_boot)[:, None], draws), 1.0)
                weights *= ok
                totals = weights.sum(axis=1)
                means = np.where(ok, diff, 0.0) @ weights.T / np.where(totals > 0, totals, np.nan)
                low, high = percentile_interval(means)
            out.append(
                {
                    "network": network,
                    "expression": expression,
                    "metric": metric,
                    "own": _mean(own),
                    "prototype": _mean(proto),
                    "difference": _mean(diff),
                    "ci_low": low,
                    "ci_high": high,
                    "resolved": bool(np.isfinite(low) and (low > 0 or high < 0)),
                    "n_images": len(members),
                    "n_coded": coded,
                    "n_fallback": len(members) - coded,
                    "n_boot": n_boot,
                    "note": "" if coded else "no face coded: every mask is the prototype",
                }
            )
    return out


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def plot_per_face(summary: Sequence[Mapping], path: str | os.PathLike) -> None:
    """Per expression, the paired difference own − prototype of the IoU and of the attribution
    localisation per network, with its 95 % CI (left of 0: the prototype over-states)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ferxai.core.io import save_figure

    shown = ("iou", "attribution_localisation")
    expressions = [e for e in EXPRESSIONS if any(r["expression"] == e for r in summary)]
    networks = network_order({r["network"] for r in summary})
    fig, axes = plt.subplots(
        1, len(expressions), figsize=(2.6 * len(expressions), 1.2 + 0.35 * len(networks)),
        sharey=True, squeeze=False,
    )
    for ax, expression in zip(axes[0], expressions, strict=True):
        for offset, metric in zip((-0.15, 0.15), shown, strict=True):
            chosen = {
                r["network"]: r
                for r in summary
                if r["expression"] == expression and r["metric"] == metric
            }
            ys = [i + offset for i, n in enumerate(networks) if n in chosen]
            values = [float(chosen[n]["difference"]) for n in networks if n in chosen]
            lows = [float(chosen[n]["ci_low"]) for n in networks if n in chosen]
            highs = [float(chosen[n]["ci_high"]) for n in networks if n in chosen]
            errors = np.abs(np.array([np.subtract(values, lows), np.subtract(highs, values)]))
            ax.errorbar(values, ys, xerr=np.nan_to_num(errors), fmt="o", ms=3, label=metric)
        ax.axvline(0, color="grey", lw=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_title(expression, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(range(len(networks)), networks)
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.supxlabel("own AUs' mask − prototype mask (mean paired difference, 95 % CI)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------------------- CLI


def cli_per_face_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stacks-json",
        required=True,
        help="'Network/Expression' → normalized stack paths (JSON object or .json file)",
    )
    parser.add_argument("--dataset", required=True, help="dataset.csv (its aus column)")
    parser.add_argument("--au-dir", required=True, help="folder of AU{n}.png (groundtruth)")
    parser.add_argument("--spec", default=None, help="Ekman spec YAML of the prototype AUs")
    parser.add_argument("--threshold", default="otsu", help="otsu | best | fixed:T | topk:P")
    parser.add_argument("--top-k", type=int, default=1000, help="k of top_k_intersection")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=42, help="bootstrap seed")
    parser.add_argument("--out", required=True, help="per-image CSV")
    parser.add_argument("--summary", required=True, help="paired summary CSV")
    parser.add_argument("--figure", default=None, help="PNG of the paired differences")
    parser.set_defaults(
        provenance_inputs=("stacks_json", "dataset", "au_dir", "spec"),
        provenance_outputs=("out", "summary", "figure"),
    )


def cli_per_face(args: argparse.Namespace) -> None:
    import logging

    from ferxai.comparison.au_atlas import prototype_aus, read_atlas_dir
    from ferxai.comparison.groundtruth import load_spec
    from ferxai.core.arguments import read_stacks_json
    from ferxai.core.io import write_csv
    from ferxai.data.dataset import iter_rows

    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap {args.bootstrap}: must be 0 (none) or more.")
    pixels = CANVAS_HEIGHT * CANVAS_WIDTH
    if not 1 <= args.top_k <= pixels:
        raise ConfigError(f"--top-k {args.top_k}: must be 1..{pixels} (the canvas).")
    spec = parse_threshold(args.threshold)
    stacks = read_stacks_json(args.stacks_json)
    if not stacks:
        raise DataError("--stacks-json: no stacks given; nothing to compare.")
    codes = {row["image_id"]: row.get("aus", "") or "" for row in iter_rows(args.dataset)}
    atlas = read_atlas_dir(args.au_dir)
    rows, ignored = per_face_rows(
        stacks, codes, atlas, prototype_aus(load_spec(args.spec)), spec, args.top_k
    )
    if ignored:
        logging.getLogger(__name__).warning(
            "per-face: AU %s have no region in the atlas; left out of the faces' masks.",
            ", ".join(ignored),
        )
    write_csv(args.out, rows, IMAGE_COLUMNS)
    summary = paired_summary(rows, args.bootstrap, args.seed)
    write_csv(args.summary, summary, SUMMARY_COLUMNS)
    if args.figure is not None:
        if not summary:
            raise DataError("per-face: no explained image in the stacks; nothing to draw.")
        plot_per_face(summary, Path(args.figure))
