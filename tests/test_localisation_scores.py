"""Localisation scores against Quantus 0.6.0 itself (the classes, with their defaults)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ferxai.comparison.groundtruth import ekman_masks
from ferxai.comparison.localisation_scores import LOCALISATION_SCORES, localisation_scores
from ferxai.core.constants import EXPRESSIONS

quantus = pytest.importorskip("quantus")

QUANTUS_CLASSES = {
    "pointing_game": "PointingGame",
    "attribution_localisation": "AttributionLocalisation",
    "top_k_intersection": "TopKIntersection",
    "relevance_rank_accuracy": "RelevanceRankAccuracy",
    "relevance_mass_accuracy": "RelevanceMassAccuracy",
    "auc": "AUC",
}


@pytest.fixture(scope="module")
def masks() -> np.ndarray:
    spec = ekman_masks()
    return np.stack([spec[name] for name in EXPRESSIONS])


def quantus_scores(name: str, maps: np.ndarray, masks: np.ndarray, **kwargs) -> np.ndarray:
    metric = getattr(quantus, QUANTUS_CLASSES[name])(disable_warnings=True, **kwargs)
    rng = np.random.default_rng(0)
    x = rng.random((len(maps), 3, *maps.shape[1:]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = metric(
            model=None,
            x_batch=x,
            y_batch=np.zeros(len(maps), dtype=int),
            a_batch=maps[:, None].copy(),
            s_batch=masks[:, None].astype(float),
        )
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize("name", LOCALISATION_SCORES)
def test_each_score_equals_quantus_on_the_ekman_masks(name, masks):
    rng = np.random.default_rng(23)
    maps = rng.random((3 * len(masks), *masks.shape[1:]))
    stacked = np.tile(masks, (3, 1, 1))
    ours = localisation_scores(maps, stacked)[name]
    theirs = quantus_scores(name, maps, stacked)
    assert ours.shape == (len(maps),) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", LOCALISATION_SCORES)
def test_scores_equal_quantus_on_quantised_maps_with_ties(name, masks):
    """Heatmaps are uint8 on disk: many tied pixels, which argsort and the ROC must treat alike."""
    rng = np.random.default_rng(5)
    maps = np.floor(rng.random((len(masks), *masks.shape[1:])) * 6) / 5  # six levels
    ours = localisation_scores(maps, masks)[name]
    np.testing.assert_allclose(ours, quantus_scores(name, maps, masks), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", LOCALISATION_SCORES)
def test_signed_maps_and_a_custom_k_equal_quantus(name, masks):
    rng = np.random.default_rng(7)
    maps = rng.normal(size=(len(masks), *masks.shape[1:])) + 0.5
    kwargs = {"k": 250} if name == "top_k_intersection" else {}
    ours = localisation_scores(maps, masks, k=250)[name]
    np.testing.assert_allclose(ours, quantus_scores(name, maps, masks, **kwargs), atol=1e-6)


def test_pointing_game_on_an_empty_mask_is_nan_where_quantus_says_hit():
    """Quantus 0.6.0 writes NaN into a bool array (which becomes True): its formula, not its output."""
    rng = np.random.default_rng(1)
    maps = rng.random((3, 16, 16))
    masks = np.zeros((3, 16, 16), dtype=bool)
    peak = np.unravel_index(np.argmax(maps[0]), (16, 16))
    masks[0][peak] = True  # contains the maximum: a hit
    masks[1][:4] = True
    masks[1][np.unravel_index(np.argmax(maps[1]), (16, 16))] = False  # misses the maximum
    scores = localisation_scores(maps, masks, k=10)
    expected = [float(np.any(m & (a == a.max()))) for a, m in zip(maps[:2], masks[:2])]
    assert scores["pointing_game"][:2].tolist() == expected == [1.0, 0.0]
    for name in LOCALISATION_SCORES:
        assert np.isnan(scores[name][2]), name


def test_one_mask_broadcasts_to_all_maps(masks):
    rng = np.random.default_rng(3)
    maps = rng.random((4, *masks.shape[1:]))
    one = localisation_scores(maps, masks[2])
    each = localisation_scores(maps, np.repeat(masks[2:3], 4, axis=0))
    for name in LOCALISATION_SCORES:
        np.testing.assert_array_equal(one[name], each[name])


def test_scores_of_a_map_do_not_depend_on_its_batch(masks):
    rng = np.random.default_rng(4)
    maps = rng.random((2, *masks.shape[1:]))
    maps[1] *= 1000.0
    together = localisation_scores(maps, masks[:2])
    alone = localisation_scores(maps[:1], masks[:1])
    for name in LOCALISATION_SCORES:
        assert together[name][0] == pytest.approx(alone[name][0], abs=1e-12)


def test_a_perfect_map_scores_one():
    masks = np.zeros((1, 40, 40), dtype=bool)
    masks[0, 10:30, 10:30] = True
    scores = localisation_scores(masks.astype(float), masks, k=100)
    for name in LOCALISATION_SCORES:
        assert scores[name][0] == pytest.approx(1.0, abs=1e-9), name


@pytest.mark.parametrize(
    "maps, masks, k, message",
    [
        (np.zeros((2, 8, 8)), np.zeros((3, 8, 8)), 5, "do not match"),
        (np.zeros((2, 8, 8)), np.zeros((8, 8)), 65, "k = 65"),
        (np.zeros((2, 8, 8)), np.zeros((8, 8)), 0, "k = 0"),
        (np.full((1, 8, 8), np.nan), np.zeros((8, 8)), 5, "NaN"),
        (np.zeros((8,)), np.zeros((8,)), 5, "(N, H, W)"),
    ],
)
def test_bad_input_is_refused_with_a_message(maps, masks, k, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        localisation_scores(maps, masks, k=k)
