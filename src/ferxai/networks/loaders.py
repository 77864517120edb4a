"""Models trained elsewhere, from any framework, as one torch interface (``trained_weights``).

The file type decides how a model is read (:data:`FORMATS`):

* a **state dict** (``.pt``, ``.pth``, ``.safetensors``, anything else): loaded into a ferxai or
  timm architecture (``arch``) by the factory, :func:`ferxai.networks.load_trained`, as before
  (which sends every other format here);
* **TorchScript** (``.ts``, ``.torchscript``, or a ``.pt``/``.pth`` that is a TorchScript
  archive): ``torch.jit.load``;
* a **torch.export program** (``.pt2``): ``torch.export.load(...).module()``;
* **ONNX** (``.onnx``): ONNX Runtime (``runtime="onnxruntime"``: forward passes only, for the
  perturbation methods) or, converted by ``onnx2torch``, a torch module (``runtime="torch"``);
* **Keras** 3 ``.keras`` or legacy Keras 2 ``.h5``: read by Keras 3 on its PyTorch backend
  (``KERAS_BACKEND=torch``, set here before Keras is imported), so the Keras model *is* a torch
  module and autograd runs through it.

Each model is wrapped in :class:`CardModel`, which applies its card
(:mod:`ferxai.networks.model_card`) to ferxai's (N, 3, S, S) [0, 1] batches and returns the six
expressions' logits; its ``capabilities`` say what the explanation methods may ask of it
(:mod:`ferxai.networks.capabilities`).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ferxai.core.errors import ConfigError
from ferxai.networks.model_card import (
    LUMA,
    STATE_DICT,
    ModelCard,
    make_card,
    model_format,
)

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnxruntime")
# What each kind of model lets a method do: run it, differentiate it, hook a convolutional layer's
# output (CAMs), and replace its nn.ReLU modules' backward (guided backprop, DeepLIFT).
ALL = frozenset({"forward", "gradients", "layers", "modules"})
CAPABILITIES = {
    STATE_DICT: ALL,
    "torchscript": frozenset({"forward", "gradients"}),  # scripted submodules run no hooks
    "torch.export": frozenset({"forward", "gradients"}),  # one flat graph of aten ops
    "onnx/torch": ALL,  # onnx2torch builds nn.Conv2d, nn.ReLU, ...
    "onnx/onnxruntime": frozenset({"forward"}),
    "keras": frozenset({"forward", "gradients", "layers"}),  # activations are not nn modules
}


# ------------------------------------------------------------------------------------ wrapper


class CardModel(nn.Module):
    """A model trained elsewhere behind ferxai's interface: ``forward(x)`` takes (N, 3, S, S) RGB
    in [0, 1] and returns the six expressions' logits (N, 6) in ferxai's order; ``scores(x)``
    returns the model's own outputs over all its classes."""

    def __init__(self, core: nn.Module, card: ModelCard, fmt: str, runtime: str,
                 source: str) -> None:
        from ferxai.networks.registry import class_rows

        super().__init__()
        self.core, self.card, self.format, self.runtime = core, card, fmt, runtime
        self.source = source
        self.capabilities = CAPABILITIES[f"onnx/{runtime}" if fmt == "onnx" else fmt]
        self.fixed_forward = runtime == "onnxruntime"  # ferxai.networks.forward: nothing to re-path
        self.rows, self.n_outputs = class_rows(card.class_order, f"{source}: class_order")
        low, high = card.scale
        self.low, self.span = low, high - low
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)
        for key in ("mean", "std"):
            values = getattr(card, key)
            tensor = None if values is None else torch.tensor(values).view(1, -1, 1, 1)
            self.register_buffer(key, tensor, persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """ferxai's batch → the model's input (torch arithmetic: gradients reach ``x``)."""
        if self.card.channels == 1:
            x = (x * self.luma.to(x.dtype)).sum(dim=1, keepdim=True)
        if (self.low, self.span) != (0.0, 1.0):  # ferxai's own range needs no arithmetic
            x = self.low + self.span * x
        if self.mean is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.card.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return x

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        out = self.core(self.prepare(x))
        if isinstance(out, list | tuple):  # a model with several outputs: the first is the head
            out = out[0]
        if out.ndim != 2 or out.shape[1] != self.n_outputs:
            raise ConfigError(
                f"{self.source}: the model returns shape {tuple(out.shape)} but class_order lists "
                f"{self.n_outputs} classes. Set class_order to its outputs' classes in order."
            )
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        six = self.scores(x)[:, self.rows]
        if self.card.output == "probabilities":
            # softmax(log p) = p / sum(p): the six renormalized, as the card promises
            six = torch.log(six.float().clamp_min(torch.finfo(torch.float32).tiny))
        return six


# ---------------------------------------------------------------------------------- the cores


class FixedBatch(nn.Module):
    """A core exported for one batch size: batches are split into, and padded to, that size."""

    def __init__(self, core: nn.Module, batch: int) -> None:
        super().__init__()
        self.inner, self.batch = core, batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, batch = x.shape[0], self.batch
        if n == batch:
            return self.inner(x)
        parts = []
        for start in range(0, n, batch):
            part = x[start : start + batch]
            short = batch - part.shape[0]
            if short:
                part = torch.cat([part, part.new_zeros((short, *part.shape[1:]))])
            parts.append(self.inner(part)[: batch - short])
        return torch.cat(parts)


class ExportedCore(nn.Module):
    """A torch.export program's module: fixed in the mode it was exported in (its graph refuses
    ``train()``), so switching modes stops here."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.program = module

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


class OnnxRuntimeCore(nn.Module):
    """ONNX Runtime (CPU) behind a torch module: forward passes only, never gradients."""

    def __init__(self, model_bytes: bytes, source: str) -> None:
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # idle ORT threads would spin on the cores LIME's perturbations need (ferxai.networks.forward)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model_bytes, options,
                                            providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_name, self.source = first.name, source
        self.dtype = {"tensor(float16)": "float16", "tensor(double)": "float64"}.get(
            first.type, "float32"
        )
        self.batch = first.shape[0] if isinstance(first.shape[0], int) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            raise ConfigError(
                f"{self.source}: this ONNX model runs on ONNX Runtime, which has no gradients; "
                "load it with runtime='torch' (onnx2torch) for gradient methods."
            )
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        array = array.astype(self.dtype, copy=False)
        batch = self.batch or len(array)
        outputs = []
        for start in range(0, len(array), batch):
            part = array[start : start + batch]
            short = batch - len(part)
            if short:
                part = np.concatenate([part, np.zeros((short, *part.shape[1:]), part.dtype)])
            out = self.session.run(None, {self.input_name: part})[0]
            outputs.append(out[: batch - short])
        out = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        return torch.from_numpy(out.astype(np.float32, copy=False)).to(x.device)


class LayerTap(nn.Identity):
    """The output of one of a Keras model's convolutional layers, channels first: Grad-CAM and
    the other CAMs hook this module (``ferxai_conv``) and see (N, C, h, w) activations whatever
    the Keras layer's data format."""

    ferxai_conv = True


class KerasCore(nn.Module):
    """A Keras 3 model on the PyTorch backend (it is an ``nn.Module``), called in inference mode,
    with a :class:`LayerTap` after each of its 2-D convolutions (``layers.<Keras name>``)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.net = model
        self.layers = nn.ModuleDict()
        for layer in _keras_layers(model):
            kind = type(layer).__name__
            if "Conv2D" not in kind:
                continue
            tap = LayerTap()
            self.layers[_module_name(layer.name, self.layers)] = tap
            last = getattr(layer, "data_format", "channels_last") == "channels_last"
            layer.register_forward_hook(_tap_hook(tap, last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, training=False)


def _tap_hook(tap: LayerTap, channels_last: bool):
    def hook(module, inputs, output):
        if not torch.is_tensor(output) or output.ndim != 4:
            return None
        if channels_last:
            return tap(output.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return tap(output)

    return hook


def _keras_layers(model) -> list:
    """Every layer of a Keras model, nested models' layers included, in call order."""
    out = []
    for layer in getattr(model, "layers", []):
        out += _keras_layers(layer) if hasattr(layer, "layers") else [layer]
    return out


def _module_name(name: str, taken) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "layer"
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


# -------------------------------------------------------------------------------- the loaders


def load_trained(
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    runtime: str = "auto",
    network: str | None = None,
    randomize_seed: int | None = None,
    device: str | None = None,
    **card,
) -> nn.Module:
    """The whole model in ``path`` behind ferxai's interface, in eval mode: (N, 3, S, S) RGB in
    [0, 1] → the six expressions' logits (N, 6), for the Python API and every method alike
    (:func:`ferxai.load_trained` and :func:`ferxai.networks.load_trained` take state dicts too).

    ``card``: ``input_size``, ``channels``, ``layout``, ``scale``, ``mean``, ``std``, ``output``,
    ``class_order`` (:mod:`ferxai.networks.model_card`). ``arch``: refused (a state dict's key).
    ``runtime`` (ONNX only): ``onnxruntime`` (forward passes: the
    perturbation methods), ``torch`` (onnx2torch: every method) or ``auto`` (ONNX Runtime when
    installed). ``randomize_seed``: redraw the weights (the sanity check's randomized twin).
    ``device`` (``cpu``, ``cuda``): where the caller will run it (Keras places its variables and
    inputs at import; default cpu)."""
    if device is not None:
        _JOB_DEVICE[0] = torch.device(device).type
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime: {runtime!r}; use one of {', '.join(RUNTIMES)}.")
    path = Path(path)
    network = network or path.stem
    source = f"trained_weights {path} ({network})"
    fmt = model_format(path)
    if not path.is_file():
        raise ConfigError(f"{source}: no such file. Fix the path (relative paths are relative "
                          "to the working directory).")
    model_card = make_card(f"networks.overrides.{network}", **card)
    if fmt == STATE_DICT:  # the factory builds its architecture (and sends whole models here)
        raise ConfigError(
            f"{source}: a state dict holds no architecture; load it with "
            "ferxai.load_trained(path, arch=...) or ferxai.networks.load_trained(arch, path)."
        )
    if arch is not None:
        raise ConfigError(
            f"networks.overrides.{network}.arch: {path.name} is a whole {fmt} model, which "
            "carries its architecture; arch applies to state dicts only. Remove arch."
        )
    declared = None
    if fmt == "onnx":
        core, runtime, declared = _onnx_core(path, runtime, source, randomize_seed)
    else:
        core, runtime = _LOADERS[fmt](path, source), "torch"
        declared = _declared_shape(core)
        if randomize_seed is not None:
            randomize_parameters(core, randomize_seed)
    model = CardModel(core, model_card, fmt, runtime, source).eval()
    model.declared_shape = declared  # the input shape the file declares (None: unknown)
    return model


def _declared_shape(core: nn.Module) -> list | None:
    """The input shape a Keras model or torch.export program declares (None where dynamic)."""
    if isinstance(core, KerasCore):
        shape = core.net.input_shape
        return list(shape[0] if shape and isinstance(shape[0], list | tuple) else shape)
    if isinstance(core, FixedBatch):
        return _declared_shape(core.inner) or None
    program_shape = getattr(core, "program_input_shape", None)
    return list(program_shape) if program_shape else None


def _torchscript(path: Path, source: str) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # torch raises RuntimeError and others for foreign files
        raise ConfigError(f"{source}: not a readable TorchScript archive ({_first_line(exc)}). "
                          "Save it with torch.jit.save(torch.jit.script(model), path).") from exc


def _exported(path: Path, source: str) -> nn.Module:
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ConfigError(f"{source}: not a readable torch.export program ({_first_line(exc)}). "
                          "Save it with torch.export.save(torch.export.export(model, (x,)), "
                          "path).") from exc
    module = ExportedCore(program.module())
    shape = _program_input_shape(program)
    module.program_input_shape = shape
    if shape and isinstance(shape[0], int):  # exported without a dynamic batch dimension
        wrapped = FixedBatch(module, shape[0])
        wrapped.program_input_shape = shape
        return wrapped
    return module


def _program_input_shape(program) -> list | None:
    """The first user input's shape in a program: ints where static, None where dynamic."""
    users = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in users:
            value = node.meta.get("val")
            if value is None:
                return None
            return [int(d) if isinstance(d, int) else None for d in value.shape]
    return None


def _keras(path: Path, source: str) -> nn.Module:
    backend = os.environ.setdefault("KERAS_BACKEND", "torch")
    # Keras puts its variables and every input on its own device (read once, at its import): the
    # device the job runs on, else a GPU whenever one is visible even for a CPU job.
    os.environ.setdefault("KERAS_TORCH_DEVICE", _JOB_DEVICE[0])
    try:
        import keras
    except ImportError as exc:
        raise ConfigError(f"{source}: reading Keras models needs Keras 3: pip install "
                          "'ferxai[keras]' (keras>=3).") from exc
    if keras.backend.backend() != "torch":
        raise ConfigError(
            f"{source}: Keras runs on its {keras.backend.backend()} backend here (KERAS_BACKEND="
            f"{backend}); ferxai needs the PyTorch backend for gradients. Unset KERAS_BACKEND or "
            "set it to torch before the first import of keras."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError... for bad files
        raise ConfigError(f"{source}: Keras cannot read it ({_first_line(exc)}). Save it with "
                          "model.save('model.keras') (or .h5) from Keras.") from exc
    return KerasCore(model)


def _onnx_core(path: Path, runtime: str, source: str, seed) -> tuple[nn.Module, str, list]:
    try:
        import onnx
    except ImportError as exc:
        raise ConfigError(f"{source}: reading ONNX models needs onnx: pip install "
                          "'ferxai[onnx]'.") from exc
    try:
        proto = onnx.load(str(path))
    except Exception as exc:
        raise ConfigError(f"{source}: not a readable ONNX file ({_first_line(exc)}). Re-export "
                          "it (torch.onnx.export, tf2onnx).") from exc
    if seed is not None:
        _randomize_initializers(proto, seed)
    if runtime == "auto":
        from ferxai.networks.forward import onnxruntime_available

        runtime = "onnxruntime" if onnxruntime_available() else "torch"
    declared = [d if isinstance(d, int) and d > 0 else None for d in onnx_input_shape(proto)]
    batch = declared[0] if declared else None
    if runtime == "onnxruntime":
        try:
            return OnnxRuntimeCore(proto.SerializeToString(), source), runtime, declared
        except ImportError as exc:
            raise ConfigError(f"{source}: running ONNX models needs onnxruntime: pip install "
                              "'ferxai[onnx]'.") from exc
        except Exception as exc:
            raise ConfigError(f"{source}: ONNX Runtime cannot run it ({_first_line(exc)}). "
                              "Re-export it with a supported opset.") from exc
    core = onnx_to_torch(proto, source)
    return (FixedBatch(core, batch) if batch else core), runtime, declared


def onnx_to_torch(proto, source: str) -> nn.Module:
    """The ONNX graph as a torch module (onnx2torch); a ConfigError when it cannot convert."""
    try:
        from onnx2torch import convert
    except ImportError as exc:
        raise ConfigError(f"{source}: gradient methods on ONNX models need onnx2torch: pip "
                          "install 'ferxai[onnx]'.") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return convert(proto).eval()
    except Exception as exc:  # NotImplementedError for ops onnx2torch lacks, and others
        raise GradientsUnavailable(f"onnx2torch cannot convert it ({_first_line(exc)})") from exc


class GradientsUnavailable(ConfigError):
    """An ONNX model onnx2torch cannot convert: ONNX Runtime only, no gradients."""


def onnx_input_shape(proto) -> list:
    """The first graph input's dims: ints where fixed, names (str) or None where dynamic."""
    initializers = {i.name for i in proto.graph.initializer}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]
    return [None]


_LOADERS = {"torchscript": _torchscript, "torch.export": _exported, "keras": _keras}
_JOB_DEVICE = ["cpu"]  # load_trained(device=...): where a Keras model's variables live


# ------------------------------------------------------------------------------ randomization


def reset_layers(model: nn.Module, seed: int) -> None:
    """Re-initialize every layer from ``seed`` with its own ``reset_parameters`` (Adebayo et al.'s
    full model randomization of an architecture ferxai builds)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


def randomize_parameters(module: nn.Module, seed: int) -> None:
    """Redraw every weight tensor of ≥ 2 dims uniformly in ±1/√fan-in (torch's default for conv
    and linear layers; fan-in = its size over its first dimension); biases and norms stay. For
    whole models, whose layers have no ``reset_parameters`` (Keras, TorchScript, torch.export)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.ndim >= 2 and param.is_floating_point():
                bound = 1.0 / math.sqrt(max(param.numel() // param.shape[0], 1))
                fresh = torch.rand(param.shape, generator=generator) * 2 * bound - bound
                param.copy_(fresh.to(param.dtype))


def _randomize_initializers(proto, seed: int) -> None:
    """:func:`randomize_parameters` on an ONNX graph's float initializers of ≥ 2 dims."""
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    for index, tensor in enumerate(proto.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.ndim >= 2 and array.dtype.kind == "f":
            bound = 1.0 / math.sqrt(max(array.size // array.shape[0], 1))
            fresh = rng.uniform(-bound, bound, array.shape).astype(array.dtype)
            proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(fresh, tensor.name))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
