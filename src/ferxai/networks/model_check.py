"""Before any job: does a model trained elsewhere load, does its card fit it, can it serve the
configured methods? (``snakemake -n`` runs :func:`check_trained_model` for every such network.)

The model is loaded as the jobs will load it (ONNX: on ONNX Runtime for evaluation and the
perturbation methods, converted by onnx2torch when a method needs more) and run on two seeded
random images of the card's size. Every problem is a :class:`ConfigError` naming the key of
``networks.overrides.NAME`` and the fix: a file that does not load, an input the card describes
otherwise than the file declares (channels, layout, size), a head with another number of classes
than ``class_order``, outputs that are probabilities where the card says logits (or the reverse),
and a method the model cannot serve (no gradients, no hookable layer), with the methods that work.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path
from typing import Any

from ferxai.core.errors import ConfigError
from ferxai.networks.capabilities import FORWARD, method_needs, methods_that_work, needs_torch
from ferxai.networks.model_card import card_from_settings

log = logging.getLogger(__name__)

PROBE_IMAGES = 2
PROBE_SEED = 0


def check_trained_model(path: str | os.PathLike, settings: dict[str, Any], methods,
                        network: str) -> dict[str, Any]:
    """Load and probe the model of ``networks.overrides.<network>`` (``settings``: its merged
    settings) for ``methods``; return what was found (format, runtimes, input size, capabilities)
    or raise a ConfigError naming the key and the fix."""
    return dict(_check(str(Path(path).resolve()), _stamp(path), _frozen(settings),
                       tuple(methods), network))


def trained_input_size(path: str | os.PathLike, settings: dict[str, Any], network: str) -> int:
    """The side the jobs resize images to for a whole model: the card's ``input_size``, else the
    size its file declares."""
    if settings.get("input_size") is not None:
        return int(settings["input_size"])
    return int(check_trained_model(path, settings, (), network)["input_size"])


def _stamp(path) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


def _frozen(settings: dict[str, Any]) -> tuple:
    keys = ("arch", "input_size", "class_order", "channels", "layout", "scale", "mean", "std",
            "output")
    return tuple((k, _hashable(settings.get(k))) for k in keys)


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


@cache
def _check(path: str, stamp, settings: tuple, methods: tuple, network: str) -> tuple:
    import torch

    from ferxai.networks.loaders import STATE_DICT, GradientsUnavailable, load_trained, model_format

    where = f"networks.overrides.{network}"
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in settings}
    card = card_from_settings(values, where)
    fmt = model_format(path)
    if fmt == STATE_DICT:  # the architecture decides: checked by building it (jobs load it)
        report = {"format": fmt, "runtimes": ["torch"], "input_size": card.input_size}
        _load(None, path, values, where, network, "torch")
        return tuple(report.items())
    runtimes = _runtimes(fmt, methods)
    report: dict[str, Any] = {"format": fmt, "runtimes": runtimes}
    size = card.input_size
    capabilities: set[str] = set()
    for runtime in runtimes:
        try:
            model = _load(load_trained, path, {**values, "input_size": size}, where, network,
                          runtime)
        except GradientsUnavailable as exc:
            capabilities |= FORWARD
            _refuse_methods(methods, capabilities, where, f"{Path(path).name}: {exc}")
            continue
        size = _fit_input(model.declared_shape, card, size, where)
        _probe(model, size, where, torch)
        if methods and needs_torch(methods) and runtime == "torch":
            _probe_capabilities(model, size, methods, where, torch)
        capabilities |= set(model.capabilities)
    _refuse_methods(methods, capabilities, where, f"{Path(path).name} is a {fmt} model")
    report.update(input_size=size, capabilities=sorted(capabilities))
    return tuple(report.items())


def _runtimes(fmt: str, methods: tuple) -> list[str]:
    """How the jobs will run the model: ONNX on ONNX Runtime for evaluation and the forward-only
    methods (when installed), on torch (onnx2torch) for any other method."""
    if fmt != "onnx":
        return ["torch"]
    from ferxai.networks.forward import onnxruntime_available

    runtimes = ["onnxruntime"] if onnxruntime_available() else []
    if needs_torch(methods) or not runtimes:
        runtimes.append("torch")
    return runtimes


def _load(load_trained, path, values, where, network, runtime):
    """The model as the jobs load it: the factory for a state dict, the loaders otherwise."""
    if load_trained is None:
        from ferxai.networks import load_trained as load_state_dict

        order = values.get("class_order")
        return load_state_dict(values.get("arch") or network, path, values.get("input_size"),
                               list(order) if order else None, network)
    card = {k: values.get(k) for k in ("input_size", "class_order", "channels", "layout", "scale",
                                       "mean", "std", "output")}
    return load_trained(path, arch=values.get("arch"), runtime=runtime, network=network, **card)


def _fit_input(declared, card, size, where: str) -> int:
    """The input side, checked against the shape the file declares (channels, layout, size)."""
    if declared and len(declared) == 4:
        first, last = declared[1], declared[3]
        channels, height, width = (
            (first, declared[2], last) if card.layout == "NCHW" else (last, first, declared[2])
        )
        shown = "x".join("?" if d is None else str(d) for d in declared)
        if channels is not None and channels != card.channels:
            other = last if card.layout == "NCHW" else first
            if other == card.channels or (channels not in (1, 3) and other in (1, 3)):
                fix = "NHWC" if card.layout == "NCHW" else "NCHW"
                raise ConfigError(
                    f"{where}.layout: the model's input is {shown}, channels {'last' if fix == 'NHWC' else 'first'}, "
                    f"but the card says {card.layout}. Set {where}.layout: {fix}."
                )
            raise ConfigError(
                f"{where}.channels: the model's input ({shown}, {card.layout}) has {channels} "
                f"channel(s) but the card says {card.channels}. Set {where}.channels: {channels}."
            )
        if height is not None and width is not None and height != width:
            raise ConfigError(
                f"{where}: the model takes {height} x {width} images; ferxai explains square "
                "images only. Export it for a square input."
            )
        if height is not None:
            if size is None:
                return int(height)
            if size != height:
                raise ConfigError(
                    f"{where}.input_size: {size} px, but the model takes {height} x {width} "
                    f"images ({shown}). Set {where}.input_size: {height} (or null: the model's "
                    "own size)."
                )
    if size is None:
        raise ConfigError(
            f"{where}.input_size: the model's file does not say its input size; set "
            f"{where}.input_size to the side it was trained at."
        )
    return int(size)


def _probe_batch(size: int, torch):
    generator = torch.Generator().manual_seed(PROBE_SEED)
    return torch.rand((PROBE_IMAGES, 3, size, size), generator=generator)


def _probe(model, size: int, where: str, torch) -> None:
    """One forward pass on random images: the card's input fits, the head's classes and the
    output's kind (logits or probabilities) are those the card says."""
    x = _probe_batch(size, torch)
    try:
        with torch.inference_mode():
            scores = model.scores(x).float()
    except ConfigError as exc:
        raise ConfigError(f"{where}.class_order: {exc}") from None
    except Exception as exc:  # the model's own error for an input it cannot take
        raise ConfigError(
            f"{where}: the model fails on {PROBE_IMAGES} images of {size} x {size} px shaped by "
            f"its card (channels {model.card.channels}, layout {model.card.layout}): "
            f"{type(exc).__name__}: {str(exc).strip()[:400]}. Set {where}.input_size, .channels "
            "and .layout to what it was trained with."
        ) from None
    if not torch.isfinite(scores).all():
        raise ConfigError(f"{where}: the model returns NaN or infinite scores on random images "
                          "in the card's range; check scale, mean and std.")
    sums = scores.sum(dim=1)
    looks_like_probabilities = bool((scores >= -1e-6).all() and (sums - 1).abs().max() < 1e-3)
    if model.card.output == "logits" and looks_like_probabilities:
        raise ConfigError(
            f"{where}.output: the model's outputs are non-negative and sum to 1 (a softmax), but "
            f"the card says logits. Set {where}.output: probabilities."
        )
    if model.card.output == "probabilities" and not looks_like_probabilities:
        raise ConfigError(
            f"{where}.output: the card says probabilities but the model's outputs do not sum to 1 "
            f"(sums {[round(float(s), 4) for s in sums]}); they are logits. Set "
            f"{where}.output: logits."
        )


def _probe_capabilities(model, size: int, methods, where: str, torch) -> None:
    """Gradients reach the input, and a convolutional layer runs hooks, when methods need them."""
    needs = set().union(*(method_needs(m) for m in methods))
    if "gradients" in needs and "gradients" in model.capabilities:
        x = _probe_batch(size, torch).requires_grad_(True)
        try:
            with torch.enable_grad():
                model(x)[:, 0].sum().backward()
            ok = x.grad is not None and bool(torch.isfinite(x.grad).all())
        except Exception as exc:
            ok, why = False, f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        else:
            why = "no finite gradient reached the input"
        if not ok:
            model.capabilities = model.capabilities - {"gradients", "layers", "modules"}
            log.warning("%s: no gradients (%s)", where, why)
    if "layers" in needs and "layers" in model.capabilities:
        if not _conv_hooks_fire(model, _probe_batch(size, torch), torch):
            model.capabilities = model.capabilities - {"layers"}


def _conv_hooks_fire(model, images, torch) -> bool:
    """Does a forward pass run the hooks of a convolution (an ``nn.Conv2d``, or a module standing
    for one: ``ferxai_conv``, the channels-first tap after a Keras convolution)? The CAMs need it."""
    fired: list[bool] = []
    handles = [
        module.register_forward_hook(lambda *_: fired.append(True))
        for module in model.modules()
        if isinstance(module, torch.nn.Conv2d) or getattr(module, "ferxai_conv", False)
    ]
    try:
        with torch.inference_mode():
            model(images[:1])
    finally:
        for handle in handles:
            handle.remove()
    return bool(fired)


def _refuse_methods(methods, capabilities, where: str, what: str) -> None:
    """A ConfigError for the first method the model cannot serve, naming those that work."""
    for method in methods:
        missing = sorted(method_needs(method) - set(capabilities))
        if missing:
            works = methods_that_work(capabilities)
            raise ConfigError(
                f"attribution.methods: {method} needs {' and '.join(missing)} of the model, but "
                f"{what} ({where}) offers {', '.join(sorted(capabilities)) or 'nothing'}. Methods "
                f"that work on it: {', '.join(works)}. Remove {method} from attribution.methods, "
                "or give the model in a format that has it (docs/models.md: a state dict, or "
                "ONNX that onnx2torch converts)."
            )
