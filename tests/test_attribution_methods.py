"""Every method: shapes, semantics, no hooks left; KernelSHAP, occlusion, IG, Grad-CAM in detail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferxai.attribution import METHODS, create_explainer
from ferxai.core.errors import ConfigError

SIZE = 48


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 6),
    )
    with torch.no_grad():
        model[-1].weight.mul_(10.0)
    return model.eval()


def astronaut_batch(size: int, count: int = 2) -> torch.Tensor:
    """Real-image crops (SLIC needs structure), (count, 3, size, size) in [0, 1]."""
    from skimage.data import astronaut
    from skimage.transform import resize

    image = resize(astronaut(), (size, size), anti_aliasing=True).astype(np.float32)
    batch = [image, image[:, ::-1]][:count]
    return torch.stack([torch.from_numpy(b.copy()).permute(2, 0, 1) for b in batch])


def fast_settings(method: str, size: int) -> dict:
    """Tiny but real settings: every method still perturbs or integrates."""
    return {
        "lime": {"num_samples": 16, "batch_size": 16},
        "kernel_shap": {"num_samples": 16, "batch_size": 16},
        "occlusion": {"window": size // 2, "stride": size // 2, "batch_size": 8},
        "integrated_gradients": {"n_steps": 3, "batch_size": 3},
        "gradient_shap": {"n_samples": 2},
        "shapley_value_sampling": {"n_samples": 1, "n_segments": 6},
        "feature_ablation": {"n_segments": 6},
        "rise": {"masks": 16},
    }.get(method, {})


def hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


@pytest.mark.parametrize("method", METHODS)
def test_every_method_maps_shape_and_leaves_no_hooks(method):
    model = small_cnn()
    images = astronaut_batch(SIZE)
    maps = create_explainer(method, model, **fast_settings(method, SIZE)).attribute(
        images, torch.tensor([1, 4])
    )
    assert maps.shape == (2, SIZE, SIZE) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    assert maps.abs().sum() > 0
    assert hook_count(model) == 0
    assert not any(p.grad is not None for p in model.parameters())


def test_kernel_shap_is_seeded_and_constant_per_superpixel():
    model = small_cnn()
    images = astronaut_batch(SIZE, 1)
    settings = {"num_samples": 40, "keep": "absolute"}
    first = create_explainer("kernel_shap", model, **settings).explain(images, torch.tensor([2]))
    again = create_explainer("kernel_shap", model, **settings).attribute(images, torch.tensor([2]))
    torch.testing.assert_close(first.maps, again, rtol=0, atol=0)
    segments = first.segments[0]
    painted = first.segment_weights[0][segments.numpy()]
    np.testing.assert_allclose(first.maps[0].numpy(), np.abs(painted), atol=1e-6)


def test_occlusion_of_the_evidence_patch_is_the_probability_drop():
    """One window covering the whole image: map = p(image) - p(baseline) everywhere."""
    model = small_cnn()
    images = astronaut_batch(16, 1)
    settings = {"window": 16, "stride": 16, "keep": "absolute"}
    maps = create_explainer("occlusion", model, **settings).attribute(images, torch.tensor([5]))
    with torch.no_grad():
        probs = torch.softmax(model(torch.cat([images, torch.zeros_like(images)])), dim=1)[:, 5]
    expected = (probs[0] - probs[1]).abs().item() * 3  # summed over the 3 channels
    torch.testing.assert_close(maps, torch.full_like(maps, expected), rtol=1e-5, atol=1e-7)


def test_integrated_gradients_complete_to_the_probability_difference():
    model = small_cnn()
    images = astronaut_batch(SIZE, 1)
    explainer = create_explainer("integrated_gradients", model, n_steps=64, keep="positive")
    positive = explainer.attribute(images, torch.tensor([0])).sum()
    negative = (
        create_explainer("integrated_gradients", model, n_steps=64, keep="negative")
        .attribute(images, torch.tensor([0]))
        .sum()
    )
    with torch.no_grad():
        probs = torch.softmax(model(torch.cat([images, torch.zeros_like(images)])), dim=1)[:, 0]
    assert (positive - negative).item() == pytest.approx((probs[0] - probs[1]).item(), abs=2e-3)


def test_gradcam_finds_last_conv_and_accepts_a_named_layer():
    model = small_cnn()
    images = astronaut_batch(SIZE, 1)
    auto = create_explainer("gradcam", model)
    auto.attribute(images, torch.tensor([3]))
    assert auto.layer_name == "3"  # the ReLU after the last convolution
    named = create_explainer("gradcam", model, layer="0").attribute(images, torch.tensor([3]))
    assert named.shape == (1, SIZE, SIZE)
    with pytest.raises(ConfigError, match="conv"):
        create_explainer("gradcam", model, layer="nope").attribute(images, torch.tensor([3]))
    assert hook_count(model) == 0


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("occlusion", {"window": 0}),
        ("integrated_gradients", {"steps": 4}),
        ("gradcam", {"layer": 3}),
    ],
)
def test_bad_settings_raise_config_error(method, settings):
    with pytest.raises(ConfigError, match=next(iter(settings))):
        create_explainer(method, small_cnn(), **settings)


def _network_names() -> list[str]:
    try:
        from ferxai.networks import list_models
    except ImportError:
        return []
    return list_models()


@pytest.mark.parametrize("network", _network_names())
def test_every_method_on_every_network(network):
    from ferxai.networks import create_model, min_input_size

    size = max(min_input_size(network), 32)
    torch.manual_seed(0)
    model = create_model(network, input_size=size).eval()
    images = astronaut_batch(size, 1)
    for method in METHODS:
        settings = fast_settings(method, size)
        if method == "ablationcam":  # one forward per channel of a 2048-channel stage otherwise
            settings["ratio_channels_to_ablate"] = 0.05
        explainer = create_explainer(method, model, **settings)
        if method == "fullgrad" and network == "Xception":
            with pytest.raises(ConfigError, match="another CAM"):  # the library's limitation
                explainer.attribute(images, torch.tensor([2]))
            continue
        maps = explainer.attribute(images, torch.tensor([2]))
        assert maps.shape == (1, size, size), method
        assert torch.isfinite(maps).all(), method
    assert hook_count(model) == 0
