"""Quantus's localisation metrics of saliency maps against boolean regions, batched.

Each metric equals the Quantus 0.6.0 class of the same name with its defaults (tests/
test_localisation_scores.py calls Quantus itself), computed for a whole stack of maps in one set of
numpy operations instead of Quantus's per-call wrapping:

- ``pointing_game``: 1 if a pixel holding the map's maximum lies in the mask, else 0;
- ``attribution_localisation``: Σ(|a|·s) / (Σ|a| + 1e-9) (Quantus's ``abs=True`` default);
- ``top_k_intersection``: fraction of the ``k`` highest pixels (``argsort(-a)``) inside the mask;
- ``relevance_rank_accuracy``: with K = Σs, the fraction of the K highest pixels inside the mask;
- ``relevance_mass_accuracy``: Σ(a·s) / Σa;
- ``auc``: ROC-AUC of the map's values against the mask (sklearn's ``roc_curve`` + ``auc``).

Maps are first divided by their largest absolute value (Quantus's ``normalise_by_max``; an all-zero
map is left as it is). Quantus divides a whole batch by the batch's maximum; here each map is divided
by its own, so a map's score does not depend on which maps share its call (every metric but the
1e-9 of ``attribution_localisation`` is invariant to the scale, so the two agree to ~1e-9). An empty
mask gives NaN, as in Quantus; so does a mask covering the whole map for ``auc`` (no negatives).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

LOCALISATION_SCORES = (
    "pointing_game",
    "attribution_localisation",
    "top_k_intersection",
    "relevance_rank_accuracy",
    "relevance_mass_accuracy",
    "auc",
)
DEFAULT_K = 1000
_EPSILON = 1e-9  # Quantus's AttributionLocalisation denominator guard


def localisation_scores(maps, masks, k: int = DEFAULT_K) -> dict[str, np.ndarray]:
    """The six localisation scores of ``maps`` (N, H, W) against ``masks`` ((N, H, W) or (H, W)).

    Returns one (N,) float64 array per name in :data:`LOCALISATION_SCORES`. Raises ``ValueError``
    for shapes that do not broadcast, non-finite maps or a ``k`` outside 1..H·W.
    """
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"maps must be (N, H, W) or (H, W), got shape {a.shape}")
    s_in = np.asarray(masks)
    try:
        s = np.broadcast_to(s_in.astype(bool), a.shape)
    except ValueError:
        raise ValueError(
            f"masks of shape {s_in.shape} do not match maps of shape {a.shape}: give one (H, W) "
            "mask for all maps or one per map"
        ) from None
    if not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a).reshape(len(a), -1).all(axis=1))
        raise ValueError(f"maps {bad[:5].tolist()} hold NaN or infinite values; drop them first")
    n = len(a)
    a = a.reshape(n, -1)
    s = s.reshape(n, -1)
    features = a.shape[1]
    if not 1 <= int(k) <= features:
        raise ValueError(f"k = {k} must lie in 1..{features} (the number of pixels of a map)")
    k = int(k)

    peak = np.abs(a).max(axis=1, keepdims=True)
    a = a / np.where(peak == 0, 1.0, peak)
    inside_count = s.sum(axis=1)
    empty = inside_count == 0
    rows = np.arange(n)[:, None]

    pointing = np.any(s & (a == a.max(axis=1, keepdims=True)), axis=1).astype(np.float64)

    magnitude = np.abs(a)
    localisation = (magnitude * s).sum(axis=1) / (magnitude.sum(axis=1) + _EPSILON)
    # Quantus marks a ratio above 1 (only possible for signed maps without abs) as undefined.
    localisation[localisation > 1] = np.nan

    # The same (default, unstable) argsort as Quantus, so ties break identically.
    order = np.argsort(-a, axis=-1)
    hits_in_order = s[rows, order]
    top_k = hits_in_order[:, :k].mean(axis=1)
    cumulative = np.cumsum(hits_in_order, axis=1)
    rank_accuracy = cumulative[np.arange(n), np.maximum(inside_count - 1, 0)] / np.maximum(
        inside_count, 1
    )

    with np.errstate(divide="ignore", invalid="ignore"):
        mass_accuracy = (a * s).sum(axis=1) / a.sum(axis=1)

    scores = {
        "pointing_game": pointing,
        "attribution_localisation": localisation,
        "top_k_intersection": top_k.astype(np.float64),
        "relevance_rank_accuracy": rank_accuracy.astype(np.float64),
        "relevance_mass_accuracy": mass_accuracy,
        "auc": _roc_auc(a, s, inside_count),
    }
    for values in scores.values():
        values[empty] = np.nan
    return scores


def _roc_auc(a: np.ndarray, s: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """ROC-AUC per row from midranks (the Mann-Whitney U), equal to sklearn's roc_curve + auc.

    Tied scores share a threshold in roc_curve, whose diagonal segment the trapezoid rule credits
    with one half: exactly what midranks count.
    """
    negatives = a.shape[1] - positives
    ranks = rankdata(a, axis=1)
    rank_sum = (ranks * s).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        area = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    area[(positives == 0) | (negatives == 0)] = np.nan
    return area
