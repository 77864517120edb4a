"""Every library method equals the library called directly: same model, input, target, layer,
baseline and seed, to 1e-5 of the map's largest magnitude; on WeiNet (scratch) and ResNet50.

The references below call captum and pytorch-grad-cam as their documentation does, with their
own forward functions and superpixels, so a wrong argument, a lost seed, a mis-sliced batch or a
wrong channel reduction in ferxai shows up as a difference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ferxai.attribution import create_explainer
from ferxai.attribution.settings import CAM_METHODS

SEED = 11
NETWORKS = {"WeiNet": (48, "features"), "ResNet50": (64, "backbone.layer4")}

# Small but real settings; batch_size large enough that both images share one call.
SETTINGS = {
    "saliency": {"noise_tunnel": {"type": "smoothgrad", "samples": 3, "stdev": 0.1}},
    "input_x_gradient": {"keep": "signed"},
    "guided_backprop": {"keep": "absolute"},
    "deconvolution": {},
    "deeplift": {"baseline": 0.25, "keep": "signed"},
    "deeplift_shap": {"baselines": [0.0, 0.5, 1.0], "keep": "signed"},
    "gradient_shap": {"n_samples": 4, "stdevs": 0.05, "keep": "signed"},
    "integrated_gradients": {"n_steps": 5, "noise_tunnel": {"type": "vargrad", "samples": 2}},
    "guided_gradcam": {"keep": "signed"},
    "gradcam": {},
    "feature_ablation": {"n_segments": 10, "keep": "signed"},
    "shapley_value_sampling": {"n_segments": 8, "n_samples": 2, "keep": "signed"},
    "kernel_shap": {"n_segments": 10, "num_samples": 24, "keep": "signed"},
    "occlusion": {"window": 24, "stride": 16, "baseline": 0.5, "keep": "signed"},
    "scorecam": {"layer": "LAYER_SMALL"},
    "ablationcam": {"layer": "LAYER_SMALL"},
}
SMALL_LAYERS = {"WeiNet": "features.6", "ResNet50": "backbone.act1"}
METHODS = [*SETTINGS, *(m for m in CAM_METHODS if m not in SETTINGS)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request):
    from ferxai.networks import create_model

    size = NETWORKS[request.param][0]
    torch.manual_seed(0)
    model = create_model(request.param, input_size=size, pretrained=False).eval()
    with torch.no_grad():  # spread the random head's outputs so the probabilities differ
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(20.0)
    return request.param, model, faces(size)


def faces(size: int) -> torch.Tensor:
    """Two real-image crops (SLIC and the CAMs need structure), (2, 3, size, size) in [0, 1]."""
    from skimage.data import astronaut, coffee
    from skimage.transform import resize

    crops = [astronaut()[:300, 100:400], coffee()[:, 100:500]]
    images = [resize(c, (size, size), anti_aliasing=True).astype(np.float32) for c in crops]
    return torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in images])


class ChannelsLast(nn.Module):
    """ferxai feeds its networks channels-last batches (the fast path); the references do too, so
    that both run the same arithmetic (a ReLU or max-pool that flips on a last-bit difference
    would change a gradient map by far more than 1e-5)."""

    def forward(self, x):
        return x.contiguous(memory_format=torch.channels_last)


def probabilities(model):
    return lambda x: torch.softmax(model(x.contiguous(memory_format=torch.channels_last)), dim=1)


def superpixels(images, n_segments, compactness=20.0):
    from skimage.segmentation import slic

    masks = [
        slic(i.permute(1, 2, 0).numpy().astype(np.float32), n_segments=n_segments,
             compactness=compactness, start_label=0)
        for i in images
    ]
    return torch.from_numpy(np.stack(masks)).long()[:, None]


def keep(values, how):
    return {"signed": values, "positive": values.clamp(min=0), "absolute": values.abs()}[how]


def reference(method, model, images, target, settings, layer):
    """The library's own answer, called directly."""
    import captum.attr as ca

    settings = {"keep": "positive", **settings}
    module = nn.Sequential(ChannelsLast(), model, nn.Softmax(dim=1)).eval()
    scores = nn.Sequential(ChannelsLast(), model).eval()  # DeepLIFT: the pre-softmax score
    torch.manual_seed(SEED)
    np.random.seed(SEED)  # GradientSHAP draws its baselines and points with numpy
    if method in CAM_METHODS:
        import pytorch_grad_cam as gc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from ferxai.attribution.cam_methods import CAM_CLASSES

        cam_class = getattr(gc, CAM_CLASSES[method])
        layers = [] if method == "fullgrad" else [layer]
        cam = cam_class(model, target_layers=layers)
        targets = [ClassifierOutputTarget(int(t)) for t in target]
        with cam:
            return torch.from_numpy(cam(input_tensor=images, targets=targets))
    if method == "gradcam":
        cam = ca.LayerGradCam(model, layer).attribute(images, target=target, relu_attributions=True)
        return ca.LayerAttribution.interpolate(cam, images.shape[-2:], "bilinear")[:, 0].detach()
    superpixel_methods = {"feature_ablation", "shapley_value_sampling", "kernel_shap"}
    if method in superpixel_methods:
        masks = superpixels(images, settings["n_segments"])
        forward = probabilities(model)
        with torch.no_grad():
            if method == "feature_ablation":
                values = ca.FeatureAblation(forward).attribute(
                    images, baselines=0.0, target=target, feature_mask=masks
                )
            elif method == "shapley_value_sampling":
                values = ca.ShapleyValueSampling(forward).attribute(
                    images, baselines=0.0, target=target, feature_mask=masks,
                    n_samples=settings["n_samples"],
                )
            else:
                values = []
                for i in range(len(images)):
                    torch.manual_seed(SEED + i)
                    values.append(ca.KernelShap(forward).attribute(
                        images[i : i + 1], baselines=0.0, target=target[i : i + 1],
                        feature_mask=masks[i : i + 1], n_samples=settings["num_samples"],
                    ))
                values = torch.cat(values)
        return keep(values[:, 0], settings["keep"])
    if method == "occlusion":
        with torch.no_grad():
            values = ca.Occlusion(probabilities(model)).attribute(
                images, sliding_window_shapes=(3, settings["window"], settings["window"]),
                strides=(3, settings["stride"], settings["stride"]), baselines=0.5, target=target,
            )
        return keep(values.sum(dim=1), settings["keep"])
    constant = lambda values: torch.cat([torch.full_like(images[:1], v) for v in values])  # noqa: E731
    attributions = {
        "saliency": lambda: (ca.Saliency(module), {}),
        "input_x_gradient": lambda: (ca.InputXGradient(module), {}),
        "guided_backprop": lambda: (ca.GuidedBackprop(module), {}),
        "deconvolution": lambda: (ca.Deconvolution(module), {}),
        "deeplift": lambda: (ca.DeepLift(scores), {"baselines": settings["baseline"]}),
        "deeplift_shap": lambda: (
            ca.DeepLiftShap(scores), {"baselines": constant(settings["baselines"])}),
        "gradient_shap": lambda: (
            ca.GradientShap(probabilities(model)),
            {"baselines": constant([0.0, 1.0]), "n_samples": settings["n_samples"],
             "stdevs": settings["stdevs"]},
        ),
        "integrated_gradients": lambda: (
            ca.IntegratedGradients(probabilities(model)), {"n_steps": settings["n_steps"]}),
        "guided_gradcam": lambda: (ca.GuidedGradCam(model, layer), {}),
    }
    attribution, arguments = attributions[method]()
    tunnel = settings.get("noise_tunnel")
    if tunnel:
        values = ca.NoiseTunnel(attribution).attribute(
            images, nt_type=tunnel["type"], nt_samples=tunnel["samples"],
            stdevs=tunnel.get("stdev", 0.15), target=target, **arguments,
        )
    else:
        values = attribution.attribute(images, target=target, **arguments)
    return keep(values.detach().sum(dim=1), settings["keep"])


@pytest.mark.parametrize("method", METHODS)
def test_map_equals_the_library(network, method):
    name, model, images = network
    settings = {k: v for k, v in SETTINGS.get(method, {}).items()}
    if settings.get("layer") == "LAYER_SMALL":  # a narrow layer keeps ScoreCAM/AblationCAM quick
        settings["layer"] = SMALL_LAYERS[name]
    settings["batch_size"] = 256
    target = torch.tensor([3, 5])
    explainer = create_explainer(method, model, **settings)
    ours = explainer.attribute(images, target, seeds=[SEED, SEED + 1])
    layer = None
    if hasattr(explainer, "layer_name"):
        expected = settings.get("layer") or NETWORKS[name][1]
        if method != "fullgrad":
            assert explainer.layer_name == expected
            layer = dict(model.named_modules())[expected]
    theirs = reference(method, model, images.clone(), target, settings, layer).float()
    assert ours.shape == theirs.shape == (2, *images.shape[-2:])
    scale = float(theirs.abs().max())
    assert scale > 0, f"{method}: the library's map is all zero; the test would prove nothing"
    assert float((ours - theirs).abs().max()) <= 1e-5 * scale, method
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()) or (
        method in CAM_METHODS  # the reference CAM's backward() leaves weight gradients
    )


@pytest.mark.parametrize(
    ("method", "rows_per_image"),
    [("deeplift", 2), ("integrated_gradients", 1), ("layercam", 1), ("occlusion", 1)],
)
def test_deterministic_maps_do_not_depend_on_the_images_per_call(network, method, rows_per_image):
    """batch_size only regroups the images: one per call gives the maps of all in one call."""
    name, model, images = network
    if name != "WeiNet":
        pytest.skip("one network is enough for the grouping")
    target = torch.tensor([3, 5])
    settings = {k: v for k, v in SETTINGS.get(method, {}).items() if k != "noise_tunnel"}
    together = create_explainer(method, model, **settings, batch_size=256)
    one_by_one = create_explainer(method, model, **settings, batch_size=rows_per_image)
    if method != "occlusion":  # occlusion's forward batch holds its windows, not images
        assert one_by_one.images_per_call(images.shape[1:]) == 1
    torch.testing.assert_close(
        one_by_one.attribute(images, target),
        together.attribute(images, target),
        rtol=1e-4,
        atol=1e-4 * float(together.attribute(images, target).abs().max()),
    )  # batches of other sizes round differently in the last bits
