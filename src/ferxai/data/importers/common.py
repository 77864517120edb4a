"""What every dataset importer shares: the record types, the layout errors, settings, the writer.

An importer reads one dataset in the layout its authors distribute and yields, in a stable order,
:class:`Item` (an image of one of the six expressions) or :class:`Skip` (an input left out, with a
reason that names its kind, e.g. ``neutral is not one of the 6 expressions``). It never writes:
:func:`ferxai.data.import_dataset.import_dataset` writes the pixels a source has only inside a table
(FER2013), the landmark files, ``skipped.csv`` and, last, ``manifest.csv``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import atomic_path, write_png

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Item:
    """One image of the study's expressions, as the manifest will list it.

    ``path`` is absolute for an image that stays in the source, relative to the output folder for
    one the importer hands over as ``pixels`` (written there as PNG). ``landmarks`` (68, 2) [x, y]
    in the image's pixels are written to ``landmarks/<landmarks_name>.npy`` under the output folder.
    """

    path: Path
    expression: str
    subject: str = ""
    landmarks: np.ndarray | None = None
    landmarks_name: str = ""
    pixels: np.ndarray | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """An input left out: ``item`` says which (a path in the source, or ``file row N``)."""

    item: str
    reason: str


Record = Item | Skip
Reader = Callable[[Path, Mapping[str, Any]], Iterator[Record]]


@dataclass(frozen=True)
class Importer:
    """A dataset format: how to read it and what its manifest carries."""

    name: str
    title: str  # as the authors spell it, for messages
    layout: str  # the native layout in one line, for messages and docs
    point_at: str  # what data.path (--source) must name
    read: Reader
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], None] | None = None  # raises ConfigError on a bad setting value
    extra_columns: tuple[str, ...] = ()
    landmarks: bool = False  # the manifest has a landmarks column (files under landmarks/)
    subjects: bool = False  # the format knows who is in each image
    in_place: bool = True  # images stay in the source (else written under images/)

    def settings(self, given: Mapping[str, Any] | None = None) -> dict:
        """The defaults updated with ``given``; unknown keys or bad values raise ConfigError."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(
                f"data.import.{self.name}: unknown setting(s) {', '.join(unknown)}; "
                f"{self.title} takes: {known}."
            )
        settings = {**self.defaults, **given}
        if self.check is not None:
            self.check(settings)
        return settings

    @property
    def columns(self) -> tuple[str, ...]:
        landmarks = ("landmarks",) if self.landmarks else ()
        return ("path", "expression", "subject", *landmarks, *self.extra_columns)


# -------------------------------------------------------------------------------------- layout
def layout_error(
    importer: Importer, source: Path, missing: Path, what: str, problem: str = "not found"
) -> DataError:
    """The message for a wrong or half-present layout: names the missing file and the layout."""
    return DataError(
        f"{missing}: {what} {problem}, so {source} is not a {importer.title} folder in its native "
        f"layout ({importer.layout}). Fix: point data.path (--source) at {importer.point_at}, "
        "unpacked as distributed."
    )


def not_text_error(importer: Importer, path: Path, exc: Exception) -> DataError:
    """A list that cannot be read as text/CSV (binary, NUL bytes): not the format's file."""
    if isinstance(exc, UnicodeDecodeError):
        detail = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
    else:
        detail = f"not a readable text table: {exc}"
    return DataError(
        f"{path}: {detail}, so not {importer.title}'s list ({importer.layout}). "
        f"Fix: point data.path (--source) at {importer.point_at}."
    )


def require_dir(importer: Importer, source: Path, relative: str, what: str) -> Path:
    path = source / relative
    if not path.is_dir():
        raise layout_error(importer, source, path, what)
    return path


def require_file(importer: Importer, source: Path, relative: str, what: str) -> Path:
    path = source / relative
    if not path.is_file():
        raise layout_error(importer, source, path, what)
    return path


def require_source_dir(importer: Importer, source: Path) -> None:
    if not source.is_dir():
        state = "is a file, not a folder" if source.exists() else "does not exist"
        raise DataError(
            f"{source}: {state}; {importer.title} is a folder ({importer.layout}). "
            f"Fix: point data.path (--source) at {importer.point_at}."
        )


def relative_name(path: Path, source: Path) -> str:
    """``path`` relative to the source, for skipped.csv (absolute when outside)."""
    try:
        return path.relative_to(source).as_posix()
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------ settings
def check_choice(importer: str, key: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(
            f"data.import.{importer}.{key}: {value!r} is not one of {', '.join(map(str, choices))}."
        )


def check_int(importer: str, key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"data.import.{importer}.{key}: {value!r} must be an integer ≥ {minimum}."
        )


# ----------------------------------------------------------------------------------- landmarks
def landmark_array(values: Sequence[float] | np.ndarray, where: str) -> np.ndarray:
    """(68, 2) float32 [x, y] from 136 numbers or a (68, 2) array; ValueError naming the shape."""
    points = np.asarray(values, dtype=np.float64)
    if points.size != 136 or not np.isfinite(points).all():
        finite = "" if np.isfinite(points).all() else ", not all finite"
        raise ValueError(f"{where}: {points.size} values{finite}, expected 68 [x, y] points")
    return points.reshape(68, 2).astype(np.float32)


def write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def write_item_files(item: Item, out_dir: Path) -> None:
    """Write what the item carries as arrays (its pixels, its landmarks) under ``out_dir``."""
    if item.pixels is not None:
        write_png(out_dir / item.path, item.pixels)
    if item.landmarks is not None:
        write_npy(out_dir / "landmarks" / f"{item.landmarks_name}.npy", item.landmarks)
