"""Faithfulness curves: PixelFlipping and RegionPerturbation against Quantus 0.6.0 itself, and the
deletion / insertion curves (Petsiuk et al. 2018) against their definition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
quantus = pytest.importorskip("quantus")

from ferxai.quality.faithfulness import (  # noqa: E402
    curve_area,
    deletion_insertion,
    features_in_step_for,
    pixel_flipping,
    probability_forward,
    region_perturbation,
)


def small_network(seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 6),
    ).eval()


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(23)
    images = rng.random((5, 3, 22, 18)).astype(np.float32)
    smooth = rng.random((5, 22, 18))
    # LIME-like maps: constant over blocks, so many tied pixels (and tied patches)
    blocky = np.kron(rng.integers(0, 4, size=(5, 11, 6)), np.ones((2, 3))).astype(np.float64)
    return images, {"smooth": smooth, "blocky": blocky}, np.array([0, 1, 2, 3, 5])


def quantus_call(metric, model, images, maps, targets):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = metric(model=model, x_batch=images, y_batch=targets, a_batch=maps[:, None],
                        device="cpu")
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize("kind", ["smooth", "blocky"])
@pytest.mark.parametrize("features_in_step", [22, 66])
def test_pixel_flipping_equals_quantus(batch, kind, features_in_step):
    images, maps, targets = batch
    model = small_network()
    ours = pixel_flipping(probability_forward(model, 32), images, maps[kind], targets,
                          features_in_step=features_in_step, batch_size=32)
    metric = quantus.PixelFlipping(features_in_step=features_in_step, disable_warnings=True)
    theirs = quantus_call(metric, model, images, maps[kind], targets)
    assert ours.shape == theirs.shape == (5, 3 * 22 * 18 // features_in_step)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    # Quantus's area per sample is np.trapz(curve, dx=1) (its calculate_auc; np.trapz is gone
    # from numpy 2.4, so Quantus's own return_auc_per_sample fails here)
    np.testing.assert_allclose(curve_area(ours), np.trapezoid(theirs, dx=1, axis=1), atol=1e-9)


@pytest.mark.parametrize("kind", ["smooth", "blocky"])
@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("patch_size", [4, 5])
def test_region_perturbation_equals_quantus(batch, kind, order, patch_size):
    """Patch 4 and 5 do not divide 22 × 18: the padding of Quantus is reproduced too."""
    images, maps, targets = batch
    model = small_network(1)
    ours = region_perturbation(probability_forward(model, 16), images, maps[kind], targets,
                               patch_size=patch_size, order=order, regions=12,
                               batch_size=16)
    metric = quantus.RegionPerturbation(patch_size=patch_size, order=order,
                                        regions_evaluation=12, disable_warnings=True)
    theirs = quantus_call(metric, model, images, maps[kind], targets)
    assert ours.shape == theirs.shape == (5, 12)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_curves_do_not_depend_on_the_forward_batch(batch):
    images, maps, targets = batch
    model = small_network()
    small = pixel_flipping(
        probability_forward(model, 3), images, maps["smooth"], targets, 66, batch_size=3
    )
    large = pixel_flipping(
        probability_forward(model, 500), images, maps["smooth"], targets, 66, batch_size=500
    )
    np.testing.assert_allclose(small, large, atol=1e-6)


def test_deletion_and_insertion_follow_their_definition(batch):
    images, maps, targets = batch
    model = small_network(2)
    forward = probability_forward(model, 64)
    steps = 4
    deletion, insertion = deletion_insertion(forward, images, maps["smooth"], targets, steps=steps)
    assert deletion.shape == insertion.shape == (5, steps + 1)
    n, pixels = len(images), 22 * 18
    lowest = images.reshape(n, -1).min(axis=1)
    for i in range(n):
        order = np.argsort(-maps["smooth"][i].ravel(), kind="stable")
        for t in range(steps + 1):
            removed = np.zeros(pixels, bool)
            removed[order[: round(t * pixels / steps)]] = True
            removed = removed.reshape(22, 18)
            deleted = np.where(removed, lowest[i], images[i])[None].astype(np.float32)
            inserted = np.where(removed, images[i], lowest[i])[None].astype(np.float32)
            assert deletion[i, t] == pytest.approx(forward(deleted)[0, targets[i]], abs=1e-6)
            assert insertion[i, t] == pytest.approx(forward(inserted)[0, targets[i]], abs=1e-6)
    # the ends: the image itself and the plain baseline, in both directions
    np.testing.assert_allclose(deletion[:, 0], insertion[:, -1], atol=1e-6)
    np.testing.assert_allclose(deletion[:, -1], insertion[:, 0], atol=1e-6)
    np.testing.assert_allclose(curve_area(deletion, 1 / steps)[0],
                               np.trapezoid(deletion[0], np.linspace(0, 1, steps + 1)))


def test_a_faithful_map_deletes_faster_than_its_reverse():
    """On a linear 'network' whose evidence is one region, the map of that region has a smaller
    deletion and larger insertion area than the inverted map."""
    weight = torch.zeros(2, 3, 16, 16)
    weight[0, :, 4:8, 4:8] = 0.2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 2, bias=False)).eval()
    model[1].weight.data = weight.reshape(2, -1)
    images = np.ones((1, 3, 16, 16), np.float32) * 0.5
    good = weight[0, 0].numpy()[None].astype(np.float64) + 1e-3
    bad = 1.0 - good
    forward = probability_forward(model)
    target = np.array([0])
    d_good, i_good = deletion_insertion(forward, images, good, target, steps=8, baseline=0.0)
    d_bad, i_bad = deletion_insertion(forward, images, bad, target, steps=8, baseline=0.0)
    assert curve_area(d_good, 1 / 8)[0] < curve_area(d_bad, 1 / 8)[0]
    assert curve_area(i_good, 1 / 8)[0] > curve_area(i_bad, 1 / 8)[0]


def test_features_in_step_divides_the_pixels():
    assert features_in_step_for(32, 32, 3, 16) == 128
    assert features_in_step_for(22, 18, 3, 1000) == 1
    for h, w, steps in [(40, 40, 16), (75, 75, 10), (71, 71, 20)]:
        f = features_in_step_for(h, w, 3, steps)
        assert (h * w) % f == 0 and f <= 3 * h * w // steps


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda f, x, a, y: deletion_insertion(f, x, a, y, steps=1), "steps = 1"),
        (lambda f, x, a, y: pixel_flipping(f, x, a, y, features_in_step=7), "must divide"),
        (lambda f, x, a, y: region_perturbation(f, x, a, y, order="up"), "order 'up'"),
        (lambda f, x, a, y: region_perturbation(f, x, a, y, patch_size=99), "patch_size = 99"),
        (lambda f, x, a, y: deletion_insertion(f, x, a[:, :3], y), "same N, H, W"),
        (lambda f, x, a, y: deletion_insertion(f, x, a, y, baseline="grey"), "baseline 'grey'"),
    ],
)
def test_bad_settings_are_refused(batch, call, message):
    images, maps, targets = batch
    with pytest.raises(ValueError, match=message):
        call(probability_forward(small_network()), images, maps["smooth"], targets)


def test_linear_imputation_equals_quantus():
    """ROAD's imputation against Quantus's noisy_linear_imputation (noise 0: the system alone)."""
    from quantus.functions.perturb_func import noisy_linear_imputation

    from ferxai.quality.faithfulness import linear_imputation

    rng = np.random.default_rng(2)
    image = rng.random((3, 9, 7))
    for count in (1, 10, 40, 63):
        indices = rng.permutation(63)[:count]
        ours = linear_imputation(image, indices, noise=0.0)
        theirs = noisy_linear_imputation(arr=image, indices=indices, noise=0.0)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)
    kept = np.setdiff1d(np.arange(63), indices)
    np.testing.assert_array_equal(ours.reshape(3, -1)[:, kept], image.reshape(3, -1)[:, kept])


def test_road_curves_follow_their_definition(batch):
    from ferxai.quality.faithfulness import linear_imputation, road

    images, maps, targets = batch
    forward = probability_forward(small_network(3))
    curves = road(forward, images, maps["smooth"], targets, percentages=(20, 60), noise=0.01,
                  seed=5)
    assert curves.shape == (5, 2)
    i, p = 2, 60
    order = np.argsort(-maps["smooth"][i].ravel(), kind="stable")
    # the generator draws percentage 20's noise first
    rng = np.random.default_rng(5 + i)
    linear_imputation(images[i], order[: int(22 * 18 * 20 / 100)], 0.01, rng)
    imputed = linear_imputation(images[i], order[: int(22 * 18 * p / 100)], 0.01, rng)
    expected = forward(imputed[None].astype(np.float32))[0, targets[i]]
    assert curves[i, 1] == pytest.approx(expected, abs=1e-6)
