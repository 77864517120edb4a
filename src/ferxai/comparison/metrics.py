"""Agreement between heatmaps and ground-truth masks, and between heatmaps.

Binary (paper): IoU, F1, precision, recall of a thresholded heatmap against a mask. Beyond the
paper: ROC-AUC, relevance mass inside the mask, NSS and Pearson CC of the continuous heatmap, a
bootstrap confidence interval of IoU, and the Spearman rank correlation of the sanity check.
Undefined values (empty prediction, constant heatmap) are NaN, never a silent 0.
"""

from __future__ import annotations

import numpy as np

BINARY_METRICS: tuple[str, ...] = ("iou", "f1", "precision", "recall")
CONTINUOUS_METRICS: tuple[str, ...] = ("roc_auc", "mass_inside", "nss", "pearson_cc")


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def binary_metrics_batch(predicted: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, F1, precision, recall of each predicted mask (B, ...) against one mask (...).

    precision is NaN where nothing is predicted, recall where the mask is empty, IoU and F1 where
    both are empty.
    """
    gt_flat = np.asarray(gt, dtype=bool).ravel()
    pred = np.asarray(predicted, dtype=bool).reshape(-1, gt_flat.size)
    tp = pred.astype(np.int64) @ gt_flat.astype(np.int64)
    n_pred = pred.sum(axis=1)
    n_gt = int(gt_flat.sum())
    fp = n_pred - tp
    fn = n_gt - tp
    return {
        "iou": _safe_ratio(tp, tp + fp + fn),
        "f1": _safe_ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _safe_ratio(tp, n_pred),
        "recall": _safe_ratio(tp, np.full_like(tp, n_gt)),
    }


def binary_metrics(predicted: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """IoU, F1, precision and recall of one boolean prediction against one boolean mask."""
    batch = binary_metrics_batch(np.asarray(predicted)[None], gt)
    return {name: float(values[0]) for name, values in batch.items()}


def pearson_matrix(images: np.ndarray) -> np.ndarray:
    """Pearson correlation of every pair of images (n, ...) → (n, n); NaN for constant images.

    On equal-size images this is OpenCV's TM_CCOEFF_NORMED.
    """
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    norms = np.where(norms > 0, norms, np.nan)
    unit = centred / norms[:, None]
    corr = np.clip(unit @ unit.T, -1.0, 1.0)
    diagonal = np.isfinite(norms)
    corr[np.diag_indices_from(corr)] = np.where(diagonal, 1.0, np.nan)
    return corr


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the pixels of two equal-size images (NaN if either is constant)."""
    return float(pearson_matrix(np.stack([np.asarray(a), np.asarray(b)]))[0, 1])


def roc_auc(heatmap: np.ndarray, gt: np.ndarray) -> float:
    """Area under the ROC curve of the heatmap's values as a score for "inside the mask".

    Mann–Whitney form with mid-ranks for ties, so it is exact for quantized heatmaps.
    """
    from scipy.stats import rankdata

    scores = np.asarray(heatmap, dtype=np.float64).ravel()
    inside = np.asarray(gt, dtype=bool).ravel()
    n_in = int(inside.sum())
    n_out = inside.size - n_in
    if n_in == 0 or n_out == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[inside].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def mass_inside(heatmap: np.ndarray, gt: np.ndarray) -> float:
    """Share of the (non-negative) relevance that falls inside the mask (Arras et al. 2022)."""
    values = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    total = values.sum()
    return float(values[np.asarray(gt, dtype=bool)].sum() / total) if total > 0 else float("nan")


def nss(heatmap: np.ndarray, gt: np.ndarray) -> float:
    """Normalized scanpath saliency: mean z-score of the heatmap over the mask's pixels."""
    values = np.asarray(heatmap, dtype=np.float64)
    inside = np.asarray(gt, dtype=bool)
    std = values.std()
    if std == 0 or not inside.any():
        return float("nan")
    return float(((values[inside] - values.mean()) / std).mean())


def continuous_metrics(heatmap: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """ROC-AUC, relevance mass inside, NSS and Pearson CC of a continuous heatmap vs a mask."""
    return {
        "roc_auc": roc_auc(heatmap, gt),
        "mass_inside": mass_inside(heatmap, gt),
        "nss": nss(heatmap, gt),
        "pearson_cc": pearson(heatmap, np.asarray(gt, dtype=np.float64)),
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of the pixels of two images (NaN if either is constant)."""
    from scipy.stats import rankdata

    return pearson(rankdata(np.ravel(a)), rankdata(np.ravel(b)))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the finite samples (NaN, NaN when none is finite)."""
    finite = np.asarray(samples, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)
