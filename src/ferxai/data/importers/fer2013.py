"""FER2013 (Kaggle, Goodfellow et al. 2013): one CSV ``emotion,pixels,Usage``, 48×48 grey faces.

``emotion``: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral (skipped);
``pixels``: 2304 space-separated values 0-255, row-major; ``Usage``: Training, PublicTest or
PrivateTest, kept as ``split``. No subjects, no landmarks. The CSV is streamed row by row and
each face becomes ``images/<Usage>/<row>.png`` under the output folder.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.core.errors import DataError
from ferxai.data.importers.common import Importer, Item, Record, Skip, not_text_error

SIDE = 48
LABELS = {0: "Anger", 1: "Disgust", 2: "Fear", 3: "Happiness", 4: "Sadness", 5: "Surprise"}
NOT_SIX = {6: "neutral is not one of the 6 expressions"}
COLUMNS = ("emotion", "pixels", "Usage")
USAGES = ("Training", "PublicTest", "PrivateTest")


def read(source: Path, settings: Mapping[str, Any]) -> Iterator[Record]:
    if source.is_dir():
        candidates = sorted(p.name for p in source.glob("*.csv"))
        hint = f" (it holds {', '.join(candidates[:3])})" if candidates else ""
        raise DataError(
            f"{source}: a folder{hint}, but FER2013 is one CSV file ({IMPORTER.layout}). "
            f"Fix: point data.path (--source) at {IMPORTER.point_at}."
        )
    if not source.is_file():
        raise DataError(
            f"{source}: file not found; expected {IMPORTER.layout}. "
            f"Fix: point data.path (--source) at {IMPORTER.point_at}."
        )
    try:
        with open(source, newline="", encoding="utf-8-sig") as fh:
            yield from _rows(source, csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise not_text_error(IMPORTER, source, exc) from exc


def _rows(source: Path, reader) -> Iterator[Record]:
    header = [cell.strip() for cell in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} (header {','.join(header)!r}); "
            f"expected {IMPORTER.layout}. Fix: point data.path (--source) at {IMPORTER.point_at}."
        )
    at = {name: header.index(name) for name in COLUMNS}
    for number, row in enumerate(reader, start=2):  # row 1 is the header
        yield _record(source.name, number, row, at)


def _record(name: str, number: int, row: list[str], at: dict[str, int]) -> Record:
    where = f"{name} row {number}"
    if len(row) <= max(at.values()):
        return Skip(where, f"malformed row: {len(row)} cells, expected {len(COLUMNS)}")
    emotion, usage = row[at["emotion"]].strip(), row[at["Usage"]].strip()
    try:
        code = int(emotion)
    except ValueError:
        return Skip(where, f"emotion {emotion!r} is not a FER2013 label (0-6)")
    if code in NOT_SIX:
        return Skip(where, NOT_SIX[code])
    if code not in LABELS:
        return Skip(where, f"emotion {code} is not a FER2013 label (0-6)")
    pixels = _pixels(row[at["pixels"]])
    if isinstance(pixels, str):
        return Skip(where, pixels)
    folder = usage if usage in USAGES else "other"
    return Item(
        path=Path("images") / folder / f"{number - 2:05d}.png",
        expression=LABELS[code],
        pixels=pixels,
        extra={"split": usage},
    )


def _pixels(cell: str) -> np.ndarray | str:
    """(48, 48) uint8, or the reason the cell is not a FER2013 image."""
    values = cell.split()
    if len(values) != SIDE * SIDE:
        return f"pixels: {len(values)} values, expected {SIDE * SIDE} (48x48)"
    try:
        array = np.array(values, dtype=np.int32)
    except (ValueError, OverflowError):
        return "pixels: not all values are integers"
    if array.min() < 0 or array.max() > 255:
        return "pixels: values outside 0-255"
    return array.astype(np.uint8).reshape(SIDE, SIDE)


IMPORTER = Importer(
    name="fer2013",
    title="FER2013",
    layout="one CSV 'emotion,pixels,Usage' with 2304 grey values per row",
    point_at="the CSV file itself (fer2013.csv)",
    read=read,
    extra_columns=("split",),
    in_place=False,
)
