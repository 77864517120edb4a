"""Argument helpers shared by the stages' commands: JSON flags and the stacks map of the workflow."""

from __future__ import annotations

import json
import os
from typing import Any

from ferxai.core.errors import ConfigError
from ferxai.core.io import read_json


def json_arg(text: str, flag: str, kind: type) -> Any:
    """A flag holding inline JSON of type ``kind``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag}: not valid JSON ({exc}).") from exc
    if not isinstance(value, kind):
        raise ConfigError(f"{flag}: must be a JSON {kind.__name__}.")
    return value


def read_stacks_json(
    path: str | os.PathLike | None, flag: str = "--stacks-json"
) -> dict[str, list[str]]:
    """The stacks map 'Network/Expression' → normalized stack paths, given inline (a JSON object,
    as the workflow passes it) or as a .json file."""
    if path is None:
        return {}
    text = str(path).lstrip()
    data = json.loads(text) if text.startswith("{") else read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(
            f"{flag} {path}: expected an object mapping 'Network/Expression' to a list of "
            "normalized stack paths."
        )
    return data
