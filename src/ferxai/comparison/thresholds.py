"""Binarizing a global heatmap: Otsu (as OpenCV), a fixed value, the top-k % of the area, or the
best threshold against the ground truth (optimistic: it looks at the answer).

All thresholds act on the uint8 heatmap (0..255) and select the pixels **strictly above** the
threshold, like ``cv2.threshold(..., THRESH_BINARY)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferxai.core.errors import ConfigError

THRESHOLD_HELP = (
    "otsu (OpenCV THRESH_OTSU on the uint8 heatmap, the paper's choice), fixed:T (pixel > T, "
    "T in 0..255), topk:P (the P %% of the canvas with the highest values, ties included) or "
    "best (the threshold maximizing IoU against the ground truth: optimistic, it looks at the answer)"
)
_FLT_EPSILON = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class ThresholdSpec:
    """A parsed ``--threshold`` value. ``value`` is T for fixed and P for topk."""

    method: str
    value: float | None = None

    @property
    def label(self) -> str:
        if self.method == "best":
            return "best (optimistic)"
        return self.method if self.value is None else f"{self.method}:{self.value:g}"


def parse_threshold(spec: str) -> ThresholdSpec:
    """Parse ``otsu``, ``fixed:T``, ``topk:P`` or ``best``; raise ConfigError otherwise."""
    name, _, raw = spec.strip().partition(":")
    name = name.lower()
    if name in ("otsu", "best") and not raw:
        return ThresholdSpec(name)
    if name in ("fixed", "topk") and raw:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        low, high = (0.0, 255.0) if name == "fixed" else (0.0, 100.0)
        if low <= value <= high:
            return ThresholdSpec(name, value)
    raise ConfigError(
        f"--threshold {spec!r}: not understood. Use {THRESHOLD_HELP.replace('%%', '%')}."
    )


def otsu_thresholds(images: np.ndarray) -> np.ndarray:
    """Otsu threshold of each uint8 image in ``images`` (..., H, W), bit for bit as OpenCV's.

    Replays OpenCV's ``getThreshVal_Otsu_8u`` recurrence (same float64 operation order, same strict
    ``>`` so the first maximum wins), vectorized over the leading axes: the loop runs over the 256
    bins, never over images.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"Otsu needs uint8 images, got {images.dtype}")
    lead = images.shape[:-2]
    flat = images.reshape(-1, images.shape[-2] * images.shape[-1])
    batch, n_pixels = flat.shape
    offsets = (np.arange(batch, dtype=np.int64) * 256)[:, None]
    hist = np.bincount((flat + offsets).ravel(), minlength=batch * 256).reshape(batch, 256)
    scale = 1.0 / n_pixels
    # OpenCV sums i*h[i] in float64 then scales; integer sums below 2**53 are exact either way.
    mu = (hist @ np.arange(256, dtype=np.int64)).astype(np.float64) * scale
    mu1 = np.zeros(batch)
    q1 = np.zeros(batch)
    max_sigma = np.zeros(batch)
    best = np.zeros(batch)
    for i in range(256):
        p_i = hist[:, i] * scale
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        usable = (np.minimum(q1, q2) >= _FLT_EPSILON) & (np.maximum(q1, q2) <= 1.0 - _FLT_EPSILON)
        with np.errstate(divide="ignore", invalid="ignore"):
            new_mu1 = (mu1 + i * p_i) / q1
            mu2 = (mu - q1 * new_mu1) / q2
            sigma = q1 * q2 * (new_mu1 - mu2) * (new_mu1 - mu2)
        # OpenCV's `continue` skips the division: mu1 keeps its pre-multiplied value.
        mu1 = np.where(usable, new_mu1, mu1)
        better = usable & (sigma > max_sigma)
        max_sigma = np.where(better, sigma, max_sigma)
        best = np.where(better, float(i), best)
    return best.reshape(lead)


def otsu_threshold(image: np.ndarray) -> float:
    """Otsu threshold of one uint8 image (as ``cv2.threshold(img, 0, 255, THRESH_OTSU)[0]``)."""
    return float(otsu_thresholds(image))


def topk_threshold(heatmap: np.ndarray, percent: float) -> float:
    """Threshold t such that ``heatmap > t`` keeps the ``percent`` % highest pixels (ties kept)."""
    flat = np.asarray(heatmap, dtype=np.float64).ravel()
    k = int(round(flat.size * percent / 100.0))
    if k <= 0:
        return float("inf")
    if k >= flat.size:
        return float("-inf")
    kth_largest = np.partition(flat, flat.size - k)[flat.size - k]
    # Largest value strictly below the k-th largest: `> t` then keeps every tie of the k-th value.
    below = flat[flat < kth_largest]
    return float(below.max()) if below.size else float("-inf")


def best_iou_threshold(heatmap_uint8: np.ndarray, gt: np.ndarray) -> float:
    """The t in 0..255 maximizing IoU(heatmap > t, gt) — optimistic: it uses the ground truth.

    From histograms of the values inside and outside the mask, TP(t) and FP(t) of every t follow
    by one reversed cumulative sum; the smallest best t wins.
    """
    values = np.asarray(heatmap_uint8, dtype=np.uint8).ravel()
    inside = np.asarray(gt, dtype=bool).ravel()
    hist_in = np.bincount(values[inside], minlength=256)
    hist_out = np.bincount(values[~inside], minlength=256)
    # above[t] = count of values > t  (t = 0..255)
    tp = np.concatenate([np.cumsum(hist_in[::-1])[::-1][1:], [0]])
    fp = np.concatenate([np.cumsum(hist_out[::-1])[::-1][1:], [0]])
    union = inside.sum() + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, 0.0)
    return float(np.argmax(iou))


def threshold_value(
    heatmap_uint8: np.ndarray, spec: ThresholdSpec, gt: np.ndarray | None = None
) -> float:
    """The threshold ``spec`` gives for this heatmap (pixels ``> value`` are in)."""
    if spec.method == "otsu":
        return otsu_threshold(heatmap_uint8)
    if spec.method == "fixed":
        return float(spec.value)
    if spec.method == "topk":
        return topk_threshold(heatmap_uint8, float(spec.value))
    if spec.method == "best":
        if gt is None:
            raise ConfigError("--threshold best needs ground-truth masks; give --gt or use otsu.")
        return best_iou_threshold(heatmap_uint8, gt)
    raise ConfigError(f"--threshold {spec.method!r}: unknown method. Use {THRESHOLD_HELP}.")


def binarize(
    heatmap_uint8: np.ndarray, spec: ThresholdSpec, gt: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Boolean mask ``heatmap > t`` and the threshold t used."""
    t = threshold_value(heatmap_uint8, spec, gt)
    return np.asarray(heatmap_uint8) > t, t
