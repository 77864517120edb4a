"""Thresholds (Otsu as OpenCV, fixed, top-k, best) and metrics against masks."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferxai.comparison.metrics import (
    binary_metrics,
    binary_metrics_batch,
    mass_inside,
    nss,
    pearson,
    pearson_matrix,
    percentile_interval,
    roc_auc,
    spearman,
)
from ferxai.comparison.thresholds import (
    ThresholdSpec,
    best_iou_threshold,
    binarize,
    otsu_threshold,
    otsu_thresholds,
    parse_threshold,
    topk_threshold,
)
from ferxai.core.errors import ConfigError

REFERENCE = Path(
    os.environ.get(
        "FERXAI_REFERENCE_DIR",
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "gaya-morey-2024",
    )
)


def _random_uint8_images(rng: np.random.Generator) -> list[np.ndarray]:
    images = [rng.integers(0, 256, (31, 27), dtype=np.uint8) for _ in range(60)]
    images += [(rng.random((40, 33)) ** 3 * 255).astype(np.uint8) for _ in range(60)]
    images += [rng.choice([3, 7, 200, 201], (20, 20)).astype(np.uint8) for _ in range(60)]
    images += [rng.choice([0, 255], (9, 9)).astype(np.uint8) for _ in range(20)]
    images += [np.full((10, 10), 5, np.uint8), np.zeros((5, 5), np.uint8)]
    return images


def _cv2_otsu(image: np.ndarray) -> float:
    return cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]


def test_otsu_equals_opencv_on_random_images():
    for image in _random_uint8_images(np.random.default_rng(0)):
        assert otsu_threshold(image) == _cv2_otsu(image)


def test_otsu_mask_equals_opencv_binary_output():
    image = (np.random.default_rng(1).random((50, 40)) ** 2 * 255).astype(np.uint8)
    mask, t = binarize(image, ThresholdSpec("otsu"))
    _, cv_mask = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    np.testing.assert_array_equal(mask, cv_mask == 255)
    assert t == _cv2_otsu(image)


def test_otsu_batched_equals_one_by_one():
    rng = np.random.default_rng(2)
    batch = (rng.random((7, 3, 20, 30)) ** 2 * 255).astype(np.uint8)
    expected = np.array([[_cv2_otsu(img) for img in row] for row in batch])
    np.testing.assert_array_equal(otsu_thresholds(batch), expected)


@pytest.mark.skipif(not (REFERENCE / "heatmaps_by_net").is_dir(), reason="published data absent")
def test_otsu_equals_opencv_on_published_heatmaps():
    paths = sorted((REFERENCE / "heatmaps_by_net").glob("*.png"))
    paths += sorted((REFERENCE / "heatmaps_total").glob("*.png"))
    images = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
    expected = np.array([_cv2_otsu(img) for img in images])
    np.testing.assert_array_equal(otsu_thresholds(images), expected)


def test_parse_threshold_accepts_the_four_forms_and_rejects_others():
    assert parse_threshold("otsu") == ThresholdSpec("otsu")
    assert parse_threshold("fixed:128") == ThresholdSpec("fixed", 128.0)
    assert parse_threshold("topk:10") == ThresholdSpec("topk", 10.0)
    assert parse_threshold("best").label == "best (optimistic)"
    for bad in ("otsu:3", "fixed", "fixed:300", "topk:-1", "topk:x", "median"):
        with pytest.raises(ConfigError, match="--threshold"):
            parse_threshold(bad)


def test_fixed_threshold_is_strictly_greater():
    image = np.array([[10, 100, 101, 255]], dtype=np.uint8)
    mask, _ = binarize(image, parse_threshold("fixed:100"))
    assert mask.tolist() == [[False, False, True, True]]


def test_topk_keeps_the_share_of_highest_pixels_with_ties():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    mask, _ = binarize(image, parse_threshold("topk:10"))
    assert mask.sum() == 10 and mask.ravel()[90:].all()
    plateau = np.array([[1, 5, 5, 5, 9]], dtype=np.uint8)
    assert (plateau > topk_threshold(plateau, 40)).tolist() == [[False, True, True, True, True]]
    assert not (image > topk_threshold(image, 0)).any()
    assert (image > topk_threshold(image, 100)).all()


def test_best_threshold_maximizes_iou_over_every_threshold():
    rng = np.random.default_rng(3)
    gt = np.zeros((30, 30), bool)
    gt[5:15, 8:20] = True
    image = np.clip(gt * 120 + rng.normal(60, 40, gt.shape), 0, 255).astype(np.uint8)
    t = best_iou_threshold(image, gt)
    brute = [binary_metrics(image > s, gt)["iou"] for s in range(256)]
    assert binary_metrics(image > t, gt)["iou"] == pytest.approx(max(brute))
    assert t == int(np.nanargmax(brute))
    otsu_iou = binary_metrics(binarize(image, ThresholdSpec("otsu"))[0], gt)["iou"]
    assert max(brute) >= otsu_iou
    with pytest.raises(ConfigError, match="best"):
        binarize(image, ThresholdSpec("best"))


def test_binary_metrics_by_hand():
    predicted = np.array([1, 1, 1, 0, 0, 0], bool)
    gt = np.array([1, 0, 0, 1, 1, 0], bool)  # TP 1, FP 2, FN 2
    got = binary_metrics(predicted, gt)
    assert got == pytest.approx({"iou": 1 / 5, "f1": 2 / 6, "precision": 1 / 3, "recall": 1 / 3})


def test_binary_metrics_undefined_cases_are_nan():
    nothing = np.zeros(4, bool)
    got = binary_metrics(nothing, np.array([1, 1, 0, 0], bool))
    assert got["iou"] == 0 and got["recall"] == 0 and np.isnan(got["precision"])
    assert np.isnan(binary_metrics(nothing, nothing)["iou"])


def test_binary_metrics_batch_matches_single():
    rng = np.random.default_rng(4)
    preds = rng.random((5, 12, 9)) > 0.5
    gt = rng.random((12, 9)) > 0.6
    batch = binary_metrics_batch(preds, gt)
    for i, pred in enumerate(preds):
        for name, value in binary_metrics(pred, gt).items():
            assert batch[name][i] == pytest.approx(value)


def test_pearson_equals_opencv_tm_ccoeff_normed():
    rng = np.random.default_rng(5)
    a = (rng.random((27, 22)) * 255).astype(np.uint8)
    b = np.clip(a * 0.5 + rng.random(a.shape) * 120, 0, 255).astype(np.uint8)
    expected = cv2.matchTemplate(a, b, cv2.TM_CCOEFF_NORMED)[0, 0]
    assert pearson(a, b) == pytest.approx(float(expected), abs=1e-5)
    assert pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_pearson_of_constant_image_is_nan():
    matrix = pearson_matrix(np.stack([np.full((4, 4), 7.0), np.eye(4), np.eye(4)]))
    assert np.isnan(matrix[0]).all() and np.isnan(matrix[:, 0]).all()
    assert matrix[1, 2] == pytest.approx(1.0) and matrix[1, 1] == 1.0


def test_roc_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(6)
    gt = rng.random((20, 20)) > 0.7
    heat = np.round(gt * 0.3 + rng.random(gt.shape), 1)  # quantized: many ties
    assert roc_auc(heat, gt) == pytest.approx(roc_auc_score(gt.ravel(), heat.ravel()))
    assert np.isnan(roc_auc(heat, np.zeros_like(gt)))


def test_mass_inside_nss_and_spearman():
    gt = np.array([[1, 0], [0, 0]], bool)
    heat = np.array([[3.0, 1.0], [0.0, 0.0]])
    assert mass_inside(heat, gt) == pytest.approx(0.75)
    z = (heat - heat.mean()) / heat.std()
    assert nss(heat, gt) == pytest.approx(z[0, 0])
    assert np.isnan(nss(np.ones((2, 2)), gt)) and np.isnan(mass_inside(np.zeros((2, 2)), gt))
    from scipy.stats import spearmanr

    rng = np.random.default_rng(7)
    a, b = rng.random((6, 5)), rng.random((6, 5))
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0])


def test_percentile_interval_skips_nan():
    low, high = percentile_interval(np.array([np.nan, *range(101)]))
    assert (low, high) == pytest.approx((2.5, 97.5))
    assert all(np.isnan(percentile_interval(np.array([np.nan]))))
