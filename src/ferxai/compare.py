"""Comparing global heatmaps with ground-truth masks: ``compare``, ``extended-metrics``, ``sanity``.

``compare`` works on any folder of heatmaps in the published layout
(``{Network}_{Expression}_heatmap.png`` by network, ``{Network}_CV{k}_{Expression}_heatmap.png``
by fold, ``{Expression}_heatmap.png`` pooled over networks), so heatmaps made elsewhere can be
scored exactly as ferxai's own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferxai.aggregate import (
    LoadedHeatmap,
    count_maps,
    read_heatmap,
    stack_valid,
    stretch,
    to_uint8,
)
from ferxai.constants import EXPRESSIONS
from ferxai.errors import ConfigError, DataError
from ferxai.io import read_json, read_png_gray, read_stack, write_csv
from ferxai.metrics import (
    BINARY_METRICS,
    CONTINUOUS_METRICS,
    binary_metrics,
    binary_metrics_batch,
    continuous_metrics,
    percentile_interval,
    roc_auc,
    spearman,
)
from ferxai.thresholds import (
    THRESHOLD_HELP,
    ThresholdSpec,
    binarize,
    otsu_thresholds,
    parse_threshold,
)

log = logging.getLogger(__name__)

METRICS_COLUMNS = ("network", "fold", "expression", *BINARY_METRICS)
EXTENDED_COLUMNS = (
    *METRICS_COLUMNS,
    "threshold_method",
    "threshold",
    "predicted_area",
    "gt_area",
    "note",
)
_EXPR = "|".join(EXPRESSIONS)
_BY_FOLD = re.compile(rf"^(?P<network>.+)_CV(?P<fold>\d+)_(?P<expression>{_EXPR})_heatmap\.png$")
_BY_NETWORK = re.compile(rf"^(?P<network>.+)_(?P<expression>{_EXPR})_heatmap\.png$")
_BY_EXPRESSION = re.compile(rf"^(?P<expression>{_EXPR})_heatmap\.png$")


# ------------------------------------------------------------------------------- finding inputs


@dataclass
class HeatmapFiles:
    """Heatmap PNGs found in a folder, keyed (network, expression), (network, expression, fold)
    and expression."""

    by_network: dict[tuple[str, str], Path] = field(default_factory=dict)
    by_fold: dict[tuple[str, str, int], Path] = field(default_factory=dict)
    by_expression: dict[str, Path] = field(default_factory=dict)


def discover_heatmaps(folder: str | os.PathLike) -> HeatmapFiles:
    """Find ``*_heatmap.png`` in ``folder`` and its subfolders and classify them by name."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--heatmaps {root}: not a folder. Give the folder holding *_heatmap.png.")
    found = HeatmapFiles()
    seen: dict[object, Path] = {}
    for path in sorted(root.rglob("*_heatmap.png")):
        if path.name.startswith("."):  # temporary files of atomic writes
            continue
        key: object
        if match := _BY_FOLD.match(path.name):
            key = (match["network"], match["expression"], int(match["fold"]))
            found.by_fold[key] = path
        elif match := _BY_EXPRESSION.match(path.name):
            key = match["expression"]
            found.by_expression[key] = path
        elif match := _BY_NETWORK.match(path.name):
            key = (match["network"], match["expression"])
            found.by_network[key] = path
        else:
            log.warning("%s: name not in the published layout; ignored", path)
            continue
        if key in seen:
            raise DataError(
                f"{path} and {seen[key]}: two heatmaps for {key}. Keep one of them in --heatmaps."
            )
        seen[key] = path
    if not (found.by_network or found.by_fold or found.by_expression):
        raise DataError(
            f"--heatmaps {root}: no heatmap named {{Network}}_{{Expression}}_heatmap.png or "
            "{Network}_CV{k}_{Expression}_heatmap.png. Point it at the aggregate output folder."
        )
    return found


def load_heatmaps(
    files: Mapping, h5_dir: str | os.PathLike | None = None, use_h5: bool = True
) -> dict:
    """Read every heatmap of ``files`` (key → PNG path) with its HDF5 when present."""
    return {key: read_heatmap(path, h5_dir, use_h5) for key, path in files.items()}


def pooled_by_expression(found: HeatmapFiles, by_network: Mapping) -> dict[str, LoadedHeatmap]:
    """The by-expression heatmaps: read when present, else pooled from the by-network ones.

    With the by-network HDF5s (``mean`` and ``count``) the pool is exact (sum / total count);
    with PNGs only it is the mean of the stretched maps, each network weighing the same.
    """
    if found.by_expression:
        return load_heatmaps(found.by_expression)
    pooled: dict[str, LoadedHeatmap] = {}
    for expr in EXPRESSIONS:
        maps = [m for (_, e), m in by_network.items() if e == expr and not m.empty]
        if not maps:
            continue
        if all(m.mean is not None and m.count for m in maps):
            total = sum(m.mean * m.count for m in maps) / sum(m.count for m in maps)
        else:
            total = np.mean([m.continuous for m in maps], axis=0)
        stretched = stretch(total)
        pooled[expr] = LoadedHeatmap(to_uint8(stretched), stretched, not to_uint8(stretched).any())
    return pooled


def load_masks(
    gt_dir: str | os.PathLike | None = None, pattern: str = "{Expression}_gt.png"
) -> dict[str, np.ndarray]:
    """Boolean masks by expression: ferxai's own Ekman masks, or ``pattern`` files in ``gt_dir``."""
    if gt_dir is None or str(gt_dir) in ("", "default"):
        from ferxai.groundtruth import ekman_masks

        return {k: np.asarray(v, dtype=bool) for k, v in ekman_masks().items()}
    folder = Path(gt_dir)
    masks = {}
    for expr in EXPRESSIONS:
        path = folder / pattern.format(Expression=expr)
        if path.is_file():
            masks[expr] = read_png_gray(path) > 127
    if not masks:
        raise DataError(
            f"--gt {folder}: no mask named {pattern}. Give a folder of such PNGs "
            "(white = region) or leave --gt out to use ferxai's Ekman masks."
        )
    return masks


def _mask_for(masks: Mapping[str, np.ndarray], expr: str, shape: tuple, where: Path) -> np.ndarray:
    if expr not in masks:
        raise DataError(
            f"{where}: no ground-truth mask for {expr}. Add {expr}_gt.png to --gt or remove the "
            "heatmap."
        )
    mask = masks[expr]
    if mask.shape != shape:
        raise DataError(
            f"{where}: heatmap is {shape} but the {expr} mask is {mask.shape}. Both must be on the "
            "canonical canvas (275 high × 224 wide)."
        )
    return mask


# ----------------------------------------------------------------------------------- compare


def score_heatmap(
    heatmap: LoadedHeatmap, mask: np.ndarray, spec: ThresholdSpec
) -> dict[str, object]:
    """Binary metrics of one heatmap (NaN with a note when it is empty)."""
    if heatmap.empty:
        nan = float("nan")
        note = f"empty heatmap: {heatmap.reason or 'all zeros'}"
        row = dict.fromkeys(BINARY_METRICS, nan)
        return {**row, "threshold": nan, "predicted_area": 0, "note": note}
    predicted, t = binarize(heatmap.uint8, spec, mask)
    row = binary_metrics(predicted, mask)
    note = "optimistic: threshold chosen against the ground truth" if spec.method == "best" else ""
    return {**row, "threshold": t, "predicted_area": int(predicted.sum()), "note": note}


def metric_rows(
    found: HeatmapFiles,
    by_network: Mapping[tuple[str, str], LoadedHeatmap],
    by_fold: Mapping[tuple[str, str, int], LoadedHeatmap],
    masks: Mapping[str, np.ndarray],
    spec: ThresholdSpec,
) -> list[dict]:
    """One extended row per by-network and by-fold heatmap, in network, fold, expression order."""
    entries = [((n, "all", e), found.by_network[(n, e)], h) for (n, e), h in by_network.items()]
    entries += [((n, k, e), found.by_fold[(n, e, k)], h) for (n, e, k), h in by_fold.items()]
    entries.sort(key=lambda e: (e[0][0], e[0][1] != "all", e[0][1], EXPRESSIONS.index(e[0][2])))
    rows = []
    for (net, fold, expr), path, heatmap in entries:
        mask = _mask_for(masks, expr, heatmap.uint8.shape, path)
        scored = score_heatmap(heatmap, mask, spec)
        rows.append(
            {
                "network": net,
                "fold": fold,
                "expression": expr,
                **{m: scored[m] for m in BINARY_METRICS},
                "threshold_method": spec.label,
                "threshold": scored["threshold"],
                "predicted_area": scored["predicted_area"],
                "gt_area": int(mask.sum()),
                "note": scored["note"],
            }
        )
    return rows


def compare_heatmaps(
    heatmap_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    masks: Mapping[str, np.ndarray],
    spec: ThresholdSpec | None = None,
    empty_from: str | None = None,
    figures: bool = True,
) -> list[Path]:
    """metrics.csv, metrics_extended.csv, linkage/{Expression}.csv and figures for a folder."""
    from ferxai.cluster import cluster_images, write_linkage_csv, write_matrix_csv
    from ferxai.figures import plot_dendrogram, plot_sorted_bars

    spec = spec or ThresholdSpec("otsu")
    use_h5 = empty_from is None or str(empty_from).lower() != "none"
    h5_dir = empty_from if use_h5 else None
    out = Path(out_dir)
    found = discover_heatmaps(heatmap_dir)
    by_network = load_heatmaps(found.by_network, h5_dir, use_h5)
    by_fold = load_heatmaps(found.by_fold, h5_dir, use_h5)
    rows = metric_rows(found, by_network, by_fold, masks, spec)
    written = [out / "metrics.csv", out / "metrics_extended.csv"]
    write_csv(written[0], [{k: r[k] for k in METRICS_COLUMNS} for r in rows], METRICS_COLUMNS)
    write_csv(written[1], rows, EXTENDED_COLUMNS)

    leaf_rows = []
    for expr in [e for e in EXPRESSIONS if any(k[1] == e for k in by_network)]:
        keys = sorted(k for k in by_network if k[1] == expr)
        maps = [by_network[k] for k in keys]
        result = cluster_images(
            np.stack([m.uint8 for m in maps]), [k[0] for k in keys], [m.empty for m in maps]
        )
        paths = [out / "linkage" / f"{expr}.csv", out / "distances" / f"{expr}.csv"]
        write_linkage_csv(paths[0], result.linkage)
        write_matrix_csv(paths[1], result.distances, result.labels)
        if figures:
            paths.append(out / "figures" / f"dendrogram_{expr}.png")
            plot_dendrogram(result, f"{expr}: networks", paths[-1])
        written += paths
        leaf_rows += [
            {"expression": expr, "leaf_index": i, "network": lab, "included": True, "note": ""}
            for i, lab in enumerate(result.labels)
        ]
        leaf_rows += [
            {
                "expression": expr,
                "leaf_index": "",
                "network": lab,
                "included": False,
                "note": "left out: empty or constant heatmap",
            }
            for lab in result.excluded
        ]
    leaves = out / "dendrogram_leaves.csv"
    write_csv(leaves, leaf_rows, ["expression", "leaf_index", "network", "included", "note"])
    written.append(leaves)
    network_rows = [r for r in rows if r["fold"] == "all"]
    for metric in BINARY_METRICS if figures else ():
        path = out / "figures" / f"bars_{metric}.png"
        plot_sorted_bars(network_rows, metric, path, subtitle=spec.label)
        written.append(path)
    return written


def cli_compare_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heatmaps", required=True, help="folder of *_heatmap.png (searched deep)")
    parser.add_argument(
        "--gt", default=None, help="folder of {Expression}_gt.png (default: ferxai's Ekman masks)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threshold", default="otsu", help=THRESHOLD_HELP)
    parser.add_argument(
        "--empty-from",
        default=None,
        help="folder of the heatmaps' .h5 (attr empty) if not beside the PNGs; 'none' = PNGs only",
    )
    parser.add_argument("--no-figures", action="store_true", help="CSV files only (faster)")


def cli_compare(args: argparse.Namespace) -> None:
    spec = parse_threshold(args.threshold)
    masks = load_masks(args.gt)
    written = compare_heatmaps(
        args.heatmaps, args.out, masks, spec, args.empty_from, figures=not args.no_figures
    )
    log.info("wrote %d files into %s", len(written), args.out)


# ---------------------------------------------------------------------------- extended metrics


def _seed_for(seed: int, key: str) -> np.random.Generator:
    """A generator per (network, expression) that does not depend on the processing order."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(key.encode())]))


def bootstrap_iou(
    stack_paths: Sequence[str | os.PathLike],
    mask: np.ndarray,
    n_boot: int = 200,
    rng: np.random.Generator | None = None,
    chunk: int = 64,
    batch: int = 100,
) -> np.ndarray:
    """IoU of ``n_boot`` re-aggregated heatmaps, each from the explained images drawn with
    replacement (pooled over the given stacks), stretched, Otsu-thresholded.

    Each resample is a count vector c (how often each image was drawn); its pooled mean is
    ``c @ maps / n``. The maps are streamed once per batch of resamples, so memory is
    ``batch × canvas``, independent of the number of images.
    """
    from ferxai.aggregate import valid_map_chunks

    rng = rng or np.random.default_rng(0)
    _, n = count_maps(stack_paths)
    if n == 0:
        return np.full(n_boot, np.nan)
    draws = rng.integers(0, n, size=(n_boot, n))
    # Row b of `counts` = how often each image was drawn in resample b (one bincount for all rows).
    flat_draws = (draws + np.arange(n_boot)[:, None] * n).ravel()
    counts = np.bincount(flat_draws, minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)
    ious = np.empty(n_boot)
    for start in range(0, n_boot, batch):
        block = counts[start : start + batch]
        sums = np.zeros((len(block), mask.size), dtype=np.float64)
        offset = 0
        for maps in valid_map_chunks(stack_paths, chunk):
            flat = maps.reshape(len(maps), -1)
            sums += block[:, offset : offset + len(maps)] @ flat
            offset += len(maps)
        means = sums / n
        low = means.min(axis=1, keepdims=True)
        high = means.max(axis=1, keepdims=True)
        stretchable = (high > low) & (high > 0)
        stretched = np.where(
            stretchable, (means - low) / np.where(stretchable, high - low, 1), means
        )
        images = to_uint8(stretched).reshape(len(block), *mask.shape)
        thresholds = otsu_thresholds(images)
        predicted = images > thresholds[:, None, None]
        ious[start : start + len(block)] = binary_metrics_batch(predicted, mask)["iou"]
    return ious


def extended_metric_rows(
    found: HeatmapFiles,
    masks: Mapping[str, np.ndarray],
    stacks: Mapping[str, Sequence[str]] | None,
    n_boot: int = 200,
    seed: int = 0,
) -> list[dict]:
    """Per (network, expression): continuous metrics and the bootstrap 95 % CI of Otsu IoU."""
    rows = []
    for (net, expr), path in sorted(
        found.by_network.items(), key=lambda kv: (kv[0][0], EXPRESSIONS.index(kv[0][1]))
    ):
        heatmap = read_heatmap(path)
        mask = _mask_for(masks, expr, heatmap.uint8.shape, path)
        row: dict[str, object] = {"network": net, "expression": expr}
        if heatmap.empty:
            row |= dict.fromkeys((*CONTINUOUS_METRICS, "iou", "iou_ci_low", "iou_ci_high"), np.nan)
            rows.append(row | {"n_images": 0, "n_boot": 0, "note": "empty heatmap"})
            continue
        predicted, _ = binarize(heatmap.uint8, ThresholdSpec("otsu"))
        row |= continuous_metrics(heatmap.continuous, mask)
        row["iou"] = binary_metrics(predicted, mask)["iou"]
        paths = list((stacks or {}).get(f"{net}/{expr}", []))
        low = high = float("nan")
        note = "" if paths else "no stacks given: no bootstrap"
        if paths and n_boot > 0:
            ious = bootstrap_iou(paths, mask, n_boot, _seed_for(seed, f"{net}/{expr}"))
            low, high = percentile_interval(ious)
        n_images = count_maps(paths)[1] if paths else 0
        rows.append(
            row
            | {"iou_ci_low": low, "iou_ci_high": high, "n_images": n_images}
            | {"n_boot": n_boot if paths else 0, "note": note}
        )
    return rows


EXTENDED_METRIC_COLUMNS = (
    "network",
    "expression",
    *CONTINUOUS_METRICS,
    "iou",
    "iou_ci_low",
    "iou_ci_high",
    "n_images",
    "n_boot",
    "note",
)


def _read_stacks_json(path: str | os.PathLike | None) -> dict[str, list[str]]:
    """The stacks map, given inline (a JSON object, as the workflow passes it) or as a file."""
    if path is None:
        return {}
    text = str(path).lstrip()
    data = json.loads(text) if text.startswith("{") else read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(
            f"--stacks-json {path}: expected an object mapping 'Network/Expression' to a list of "
            "normalized stack paths."
        )
    return data


def cli_extended_metrics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heatmaps", required=True, help="folder of by-network heatmaps")
    parser.add_argument(
        "--stacks-json",
        default=None,
        help="'Network/Expression' → normalized stack paths: a JSON object or a .json file",
    )
    parser.add_argument("--gt", default=None, help="folder of {Expression}_gt.png or 'default'")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def cli_extended_metrics(args: argparse.Namespace) -> None:
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap {args.bootstrap}: must be 0 (none) or more.")
    rows = extended_metric_rows(
        discover_heatmaps(args.heatmaps),
        load_masks(args.gt),
        _read_stacks_json(args.stacks_json),
        args.bootstrap,
        args.seed,
    )
    write_csv(args.out, rows, EXTENDED_METRIC_COLUMNS)


# ------------------------------------------------------------------------------------- sanity

SANITY_COLUMNS = (
    "network",
    "expression",
    "spearman",
    "iou_trained",
    "iou_randomized",
    "auc_trained",
    "auc_randomized",
    "note",
)


def sanity_rows(
    trained_dir: str | os.PathLike,
    randomized_dir: str | os.PathLike,
    masks: Mapping[str, np.ndarray],
) -> list[dict]:
    """Model-randomization check (Adebayo et al. 2018) for every network × expression in both."""
    trained = discover_heatmaps(trained_dir).by_network
    randomized = discover_heatmaps(randomized_dir).by_network
    common = sorted(set(trained) & set(randomized), key=lambda k: (k[0], EXPRESSIONS.index(k[1])))
    if not common:
        raise DataError(
            f"--trained {trained_dir} and --randomized {randomized_dir}: no network × expression "
            "heatmap in both. Aggregate the randomized network's maps with the same names."
        )
    rows = []
    for key in common:
        a, b = read_heatmap(trained[key]), read_heatmap(randomized[key])
        mask = _mask_for(masks, key[1], a.uint8.shape, trained[key])
        row: dict[str, object] = {"network": key[0], "expression": key[1], "note": ""}
        row["spearman"] = np.nan if a.empty or b.empty else spearman(a.continuous, b.continuous)
        for name, heat in (("trained", a), ("randomized", b)):
            if heat.empty:
                row[f"iou_{name}"] = row[f"auc_{name}"] = np.nan
                row["note"] = f"{name} heatmap empty"
                continue
            row[f"iou_{name}"] = binary_metrics(
                binarize(heat.uint8, ThresholdSpec("otsu"))[0], mask
            )["iou"]
            row[f"auc_{name}"] = roc_auc(heat.continuous, mask)
        rows.append(row)
    return rows


SANITY_IMAGE_COLUMNS = ("network", "expression", "image_id", "auc_trained", "auc_randomized")


def sanity_image_rows(
    trained_stacks: Mapping[str, Sequence[str]],
    randomized_stacks: Mapping[str, Sequence[str]],
    masks: Mapping[str, np.ndarray],
) -> list[dict]:
    """Per explained image: ROC-AUC of its trained and its randomized explanation (normalized
    maps) against the reference of its expression. A global check has at most six pairs per
    network; this one has a pair per image (an all-zero map scores 0.5, as a map ignoring it)."""
    rows = []
    keys = sorted(set(trained_stacks) & set(randomized_stacks),
                  key=lambda k: (k.split("/")[0], EXPRESSIONS.index(k.split("/")[1])))  # fmt: skip
    for key in keys:
        network, expression = key.split("/")
        trained = _valid_maps_by_image(trained_stacks[key])
        randomized = _valid_maps_by_image(randomized_stacks[key])
        if not trained:
            continue
        shape = next(iter(trained.values())).shape  # one canvas per stack (normalize's contract)
        mask = _mask_for(masks, expression, shape, Path(trained_stacks[key][0]))
        for image_id, heat in trained.items():
            if image_id not in randomized:
                continue
            rows.append({"network": network, "expression": expression, "image_id": image_id,
                         "auc_trained": roc_auc(heat, mask),
                         "auc_randomized": roc_auc(randomized[image_id], mask)})  # fmt: skip
    return rows


def _valid_maps_by_image(paths: Sequence[str | os.PathLike]) -> dict[str, np.ndarray]:
    """image_id → normalized map, for the maps of ``paths`` that normalization marked valid."""
    maps: dict[str, np.ndarray] = {}
    for path in paths:
        stack = read_stack(path)
        for image_id, keep, heat in zip(stack.image_id, stack_valid(path), stack.maps, strict=True):
            if keep:
                maps[image_id] = heat
    return maps


SANITY_SUMMARY_COLUMNS = (
    "network",
    "pairs",
    "auc_trained",
    "auc_randomized",
    "auc_gain",
    "iou_trained",
    "iou_randomized",
    "trained_wins",
    "wilcoxon_p",
    "images",
    "image_auc_trained",
    "image_auc_randomized",
    "image_wins",
    "image_wilcoxon_p",
)


def sanity_summary(rows: Sequence[Mapping], image_rows: Sequence[Mapping] = ()) -> list[dict]:
    """Per network and over all: mean ROC-AUC / IoU of trained vs randomized heatmaps against the
    reference, how many expressions the trained one wins (higher AUC), and the one-sided Wilcoxon
    signed-rank p-value that trained AUC > randomized AUC (NaN under 6 pairs: no test then); with
    ``image_rows`` (:func:`sanity_image_rows`) the same per explained image (``image_*``)."""

    def summarize(network: str, group: Sequence[Mapping], images: Sequence[Mapping]) -> dict:
        pairs = _finite_pairs(group)
        trained, randomized = _auc_pairs(pairs)
        iou = {
            k: np.array([float(r[f"iou_{k}"]) for r in pairs]) for k in ("trained", "randomized")
        }
        image_trained, image_randomized = _auc_pairs(_finite_pairs(images))
        return {
            "network": network,
            "pairs": len(pairs),
            "auc_trained": _mean(trained),
            "auc_randomized": _mean(randomized),
            "auc_gain": _mean(trained - randomized),
            "iou_trained": _mean(iou["trained"]),
            "iou_randomized": _mean(iou["randomized"]),
            "trained_wins": int((trained > randomized).sum()),
            "wilcoxon_p": _greater_p(trained, randomized),
            "images": len(image_trained),
            "image_auc_trained": _mean(image_trained),
            "image_auc_randomized": _mean(image_randomized),
            "image_wins": int((image_trained > image_randomized).sum()),
            "image_wilcoxon_p": _greater_p(image_trained, image_randomized),
        }

    from ferxai.figures import network_order

    networks = network_order(sorted({r["network"] for r in rows}))
    summary = [
        summarize(
            n, [r for r in rows if r["network"] == n], [r for r in image_rows if r["network"] == n]
        )  # fmt: skip
        for n in networks
    ]
    return summary + [summarize("all", rows, image_rows)]


def _finite_pairs(rows: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in rows if np.isfinite(float(r["auc_trained"]))
            and np.isfinite(float(r["auc_randomized"]))]  # fmt: skip


def _auc_pairs(pairs: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([float(r["auc_trained"]) for r in pairs]),
            np.array([float(r["auc_randomized"]) for r in pairs]))  # fmt: skip


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else np.nan


def _greater_p(trained: np.ndarray, randomized: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p of trained > randomized; NaN under 6 pairs or no change."""
    from scipy.stats import wilcoxon

    if len(trained) < 6 or not np.any(trained != randomized):
        return np.nan
    return float(wilcoxon(trained, randomized, alternative="greater").pvalue)


def cli_sanity_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trained", required=True, help="heatmaps of the trained networks")
    parser.add_argument("--randomized", required=True, help="heatmaps of re-initialized networks")
    parser.add_argument("--reference", required=True, help="folder of reference masks")
    parser.add_argument(
        "--pattern",
        default="{Expression}_gt.png",
        help="mask file names, e.g. {Expression}_cue.png",
    )
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--summary", default=None, help="optional per-network summary CSV")
    parser.add_argument("--grid", default=None, help="optional PNG: reference, trained and "
                        "randomized heatmaps, networks x expressions")  # fmt: skip
    parser.add_argument("--figure", default=None, help="optional bar chart PNG")
    for kind in ("trained", "randomized"):
        parser.add_argument(f"--{kind}-stacks-json", default=None,
                            help=f"'Network/Expression' → normalized stacks of the {kind} "
                            "networks (JSON object or .json file): adds the per-image test")  # fmt: skip
    parser.add_argument("--per-image", default=None, help="optional per-image CSV")


def cli_sanity(args: argparse.Namespace) -> None:
    masks = load_masks(args.reference, args.pattern)
    rows = sanity_rows(args.trained, args.randomized, masks)
    write_csv(args.out, rows, SANITY_COLUMNS)
    image_rows = []
    if args.trained_stacks_json and args.randomized_stacks_json:
        image_rows = sanity_image_rows(_read_stacks_json(args.trained_stacks_json),
                                       _read_stacks_json(args.randomized_stacks_json), masks)  # fmt: skip
    elif args.trained_stacks_json or args.randomized_stacks_json:
        raise ConfigError("--trained-stacks-json and --randomized-stacks-json go together: the "
                          "per-image test pairs each image's two explanations.")  # fmt: skip
    if args.per_image:
        write_csv(args.per_image, image_rows, SANITY_IMAGE_COLUMNS)
    summary = sanity_summary(rows, image_rows)
    overall = summary[-1]
    log.info("sanity: ROC-AUC with the reference, trained %.3f vs randomized %.3f; trained higher "
             "in %d of %d network x expression pairs (Wilcoxon one-sided p = %.3g)",
             overall["auc_trained"], overall["auc_randomized"], overall["trained_wins"],
             overall["pairs"], overall["wilcoxon_p"])  # fmt: skip
    if image_rows:
        log.info("sanity per image: ROC-AUC trained %.3f vs randomized %.3f; trained higher for %d "
                 "of %d images (Wilcoxon one-sided p = %.3g)", overall["image_auc_trained"],
                 overall["image_auc_randomized"], overall["image_wins"], overall["images"],
                 overall["image_wilcoxon_p"])  # fmt: skip
    if args.summary:
        write_csv(args.summary, summary, SANITY_SUMMARY_COLUMNS)
    if args.figure:
        from ferxai.figures import plot_sanity

        plot_sanity(summary, args.figure)
    if args.grid:
        _sanity_grid(args.trained, args.randomized, masks, args.grid)


def _sanity_grid(trained_dir, randomized_dir, masks: Mapping[str, np.ndarray], path) -> None:
    """The reference masks over the trained and the randomized heatmaps of every network."""
    from ferxai.figures import heatmap_grid, network_order

    images = {("reference", e): m.astype(np.uint8) * 255 for e, m in masks.items()}
    networks = set()
    for kind, folder in (("trained", trained_dir), ("randomized", randomized_dir)):
        for (network, expression), file in discover_heatmaps(folder).by_network.items():
            images[(f"{network}_{kind}", expression)] = read_heatmap(file).uint8
            networks.add(network)
    rows = ["reference"] + [f"{n}_{kind}" for n in network_order(sorted(networks))
                            for kind in ("trained", "randomized")]  # fmt: skip
    heatmap_grid(images, path, "Model randomization check: trained vs randomized heatmaps", rows)
