"""Workflow configuration: defaults from the JSON schema, validation with messages that name the key.

The schema (``workflow/schemas/config.schema.yaml``, shipped as package data too) is the single
source of truth for keys, types, ranges and defaults. On top of it :func:`validate_config` checks
what a schema cannot express (pre-trained weights present, folds named by the sanity check exist, a
GPU where ``device: cuda`` asks for one).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ferxai.constants import SCRATCH_NETWORKS
from ferxai.errors import ConfigError

SCHEMA_FILE = "config.schema.yaml"


@cache
def load_schema() -> dict:
    """The configuration schema, read from the workflow in this source checkout."""
    path = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / SCHEMA_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: the workflow's configuration schema is missing. ferxai validates configs "
            "from a source checkout: install it with `pip install -e .` from the repository."
        )
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return {
            **root["$defs"][ref.split("/")[-1]],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    return schema


def fill_defaults(config: dict, schema: dict | None = None, root: dict | None = None) -> dict:
    """Return a copy of ``config`` with every missing key set to its schema default (recursively)."""
    root = root or load_schema()
    schema = _resolve(schema or root, root)
    out = copy.deepcopy(config)
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict) and sub.get("type") == "object":
            out[key] = fill_defaults(out[key], sub, root)
    return out


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _format_error(error, source: str) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f" Allowed keys here: {', '.join(allowed)}." if allowed else ""
        return f"{source}: key {where}: {error.message} (a typo?).{hint}"
    if error.validator == "enum":
        return (
            f"{source}: key {where}: {error.instance!r} is not one of "
            f"{', '.join(map(str, error.validator_value))}."
        )
    if error.validator == "propertyNames":
        return f"{source}: key {where}: {error.message}."
    return f"{source}: key {where}: {error.message}."


def validate_config(config: Mapping[str, Any], source: str = "config") -> dict:
    """Fill defaults, validate against the schema and semantic rules; raise one clear ConfigError."""
    import jsonschema

    schema = load_schema()
    filled = fill_defaults(dict(config), schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_format_error(e, source) for e in errors[:10]]
        more = f"\n(and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise ConfigError(
            "invalid configuration:\n  " + "\n  ".join(lines) + more + "\n"
            "Fix the key(s) above; every key is described in workflow/schemas/config.schema.yaml."
        )
    _check_semantics(filled, source)
    return filled


def _check_semantics(config: dict, source: str) -> None:
    data = config["data"]
    if data["source"] == "manifest" and not data["manifest"]:
        raise ConfigError(f"{source}: data.source is manifest but data.manifest is not set.")
    if data["source"] == "folder" and not data["folder"]:
        raise ConfigError(f"{source}: data.source is folder but data.folder is not set.")
    for key in ("manifest", "folder"):
        if data["source"] == key and not Path(data[key]).exists():
            raise ConfigError(
                f"{source}: data.{key} = {data[key]!r} does not exist (relative paths are relative "
                "to the working directory). Fix the path."
            )
    for name in config["networks"]["names"]:
        settings = network_settings(config, name)
        if settings["pretrained"] and name in SCRATCH_NETWORKS:
            raise ConfigError(
                f"{source}: networks: {name} is trained from scratch in the paper and has no "
                "pre-trained weights; set pretrained: false for it."
            )
        weights = settings["weights"]
        if settings["pretrained"] and not weights:
            raise ConfigError(
                f"{source}: networks: {name} has pretrained: true but no weights file. Download the "
                f"ImageNet weights on a machine with network and set networks.overrides.{name}.weights "
                "to the .safetensors/.pth path (or 'hf-cache' for a pre-filled Hugging Face cache), "
                "or set pretrained: false."
            )
        if settings["pretrained"] and weights != "hf-cache" and not Path(weights).is_file():
            raise ConfigError(
                f"{source}: networks: {name} weights file {weights!r} does not exist. "
                f"Put the file there or fix networks.overrides.{name}.weights."
            )
    folds = data["folds"]
    bad = [f for f in config["sanity"]["folds"] if f > folds]
    if config["sanity"]["enabled"] and bad:
        raise ConfigError(
            f"{source}: sanity.folds names fold(s) {bad} but data.folds is {folds}; "
            f"use folds between 1 and {folds}."
        )
    if config["device"] == "cuda" and not _gpu_visible():
        raise ConfigError(
            f"{source}: device is cuda but no GPU is visible here "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). "
            "Use device: auto (GPU when the job has one) or run where a GPU is visible."
        )


def _gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def training_defaults() -> dict:
    return copy.deepcopy(load_schema()["$defs"]["training"]["default"])


def network_settings(config: Mapping[str, Any], name: str) -> dict:
    """Training settings of one network: schema defaults ← networks.defaults ← overrides[name]."""
    nets = config.get("networks", {})
    settings = training_defaults()
    settings.update(nets.get("defaults") or {})
    settings.update((nets.get("overrides") or {}).get(name) or {})
    settings.update(
        seed=int(config.get("seed", 42)),
        device=config.get("device", "auto"),
        precision=config.get("precision", "auto"),
    )
    return settings


def settings_json(settings: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces) — stable across runs, so Snakemake params compare equal."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def settings_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(settings_json(settings).encode()).hexdigest()[:16]


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a YAML config safely; a parse error names the file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of keys to values.")
    return data


def schema_markdown() -> str:
    """A Markdown table of every configuration key, its default and description (config/README.md)."""
    root = load_schema()
    lines = ["| key | default | description |", "| --- | --- | --- |"]

    def walk(schema: dict, prefix: str) -> None:
        for key, sub in schema.get("properties", {}).items():
            sub = _resolve(sub, root)
            name = f"{prefix}{key}"
            default = json.dumps(sub.get("default")) if "default" in sub else ""
            if sub.get("type") == "object" and "properties" in sub and key != "defaults":
                lines.append(f"| `{name}` | | {sub.get('description', '')} |")
                walk(sub, f"{name}.")
            else:
                desc = sub.get("description", "").replace("|", "\\|")
                lines.append(f"| `{name}` | `{default}` | {desc} |")

    walk(root, "")
    training = root["$defs"]["training"]
    lines += [
        "",
        "Training settings (`networks.defaults` and each `networks.overrides.<Network>`):",
        "",
    ]
    lines += ["| key | default | description |", "| --- | --- | --- |"]
    for key, sub in training["properties"].items():
        default = json.dumps(training["default"].get(key))
        desc = sub.get("description", "").replace("|", "\\|")
        lines.append(f"| `{key}` | `{default}` | {desc} |")
    return "\n".join(lines) + "\n"
