"""Weights of a network trained elsewhere, made to fit a ferxai network (``trained_weights``).

A file is accepted in two forms:

* **ferxai's** (``backbone.*`` + ``classifier.*`` keys for timm architectures, the scratch nets'
  own keys): a ``model.pt`` of another ferxai run, or a model built with
  :func:`ferxai.networks.create_model` and trained elsewhere;
* **timm's** (timm architectures only): the state dict of ``timm.create_model(arch,
  num_classes=N)``; its classifier (timm's ``pretrained_cfg['classifier']``, e.g. ``fc`` or
  ``head.fc``) becomes ferxai's ``classifier`` and everything else the ``backbone``.

``class_order`` names the head's outputs in its own order. The rows of the last linear layer are
re-ordered to ferxai's (:data:`ferxai.core.constants.EXPRESSIONS`) and the rows of any other class
(Neutral, Contempt, ...) are dropped: the network then scores the six expressions with the logits
it had for them, and its softmax is the one over those six.
"""

from __future__ import annotations

import os

import torch

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError
from ferxai.networks.pretrained import read_state_dict
from ferxai.networks.registry import class_rows


def adapt_state_dict(model: torch.nn.Module, path: str | os.PathLike, network: str,
                     class_order=None) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` in ``model``'s key layout with its head's rows in ferxai's
    expression order (see the module docstring)."""
    state = read_state_dict(path, network)
    own = model.state_dict()
    if hasattr(model, "backbone") and not any(k.startswith("backbone.") for k in state):
        state = _from_timm(model, state)
    head = _head_key(own)
    if head not in state or head.removesuffix("weight") + "bias" not in state:
        raise ConfigError(
            f"trained_weights: {path} does not fit {network}: it has no {head} (the last linear "
            "layer). Save the state dict of the ferxai model or of timm.create_model(arch, "
            "num_classes=N)."
        )
    bias = head.removesuffix("weight") + "bias"
    rows, n = class_rows(class_order or EXPRESSIONS, f"{network}: class_order")
    if state[head].shape[0] != n:
        raise ConfigError(
            f"trained_weights: the head of {path} has {state[head].shape[0]} outputs but "
            f"class_order lists {n} classes ({network}). Set networks.overrides.{network}."
            "class_order to the head's classes in its order."
        )
    index = torch.tensor(rows)
    state[head] = state[head][index].clone()
    state[bias] = state[bias][index].clone()
    return state


def _from_timm(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's key layout → ferxai's: the classifier keys → ``classifier.*``, the rest → backbone."""
    names = model.backbone.pretrained_cfg.get("classifier") or "fc"
    names = [names] if isinstance(names, str) else list(names)
    out = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        out[f"classifier.{leaf}" if prefix in names else f"backbone.{key}"] = value
    return out


def _head_key(own: dict[str, torch.Tensor]) -> str:
    """The weight of the model's last linear layer (ferxai's ``classifier``, a scratch net's last
    dense layer): the last 2-D ``*.weight`` in registration order."""
    return [k for k, v in own.items() if k.endswith("weight") and v.ndim == 2][-1]
