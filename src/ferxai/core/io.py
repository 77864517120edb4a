"""Atomic file writing and the typed HDF5 stacks every stage exchanges.

Every writer goes through :func:`atomic_path`: data are written to a temporary name in the target
folder and renamed only once complete, so a killed job or a full disk never leaves a half file that a
rerun could take as finished.

Every reader checks what it reads: HDF5 datasets are written with a Fletcher-32 checksum per chunk
(:func:`create_dataset`) that HDF5 verifies on every read, PNGs are checked chunk by chunk against
their CRC-32 and for the closing ``IEND`` chunk, CSVs for rows with missing or extra fields. A
damaged file (a flipped byte on a shared file system, a truncated copy) stops the reading job with
a :class:`~ferxai.core.errors.DataError` that names the file and the fix, never a silently wrong result.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.core.errors import DataError, FerxaiError

STACK_FORMAT = "ferxai-stack/1"
# What a reader says about a damaged file produced by an earlier job.
DAMAGED_FIX = (
    "Delete it and rerun the workflow: Snakemake remakes it (and what depends on it) with the "
    "same result."
)


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
    """Dict rows of a CSV.

    A file cut short (its last line has fewer fields than the header and no line end: ferxai
    ends every CSV with one) or that is not UTF-8 text raises DataError naming the file. Short
    rows elsewhere are kept (missing cells read as None), as hand-written manifests may have them.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 CSV file ({exc}). {DAMAGED_FIX}") from exc
    try:
        rows = list(csv.DictReader(StringIO(text, newline="")))
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc}). {DAMAGED_FIX}") from exc
    if rows and not text.endswith(("\n", "\r")) and None in rows[-1].values():
        raise DataError(
            f"{path}: truncated CSV (its last line stops after "
            f"{sum(v is not None for v in rows[-1].values())} of {len(rows[-1])} fields). "
            f"{DAMAGED_FIX}"
        )
    return rows


def jet_rgb(heatmap_uint8: np.ndarray) -> np.ndarray:
    """JET-coloured RGB rendering (OpenCV COLORMAP_JET, as the paper's figures)."""
    import cv2

    bgr = cv2.applyColorMap(np.asarray(heatmap_uint8, dtype=np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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
    """Read an 8-bit grayscale PNG (colour images are converted) as uint8 (H, W).

    A PNG is checked first (:func:`check_png`): a truncated or damaged one raises DataError naming
    it, instead of decoding to a partial picture. Other formats OpenCV reads are decoded as such.
    """
    import cv2

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read this image ({exc.strerror or exc}).") from exc
    if data.startswith(_PNG_SIGNATURE) or Path(path).suffix.lower() == ".png":
        check_png(data, path)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(
            f"{path}: cannot decode this image (truncated or not an image). {DAMAGED_FIX}"
        )
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(data: bytes, path: str | os.PathLike = "<bytes>") -> None:
    """Raise DataError unless ``data`` is a whole PNG: signature, every chunk's CRC-32, an IEND.

    PNG decoders differ in what they accept (OpenCV returns a partly decoded picture for some
    truncations); this check does not depend on the decoder.
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise DataError(f"{path}: not a PNG file (no PNG signature). {DAMAGED_FIX}")
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise DataError(
                f"{path}: truncated PNG ({len(data)} bytes, no IEND chunk). {DAMAGED_FIX}"
            )
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4
        if end > len(data):
            raise DataError(
                f"{path}: truncated PNG ({len(data)} bytes, chunk {kind!r} at byte {pos} needs "
                f"{end}). {DAMAGED_FIX}"
            )
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            raise DataError(
                f"{path}: damaged PNG (CRC mismatch in chunk {kind!r} at byte {pos}). {DAMAGED_FIX}"
            )
        if kind == b"IEND":
            return
        pos = end


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
    """Write a :class:`Stack` to HDF5 (chunked, gzip, Fletcher-32 checksums), atomically;
    ``attrs['complete']`` marks it done."""
    import h5py

    n = len(stack)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_array(h5, "maps", np.asarray(stack.maps, dtype=np.float32))
            create_dataset(h5, "image_id", np.array([str(i) for i in stack.image_id], dtype=object))
            create_dataset(h5, "true_label", np.asarray(stack.true_label, dtype=np.int64))
            create_dataset(h5, "predicted", np.asarray(stack.predicted, dtype=np.int64))
            probs = np.asarray(stack.probabilities, dtype=np.float32)
            if probs.ndim == 1:  # an empty stack's (0,) or one value per map
                probs = probs.reshape(n, -1) if n else probs.reshape(0, 0)
            create_dataset(h5, "probabilities", probs, compress=False)
            for name, array in stack.extras.items():
                _write_array(h5, name, np.asarray(array))
            for key, value in stack.attrs.items():
                h5.attrs[key] = _attr_value(value)
            h5.attrs["format"] = STACK_FORMAT
            h5.attrs["count"] = n
            h5.attrs["complete"] = True


def create_dataset(h5, name: str, data: np.ndarray, compress: bool = True, **kwargs):
    """``h5.create_dataset`` with a Fletcher-32 checksum on every chunk, verified by HDF5 on every
    read. With ``compress``, arrays of two or more dimensions are chunked one leading row (one map)
    at a time and gzip-compressed. Scalars and empty arrays are stored plain (nothing to
    checksum); the rest are one chunk. Every HDF5 writer of ferxai creates its datasets
    through this."""
    data = np.asarray(data)
    if data.dtype.kind in "OU":
        # strings: fixed-length UTF-8 bytes (read back as bytes; variable-length strings cannot
        # carry a checksum filter)
        encoded = [str(v).encode() for v in data.ravel()]
        width = max((len(v) for v in encoded), default=1) or 1
        data = np.array(encoded, dtype=f"S{width}").reshape(data.shape)
        kwargs.pop("dtype", None)
    if data.ndim == 0 or data.size == 0:
        return h5.create_dataset(name, data=data, **kwargs)
    options: dict[str, Any] = {"fletcher32": True, "chunks": data.shape}
    if compress and data.ndim >= 2:
        options.update(chunks=(1, *data.shape[1:]), compression="gzip", compression_opts=4)
    return h5.create_dataset(name, data=data, **options, **kwargs)


def _write_array(h5, name: str, array: np.ndarray) -> None:
    """A stack's per-map array: one compressed, checksummed chunk per map."""
    create_dataset(h5, name, array)


def _attr_value(value: Any) -> Any:
    if value is None:
        return "none"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=_json_default)
    if isinstance(value, Path):
        return str(value)
    return value


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, what: str = "HDF5 file") -> Iterator[Any]:
    """Open an HDF5 file for reading; any failure to open it or to read from it inside the block
    (a failed checksum, undecompressible or truncated data) raises DataError naming the file,
    what failed and the fix, instead of h5py's bare ``OSError``."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: {what} not found; rerun the job that makes it.") from exc
    except OSError as exc:
        raise DataError(f"{path}: not a readable {what} ({exc}). {DAMAGED_FIX}") from exc
    try:
        with h5:
            yield h5
    except (OSError, KeyError, RuntimeError) as exc:
        raise DataError(f"{path}: {_damage(exc)} in this {what}. {DAMAGED_FIX}") from exc


def _damage(exc: BaseException) -> str:
    text = str(exc)
    if "filter returned failure" in text or "checksum" in text.lower():
        return f"a data checksum (Fletcher-32) or decompression check failed ({text})"
    return f"the data cannot be read ({type(exc).__name__}: {text})"


def read_dataset(h5, name: str, path: str | os.PathLike = "") -> np.ndarray:
    """``h5[name][...]``, with a DataError naming the file and dataset when it is damaged."""
    try:
        return h5[name][...]
    except (OSError, KeyError, RuntimeError) as exc:
        where = path or h5.filename
        raise DataError(f"{where}: dataset {name!r}: {_damage(exc)}. {DAMAGED_FIX}") from exc


def write_h5(
    path: str | os.PathLike,
    datasets: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    compress: bool = False,
) -> None:
    """Write named arrays (checksummed, :func:`create_dataset`) and attributes to HDF5, atomically.
    For small files such as heatmaps; stacks use :func:`write_stack`."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for name, array in datasets.items():
                create_dataset(h5, name, np.asarray(array), compress=compress)
            for key, value in (attrs or {}).items():
                h5.attrs[key] = _attr_value(value)


def read_h5(
    path: str | os.PathLike, names: Sequence[str] | None = None, what: str = "HDF5 file"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (all, or ``names``) and decoded attributes of an HDF5 file, every checksum verified;
    damage raises DataError naming the file (:func:`open_h5`)."""
    with open_h5(path, what) as h5:
        wanted = list(h5.keys()) if names is None else list(names)
        missing = [n for n in wanted if n not in h5]
        if missing:
            raise DataError(
                f"{path}: no dataset(s) {', '.join(missing)} in this {what}. {DAMAGED_FIX}"
            )
        arrays = {n: read_dataset(h5, n, path) for n in wanted}
        attrs = {k: _decode_attr(v) for k, v in h5.attrs.items()}
    return arrays, attrs


def read_stack(path: str | os.PathLike, load_maps: bool = True) -> Stack:
    """Read a stack written by :func:`write_stack`; refuse one that is not marked complete or
    whose data fail their checksums (DataError naming the file and the fix)."""
    with open_h5(path, "HDF5 stack") as h5:
        if not h5.attrs.get("complete", False) or h5.attrs.get("format") != STACK_FORMAT:
            raise DataError(
                f"{path}: incomplete or foreign HDF5 stack (no 'complete' mark). "
                "Delete it and rerun the job that makes it."
            )
        if load_maps:
            maps = read_dataset(h5, "maps", path)
        else:
            maps = np.empty((h5["maps"].shape[0], 0, 0), np.float32)
        ids = [
            s.decode() if isinstance(s, bytes) else str(s)
            for s in read_dataset(h5, "image_id", path)
        ]
        extras = {k: read_dataset(h5, k, path) for k in h5.keys() if k not in _CORE}
        attrs = {k: _decode_attr(v) for k, v in h5.attrs.items()}
        return Stack(
            maps=maps,
            image_id=ids,
            true_label=read_dataset(h5, "true_label", path),
            predicted=read_dataset(h5, "predicted", path),
            probabilities=read_dataset(h5, "probabilities", path),
            attrs=attrs,
            extras=extras,
        )


def iter_stack_maps(path: str | os.PathLike, chunk: int = 256) -> Iterator[np.ndarray]:
    """Yield the maps of a stack in chunks of at most ``chunk`` (memory independent of N); a
    damaged chunk raises DataError naming the file."""
    read_stack(path, load_maps=False)  # validates completeness
    with open_h5(path, "HDF5 stack") as h5:
        maps = h5["maps"]
        for start in range(0, maps.shape[0], chunk):
            try:
                block = maps[start : start + chunk]
            except OSError as exc:
                raise DataError(
                    f"{path}: dataset 'maps', rows {start}-{start + chunk - 1}: {_damage(exc)}. "
                    f"{DAMAGED_FIX}"
                ) from exc
            yield block


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
