"""Cascading MPRT and RandomLogit against Quantus 0.6.0 itself, with a deterministic explainer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
quantus = pytest.importorskip("quantus")

from ferxai.quality.randomisation import (  # noqa: E402
    cascading_randomisation,
    ferxai_explain,
    off_classes,
    random_logit,
    randomisable_layers,
    similarity,
)


def small_network(seed: int = 0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(3),
        torch.nn.Flatten(),
        torch.nn.Linear(36, 6),
    ).eval()


def gradient_x_input(model, inputs, targets, **kwargs) -> np.ndarray:
    """A deterministic explainer both sides call: input × gradient of the logit, channels summed."""
    x = torch.tensor(np.asarray(inputs), dtype=torch.float32, requires_grad=True)
    logits = model(x)
    logits[torch.arange(len(x)), torch.as_tensor(np.asarray(targets))].sum().backward()
    return (x.grad * x).sum(dim=1).detach().numpy()


def quantus_explain(model, inputs, targets, **kwargs):
    return gradient_x_input(model, inputs, targets)[:, None]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    return rng.random((4, 3, 12, 12)).astype(np.float32), np.array([0, 2, 4, 5])


def quantus_mprt(model, images, targets, similarity_func):
    """Quantus's MPRT on one image at a time (its normalisation is per batch; ours per map)."""
    rows = []
    for i in range(len(images)):
        metric = quantus.MPRT(similarity_func=similarity_func, layer_order="top_down", seed=42,
                              disable_warnings=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = metric(model=model, x_batch=images[i : i + 1], y_batch=targets[i : i + 1],
                            a_batch=None, explain_func=quantus_explain, batch_size=1,
                            device="cpu")
        rows.append([scores[name][0] for name in scores if name != "original"])
        names = [name for name in scores if name != "original"]
    return names, np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("name, func", [("spearman", "correlation_spearman"), ("ssim", "ssim")])
def test_mprt_layer_similarities_equal_quantus(data, name, func):
    images, targets = data
    model = small_network()
    ours = cascading_randomisation(model, gradient_x_input, images, targets, similarities=[name])
    quantus_func = getattr(quantus.similarity_func, func)

    def as_array(a, b, **kwargs):  # Quantus's ssim returns a list, which its MPRT cannot use
        return np.asarray(quantus_func(a, b, **kwargs))

    names, theirs = quantus_mprt(model, images, targets, as_array)
    assert ours["layers"] == names == ["7", "3", "1", "0"]
    np.testing.assert_allclose(ours[name], theirs, rtol=0, atol=1e-5)


def test_mprt_leaves_the_model_alone_and_bounds_the_layers(data):
    images, targets = data
    model = small_network()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = cascading_randomisation(model, gradient_x_input, images, targets, layers=2)
    assert result["layers"] == ["7", "3"] and result["spearman"].shape == (4, 2)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # randomising the head changes the explanation: similarity clearly below 1
    assert np.nanmean(result["spearman"][:, -1]) < 0.99


def test_random_logit_equals_quantus_image_by_image(data):
    images, targets = data
    model = small_network(1)
    ours = random_logit(model, gradient_x_input, images, targets, classes=6, seed=9,
                        similarities=["ssim", "spearman"])
    for i in range(len(images)):
        metric = quantus.RandomLogit(num_classes=6, seed=9 + i, disable_warnings=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = metric(model=model, x_batch=images[i : i + 1], y_batch=targets[i : i + 1],
                            a_batch=None, explain_func=quantus_explain, device="cpu")
        assert ours["ssim"][i] == pytest.approx(theirs[0], abs=1e-5)
    assert (ours["off_class"] != targets).all()


def test_off_classes_are_other_classes_and_reproducible():
    targets = np.arange(6).repeat(20)
    off = off_classes(targets, 6, seed=1)
    assert (off != targets).all() and set(off) == set(range(6))
    np.testing.assert_array_equal(off, off_classes(targets, 6, seed=1))


def test_similarities_equal_scipy_and_skimage():
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a, b = rng.random((3, 50)), rng.random((3, 50))
    b[1] = a[1] * 2 + 0.1  # monotone: spearman 1
    for i in range(3):
        assert similarity("spearman", a, b)[i] == pytest.approx(spearmanr(a[i], b[i])[0])
        both = np.concatenate([a[i], b[i]])
        expected = structural_similarity(a[i], b[i], data_range=both.max() - both.min())
        assert similarity("ssim", a, b)[i] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="similarity 'cosine'"):
        similarity("cosine", a, b)


def test_ferxai_explainer_recomputes_the_attribution_maps(data):
    """The maps MPRT compares are ferxai's explainer's: for the trained network, the same call
    as the attribute stage (same settings and seeds) gives the same maps."""
    from ferxai.attribution import create_explainer

    images, targets = data
    model = small_network()
    settings = {"num_samples": 20, "n_segments": 8, "batch_size": 20, "cpu_forward": "eager"}
    maps = ferxai_explain("lime", settings, seeds=[5, 6, 7, 8])(model, images, targets)
    direct = create_explainer("lime", model, **settings).explain(
        torch.from_numpy(images), torch.from_numpy(targets), seeds=[5, 6, 7, 8]
    )
    np.testing.assert_array_equal(maps, direct.maps.numpy())
    assert randomisable_layers(model)[0] == "7"
