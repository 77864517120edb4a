"""Model-randomization sanity check (Adebayo et al. 2018): do a trained network's explanations
overlap the reference regions more than those of the same network with random weights?

Two levels: the global heatmaps (at most six trained / randomized pairs per network, one per
expression) and each explained image (a pair per image). Each pair is scored by ROC-AUC against
the expression's reference mask (an all-zero map scores 0.5, as a map that ignores it) and the
trained side is tested with a one-sided Wilcoxon signed-rank test. Works on heatmaps and maps it
is given; reading them is the ``sanity`` command's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ferxai.comparison.groundtruth import mask_for
from ferxai.comparison.metrics import binary_metrics, roc_auc, spearman
from ferxai.comparison.thresholds import ThresholdSpec, binarize
from ferxai.core.constants import EXPRESSIONS, network_order
from ferxai.heatmaps.heatmap import Heatmap

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
SANITY_IMAGE_COLUMNS = ("network", "expression", "image_id", "auc_trained", "auc_randomized")
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


def _order(key: tuple[str, str]) -> tuple[str, int]:
    return key[0], EXPRESSIONS.index(key[1])


def sanity_rows(
    trained: Mapping[tuple[str, str], Heatmap],
    randomized: Mapping[tuple[str, str], Heatmap],
    masks: Mapping[str, np.ndarray],
    where: str = "sanity",
) -> list[dict]:
    """One row per (network, expression) heatmap present in both: Spearman between the trained
    and randomized maps, and each one's Otsu IoU and ROC-AUC with the reference."""
    rows = []
    for key in sorted(set(trained) & set(randomized), key=_order):
        a, b = trained[key], randomized[key]
        mask = mask_for(masks, key[1], a.uint8.shape, where)
        row: dict[str, object] = {"network": key[0], "expression": key[1], "note": ""}
        row["spearman"] = np.nan if a.empty or b.empty else spearman(a.stretched, b.stretched)
        for name, heat in (("trained", a), ("randomized", b)):
            if heat.empty:
                row[f"iou_{name}"] = row[f"auc_{name}"] = np.nan
                row["note"] = f"{name} heatmap empty"
                continue
            row[f"iou_{name}"] = binary_metrics(
                binarize(heat.uint8, ThresholdSpec("otsu"))[0], mask
            )["iou"]
            row[f"auc_{name}"] = roc_auc(heat.stretched, mask)
        rows.append(row)
    return rows


def sanity_image_rows(
    trained: Mapping[str, Mapping[str, np.ndarray]],
    randomized: Mapping[str, Mapping[str, np.ndarray]],
    masks: Mapping[str, np.ndarray],
) -> list[dict]:
    """Per explained image: ROC-AUC of its trained and its randomized explanation against the
    reference of its expression. ``trained`` / ``randomized``: 'Network/Expression' → image_id →
    normalized map (valid maps only); images are paired by id."""
    rows = []
    keys = sorted(set(trained) & set(randomized), key=lambda k: _order(tuple(k.split("/"))))
    for key in keys:
        network, expression = key.split("/")
        if not trained[key]:
            continue
        shape = next(iter(trained[key].values())).shape  # one canvas per stack
        mask = mask_for(masks, expression, shape, key)
        for image_id, heat in trained[key].items():
            if image_id not in randomized[key]:
                continue
            rows.append({"network": network, "expression": expression, "image_id": image_id,
                         "auc_trained": roc_auc(heat, mask),
                         "auc_randomized": roc_auc(randomized[key][image_id], mask)})
    return rows


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
            "wilcoxon_p": greater_p(trained, randomized),
            "images": len(image_trained),
            "image_auc_trained": _mean(image_trained),
            "image_auc_randomized": _mean(image_randomized),
            "image_wins": int((image_trained > image_randomized).sum()),
            "image_wilcoxon_p": greater_p(image_trained, image_randomized),
        }

    networks = network_order(sorted({r["network"] for r in rows}))
    summary = [
        summarize(
            n, [r for r in rows if r["network"] == n], [r for r in image_rows if r["network"] == n]
        )
        for n in networks
    ]
    return summary + [summarize("all", rows, image_rows)]


def _finite_pairs(rows: Sequence[Mapping]) -> list[Mapping]:
    return [r for r in rows if np.isfinite(float(r["auc_trained"]))
            and np.isfinite(float(r["auc_randomized"]))]


def _auc_pairs(pairs: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([float(r["auc_trained"]) for r in pairs]),
            np.array([float(r["auc_randomized"]) for r in pairs]))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else np.nan


def greater_p(trained: np.ndarray, randomized: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p of trained > randomized; NaN under 6 pairs or no change."""
    from scipy.stats import wilcoxon

    if len(trained) < 6 or not np.any(trained != randomized):
        return np.nan
    return float(wilcoxon(trained, randomized, alternative="greater").pvalue)
