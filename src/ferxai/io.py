"""Atomic file writing and the typed HDF5 stacks every stage exchanges.

Every writer goes through :func:`atomic_path`: data are written to a temporary name in the target
folder and renamed only once complete, so a killed job or a full disk never leaves a half file that a
rerun could take as finished.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.errors import DataError, FerxaiError

STACK_FORMAT = "ferxai-stack/1"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix (writers that dispatch on it keep working) and starts with
    a dot, so globbing for results never sees it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A fixed temporary name: a rerun after a kill -9 overwrites the leftover instead of piling up
    # litter (Snakemake gives each output to exactly one job, so no two writers share it).
    tmp = target.with_name(f".{target.stem}.partial{target.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise FerxaiError(
                f"{target}: no space left on the device while writing it; nothing was kept. "
                "Free disk space (or point results/ to a larger filesystem) and rerun."
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_csv(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]
) -> None:
    """Write dict rows as CSV; floats are written with repr precision so reruns compare bit for bit."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="raise")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_cell(v) for k, v in row.items()})


def _csv_cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return "nan" if value != value else repr(value)
    return value


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 grayscale (H, W) or RGB (H, W, 3) array as PNG, atomically."""
    import cv2

    if image.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8, got {image.dtype}")
    array = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise FerxaiError(f"{path}: OpenCV could not encode the image as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def read_png_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit grayscale PNG (colour images are converted) as uint8 (H, W)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"{path}: cannot read this image (missing, truncated or not an image).")
    return image


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip("."))
    plt.close(fig)


# --------------------------------------------------------------------------------------- stacks


@dataclass
class Stack:
    """A stack of per-image maps with their identity and the model's verdict.

    ``maps`` is (N, H, W) float32: attribution maps at the network's input resolution, or
    normalized maps on the canonical canvas (275 x 224). ``extras`` holds further per-image arrays
    (``segments``, ``landmarks``, ``valid``...) and ``attrs`` the provenance attributes.
    """

    maps: np.ndarray
    image_id: list[str]
    true_label: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def __post_init__(self) -> None:
        n = self.maps.shape[0]
        if self.maps.ndim != 3:
            raise ValueError(f"maps must be (N, H, W), got {self.maps.shape}")
        for name in ("true_label", "predicted", "probabilities"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, maps have {n}")
        if len(self.image_id) != n:
            raise ValueError(f"image_id has {len(self.image_id)} rows, maps have {n}")


_CORE = ("maps", "image_id", "true_label", "predicted", "probabilities")


def write_stack(path: str | os.PathLike, stack: Stack) -> None:
    """Write a :class:`Stack` to HDF5 (chunked, gzip), atomically; ``attrs['complete']`` marks it done."""
    import h5py

    n = len(stack)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_array(h5, "maps", np.asarray(stack.maps, dtype=np.float32))
            h5.create_dataset(
                "image_id", data=np.array(stack.image_id, dtype=object), dtype=h5py.string_dtype()
            )
            h5.create_dataset("true_label", data=np.asarray(stack.true_label, dtype=np.int64))
            h5.create_dataset("predicted", data=np.asarray(stack.predicted, dtype=np.int64))
            probs = np.asarray(stack.probabilities, dtype=np.float32)
            if probs.ndim == 1:  # an empty stack's (0,) or one value per map
                probs = probs.reshape(n, -1) if n else probs.reshape(0, 0)
            h5.create_dataset("probabilities", data=probs)
            for name, array in stack.extras.items():
                _write_array(h5, name, np.asarray(array))
            for key, value in stack.attrs.items():
                h5.attrs[key] = _attr_value(value)
            h5.attrs["format"] = STACK_FORMAT
            h5.attrs["count"] = n
            h5.attrs["complete"] = True


def _write_array(h5, name: str, array: np.ndarray) -> None:
    if array.ndim >= 2 and array.shape[0] > 0:
        chunks = (1, *array.shape[1:])
        h5.create_dataset(name, data=array, chunks=chunks, compression="gzip", compression_opts=4)
    else:
        h5.create_dataset(name, data=array)


def _attr_value(value: Any) -> Any:
    if value is None:
        return "none"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=_json_default)
    if isinstance(value, Path):
        return str(value)
    return value


def read_stack(path: str | os.PathLike, load_maps: bool = True) -> Stack:
    """Read a stack written by :func:`write_stack`; refuse one that is not marked complete."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise DataError(
            f"{path}: not a readable HDF5 stack ({exc}). Delete it and rerun the job that makes it."
        ) from exc
    with h5:
        if not h5.attrs.get("complete", False) or h5.attrs.get("format") != STACK_FORMAT:
            raise DataError(
                f"{path}: incomplete or foreign HDF5 stack (no 'complete' mark). "
                "Delete it and rerun the job that makes it."
            )
        maps = h5["maps"][...] if load_maps else np.empty((h5["maps"].shape[0], 0, 0), np.float32)
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in h5["image_id"][...]]
        extras = {k: h5[k][...] for k in h5.keys() if k not in _CORE}
        attrs = {k: _decode_attr(v) for k, v in h5.attrs.items()}
        return Stack(
            maps=maps,
            image_id=ids,
            true_label=h5["true_label"][...],
            predicted=h5["predicted"][...],
            probabilities=h5["probabilities"][...],
            attrs=attrs,
            extras=extras,
        )


def iter_stack_maps(path: str | os.PathLike, chunk: int = 256) -> Iterator[np.ndarray]:
    """Yield the maps of a stack in chunks of at most ``chunk`` (memory independent of N)."""
    import h5py

    read_stack(path, load_maps=False)  # validates completeness
    with h5py.File(path, "r") as h5:
        maps = h5["maps"]
        for start in range(0, maps.shape[0], chunk):
            yield maps[start : start + chunk]


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
