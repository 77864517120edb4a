"""The twelve networks: registry, shapes, parameter counts, one optimisation step, checkpoints,
and pre-trained weights loaded from local files (never from the network)."""

from __future__ import annotations

import pytest
import timm
import torch

from ferxai.core.constants import NETWORKS
from ferxai.core.errors import ConfigError
from ferxai.networks import create_model, list_models, min_input_size, model_info

torch.set_num_threads(1)

SCRATCH = ("WeiNet", "SongNet", "SilNet", "AlexNet")
# One-step and round-trip tests run the heavy nets below native size: scratch nets at 48 px
# (SilNet's dense layer alone is 184 M weights at 150 px), timm nets at their minimum size.
REDUCED = {name: 48 if name in SCRATCH else min_input_size(name) for name in NETWORKS}


def test_list_models_is_the_papers_order():
    assert list_models() == list(NETWORKS)
    assert len(list_models()) == 12


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        create_model("ResNet18")
    assert "ResNet18" in str(err.value) and "EfficientNetV2B0" in str(err.value)
    with pytest.raises(ConfigError, match="Did you mean 'VGG16'"):
        model_info("Vgg16")
    assert model_info("vgg16").timm_name == "vgg16"  # timm's own vgg16, with timm's head


def test_paper_optimizers_and_epochs():
    assert [model_info(n).optimizer for n in SCRATCH] == ["rmsprop", "rmsprop", "adam", "rmsprop"]
    assert model_info("MobileNetV3Large").lr == model_info("EfficientNetV2B0").lr == 1e-6
    assert model_info("VGG19").lr == 1e-4 and model_info("VGG19").optimizer == "adam"
    assert {n: model_info(n).paper_epochs for n in ("SongNet", "MobileNetV3Large", "Xception")} == {
        "SongNet": 25, "MobileNetV3Large": 15, "Xception": 2}


@pytest.mark.parametrize("name", NETWORKS)
def test_forward_at_native_size(name):
    info = model_info(name)
    torch.manual_seed(0)
    model = create_model(name).eval()
    n_params = sum(p.numel() for p in model.parameters())
    paper = f"{info.paper_params:,}" if info.paper_params else "n/a"
    print(f"\n{name}: {n_params:,} parameters (paper: {paper}), input {info.native_input_size} px")
    size = info.native_input_size
    with torch.inference_mode():
        logits = model(torch.rand(1, 3, size, size))
    assert logits.shape == (1, 6)
    assert torch.isfinite(logits).all()
    if info.paper_params:  # scratch nets: the 'same'-padding reading reproduces the paper's count
        assert abs(n_params - info.paper_params) / info.paper_params < 0.02


@pytest.mark.parametrize("name", SCRATCH)
def test_he_init_keeps_the_input_signal_that_keras_init_loses(name):
    x = torch.rand(16, 3, 48, 48)

    def logit_spread(init):
        torch.manual_seed(0)
        model = create_model(name, input_size=48, scratch_init=init).eval()
        with torch.inference_mode():
            return model(x).std(0).mean().item()  # how much the logits depend on the input

    assert logit_spread("he") > 2 * logit_spread("keras")


@pytest.mark.parametrize("name", SCRATCH)
def test_centred_inputs_subtract_the_mean_image_inside_the_net_and_travel_with_the_weights(
    name, tmp_path
):
    torch.manual_seed(0)
    images, x = torch.rand(10, 3, 40, 40), torch.rand(4, 3, 40, 40)
    model = create_model(name, input_size=40).eval()
    with torch.inference_mode():
        plain = model(x - images.mean(0))
        model.center_inputs(images)
        centred = model(x)
    torch.testing.assert_close(centred, plain)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    reloaded = create_model(name, input_size=40).eval()
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(x), centred)
    # weights saved before the buffer existed load as uncentred, as they were trained
    old = {k: v for k, v in model.state_dict().items() if k != "input_mean"}
    reloaded.load_state_dict(old)
    assert not reloaded.input_mean.any()


def test_unknown_scratch_init_is_a_config_error():
    with pytest.raises(ConfigError, match="scratch_init"):
        create_model("WeiNet", input_size=32, scratch_init="orthogonal")


@pytest.mark.parametrize("name", SCRATCH)
@pytest.mark.parametrize("size", [16, 48, 63])
def test_scratch_nets_work_at_reduced_sizes(name, size):
    model = create_model(name, input_size=size).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 3, size, size)).shape == (2, 6)


@pytest.mark.parametrize("name", ["InceptionV3", "Xception", "VGG16", "ResNet50"])
def test_timm_nets_refuse_sizes_below_their_minimum(name):
    smallest = min_input_size(name)
    with pytest.raises(ConfigError, match=f"{name} .*>= {smallest}"):
        create_model(name, input_size=smallest - 1)
    model = create_model(name, input_size=smallest).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 3, smallest, smallest)).shape == (1, 6)


@pytest.mark.parametrize("name", NETWORKS)
def test_one_optimisation_step_lowers_the_loss(name):
    from ferxai.networks.training import FerClassifier

    info = model_info(name)
    size = REDUCED[name]
    torch.manual_seed(0)
    model = create_model(name, input_size=size).train()
    module = FerClassifier(model, info.optimizer, info.lr, seed=0)
    optimizer = module.configure_optimizers()
    x, y = torch.rand(4, 3, size, size), torch.tensor([0, 1, 2, 3])

    def loss_with_fixed_dropout() -> torch.Tensor:
        torch.manual_seed(1)  # same dropout masks before and after the step
        return torch.nn.functional.cross_entropy(model(x), y)

    before = loss_with_fixed_dropout()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_with_fixed_dropout()
    assert torch.isfinite(after)
    assert after.item() < before.item()
    assert all(p.grad is not None for p in model.parameters()), "a parameter is not in the graph"


@pytest.mark.parametrize("name", NETWORKS)
def test_state_dict_round_trips_with_weights_only(name, tmp_path):
    size = REDUCED[name]
    torch.manual_seed(0)
    trained = create_model(name, input_size=size).eval()
    path = tmp_path / "model.pt"
    torch.save(trained.state_dict(), path)
    torch.manual_seed(1)  # a different initialisation, overwritten by the file
    restored = create_model(name, input_size=size).eval()
    restored.load_state_dict(torch.load(path, weights_only=True))
    x = torch.rand(2, 3, size, size)
    with torch.inference_mode():
        assert torch.equal(trained(x), restored(x))


# ------------------------------------------------------------------------- pre-trained weights


def _imagenet_like_state(name: str) -> dict[str, torch.Tensor]:
    """A state dict as timm's ImageNet files hold it: the whole model, 1000-class head included."""
    import timm

    torch.manual_seed(123)
    return timm.create_model(model_info(name).timm_name, num_classes=1000).state_dict()


@pytest.mark.parametrize(
    "name, suffix",
    [
        ("MobileNetV3Large", ".safetensors"),
        ("MobileNetV3Large", ".pth"),
        # VGG's ImageNet file also holds fc6/fc7 (as ConvMlp) that the Keras-style trunk drops
        pytest.param("VGG16", ".safetensors", marks=pytest.mark.slow),
    ],
)
def test_weights_from_a_local_file_equal_the_state_dict_loaded_directly(name, suffix, tmp_path):
    state = _imagenet_like_state(name)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    size = min_input_size(name)

    torch.manual_seed(7)
    from_file = create_model(name, pretrained=True, weights=str(path), input_size=size).eval()
    torch.manual_seed(7)  # same random linear head
    direct = create_model(name, input_size=size).eval()
    own = direct.backbone.state_dict()
    loaded = direct.backbone.load_state_dict({k: v for k, v in state.items() if k in own},
                                             strict=False)
    assert not loaded.missing_keys

    x = torch.rand(2, 3, size, size)
    with torch.inference_mode():
        assert torch.equal(from_file(x), direct(x))
    untouched = create_model(name, input_size=size).eval()
    with torch.inference_mode():
        assert not torch.equal(untouched(x), direct(x)), "the weights had no effect"


def test_pretrained_without_weights_names_the_network_and_the_file():
    with pytest.raises(ConfigError) as err:
        create_model("ResNet50", pretrained=True)
    message = str(err.value)
    assert "ResNet50" in message and "resnet50.safetensors" in message


def test_pretrained_weights_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        create_model("MobileNetV3Large", pretrained=True, weights=str(tmp_path / "nope.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save(_imagenet_like_state("EfficientNetV2B0"), wrong)
    with pytest.raises(ConfigError, match="does not fit MobileNetV3Large"):
        create_model("MobileNetV3Large", pretrained=True, weights=str(wrong))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a tensor file")
    with pytest.raises(ConfigError, match="not a readable"):
        create_model("MobileNetV3Large", pretrained=True, weights=str(garbage))
    with pytest.raises(ConfigError, match="trained from scratch"):
        create_model("WeiNet", pretrained=True)


def test_empty_hf_cache_is_a_config_error_not_a_download(tmp_path, monkeypatch):
    from huggingface_hub import constants

    # huggingface_hub reads its environment at import: point the cache at an empty folder directly
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # build_timm must force it on itself
    with pytest.raises(ConfigError, match="not in the Hugging Face cache"):
        create_model("MobileNetV3Large", pretrained=True, weights="hf-cache")


def test_fine_tuned_file_with_our_keys_loads_as_is(tmp_path):
    torch.manual_seed(3)
    trained = create_model("MobileNetV3Large", input_size=32).eval()
    path = tmp_path / "model.pt"
    torch.save(trained.state_dict(), path)
    restored = create_model("MobileNetV3Large", pretrained=True, weights=str(path), input_size=32)
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(trained(x), restored.eval()(x))


# ------------------------------------------------------------ any timm architecture; trained elsewhere


def test_a_timm_name_outside_the_twelve_is_described_by_timms_pretrained_config():
    info = model_info("test_resnet.r160_in1k")  # a tiny architecture timm ships for its own tests
    assert (info.timm_name, info.native_input_size, info.pretrained_default) == (
        "test_resnet.r160_in1k", 160, True
    )
    assert model_info("test_resnet").native_input_size == 160  # the default tag's config
    model = create_model("test_resnet", input_size=32).eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 6)
    with pytest.raises(ConfigError, match="resnet18.nope"):
        model_info("resnet18.nope")  # a tag timm does not have
    with pytest.raises(ConfigError, match="native 224 px"):
        create_model("vit_tiny_patch16_224", input_size=64)  # a patch grid fixed at 224


def test_timm_names_keep_timms_own_pooling_head():
    model = create_model("test_vit", input_size=None).eval()  # class-token pooling, no GAP
    size = model_info("test_vit").native_input_size
    with torch.inference_mode():
        assert model(torch.rand(1, 3, size, size)).shape == (1, 6)


@pytest.mark.parametrize("arch", ["test_efficientnet", "test_convnext"])
def test_a_timm_model_trained_elsewhere_scores_the_six_expressions_in_ferxais_order(arch, tmp_path):
    from ferxai.networks import load_trained

    torch.manual_seed(0)
    head_order = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry"]
    theirs = timm.create_model(arch, num_classes=7).eval()  # fc / head.fc classifiers
    path = tmp_path / "theirs.pth"
    torch.save({"state_dict": theirs.state_dict()}, path)
    ours = load_trained(arch, str(path), 32, head_order, network="MyNet")
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        expected = theirs((x - ours.mean) / ours.std)
        rows = [head_order.index(e) for e in ("angry", "disgust", "fear", "happy", "sad")]
        rows.append(head_order.index("surprise"))
        assert torch.allclose(ours(x), expected[:, rows], atol=1e-5)


def test_trained_weights_errors_name_the_fix(tmp_path):
    from ferxai.networks import load_trained

    path = tmp_path / "seven.pt"
    torch.save(timm.create_model("test_resnet", num_classes=7).state_dict(), path)
    with pytest.raises(ConfigError, match="7 outputs but class_order lists 6"):
        load_trained("test_resnet", str(path), 32, network="MyNet")
    with pytest.raises(ConfigError, match="names Anger 0 times"):
        load_trained("test_resnet", str(path), 32, ["a", "b", "c", "d", "e", "f", "g"])
    with pytest.raises(ConfigError, match="does not fit MyNet"):
        load_trained("test_efficientnet", str(path), 32, list("abcdefg"), network="MyNet")


def test_a_ferxai_model_pt_loads_as_trained_weights(tmp_path):
    from ferxai.networks import load_trained

    torch.manual_seed(1)
    trained = create_model("WeiNet", input_size=32).eval()
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    restored = load_trained("WeiNet", str(tmp_path / "model.pt"), 32)
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(trained(x), restored(x))
