"""The fastest verified forward path on the CPU: eager fp32, ``channels_last``, ONNX Runtime or
``torch.compile``.

Evaluation and LIME run the same network on thousands of batches; on a CPU in fp32 the
wins are the memory format (``channels_last``: oneDNN's NHWC kernels), ONNX Runtime on an export
of the network (optional packages ``onnxruntime`` + ``onnx``, extra ``ferxai[onnx]``) and inductor
(``torch.compile`` with freezing: weights folded into the graph). :func:`choose_forward_path`
builds each candidate, checks it against eager fp32 on a batch of the job's own inputs (max
|Δ softmax probability| <= ``tolerance``), times it and returns the fastest one that passed; a
path that fails or exceeds the tolerance is dropped with a log line, so the worst case is eager
fp32. :func:`select_forward` maps the ``cpu_forward`` setting onto it:

* ``eager``: the model as it is, nothing checked (zero cost);
* ``channels_last`` / ``onnxruntime`` / ``compile``: that path if it agrees with eager, else eager;
* ``auto`` (the default): ONNX Runtime when it is installed and the job's forward passes repay
  its export by a fixed rule (:func:`auto_rule`: the network's multiply-adds at
  :data:`NOMINAL_FLOPS` against :func:`setup_estimate_s`, :func:`pays`), else ``channels_last``;
  each checked against eager like the others. A rule and not a timing, so a rerun or a resumed
  job takes the same path and gives bit-identical results; the rule's inputs and answer are in
  the record (``record["auto"]``), which LIME writes into its stacks.

A compiled forward has one fixed batch size (the example's): smaller batches are padded and larger
ones split, so the last, partial batch of a job never triggers a second compilation. Everything
here is inference only (call it under ``torch.inference_mode()``) and fp32; bf16 stays for GPUs.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ferxai.core.errors import ConfigError

log = logging.getLogger(__name__)

PATHS = ("eager", "channels_last", "compile", "onnxruntime")
CHOICES = ("auto", *PATHS)
TOLERANCE = 1e-4
CHECK_BATCH = 16  # images select_forward checks a path on (compile: built for the job's batch)
# The paths with a set-up cost: (speed-up over channels_last, set-up seconds: base, per
# conv/linear layer, per million parameters); ``auto`` weighs only ONNX Runtime. A cost model
# from bench/forward_paths.py on the 2-core development VM (docs/benchmarks.md), on the cautious
# side: ONNX Runtime was 0.8-2.7x channels_last at the demo's sizes (median 1.35; 1.4-3.6x at
# 224 px) after a 0.2-1.3 s export on a quiet machine (up to 14 s under load); inductor was
# 0.6-2.1x channels_last (median 0.9) after 1-24 s of compilation (up to 134 s under load).
UPGRADES = {
    "onnxruntime": (1.3, 0.5, 0.02, 0.01),
    "compile": (1.1, 5.0, 0.25, 0.0),
}
# fp32 FLOP/s that ``auto`` assumes to estimate a job's forward time from its multiply-adds. The
# development VM's oneDNN / ONNX Runtime ran the 12 networks at 1-4e11 (WeiNet at 40 px:
# 0.5 GFLOP an image at ~600 images/s); the low end makes the export look worth it a little
# sooner, which costs at most a second where it is wrong.
NOMINAL_FLOPS = 1.5e11

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ForwardPath:
    """The chosen path: ``forward(images) -> logits`` (float32) and how it was chosen."""

    name: str
    forward: Forward
    record: dict[str, Any] = field(default_factory=dict)
    reference: torch.Tensor | None = None  # eager fp32 probabilities of the checked batch


def check_choice(value: str) -> str:
    if value not in CHOICES:
        raise ConfigError(f"cpu_forward: {value!r} is unknown; use one of {', '.join(CHOICES)}.")
    return value


def count_layers(model: torch.nn.Module) -> int:
    """Convolutions and linear layers: what the compile-time estimate scales with."""
    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)
    return sum(isinstance(m, kinds) for m in model.modules())


def setup_estimate_s(name: str, model: torch.nn.Module) -> float:
    """Estimated seconds to export or compile ``model`` for path ``name`` (its first call)."""
    _, base, per_layer, per_mparam = UPGRADES[name]
    mparams = sum(p.numel() for p in model.parameters()) / 1e6
    return base + per_layer * count_layers(model) + per_mparam * mparams


def pays(expected_images: int, seconds_per_image: float, setup_s: float, gain: float) -> bool:
    """Whether a path ``gain`` times faster saves more forward time over the job than the
    ``setup_s`` it costs to build."""
    return expected_images * seconds_per_image * (1.0 - 1.0 / gain) > setup_s


def _set_memory_format(model: torch.nn.Module, memory_format: torch.memory_format) -> None:
    """Re-lay the weights in place; outside inference mode, or the explainer's caller would get
    inference tensors as weights that autograd (integrated gradients, Grad-CAM) cannot use."""
    with torch.inference_mode(False), torch.no_grad():
        model.to(memory_format=memory_format)


def _eager(model: torch.nn.Module) -> Forward:
    _set_memory_format(model, torch.contiguous_format)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x.contiguous())

    return forward


def _channels_last(model: torch.nn.Module) -> Forward:
    _set_memory_format(model, torch.channels_last)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x.contiguous(memory_format=torch.channels_last))

    return forward


def _compiled(model: torch.nn.Module, batch: int) -> Forward:
    """Inductor on a ``channels_last`` copy of ``model`` with freezing, at one batch size."""
    import torch._inductor.config as inductor_config

    twin = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()
    compiled = torch.compile(twin, backend="inductor", dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        with inductor_config.patch(freezing=True):
            return compiled(x.contiguous(memory_format=torch.channels_last))

    def forward(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n == batch:
            return run(x)
        parts = []
        for start in range(0, n, batch):
            part = x[start : start + batch]
            short = batch - part.shape[0]
            if short:
                part = torch.cat([part, part.new_zeros((short, *part.shape[1:]))])
            parts.append(run(part)[: batch - short])
        return torch.cat(parts)

    return forward


def build_path(model: torch.nn.Module, name: str, example: torch.Tensor) -> Forward:
    """``forward(images) -> logits`` of path ``name`` for batches like ``example``. ``eager`` and
    ``channels_last`` set the memory format of ``model`` itself (last one built wins); ``compile``
    works on a copy, ``onnxruntime`` on an export (batches of any size)."""
    batch = example.shape[0]
    if name == "eager":
        return _eager(model)
    if name == "channels_last":
        return _channels_last(model)
    if name == "compile":
        return _compiled(model, batch)
    if name == "onnxruntime":
        return _onnxruntime(model, example)
    raise ConfigError(f"forward path {name!r} is unknown; use one of {', '.join(PATHS)}.")


def _onnxruntime(model: torch.nn.Module, example: torch.Tensor) -> Forward:
    """ONNX Runtime (CPU provider, the job's threads) on an ONNX export of ``model``; needs the
    optional ``onnxruntime`` and ``onnx`` packages (extra ``ferxai[onnx]``)."""
    import io
    import warnings

    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and trace notes
        torch.onnx.export(model, (example[:2].clone(),), buffer, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                          opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # No busy-waiting between runs: ORT's idle threads would otherwise spin on the cores that
    # torch needs for the work between batches (LIME's perturbations and ridge, evaluation's
    # bookkeeping) and on those other jobs use: demo LIME calls ran 1.15-1.8x faster without it
    # on 2 shared cores (load 4-6; bench/lime_vs_lime_package.py, docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def forward(x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to(torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(None, {"x": array})[0])

    return forward


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=1)


def _timed(forward: Forward, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = forward(x)
    return out, time.perf_counter() - start


def _verify(name: str, forward: Forward, x: torch.Tensor, reference: torch.Tensor,
            tolerance: float, record: dict) -> tuple[bool, float]:
    """One call of ``forward`` (its warm-up) checked against eager: (passed, seconds)."""
    try:
        logits, seconds = _timed(forward, x)
        delta = float((_probabilities(logits) - reference).abs().max())
    except Exception as exc:  # a backend that cannot build this network: drop it, keep going
        log.warning("forward path %s failed (%s: %s); not used.", name, type(exc).__name__,
                    str(exc).splitlines()[0][:300] if str(exc) else "")
        record["max_abs_dprob"][name] = None
        record["errors"][name] = f"{type(exc).__name__}: {str(exc)[:300]}"
        return False, 0.0
    record["max_abs_dprob"][name] = delta
    if not delta <= tolerance:  # also catches NaN
        log.warning("forward path %s differs from eager fp32 by %.3g in probability (> %.0e); "
                    "not used.", name, delta, tolerance)
        return False, seconds
    return True, seconds


@torch.inference_mode()
def choose_forward_path(
    model: torch.nn.Module,
    example_batch: torch.Tensor,
    candidates: Sequence[str] = ("eager", "channels_last"),
    tolerance: float = TOLERANCE,
    repeats: int = 1,
) -> ForwardPath:
    """The fastest of ``candidates`` that agrees with eager fp32 on ``example_batch``.

    Every candidate is called once on ``example_batch`` (float32 NCHW, the job's real inputs) and
    compared with eager fp32 (max |Δ probability| <= ``tolerance``), then timed ``repeats`` more
    times (median images/s in the record); ``repeats=0`` skips the timing and takes the last
    verified candidate in ``candidates`` order (listing a path last prefers it): whether an
    export pays is :func:`auto_rule`'s question, asked before. Returns eager when nothing else
    passes.
    """
    for name in candidates:
        if name not in PATHS:
            raise ConfigError(f"forward path {name!r} is unknown; use one of {', '.join(PATHS)}.")
    model.eval()
    x = example_batch.to(torch.float32)
    batch = x.shape[0]
    started = time.perf_counter()
    record: dict[str, Any] = {"candidates": list(candidates), "batch": batch,
                              "tolerance": tolerance, "max_abs_dprob": {"eager": 0.0},
                              "images_per_s": {}, "errors": {}, "first_call_s": {}}
    eager = _eager(model)
    logits, first = _timed(eager, x)
    reference = _probabilities(logits)
    record["first_call_s"]["eager"] = round(first, 4)
    forwards: dict[str, Forward] = {"eager": eager}
    seconds: dict[str, float] = {"eager": first}
    for name in candidates:
        if name == "eager":
            continue
        try:
            forward = build_path(model, name, x)
        except Exception as exc:
            record["errors"][name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("forward path %s cannot be built (%s); not used.", name, exc)
            continue
        passed, took = _verify(name, forward, x, reference, tolerance, record)
        if name in UPGRADES:
            record[f"{name}_setup_s"] = round(took, 2)  # the first call compiles / exports
        record["first_call_s"][name] = round(took, 4)
        if passed:
            forwards[name] = forward
            seconds[name] = took
    for name, forward in forwards.items():
        times = [_timed(forward, x)[1] for _ in range(repeats)]
        if times:
            seconds[name] = sorted(times)[len(times) // 2]
            record["images_per_s"][name] = round(batch / max(seconds[name], 1e-9), 2)
    if repeats:
        chosen = min(forwards, key=lambda n: seconds[n])
    else:
        chosen = [n for n in ("eager", *candidates) if n in forwards][-1]
    build_path(model, "eager" if chosen == "eager" else "channels_last", x)  # model's format
    record.update(path=chosen, select_s=round(time.perf_counter() - started, 2))
    log.info("cpu forward path: %s (max |dp| %s vs eager fp32; tried %s; %.1f s to choose)",
             chosen, record["max_abs_dprob"].get(chosen), ", ".join(candidates),
             record["select_s"])
    return ForwardPath(chosen, forwards[chosen], record, reference)


def select_forward(model: torch.nn.Module, example_batch: torch.Tensor, choice: str,
                   expected_images: int | None = None) -> ForwardPath:
    """The ``cpu_forward`` setting applied to ``model`` (see the module docstring).

    ``expected_images``: the forward passes the whole job will make (LIME: its images times
    ``num_samples``), what ``auto`` weighs an export against; pass the same number on a resume as
    on the first attempt, so that both take the same path.
    """
    choice = check_choice(choice)
    if getattr(model, "fixed_forward", False):  # a model on its own runtime (ONNX Runtime)
        return ForwardPath("model", model.eval(), {"path": "model", "checked": False,
                                                   "runtime": getattr(model, "runtime", None)})
    if choice == "eager":
        return ForwardPath("eager", _eager(model.eval()), {"path": "eager", "checked": False})
    check = example_batch[:CHECK_BATCH]  # the numbers, not the speed: a few images suffice
    if choice != "auto":  # compile is built for the job's batch size
        example = example_batch if choice == "compile" else check
        return choose_forward_path(model, example, ("eager", choice), repeats=0)
    rule = auto_rule(model, check, expected_images)
    candidates = ("eager", "channels_last", "onnxruntime") if rule["onnxruntime"] else (
        "eager", "channels_last")
    path = choose_forward_path(model, check, candidates, repeats=0)  # the last that passes
    path.record["auto"] = rule
    return path


def auto_rule(model: torch.nn.Module, example: torch.Tensor,
              expected_images: int | None) -> dict[str, Any]:
    """Whether ``auto`` exports ``model`` to ONNX Runtime for a job of ``expected_images``
    forward passes, and why: ``{"onnxruntime": bool, "reason", ...the rule's inputs}``.

    A rule, not a timing: the same model, input size and job size give the same answer on every
    run, so a rerun or a resumed job takes the same path and its results stay bit-identical
    (a timed choice would flip between runs near the threshold). ONNX Runtime was the fastest
    path on 11-12 of the 12 networks at every size measured (docs/benchmarks.md); what decides is
    whether the job's forward passes repay the export (:func:`pays`), with the job's cost
    estimated from the network's multiply-adds at :data:`NOMINAL_FLOPS`.
    """
    rule: dict[str, Any] = {"onnxruntime": False, "expected_images": expected_images}
    if expected_images is None:
        rule["reason"] = "job size unknown"
        return rule
    if not onnxruntime_available():
        rule["reason"] = "onnxruntime/onnx not installed (extra ferxai[onnx])"
        return rule
    macs = multiply_adds(model, example[:1])
    seconds = 2.0 * macs / NOMINAL_FLOPS
    setup = setup_estimate_s("onnxruntime", model)
    gain = UPGRADES["onnxruntime"][0]
    rule.update(multiply_adds=macs, estimated_ms_per_image=round(seconds * 1e3, 4),
                estimated_setup_s=round(setup, 2),
                onnxruntime=pays(expected_images, seconds, setup, gain))
    rule["reason"] = (
        f"{expected_images} images at ~{seconds * 1e3:.2f} ms each "
        f"{'repay' if rule['onnxruntime'] else 'do not repay'} a ~{setup:.1f} s export"
    )
    return rule


def multiply_adds(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one image through the convolutions and linear layers of ``model``
    (what its CPU time scales with), counted by hooks on one forward pass of ``example``."""
    total = 0

    def count(module: torch.nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        else:
            per_output = module.in_features
        total += output[0].numel() * per_output

    kinds = (torch.nn.Conv2d, torch.nn.Linear)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.inference_mode():
            model(example[:1].to(torch.float32))
    finally:
        for hook in hooks:
            hook.remove()
    return int(total)


def onnxruntime_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def perturbed_examples(images: torch.Tensor, batch: int, seed: int = 0,
                       hide: float = 0.0) -> torch.Tensor:
    """A verification batch for LIME-like jobs: ``images`` cycled to ``batch`` rows, every other
    one with a random half of its 8x8 blocks set to ``hide`` (like hidden superpixels)."""
    x = images.to(torch.float32).cpu()
    x = x[torch.arange(batch) % x.shape[0]].clone()
    generator = torch.Generator().manual_seed(seed)
    height, width = x.shape[-2:]
    cells = torch.rand((batch, 1, -(-height // 8), -(-width // 8)), generator=generator) < 0.5
    keep = cells.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)[..., :height, :width]
    keep[0::2] = True
    return torch.where(keep, x, torch.tensor(hide))
