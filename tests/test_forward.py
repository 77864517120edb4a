"""CPU forward paths (ferxai.networks.forward): every path agrees with eager fp32 within 1e-4 in probability
on real-ish inputs (synthetic faces with LIME-like hidden blocks), a path that disagrees or fails
falls back to eager, and ``auto`` only pays for an export when the job repays it, by a rule."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ferxai.core.errors import ConfigError
from ferxai.networks import create_model
from ferxai.networks.forward import (
    ForwardPath,
    choose_forward_path,
    onnxruntime_available,
    pays,
    perturbed_examples,
    select_forward,
)

NETWORKS = [("WeiNet", 40), ("ResNet50", 32), ("EfficientNetV2B0", 32)]
needs_ort = pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime/onnx not installed")


def faces(n: int, size: int) -> torch.Tensor:
    from ferxai.core.constants import EXPRESSIONS
    from ferxai.data.face_model import make_subject
    from ferxai.data.synth import Pose, au_intensities, render_face

    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        image, _ = render_face(make_subject(f"s{i}", rng), au_intensities(EXPRESSIONS[i % 6], rng),
                               Pose.random(rng), size, rng, expressiveness=2.0)
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    return torch.stack(images)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: (create_model(name, input_size=size).eval(), size) for name, size in NETWORKS}


def eager_probabilities(model, x):
    model.to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        return torch.softmax(model(x), dim=1)


@pytest.mark.parametrize("name", [n for n, _ in NETWORKS])
def test_paths_agree_with_eager(models, name):
    model, size = models[name]
    x = perturbed_examples(faces(6, size), 8, seed=1)
    reference = eager_probabilities(model, x)
    candidates = ("eager", "channels_last") + (("onnxruntime",) if onnxruntime_available() else ())
    path = choose_forward_path(model, x, candidates, repeats=1)
    record = path.record
    assert set(record["max_abs_dprob"]) == set(candidates)
    assert all(v is not None and v <= 1e-4 for v in record["max_abs_dprob"].values()), record
    assert set(record["images_per_s"]) == set(candidates)
    assert all(v > 0 for v in record["images_per_s"].values())
    assert path.name in candidates and path.name == record["path"]
    with torch.inference_mode():  # the chosen forward, on a batch of another size (last batch)
        probs = torch.softmax(path.forward(x[:5]), dim=1)
    assert float((probs - reference[:5]).abs().max()) <= 1e-4


def test_a_path_beyond_the_tolerance_or_failing_falls_back_to_eager(models, monkeypatch, caplog):
    import ferxai.networks.forward as forward_module

    model, size = models["WeiNet"]
    x = faces(4, size)

    def noisy(m):
        return lambda batch: m(batch) + 0.5 * torch.randn(batch.shape[0], 6)

    monkeypatch.setattr(forward_module, "_channels_last", noisy)
    with caplog.at_level(logging.WARNING, logger="ferxai.networks.forward"):
        path = choose_forward_path(model, x, ("eager", "channels_last"), repeats=0)
    assert path.name == "eager" and path.record["max_abs_dprob"]["channels_last"] > 1e-4
    assert "differs from eager fp32" in caplog.text

    def broken(m):
        def forward(batch):
            raise RuntimeError("no kernel for this")

        return forward

    monkeypatch.setattr(forward_module, "_channels_last", broken)
    path = select_forward(model, x, "channels_last")
    assert path.name == "eager" and "RuntimeError" in path.record["errors"]["channels_last"]
    with torch.inference_mode():
        torch.testing.assert_close(path.forward(x), model(x), rtol=0, atol=0)


def test_auto_is_channels_last_for_short_jobs_and_onnxruntime_when_the_job_repays_it(
    models, monkeypatch
):
    import ferxai.networks.forward as forward_module

    model, size = models["WeiNet"]
    x = faces(8, size)
    short = select_forward(model, x, "auto", expected_images=16)
    assert short.name == "channels_last" and short.record["path"] == "channels_last"
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert "onnxruntime_setup_s" not in short.record  # nothing exported
    rule = short.record["auto"]
    assert rule["expected_images"] == 16 and rule["onnxruntime"] is False
    if onnxruntime_available():
        assert "do not repay" in rule["reason"]
        long = select_forward(model, x, "auto", expected_images=10**7)
        assert long.name == "onnxruntime" and long.record["auto"]["onnxruntime"] is True
        with torch.inference_mode():
            got = torch.softmax(long.forward(x), dim=1)
        assert float((got - eager_probabilities(model, x)).abs().max()) <= 1e-4
    # without ONNX Runtime a long job stays on channels_last, saying why
    monkeypatch.setattr(forward_module, "onnxruntime_available", lambda: False)
    without = select_forward(model, x, "auto", expected_images=10**7)
    assert without.name == "channels_last" and "not installed" in without.record["auto"]["reason"]


def test_auto_is_a_rule_not_a_timing(models, monkeypatch):
    """The same job gives the same choice however fast the machine is: reruns and resumed jobs
    take the same path (bit-identical results)."""
    import ferxai.networks.forward as forward_module

    model, size = models["ResNet50"]
    x = faces(4, size)
    monkeypatch.setattr(forward_module, "onnxruntime_available", lambda: True)
    rules = [forward_module.auto_rule(model, x, n) for n in (100, 100, 10**6)]
    assert rules[0] == rules[1]
    assert rules[0]["onnxruntime"] is False and rules[2]["onnxruntime"] is True
    # the break-even follows the published rule: images x seconds x (1 - 1/gain) > set-up
    seconds = 2 * rules[0]["multiply_adds"] / forward_module.NOMINAL_FLOPS
    setup = forward_module.setup_estimate_s("onnxruntime", model)
    gain = forward_module.UPGRADES["onnxruntime"][0]
    even = setup / (seconds * (1 - 1 / gain))
    assert not forward_module.auto_rule(model, x, int(even * 0.99))["onnxruntime"]
    assert forward_module.auto_rule(model, x, int(even * 1.01) + 1)["onnxruntime"]


def test_multiply_adds_counts_convolutions_and_linear_layers():
    from ferxai.networks.forward import multiply_adds

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),            # 8 x 10 x 10 outputs x 27
        torch.nn.Conv2d(8, 8, 3, stride=2, groups=4),   # 8 x 4 x 4 outputs x (2 x 9)
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 6),                  # 6 x 128
    )
    assert multiply_adds(net, torch.zeros(5, 3, 10, 10)) == 800 * 27 + 128 * 18 + 6 * 128


def test_pays_rule():
    # 100,000 images at 10 ms, 2x faster: saves 500 s > 10 s of set-up; 100 images do not
    assert pays(100_000, 0.01, 10.0, 2.0)
    assert not pays(100, 0.01, 10.0, 2.0)
    assert not pays(10**9, 0.01, 10.0, 1.0)


@needs_ort
def test_onnxruntime_handles_any_batch(models):
    model, size = models["EfficientNetV2B0"]
    x = faces(6, size)
    path = select_forward(model, x, "onnxruntime")
    assert path.name == "onnxruntime", path.record
    with torch.inference_mode():
        for n in (1, 6):
            got = torch.softmax(path.forward(x[:n]), dim=1)
            assert float((got - eager_probabilities(model, x[:n])).abs().max()) <= 1e-4


def test_unknown_choice_is_a_config_error(models):
    model, size = models["WeiNet"]
    with pytest.raises(ConfigError, match="cpu_forward"):
        select_forward(model, faces(2, size), "tensorrt")
    from ferxai.attribution import create_explainer
    from ferxai.networks.evaluate import parse_eval_settings

    with pytest.raises(ConfigError, match="cpu_forward"):
        create_explainer("lime", model, cpu_forward="fast")
    with pytest.raises(ConfigError, match="cpu_forward"):
        parse_eval_settings({"cpu_forward": "fast"})


def test_evaluation_and_lime_use_the_chosen_path(models):
    from ferxai.attribution import create_explainer
    from ferxai.networks.evaluate import predict_probabilities

    model, size = models["WeiNet"]
    x = faces(12, size)
    images = (x * 255).round().to(torch.uint8).numpy()
    cpu = torch.device("cpu")
    eager = predict_probabilities(model, images, cpu, "fp32", 8, "eager")
    auto = predict_probabilities(model, images, cpu, "fp32", 8, "auto")
    assert np.abs(auto - eager).max() <= 1e-4
    settings = {"num_samples": 40, "batch_size": 20, "n_segments": 10}
    target = torch.zeros(2, dtype=torch.long)
    plain = create_explainer("lime", model, cpu_forward="eager", **settings)
    chosen = create_explainer("lime", model, cpu_forward="channels_last", **settings)
    a, b = plain.attribute(x[:2], target), chosen.attribute(x[:2], target)
    assert chosen.forward_record["path"] == "channels_last"
    assert plain.forward_record == {"path": "eager", "checked": False}
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_compile_agrees_with_eager_and_pads_the_last_batch(models):
    """torch.compile (inductor, freezing): ~10-60 s of compilation on 2 cores, hence slow."""
    model, size = models["WeiNet"]
    x = perturbed_examples(faces(6, size), 8, seed=2)
    path = choose_forward_path(model, x, ("eager", "compile"), repeats=0)
    assert isinstance(path, ForwardPath) and path.name == "compile", path.record
    assert path.record["max_abs_dprob"]["compile"] <= 1e-4 and path.record["compile_setup_s"] > 0
    with torch.inference_mode():
        for n in (3, 8, 13):  # padded, exact, split + padded: one compilation serves them all
            batch = perturbed_examples(faces(6, size), n, seed=3)
            got = torch.softmax(path.forward(batch), dim=1)
            assert got.shape == (n, 6)
            assert float((got - eager_probabilities(model, batch)).abs().max()) <= 1e-4
