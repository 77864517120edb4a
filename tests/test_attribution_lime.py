"""ferxai's LIME equals lime 0.2.0.1's LimeImageExplainer, and its pieces match sklearn's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferxai.attribution import create_explainer
from ferxai.attribution.lime import kernel_weights, sample_perturbations, weighted_ridge
from ferxai.core.errors import ConfigError

SIZE = 64
SAMPLES = 300
SEED = 7
TARGET = 3


def small_cnn() -> torch.nn.Module:
    """A fixed random CNN whose softmax moves visibly when superpixels are hidden."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 6),
    )
    with torch.no_grad():
        model[-1].weight.mul_(20.0)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return small_cnn()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """The real test image, resized to the network input and scaled to [0, 1] (H, W, 3)."""
    from skimage.data import astronaut as load
    from skimage.transform import resize

    return resize(load(), (SIZE, SIZE), anti_aliasing=True).astype(np.float32)


@pytest.fixture(scope="module")
def lime_reference(model, astronaut):
    """lime 0.2.0.1 with the paper's settings on the same network (softmax, fp32) and image."""
    lime_image = pytest.importorskip("lime.lime_image")
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch).permute(0, 3, 1, 2).float())
        return torch.softmax(logits, dim=1).numpy()

    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=SEED)
    return explainer.explain_instance(
        astronaut,
        classifier_fn,
        labels=(TARGET,),
        hide_color=0,
        top_labels=None,
        num_features=100000,
        num_samples=SAMPLES,
        batch_size=10,
        segmentation_fn=SegmentationAlgorithm("slic", n_segments=30, compactness=20, start_label=0),
        random_seed=SEED,
    )


def explain(model, astronaut, **settings):
    images = torch.from_numpy(astronaut).permute(2, 0, 1)[None]
    explainer = create_explainer("lime", model, num_samples=SAMPLES, seed=SEED, **settings)
    return explainer.explain(images, torch.tensor([TARGET]))


def lime_map(reference, keep: str) -> np.ndarray:
    """The map painted from lime's ``local_exp``, sign-filtered as ferxai's ``keep`` documents."""
    weights = np.zeros(reference.segments.max() + 1)
    for feature, weight in reference.local_exp[TARGET]:
        weights[feature] = weight
    kept = {
        "positive": np.clip(weights, 0, None),
        "negative": np.clip(-weights, 0, None),
        "absolute": np.abs(weights),
    }[keep]
    return kept[reference.segments]


def test_segments_and_weights_equal_lime_package(model, astronaut, lime_reference):
    result = explain(model, astronaut)
    np.testing.assert_array_equal(result.segments[0].numpy(), lime_reference.segments)
    ours = result.segment_weights[0]
    theirs = np.zeros_like(ours)
    for feature, weight in lime_reference.local_exp[TARGET]:
        theirs[feature] = weight
    assert len(lime_reference.local_exp[TARGET]) == len(ours) >= 10
    assert np.abs(theirs).max() > 1e-3, "the test network must respond to the perturbations"
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.intercepts[0], lime_reference.intercept[TARGET], atol=1e-5)


@pytest.mark.parametrize("keep", ["positive", "negative", "absolute"])
def test_maps_equal_lime_package(model, astronaut, lime_reference, keep):
    maps = explain(model, astronaut, keep=keep).maps
    assert maps.shape == (1, SIZE, SIZE) and maps.dtype == torch.float32
    expected = lime_map(lime_reference, keep)
    assert (expected > 0).any() and (expected == 0).any() or keep == "absolute"
    np.testing.assert_allclose(maps[0].numpy(), expected, rtol=0, atol=1e-5)


def test_bf16_weights_correlate_with_fp32(model, astronaut):
    fp32 = explain(model, astronaut, precision="fp32").segment_weights[0]
    bf16 = explain(model, astronaut, precision="bf16").segment_weights[0]
    assert np.corrcoef(fp32, bf16)[0, 1] >= 0.99


def test_perturbations_are_lime_random_state_draws():
    data = sample_perturbations(seed=3, num_samples=50, n_features=17)
    expected = np.random.RandomState(3).randint(0, 2, 50 * 17).reshape(50, 17)
    expected[0] = 1
    np.testing.assert_array_equal(data, expected)


def test_kernel_weights_match_sklearn_cosine_kernel():
    from sklearn.metrics import pairwise_distances

    data = sample_perturbations(seed=1, num_samples=64, n_features=12).astype(np.float64)
    data[5] = 0  # an all-hidden row: sklearn's distance is 1
    distance = pairwise_distances(data, data[:1], metric="cosine").ravel()
    expected = np.sqrt(np.exp(-(distance**2) / 0.25**2))
    ours = kernel_weights(torch.from_numpy(data.sum(1))[None], torch.tensor([12.0]), 0.25)
    np.testing.assert_allclose(ours[0].numpy(), expected, rtol=0, atol=1e-12)


def test_batched_ridge_matches_sklearn_with_padding():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    counts = (9, 14)
    features = np.zeros((2, 80, max(counts)))
    targets, weights, expected = rng.random((2, 80)), rng.random((2, 80)) + 0.1, []
    for i, count in enumerate(counts):
        features[i, :, :count] = rng.integers(0, 2, (80, count))
        fit = Ridge(alpha=1.0).fit(features[i, :, :count], targets[i], sample_weight=weights[i])
        expected.append((fit.coef_, fit.intercept_))
    coef, intercept = weighted_ridge(*map(torch.from_numpy, (features, targets, weights)))
    for i, count in enumerate(counts):
        np.testing.assert_allclose(coef[i, :count].numpy(), expected[i][0], atol=1e-10)
        np.testing.assert_allclose(float(intercept[i]), expected[i][1], atol=1e-10)
        assert (coef[i, count:] == 0).all()


def test_result_independent_of_batching_and_deterministic(model, astronaut):
    images = torch.stack(
        [
            torch.from_numpy(astronaut).permute(2, 0, 1),
            torch.from_numpy(astronaut[::-1].copy()).permute(2, 0, 1),
        ]
    )
    target = torch.tensor([TARGET, 1])
    settings = dict(num_samples=64, seed=11)
    together = create_explainer("lime", model, batch_size=128, **settings).attribute(images, target)
    again = create_explainer("lime", model, batch_size=128, **settings).attribute(images, target)
    torch.testing.assert_close(together, again, rtol=0, atol=0)
    second = create_explainer("lime", model, batch_size=16, **settings).attribute(
        images[1:], target[1:], seeds=[12]
    )
    torch.testing.assert_close(together[1:], second, rtol=0, atol=1e-6)
    assert not torch.equal(together[0], together[1])


def test_hide_color_fills_hidden_superpixels(model, astronaut):
    """A non-zero hide colour changes the neighbourhood, so the weights must change."""
    zero = explain(model, astronaut).segment_weights[0]
    grey = explain(model, astronaut, hide_color=0.5).segment_weights[0]
    assert not np.allclose(zero, grey)


@pytest.mark.parametrize(
    "settings",
    [{"n_segment": 30}, {"keep": "both"}, {"precision": "fp16"}, {"num_samples": 1}],
)
def test_bad_settings_raise_config_error_naming_the_key(model, settings):
    with pytest.raises(ConfigError, match=next(iter(settings))):
        create_explainer("lime", model, **settings)


def test_unknown_method_lists_valid_ones(model):
    with pytest.raises(ConfigError, match="kernel_shap"):
        create_explainer("shapley", model)
