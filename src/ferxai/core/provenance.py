"""Where an artifact came from: ferxai version, git commit, config hash and input hashes.

Stages call :func:`build` when they write an artifact and store the record either inside the HDF5
file (``attrs["provenance"]``, a JSON string from :func:`to_json`) or beside it as
``<output>.prov.json`` (:func:`write_sidecar`). The record holds no timestamps or host names, so a
rerun on the same inputs writes bit-identical artifacts. ``ferxai provenance PATH`` prints it.

In a stage (list every file read, so ``--recursive`` can walk heatmap → normalized stacks →
attribution stacks → checkpoint)::

    prov = provenance.build([weights, *positives, dataset], settings, {"network": model})
    stack.attrs["provenance"] = provenance.to_json(prov)     # before write_stack(path, stack)
    h5.attrs["provenance"] = provenance.to_json(prov)        # a file written with h5py
    provenance.write_sidecar("model.pt", prov)               # PNG, CSV, JSON, model.pt
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ferxai import __version__
from ferxai.core.errors import DataError
from ferxai.core.io import read_json, write_json

SIDECAR_SUFFIX = ".prov.json"
H5_ATTR = "provenance"
_HASH_CHUNK = 1 << 20
_SHORT = 12


# ----------------------------------------------------------------------------------- building


def build(
    inputs: Iterable[str | os.PathLike],
    settings: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance record of an artifact made from ``inputs`` with ``settings``."""
    settings = dict(settings or {})
    return {
        "ferxai_version": __version__,
        "git_commit": git_commit(),
        "config_hash": config_hash(settings),
        "settings": settings,
        "inputs": [_input_record(Path(p)) for p in inputs],
        "extra": dict(extra or {}),
    }


def config_hash(settings: Mapping[str, Any] | None) -> str:
    """sha256 of the canonical JSON of ``settings`` (sorted keys, no spaces)."""
    canonical = json.dumps(
        dict(settings or {}), sort_keys=True, separators=(",", ":"), default=_jsonable
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in chunks so multi-GB checkpoints need no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def git_commit() -> str | None:
    """HEAD of the git checkout ferxai runs from, else env FERXAI_GIT_COMMIT, else None."""
    repo = Path(__file__).resolve().parents[3]
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        result = None
    if result is not None and result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    return os.environ.get("FERXAI_GIT_COMMIT") or None


def _input_record(path: Path) -> dict[str, str]:
    if not path.exists():
        raise DataError(
            f"{path}: input listed for provenance does not exist. "
            "Pass the files the stage actually read."
        )
    shown = _portable_path(path)
    if path.is_dir():
        return {"path": shown, "sha256": "directory"}
    return {"path": shown, "sha256": file_sha256(path)}


def _portable_path(path: Path) -> str:
    # Snakemake runs jobs in the workdir: paths relative to it keep records identical across
    # checkouts and scratch folders.
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return str(path)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"not JSON serializable in settings: {type(obj).__name__}")


# ----------------------------------------------------------------------------- storing/reading


def to_json(prov: Mapping[str, Any]) -> str:
    """The record as the JSON string stored in an HDF5 attribute."""
    return json.dumps(prov, sort_keys=True, default=_jsonable)


def sidecar_path(output_path: str | os.PathLike) -> Path:
    output = Path(output_path)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def write_sidecar(output_path: str | os.PathLike, prov: Mapping[str, Any]) -> Path:
    """Write ``<output>.prov.json`` (atomically) and return its path."""
    path = sidecar_path(output_path)
    write_json(path, dict(prov))
    return path


def find(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record of ``path`` (HDF5 attribute first, then the sidecar), or None when it has none."""
    path = Path(path)
    if path.suffix in (".h5", ".hdf5") and path.is_file():
        prov = _read_h5_attr(path)
        if prov is not None:
            return prov
    sidecar = sidecar_path(path)
    if not sidecar.is_file() and path.is_file():
        # Files a command wrote into its --out-dir share that folder's record (model.pt, ...).
        sidecar = sidecar_path(path.parent)
    if sidecar.is_file():
        try:
            return read_json(sidecar)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{sidecar}: provenance sidecar is not valid JSON ({exc}). "
                "Delete it and rerun the job that made the artifact."
            ) from exc
    return None


def read(path: str | os.PathLike) -> dict[str, Any]:
    """The record of ``path``; :class:`DataError` when the artifact has none."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder. Check the path (relative to the workdir)."
        )
    prov = find(path)
    if prov is None:
        raise DataError(
            f"{path}: no provenance recorded (no HDF5 attribute 'provenance' and no "
            f"{sidecar_path(path).name}). It was made by an older ferxai or by hand; rerun its job."
        )
    return prov


def _read_h5_attr(path: Path) -> dict[str, Any] | None:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get(H5_ATTR)
    except OSError as exc:
        raise DataError(
            f"{path}: not a readable HDF5 file ({exc}). Delete it and rerun the job that makes it."
        ) from exc
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        return json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: attribute 'provenance' is not valid JSON ({exc}).") from exc


def locate_input(recorded: str, artifact: str | os.PathLike) -> Path | None:
    """Find a recorded input path: as given (relative to the cwd), else relative to an ancestor of
    the artifact (records hold workdir-relative paths; the user may call from elsewhere)."""
    candidate = Path(recorded)
    if candidate.exists():
        return candidate
    if candidate.is_absolute():
        return None
    for base in Path(artifact).resolve().parents:
        if (base / candidate).exists():
            return base / candidate
    return None


# ------------------------------------------------------------------------------------ printing


def format_record(path: str | os.PathLike, prov: Mapping[str, Any], recursive: bool = False) -> str:
    """A readable view of a record; with ``recursive`` also each input's own record, indented."""
    lines: list[str] = []
    _format_into(lines, Path(path), prov, recursive, depth=0, seen=set())
    return "\n".join(lines)


def _format_into(
    lines: list[str], path: Path, prov: Mapping[str, Any], recursive: bool, depth: int, seen: set
) -> None:
    pad = "    " * depth
    commit = prov.get("git_commit") or "unknown"
    lines.append(f"{pad}{path}")
    lines.append(
        f"{pad}  ferxai {prov.get('ferxai_version', '?')}, commit {commit[:_SHORT]}, "
        f"config {str(prov.get('config_hash', '?'))[:_SHORT]}"
    )
    for key, value in sorted((prov.get("settings") or {}).items()):
        lines.append(f"{pad}  setting {key} = {_compact(value)}")
    for key, value in sorted((prov.get("extra") or {}).items()):
        lines.append(f"{pad}  {key}: {_compact(value)}")
    seen.add(path.resolve())
    for item in prov.get("inputs") or []:
        digest = str(item.get("sha256", "?"))
        kind = input_kind(item.get("path", ""))
        lines.append(f"{pad}  {kind:<10} {item.get('path')}  sha256 {digest[:_SHORT]}")
        if not recursive:
            continue
        located = locate_input(item.get("path", ""), path)
        if located is None:
            lines.append(f"{pad}      (not found here; its provenance cannot be shown)")
            continue
        if located.resolve() in seen:
            continue
        sub = find(located)
        if sub is not None:
            _format_into(lines, located, sub, recursive, depth + 1, seen)


def input_kind(path: str) -> str:
    """A word for what an input is, from its name (for the printed view only)."""
    name = Path(path).name
    if name.endswith((".pt", ".ckpt", ".safetensors")):
        return "checkpoint"
    if name.endswith((".h5", ".hdf5")):
        return "stack"
    if name.endswith((".csv", ".tsv")):
        return "table"
    if name.endswith((".png", ".jpg", ".jpeg")):
        return "image"
    if name.endswith((".json", ".yaml", ".yml")):
        return "settings"
    return "input"


def _compact(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, sort_keys=True, default=_jsonable)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------ CLI


def cli_provenance_args(parser) -> None:
    parser.add_argument("path", help="an artifact (HDF5 stack, heatmap, PNG, CSV, model.pt...)")
    parser.add_argument(
        "--recursive",
        action="store_true",
        help="also print the provenance of each input that has one, indented",
    )
    parser.add_argument("--json", action="store_true", help="print the raw record as JSON")
    parser.set_defaults(provenance_inputs=(), provenance_outputs=())


def cli_provenance(args) -> None:
    prov = read(args.path)
    if args.json:
        print(json.dumps(prov, indent=2, sort_keys=True))
    else:
        print(format_record(args.path, prov, recursive=args.recursive))
