"""Workflow configuration: defaults from the JSON schema, validation with messages that name the key.

The schema (``workflow/schemas/config.schema.yaml``, shipped as package data too) is the single
source of truth for keys, types, ranges and defaults. On top of it :func:`validate_config` checks
what a schema cannot express (network names: the paper's, timm's or a model trained elsewhere;
pre-trained weights present, folds named by the sanity check exist, a GPU where ``device: cuda``
asks for one).
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

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError

SCHEMA_FILE = "config.schema.yaml"


@cache
def load_schema() -> dict:
    """The configuration schema, read from the workflow in this source checkout."""
    path = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / SCHEMA_FILE
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
    _check_import_source(data, source)
    _check_crop(data, source)
    _check_networks(config, source)
    folds = data["folds"]
    bad = [f for f in config["sanity"]["folds"] if f > folds]
    if config["sanity"]["enabled"] and bad:
        raise ConfigError(
            f"{source}: sanity.folds names fold(s) {bad} but data.folds is {folds}; "
            f"use folds between 1 and {folds}."
        )
    unrun = [m for m in config["sanity"]["methods"] or [] if m not in config["attribution"]["methods"]]
    if config["sanity"]["enabled"] and unrun:
        raise ConfigError(
            f"{source}: sanity.methods names {unrun}, which attribution.methods does not run "
            f"({config['attribution']['methods']}); add them there, remove them here, or use "
            "null for every method."
        )
    _check_quality(config, source)
    if config["device"] == "cuda" and not _gpu_visible():
        raise ConfigError(
            f"{source}: device is cuda but no GPU is visible here "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). "
            "Use device: auto (GPU when the job has one) or run where a GPU is visible."
        )


def _check_quality(config: dict, source: str) -> None:
    """Settings of the quality stage the schema cannot check alone."""
    from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH

    quality = config["quality"]
    pixels = CANVAS_HEIGHT * CANVAS_WIDTH
    if quality["top_k"] > pixels:
        raise ConfigError(
            f"{source}: quality.top_k = {quality['top_k']} is larger than a map on the canonical "
            f"canvas ({CANVAS_HEIGHT} × {CANVAS_WIDTH} = {pixels} pixels); lower it."
        )
    if not quality["enabled"]:
        return
    missing = [m for m in quality["methods"] if m not in config["attribution"]["methods"]]
    if missing:
        raise ConfigError(
            f"{source}: quality.methods names {missing}, which attribution.methods does not run "
            f"({config['attribution']['methods']}); add them there or remove them here."
        )
    bad = [f for f in quality["folds"] if f > config["data"]["folds"]]
    if bad:
        raise ConfigError(
            f"{source}: quality.folds names fold(s) {bad} but data.folds is "
            f"{config['data']['folds']}; use folds between 1 and {config['data']['folds']}."
        )
    unknown = [n for n in quality["networks"] or [] if n not in config["networks"]["names"]]
    if unknown:
        raise ConfigError(
            f"{source}: quality.networks names {unknown}, which networks.names does not train; "
            "add them there or remove them here."
        )
    for name in quality["networks"] or config["networks"]["names"]:
        size = network_settings(config, name).get("input_size")
        if size is not None and quality["patch_size"] > size:
            raise ConfigError(
                f"{source}: quality.patch_size = {quality['patch_size']} is larger than {name}'s "
                f"input ({size} px); lower it."
            )
    if isinstance(quality["baseline"], str) and quality["baseline"] not in (
        "black",
        "white",
        "mean",
    ):
        raise ConfigError(
            f"{source}: quality.baseline = {quality['baseline']!r}: use black, white, mean or a "
            "number."
        )


# The input/output card of a model trained elsewhere (ferxai.networks.model_card) is per network.
CARD_KEYS = ("channels", "layout", "scale", "mean", "std", "output")
PER_NETWORK_KEYS = ("trained_weights", "arch", "class_order", *CARD_KEYS)


def _check_networks(config: dict, source: str) -> None:
    """Every name is one of the twelve, a timm architecture or a model trained elsewhere; weights
    and pre-training fit the network."""
    from ferxai.networks.registry import is_known, list_models, model_info

    nets = config["networks"]
    for key in PER_NETWORK_KEYS:
        if (nets["defaults"] or {}).get(key) is not None:
            raise ConfigError(
                f"{source}: networks.defaults.{key}: set per network only, under "
                f"networks.overrides.<name>.{key}."
            )
    for name in nets["overrides"] or {}:
        if name not in nets["names"] and not is_known(name):
            raise ConfigError(
                f"{source}: networks.overrides.{name}: {name!r} is not in networks.names and is "
                f"neither one of the paper's networks ({', '.join(list_models())}) nor a timm "
                "architecture. Fix the spelling or add it to networks.names."
            )
    for name in nets["names"]:
        settings = network_settings(config, name)
        where = f"networks.overrides.{name}"
        if settings.get("trained_weights"):
            _check_trained(settings, name, where, source)
            continue
        for key in ("arch", "class_order", *CARD_KEYS):
            if settings.get(key) is not None:
                raise ConfigError(
                    f"{source}: {where}.{key}: only for a model trained elsewhere (with "
                    f"{where}.trained_weights). To train a timm architecture, list its timm name "
                    "in networks.names."
                )
        if not is_known(name):
            lowered = {n.lower(): n for n in list_models()}
            hint = f" Did you mean {lowered[name.lower()]!r}?" if name.lower() in lowered else ""
            raise ConfigError(
                f"{source}: networks.names: {name!r} is neither one of the paper's networks "
                f"({', '.join(list_models())}) nor a timm architecture.{hint} Fix: spell it as the "
                "paper does, use a timm name (lower case, see timm.list_models(); a weight tag "
                "after a dot: resnet18.a1_in1k), or, for a model trained elsewhere, set "
                f"{where}.trained_weights (and {where}.arch)."
            )
        info = model_info(name)
        if settings["pretrained"] and info.timm_name is None:
            raise ConfigError(
                f"{source}: networks: {name} is trained from scratch in the paper and has no "
                "pre-trained weights; set pretrained: false for it."
            )
        weights = settings["weights"]
        if settings["pretrained"] and not info.pretrained_default and not _given(nets, name):
            raise ConfigError(
                f"{source}: networks: {name} has pretrained: true but timm has no pre-trained "
                f"weights for it. Name a tag that has some (timm.list_pretrained('{name}*')), set "
                f"{where}.weights to a local file, or set pretrained: false."
            )
        if settings["pretrained"] and _given(nets, name) and weights != "hf-cache":
            if not Path(weights).is_file():
                raise ConfigError(
                    f"{source}: networks: {name} weights file {weights!r} does not exist. "
                    f"Put the file there, fix {where}.weights, or remove it to have the local "
                    "rule fetch_weights download timm's weights once into networks.weights_cache."
                )


def _given(nets: dict, name: str) -> bool:
    """True when the configuration names a weights file (else the weight cache is used)."""
    own = (nets.get("overrides") or {}).get(name) or {}
    return bool(own.get("weights") or (nets.get("defaults") or {}).get("weights"))


def _check_trained(settings: dict, name: str, where: str, source: str) -> None:
    from ferxai.networks.registry import class_rows, is_known, list_models, model_info

    if _check_whole_model(settings, where, source):
        return
    arch = settings.get("arch") or name
    if not is_known(arch):
        raise ConfigError(
            f"{source}: {where}.arch: {arch!r} is neither one of the paper's networks "
            f"({', '.join(list_models())}) nor a timm architecture. Set {where}.arch to the "
            "architecture the weights were trained with (e.g. resnet18)."
        )
    path = settings["trained_weights"]
    if not Path(path).is_file():
        raise ConfigError(
            f"{source}: {where}.trained_weights: {path!r} does not exist (relative paths are "
            "relative to the working directory). Fix the path."
        )
    size = settings.get("input_size")
    if size is not None and size < model_info(arch).min_input_size:
        raise ConfigError(
            f"{source}: {where}.input_size: {size} px is too small for {arch} (needs >= "
            f"{model_info(arch).min_input_size}); set the size the model was trained at."
        )
    class_rows(settings.get("class_order") or EXPRESSIONS, f"{source}: {where}.class_order")


# What reading each whole-model format needs (module, the extra that installs it).
_FORMAT_PACKAGES = {"onnx": (("onnx", "onnx"),), "keras": (("keras", "keras"),)}


def _check_whole_model(settings: dict, where: str, source: str) -> bool:
    """The static checks of a whole model trained elsewhere (TorchScript, torch.export, ONNX,
    Keras): its card's values, no arch, the packages its format needs; False for a state dict,
    which the caller checks. Loading and probing the file is ferxai.networks.model_check's (run
    by the workflow before any job)."""
    import importlib.util

    from ferxai.networks.model_card import STATE_DICT, card_from_settings, model_format

    path = settings["trained_weights"]
    card_from_settings(settings, f"{source}: {where}")  # every value of the card is valid
    if not Path(path).is_file() and model_format(path) == STATE_DICT:
        return False  # the caller checks a state dict's arch, then its file
    if not Path(path).is_file():
        raise ConfigError(
            f"{source}: {where}.trained_weights: {path!r} does not exist (relative paths are "
            "relative to the working directory). Fix the path."
        )
    fmt = model_format(path)
    if fmt == STATE_DICT:
        given = [k for k in CARD_KEYS if settings.get(k) is not None]
        if given:
            raise ConfigError(
                f"{source}: {where}.{given[0]}: {Path(path).name} is a state dict, loaded into a "
                "ferxai architecture that takes ferxai's inputs (RGB in [0, 1]) and returns "
                f"logits; {', '.join(CARD_KEYS)} describe whole models. Remove it, or export the "
                "whole model (TorchScript, torch.export, ONNX; docs/models.md)."
            )
        return False
    if settings.get("arch") is not None:
        raise ConfigError(
            f"{source}: {where}.arch: {Path(path).name} is a whole {fmt} model, which carries "
            "its architecture; arch applies to state dicts only. Remove arch."
        )
    for module, extra in _FORMAT_PACKAGES.get(fmt, ()):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"{source}: {where}.trained_weights: reading {fmt} models needs the {module} "
                f"package: pip install 'ferxai[{extra}]'."
            )
    return True


def weights_cache(config: Mapping[str, Any]) -> str:
    """Folder of the fetched pre-trained weights: networks.weights_cache, else <results>/weights."""
    cache_dir = (config.get("networks") or {}).get("weights_cache")
    return cache_dir or f"{config.get('results', 'results')}/weights"


def trained_networks(config: Mapping[str, Any]) -> dict[str, str]:
    """Networks given by ``trained_weights`` (no train job) → the absolute path of their file."""
    out = {}
    for name in config["networks"]["names"]:
        path = network_settings(config, name).get("trained_weights")
        if path:
            out[name] = os.path.abspath(path)
    return out


def fetched_weights(config: Mapping[str, Any], name: str) -> str | None:
    """The weight-cache file a network trains from (pretrained: true, no weights), else None."""
    settings = network_settings(config, name)
    if settings.get("trained_weights") or not settings["pretrained"]:
        return None
    if _given(config.get("networks") or {}, name):
        return None
    from ferxai.networks.registry import weights_file_name

    return str(Path(weights_cache(config)) / weights_file_name(name))


def _check_import_source(data: dict, source: str) -> None:
    """An import format (data.source ckplus, ...) needs data.path, naming what it points at."""
    from ferxai.data.importers import FORMATS

    importer = FORMATS.get(data["source"])
    if importer is None:
        return
    if not data["path"]:
        raise ConfigError(
            f"{source}: data.source is {importer.name} but data.path is not set. Fix: set "
            f"data.path to {importer.point_at} ({importer.title} as distributed: "
            f"{importer.layout})."
        )
    if not Path(data["path"]).exists():
        raise ConfigError(
            f"{source}: data.path = {data['path']!r} does not exist (relative paths are relative "
            f"to the working directory). Fix: set it to {importer.point_at}."
        )


def _check_crop(data: dict, source: str) -> None:
    """data.crop box / landmarks need a source that can carry face boxes / landmarks."""
    from ferxai.data.importers import FORMATS

    importer = FORMATS.get(data["source"])
    if data["crop"] == "box" and (
        data["source"] in ("synthetic", "folder")
        or (importer is not None and "face_x" not in importer.extra_columns)
    ):
        raise ConfigError(
            f"{source}: data.crop is box but data.source {data['source']} has no face boxes "
            "(face_x,face_y,face_width,face_height: affectnet, or a manifest with those columns). "
            "Fix: crop with landmarks or detector."
        )
    if data["crop"] == "landmarks" and (
        data["source"] == "folder" or (importer is not None and not importer.landmarks)
    ):
        raise ConfigError(
            f"{source}: data.crop is landmarks but data.source {data['source']} gives no "
            "landmarks (ckplus, affectnet, synthetic or a manifest with a landmarks column do). "
            "Fix: crop with detector."
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
    if settings["pretrained"] and not settings["weights"] and not settings.get("trained_weights"):
        from ferxai.networks.registry import is_known, model_info, weights_file_name

        # unknown names and scratch nets: validate_config says why not
        if is_known(name) and model_info(name).timm_name is not None:
            settings["weights"] = str(Path(weights_cache(config)) / weights_file_name(name))
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
