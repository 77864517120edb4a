"""AffectNet (Mollahosseini et al. 2017), the manually annotated part.

Layout as distributed::

    Manually_Annotated_file_lists/training.csv, validation.csv
    Manually_Annotated_Images/<subDirectory_filePath>

CSV columns ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,
expression,valence,arousal`` (a list without its header row is read in this order too).
Expression: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None,
9 Uncertain, 10 No-Face; 0 and 7-10 are skipped. ``facial_landmarks``: ``x;y;x;y;...``, 68 points
in the uncropped image. The face box is kept (``face_x,face_y,face_width,face_height``) for
cropping later, the list's name as ``split`` (training, validation). No subjects. The lists are
read row by row (training.csv has about 414,000).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from itertools import chain
from pathlib import Path, PurePosixPath
from typing import Any

from ferxai.core.errors import DataError
from ferxai.data.importers.common import (
    Importer,
    Item,
    Record,
    Skip,
    landmark_array,
    not_text_error,
    require_dir,
    require_file,
    require_source_dir,
)

LABELS = {1: "Happiness", 2: "Sadness", 3: "Surprise", 4: "Fear", 5: "Disgust", 6: "Anger"}
NOT_SIX = {
    0: "neutral is not one of the 6 expressions",
    7: "contempt is not one of the 6 expressions",
    8: "AffectNet 'None' (no expression)",
    9: "AffectNet 'Uncertain'",
    10: "AffectNet 'No-Face'",
}
COLUMNS = (
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
    "expression", "valence", "arousal",
)
BOX = ("face_x", "face_y", "face_width", "face_height")
LISTS = "Manually_Annotated_file_lists"
IMAGES = "Manually_Annotated_Images"
SPLITS = ("training", "validation")


def read(source: Path, settings: Mapping[str, Any]) -> Iterator[Record]:
    require_source_dir(IMPORTER, source)
    lists = [
        require_file(IMPORTER, source, f"{LISTS}/{split}.csv", f"the {split} list")
        for split in SPLITS
    ]
    images = require_dir(IMPORTER, source, IMAGES, "the image folder")
    for split, path in zip(SPLITS, lists, strict=True):
        try:
            yield from _list(path, images, split)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise not_text_error(IMPORTER, path, exc) from exc


def _list(path: Path, images: Path, split: str) -> Iterator[Record]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        first = next(reader, None)
        if first is None:
            return
        header = [cell.strip() for cell in first]
        if header[0] == COLUMNS[0]:
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(missing)} (header "
                    f"{','.join(header)!r}); expected {','.join(COLUMNS)}. Fix: point data.path "
                    f"(--source) at {IMPORTER.point_at}."
                )
            at, start, rows = {c: header.index(c) for c in COLUMNS}, 2, reader
        else:  # a list without its header row: the distributed column order
            at, start, rows = {c: i for i, c in enumerate(COLUMNS)}, 1, chain([first], reader)
        for number, row in enumerate(rows, start):
            yield _record(row, at, images, split, f"{path.name} row {number}")


def _record(row: list[str], at: dict[str, int], images: Path, split: str, where: str) -> Record:
    if len(row) <= max(at.values()):
        return Skip(where, f"malformed row: {len(row)} cells, expected {len(COLUMNS)}")
    cell = row[at["subDirectory_filePath"]].strip()
    name = cell or where
    try:
        code = int(float(row[at["expression"]]))
    except ValueError:
        return Skip(name, f"expression {row[at['expression']]!r} is not an AffectNet code (0-10)")
    if code in NOT_SIX:
        return Skip(name, NOT_SIX[code])
    if code not in LABELS:
        return Skip(name, f"expression {code} is not an AffectNet code (0-10)")
    relative = PurePosixPath(cell.replace("\\", "/"))
    if not cell or relative.is_absolute() or ".." in relative.parts:
        return Skip(where, f"subDirectory_filePath {cell!r} is not a path under {IMAGES}/")
    path = images / relative
    if not path.is_file():
        return Skip(name, f"image not found in {IMAGES}/")
    try:
        values = [float(v) for v in row[at["facial_landmarks"]].split(";") if v.strip()]
        points = landmark_array(values, "facial_landmarks")
    except ValueError as exc:
        return Skip(name, f"unreadable landmarks ({str(exc).split(':', 1)[-1].strip()})")
    box = {key: row[at[key]].strip() for key in BOX}
    return Item(
        path=path.absolute(),
        expression=LABELS[code],
        landmarks=points,
        landmarks_name=str(relative.with_suffix("")),
        extra={**box, "split": split},
    )


IMPORTER = Importer(
    name="affectnet",
    title="AffectNet",
    layout=(
        f"{LISTS}/training.csv and validation.csv ({','.join(COLUMNS)}), images under {IMAGES}/"
    ),
    point_at=f"the folder that holds {LISTS}/ and {IMAGES}/",
    read=read,
    extra_columns=(*BOX, "split"),
    landmarks=True,
)
