"""Models trained elsewhere in any format, with their own input/output cards (issue 25).

Every file is exported here, from a real framework: a small PyTorch network as a state dict,
TorchScript, a torch.export program and ONNX; a small Keras 3 model (48 px grey NHWC input in
[-1, 1], softmax over 7 classes with Neutral) as ``.keras`` and legacy ``.h5``. ferxai's
six-expression probabilities must equal the framework's own on the same images to 1e-5, the
configuration check must refuse what does not fit before any job, and LIME and a gradient method
must run on each through the workflow.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import ferxai
from ferxai.core.errors import ConfigError
from tests.conftest import snakemake

os.environ.setdefault("KERAS_BACKEND", "torch")

EXPRESSIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
# The Keras model's head: FER2013's order (with Neutral), as most published FER models have it.
KERAS_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
KERAS_CARD = {"channels": 1, "layout": "NHWC", "scale": [-1, 1], "output": "probabilities",
              "class_order": KERAS_ORDER, "input_size": 48}
TORCH_SIZE = 32
TORCH_CARD = {"input_size": TORCH_SIZE, "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]}
TORCH_FORMATS = ("pth", "ts", "pt2", "onnx")
FORMAT_NAMES = {"ts": "torchscript", "pt2": "torch.export", "onnx": "onnx", "keras": "keras",
                "h5": "keras"}
KERAS_FORMATS = ("keras", "h5")


class SmallNet(nn.Module):
    """A FER-shaped CNN of plain torch layers: two convolutions, global pooling, a 6-way head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Linear(12, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def small_net(seed: int = 3) -> SmallNet:
    torch.manual_seed(seed)
    return SmallNet().eval()


def export_torch(net: nn.Module, fmt: str, folder, size: int = TORCH_SIZE):
    """``net`` saved in ``fmt`` (state dict of a ferxai network, TorchScript, torch.export, ONNX)."""
    path = folder / f"net.{fmt}"
    example = torch.rand(2, 3, size, size)
    if fmt == "ts":
        # traced, as most published TorchScript files are (scripting a class the test module
        # defines fails once another test has scripted it in the same process)
        torch.jit.save(torch.jit.trace(net, example), str(path))
    elif fmt == "pt2":
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    elif fmt == "onnx":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example,), str(path), input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17,
                              dynamo=False)
    else:
        torch.save(net.state_dict(), path)
    return path


def keras_model(seed: int = 5):
    """48 px grey NHWC input, two convolutions, softmax over 7 classes."""
    keras = pytest.importorskip("keras", reason="Keras 3 models need the keras extra")

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def export_keras(model, fmt: str, folder):
    path = folder / f"net.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(path))  # .h5: Keras 3 writes the legacy Keras 2 HDF5 format
    return path


def images(n: int = 4, size: int = 48, seed: int = 1) -> torch.Tensor:
    """ferxai's input: RGB in [0, 1], exactly uint8 / 255 as the jobs load it."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)) / 255.0


def six_probabilities(model, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(x).double(), dim=1).numpy()


# ------------------------------------------------------------------------- equal to the framework


@pytest.mark.parametrize("fmt", TORCH_FORMATS)
def test_pytorch_exports_score_as_pytorch_does(fmt, tmp_path):
    from ferxai.networks.loaders import load_trained

    net = small_net()
    x = images(size=TORCH_SIZE)
    mean, std = torch.tensor(TORCH_CARD["mean"]), torch.tensor(TORCH_CARD["std"])
    with torch.inference_mode():
        theirs = torch.softmax(net((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)), dim=1)
    path = export_torch(net, fmt, tmp_path)
    if fmt == "pth":  # a state dict needs a ferxai architecture; its card takes no mean/std
        from ferxai.networks import create_model

        ferxai_net = create_model("WeiNet", input_size=TORCH_SIZE).eval()
        torch.save(ferxai_net.state_dict(), path)
        with torch.inference_mode():
            theirs = torch.softmax(ferxai_net(x), dim=1)
        model = ferxai.load_trained(path, arch="WeiNet", input_size=TORCH_SIZE, network="MyNet")
    else:
        model = load_trained(path, network="MyNet", runtime="torch", **TORCH_CARD)
        assert model.format == FORMAT_NAMES[fmt]
    np.testing.assert_allclose(six_probabilities(model, x), theirs.double().numpy(), atol=1e-5)
    if fmt == "onnx":  # and on ONNX Runtime, the perturbation methods' runtime
        fast = load_trained(path, network="MyNet", runtime="onnxruntime", **TORCH_CARD)
        assert fast.runtime == "onnxruntime" and fast.capabilities == {"forward"}
        np.testing.assert_allclose(six_probabilities(fast, x), theirs.double().numpy(), atol=1e-5)


@pytest.mark.parametrize("fmt", KERAS_FORMATS)
def test_keras_models_score_as_keras_does(fmt, tmp_path):
    from ferxai.networks.loaders import load_trained

    keras_net = keras_model()
    path = export_keras(keras_net, fmt, tmp_path)
    x = images()
    # Keras' own input: luma as OpenCV computes it, scaled to [-1, 1], NHWC
    rgb = x.numpy().transpose(0, 2, 3, 1) * 255.0
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    theirs = keras_net.predict((grey / 127.5 - 1.0)[..., None].astype(np.float32), verbose=0)
    theirs = np.asarray(theirs, dtype=np.float64)
    rows = [KERAS_ORDER.index(e) for e in ("angry", "disgust", "fear", "happy", "sad", "surprise")]
    expected = theirs[:, rows] / theirs[:, rows].sum(axis=1, keepdims=True)
    model = load_trained(path, network="MyKeras", **KERAS_CARD)
    assert model.format == "keras" and "gradients" in model.capabilities
    np.testing.assert_allclose(six_probabilities(model, x), expected, atol=1e-5)
    assert model.card.dropped_classes() == ["neutral"]


def test_keras_gradients_and_gradcam_reach_the_image(tmp_path):
    from ferxai.attribution import create_explainer
    from ferxai.networks.loaders import load_trained

    model = load_trained(export_keras(keras_model(), "keras", tmp_path), network="K", **KERAS_CARD)
    x, target = images(2), torch.tensor([3, 0])
    ig = create_explainer("integrated_gradients", model, n_steps=4, keep="absolute")
    maps = ig.attribute(x, target)
    assert maps.shape == (2, 48, 48) and float(maps.abs().sum()) > 0
    cam = create_explainer("gradcam", model).attribute(x, target)
    assert cam.shape == (2, 48, 48)
    from ferxai.attribution.target_layers import find_target_layer

    assert find_target_layer(model, x) == "core.layers.last_conv"  # channels-first tap


def test_static_batch_exports_run_any_batch(tmp_path):
    from ferxai.networks.loaders import load_trained

    net = small_net()
    program = torch.export.export(net, (torch.rand(3, 3, TORCH_SIZE, TORCH_SIZE),))  # batch 3 only
    torch.export.save(program, str(tmp_path / "fixed.pt2"))
    model = load_trained(tmp_path / "fixed.pt2", network="F")
    x = images(7, TORCH_SIZE)
    with torch.inference_mode():
        np.testing.assert_allclose(model(x).numpy(), net(x).numpy(), atol=1e-5)


def test_randomized_twins_of_whole_models_change_their_scores(tmp_path):
    from ferxai.networks.loaders import load_trained

    x = images(2, TORCH_SIZE)
    for fmt, runtime in (("onnx", "onnxruntime"), ("ts", "torch")):
        path = export_torch(small_net(), fmt, tmp_path)
        trained = load_trained(path, network="R", runtime=runtime, input_size=TORCH_SIZE)
        twin = load_trained(path, network="R", runtime=runtime, input_size=TORCH_SIZE,
                            randomize_seed=7)
        again = load_trained(path, network="R", runtime=runtime, input_size=TORCH_SIZE,
                             randomize_seed=7)
        with torch.inference_mode():
            assert not torch.allclose(trained(x), twin(x), atol=1e-3)
            assert torch.equal(twin(x), again(x))  # seeded


# ------------------------------------------------------------------------ refused before any job


def test_the_check_names_the_key_and_the_fix(tmp_path):
    from ferxai.networks.model_check import check_trained_model

    keras_path = export_keras(keras_model(), "keras", tmp_path)
    card = dict(KERAS_CARD)
    report = check_trained_model(keras_path, card, ["lime", "gradcam"], "K")
    assert report["input_size"] == 48 and "layers" in report["capabilities"]
    assert (
        check_trained_model(keras_path, {**card, "input_size": None}, [], "K")["input_size"] == 48
    )
    cases = [
        ({"channels": 3}, r"K\.channels: .*has 1 channel.*Set networks\.overrides\.K\.channels: 1"),
        ({"layout": "NCHW"}, r"K\.layout: .*Set networks\.overrides\.K\.layout: NHWC"),
        ({"input_size": 64}, r"K\.input_size: 64 px, but the model takes 48 x 48"),
        ({"class_order": EXPRESSIONS}, r"K\.class_order: .*class_order lists 6 classes"),
        (
            {"output": "logits"},
            r"K\.output: .*sum to 1.*Set networks\.overrides\.K\.output: probab",
        ),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_trained_model(keras_path, {**card, **change}, ["lime"], "K")
    onnx_path = export_torch(small_net(), "onnx", tmp_path)
    with pytest.raises(ConfigError, match=r"K\.output: the card says probabilities .* logits"):
        check_trained_model(onnx_path, {"input_size": 32, "output": "probabilities"}, [], "K")
    ts_path = export_torch(small_net(), "ts", tmp_path)
    with pytest.raises(ConfigError, match=r"gradcam needs layers .*Methods that work on it: "
                                          r"lime, .*integrated_gradients"):
        check_trained_model(ts_path, {"input_size": 32}, ["lime", "gradcam"], "T")
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(ConfigError, match="not a readable ONNX file"):
        check_trained_model(tmp_path / "broken.onnx", {"input_size": 32}, ["lime"], "B")


def test_an_onnx_model_onnx2torch_cannot_convert_serves_perturbation_methods_only(tmp_path):
    """An op onnx2torch lacks (here: a custom domain's op that ONNX Runtime's contrib ops know)."""
    import onnx
    from onnx import TensorProto, helper

    from ferxai.networks.model_check import check_trained_model

    # x (N,3,8,8) -> ReduceMean over pixels -> Gemm -> FastGelu (com.microsoft, ORT only)
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 6], np.linspace(-1, 1, 18).tolist())
    b = helper.make_tensor("b", TensorProto.FLOAT, [6], [0.0] * 6)
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("Gemm", ["m", "w", "b"], ["g"]),
        helper.make_node("FastGelu", ["g"], ["y"], domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6])], [w, b],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(proto, str(path))
    assert (
        check_trained_model(path, {"input_size": 8}, ["lime", "occlusion"], "C")["input_size"] == 8
    )
    with pytest.raises(ConfigError, match=r"integrated_gradients needs gradients.*onnx2torch "
                                          r"cannot convert.*Methods that work on it: lime"):
        check_trained_model(path, {"input_size": 8}, ["lime", "integrated_gradients"], "C")


def test_state_dicts_keep_their_behaviour_and_refuse_card_keys(tmp_path):
    from ferxai.networks import create_model
    from ferxai.networks.loaders import load_trained

    net = create_model("WeiNet", input_size=32).eval()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    model = ferxai.load_trained(tmp_path / "model.pt", arch="WeiNet", input_size=32)
    x = images(2, 32)
    with torch.inference_mode():
        assert torch.equal(model(x), net(x))
    with pytest.raises(ConfigError, match=r"MyNet.channels: .*model.pt is a state dict.*layout"):
        ferxai.load_trained(tmp_path / "model.pt", arch="WeiNet", network="MyNet", channels=1)
    onnx_path = export_torch(small_net(), "onnx", tmp_path)
    with pytest.raises(ConfigError, match=r"MyNet\.arch: net\.onnx is a whole onnx model"):
        ferxai.load_trained(onnx_path, arch="WeiNet", network="MyNet")
    with pytest.raises(ConfigError, match="a state dict holds no architecture"):
        load_trained(tmp_path / "model.pt", network="MyNet")
    # the factory reads whole models too: the registry's load_trained is the one entry point
    from ferxai.networks import load_trained as factory_load_trained

    whole = factory_load_trained("MyOnnx", str(onnx_path), TORCH_SIZE, runtime="onnxruntime")
    assert whole.format == "onnx" and whole.runtime == "onnxruntime"


def test_the_config_refuses_bad_cards_before_any_job(tmp_path):
    from ferxai.core.config import validate_config

    path = export_torch(small_net(), "onnx", tmp_path)

    def config(**card):
        over = {"MyOnnx": {"trained_weights": str(path), **card}}
        return {"networks": {"names": ["MyOnnx"], "overrides": over}}

    validate_config(config(layout="NHWC", scale=[-1, 1], output="probabilities"))
    with pytest.raises(ConfigError, match=r"MyOnnx.layout.*'NHCW' is not one of NCHW, NHWC"):
        validate_config(config(layout="NHCW"))
    with pytest.raises(ConfigError, match=r"MyOnnx.mean: \[0.5, 0.5\] has 2 values for 3 chan"):
        validate_config(config(mean=[0.5, 0.5]))
    with pytest.raises(ConfigError, match=r"WeiNet\.channels: only for a model trained elsewhere"):
        validate_config({"networks": {"names": ["WeiNet"],
                                      "overrides": {"WeiNet": {"channels": 1}}}})


# -------------------------------------------------------------------------------- the workflow


def prepared_config(tmp_path, fmt: str) -> tuple[dict, str]:
    """The `.test`-sized configuration of one exported model (LIME + a gradient method)."""
    if fmt in KERAS_FORMATS:
        path, card = export_keras(keras_model(), fmt, tmp_path), dict(KERAS_CARD)
    else:
        path, card = export_torch(small_net(), fmt, tmp_path), dict(TORCH_CARD)
        if fmt == "pth":
            from ferxai.networks import create_model

            torch.save(create_model("WeiNet", input_size=TORCH_SIZE).state_dict(), path)
            card = {"arch": "WeiNet", "input_size": TORCH_SIZE}
    name = f"My_{fmt}"
    config = {
        "seed": 7, "device": "cpu", "precision": "fp32",
        "data": {"source": "synthetic", "folds": 2,
                 "synthetic": {"subjects": 4, "size": 64, "images_per_expression": 1}},
        "networks": {"names": [name], "overrides": {name: {"trained_weights": str(path), **card}}},
        "positives": {"per_class": 1},
        "attribution": {"methods": ["lime", "integrated_gradients"],
                        "lime": {"num_samples": 20, "batch_size": 20},
                        "integrated_gradients": {"n_steps": 4}},
        "comparison": {"bootstrap": 0},
        "sanity": {"enabled": False},
    }
    return config, name


def test_dry_run_lists_no_train_job_and_passes_the_card(tmp_path):
    config, name = prepared_config(tmp_path, "keras")
    config["sanity"] = {"enabled": True, "folds": [1]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    text = snakemake(tmp_path, "-n", "--printshellcmds", configfile=path).stdout
    assert not re.search(r"ferxai train", text)
    assert re.search(rf"ferxai evaluate --model {name} --card '\{{.*\"layout\":\"NHWC\"", text)
    assert re.search(rf"ferxai attribute --model {name} --card .* --input-size 48 ", text)
    # the randomized twin redraws the weights of the model's own file
    weights = re.escape(str(tmp_path / "net.keras"))
    assert re.search(rf"attribute --model {name} --card .* --weights {weights} --randomize", text)
    config["networks"]["overrides"][name]["input_size"] = 64
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n", configfile=path, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"networks.overrides.{name}.input_size: 64 px, but the model takes 48" in text


@pytest.fixture(scope="module")
def workflow_dir(tmp_path_factory):
    """One folder for the formats' runs: the synthetic faces, landmarks and folds are made by
    the first run and reused by the others (their rules do not depend on the network)."""
    return tmp_path_factory.mktemp("formats_workflow")


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("fmt", [*TORCH_FORMATS, *KERAS_FORMATS])
def test_lime_and_a_gradient_method_run_on_each_format_in_the_workflow(fmt, workflow_dir):
    from ferxai.core.io import read_stack

    folder = workflow_dir / fmt
    folder.mkdir()
    config, name = prepared_config(folder, fmt)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    targets = [f"results/attributions/{m}/{name}/fold1/{e}.h5"
               for m in ("lime", "integrated_gradients") for e in EXPRESSIONS]
    snakemake(workflow_dir, "--cores", "2", *targets, configfile=path, timeout=900)
    size = 48 if fmt in KERAS_FORMATS else TORCH_SIZE
    for method in ("lime", "integrated_gradients"):
        stacks = [read_stack(workflow_dir / t) for t in targets if f"/{method}/" in t]
        assert sum(len(s) for s in stacks) > 0
        assert all(s.maps.shape[1:] == (size, size) for s in stacks)  # the image the model saw
        maps = np.concatenate([s.maps for s in stacks if len(s)])
        assert np.isfinite(maps).all() and maps.max() > 0, method  # some evidence somewhere
        log = (workflow_dir / f"results/logs/attribute/{method}_{name}_fold1.log").read_text()
        if fmt != "pth":
            runtime = "onnxruntime" if fmt == "onnx" and method == "lime" else "torch"
            assert f"is a {FORMAT_NAMES[fmt]} model on {runtime}" in log, log[-2000:]
    metrics = yaml.safe_load((workflow_dir / f"results/eval/{name}/fold1/metrics.json").read_text())
    if fmt in KERAS_FORMATS:
        assert metrics["dropped_classes"] == ["neutral"]
