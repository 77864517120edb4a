"""Randomisation checks of explanations: cascading MPRT and RandomLogit, as Quantus 0.6.0.

- **Cascading model-parameter randomisation** (MPRT; Adebayo et al. 2018, Quantus's ``MPRT`` with
  ``layer_order='top_down'``): the layers that have ``reset_parameters`` are re-initialised one
  after the other from the output towards the input, cumulatively, each after
  ``torch.manual_seed(seed + 1)`` (as Quantus); after each layer the explanation is recomputed and
  compared with the trained network's. A map that depends on the network stays dissimilar (low
  similarity) once the top layers are random. ``layers`` bounds the cost: only the first that many
  layers of the top-down order are randomised (Quantus randomises all).
- **RandomLogit** (Sixt et al. 2020): the explanation of the true class against that of one other
  class drawn at random; a class-sensitive map has a low similarity.

Similarities as Quantus's ``correlation_spearman`` and ``ssim`` (the latter on the flattened maps,
whose data range is that of both maps together), vectorised over maps. Explanations are divided by
their largest magnitude first (Quantus's ``normalise_by_max``), per map; MPRT then takes their
absolute value (its ``abs=True`` default), RandomLogit does not.

``explain(model, images, targets) -> maps (N, H, W)`` is any explainer; the workflow passes
ferxai's own (:func:`ferxai_explain`), so the recomputed maps are those of the study's method.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.stats import rankdata

Explain = Callable[[object, np.ndarray, np.ndarray], np.ndarray]
SIMILARITIES = ("spearman", "ssim")


# ---------------------------------------------------------------------------- similarities


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (midranks for
    ties, as scipy's spearmanr); NaN where a row is constant."""
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ra * rb).sum(axis=1) / np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))


def ssim_rows(a: np.ndarray, b: np.ndarray, win_size: int = 7) -> np.ndarray:
    """skimage's ``structural_similarity`` of each flattened row pair, with Quantus's data range
    (max - min over both rows): uniform window of 7, K1 0.01, K2 0.03, sample covariance."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[1] < win_size:
        raise ValueError(f"ssim needs maps of at least {win_size} pixels, got {a.shape[1]}")
    both = np.concatenate([a, b], axis=1)
    data_range = np.abs(both.max(axis=1) - both.min(axis=1))[:, None]

    def mean(x: np.ndarray) -> np.ndarray:
        return uniform_filter1d(x, size=win_size, axis=1, mode="reflect")

    cov_norm = win_size / (win_size - 1)
    ux, uy = mean(a), mean(b)
    vx = cov_norm * (mean(a * a) - ux * ux)
    vy = cov_norm * (mean(b * b) - uy * uy)
    vxy = cov_norm * (mean(a * b) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win_size - 1) // 2
    return s[:, pad : s.shape[1] - pad].mean(axis=1, dtype=np.float64)


def similarity(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity ``name`` (spearman | ssim) of maps ``a`` and ``b`` (N, ...) row by row."""
    a, b = np.asarray(a).reshape(len(a), -1), np.asarray(b).reshape(len(b), -1)
    if name == "spearman":
        return spearman_rows(a, b)
    if name == "ssim":
        return ssim_rows(a, b)
    raise ValueError(f"similarity {name!r}: use one of {', '.join(SIMILARITIES)}")


def normalised(maps: np.ndarray, absolute: bool = False) -> np.ndarray:
    """Each map divided by its largest magnitude (zeros stay zeros), optionally its magnitude."""
    maps = np.asarray(maps, dtype=np.float64)
    peak = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    out = maps / np.where(peak == 0, 1.0, peak).reshape(-1, *([1] * (maps.ndim - 1)))
    return np.abs(out) if absolute else out


# ------------------------------------------------------------------------------------- MPRT


def randomisable_layers(model) -> list[str]:
    """Names of the modules Quantus randomises (those with ``reset_parameters``), top-down."""
    return [name for name, m in model.named_modules() if hasattr(m, "reset_parameters")][::-1]


def cascading_randomisation(
    model,
    explain: Explain,
    images: np.ndarray,
    targets: np.ndarray,
    layers: int | None = None,
    similarities: Sequence[str] = SIMILARITIES,
    seed: int = 42,
    original: np.ndarray | None = None,
) -> dict[str, object]:
    """Cascading MPRT: ``{"layers": names, "<similarity>": (N, L) array, ...}``.

    Column j is the similarity of the explanation after the first j + 1 layers of the top-down
    order are re-initialised with that of the trained ``model`` (``original``, explained here when
    not given). The model itself is not changed (a deep copy is randomised).
    """
    import torch

    for name in similarities:
        if name not in SIMILARITIES:
            raise ValueError(f"similarity {name!r}: use one of {', '.join(SIMILARITIES)}")
    names = randomisable_layers(model)
    if layers is not None:
        if layers < 1:
            raise ValueError(f"layers = {layers}: randomise at least one layer (or None: all)")
        names = names[:layers]
    if original is None:
        original = explain(model, images, targets)
    reference = normalised(original, absolute=True)
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    scores = {name: np.full((len(images), len(names)), np.nan) for name in similarities}
    with torch.random.fork_rng(devices=[]):
        for j, layer in enumerate(names):
            torch.manual_seed(seed + 1)  # Quantus reseeds before every layer
            modules[layer].reset_parameters()
            maps = normalised(explain(randomised, images, targets), absolute=True)
            for name in similarities:
                scores[name][:, j] = similarity(name, reference, maps)
    return {"layers": names, **scores}


# -------------------------------------------------------------------------------- RandomLogit


def off_classes(targets: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """For image i, one class other than its target, drawn as Quantus's RandomLogit draws it for
    a batch of that one image with seed ``seed + i`` (so a draw does not depend on the batch)."""
    out = np.empty(len(targets), dtype=np.int64)
    for i, target in enumerate(np.asarray(targets)):
        state = np.random.RandomState(seed + i)
        others = np.delete(np.arange(classes), int(target))
        out[i] = others[state.randint(0, classes - 1, 1)[0]]
    return out


def random_logit(
    model,
    explain: Explain,
    images: np.ndarray,
    targets: np.ndarray,
    classes: int,
    similarities: Sequence[str] = ("ssim",),
    seed: int = 42,
    original: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """RandomLogit: ``{"off_class": (N,), "<similarity>": (N,)}`` of the explanation of the target
    and of a random other class (Quantus's default similarity is ssim)."""
    if original is None:
        original = explain(model, images, targets)
    off = off_classes(targets, classes, seed)
    other = explain(model, images, off)
    a, b = normalised(original), normalised(other)
    return {"off_class": off, **{name: similarity(name, a, b) for name in similarities}}


# ------------------------------------------------------------------------ ferxai's explainers


def ferxai_explain(
    method: str, settings: dict, seeds: Sequence[int], segments: np.ndarray | None = None
) -> Explain:
    """``explain(model, images, targets)`` with ferxai's explainer of ``method`` (the study's
    settings and per-image seeds, so the trained network's maps equal the attribution stage's).
    ``segments``: LIME's superpixels of the attribution stage (SLIC is then not rerun)."""

    def explain(model, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
        import torch

        from ferxai.attribution import create_explainer

        explainer = create_explainer(method, model, **settings)
        extra = {} if segments is None else {"segments": list(segments)}
        result = explainer.explain(
            torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
            torch.as_tensor(np.asarray(targets), dtype=torch.long),
            seeds=list(seeds),
            **extra,
        )
        return result.maps.float().numpy()

    return explain
