"""RAF-DB basic (Real-world Affective Faces, Li et al. 2017): 15,339 web faces, 7 classes.

Layout as distributed (the ``basic/`` folder)::

    EmoLabel/list_patition_label.txt   "train_00001.jpg 5" per line (the authors' spelling)
    Image/aligned/train_00001_aligned.jpg   100×100 aligned faces (setting images: aligned)
    Image/original/train_00001.jpg          the uncropped originals (setting images: original)

Labels: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral (skipped). The
``train``/``test`` prefix is kept as ``split``. No subjects; its 5- and 37-point annotations are not
the 68-point layout, so landmarks come from the landmark stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ferxai.data.importers.common import (
    Importer,
    Item,
    Record,
    Skip,
    check_choice,
    not_text_error,
    require_dir,
    require_file,
    require_source_dir,
)

LABELS = {1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness", 6: "Anger"}
NOT_SIX = {7: "neutral is not one of the 6 expressions"}
LIST = "EmoLabel/list_patition_label.txt"
IMAGE_DIRS = {"aligned": "Image/aligned", "original": "Image/original"}


def read(source: Path, settings: Mapping[str, Any]) -> Iterator[Record]:
    require_source_dir(IMPORTER, source)
    labels = require_file(IMPORTER, source, LIST, "the label list")
    kind = settings["images"]
    images = require_dir(IMPORTER, source, IMAGE_DIRS[kind], f"the {kind} image folder")
    try:
        with open(labels, encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield _record(images, kind, line.split(), f"{LIST} line {number}")
    except UnicodeDecodeError as exc:
        raise not_text_error(IMPORTER, labels, exc) from exc


def _record(images: Path, kind: str, cells: list[str], where: str) -> Record:
    if len(cells) != 2:
        return Skip(where, "malformed line (expected '<image> <label>')")
    name, label = cells
    try:
        code = int(label)
    except ValueError:
        code = -1
    if code in NOT_SIX:
        return Skip(name, NOT_SIX[code])
    if code not in LABELS:
        return Skip(where, f"label {label!r} is not a RAF-DB basic label (1-7)")
    stem = name.rsplit(".", 1)[0]
    path = images / (f"{stem}_aligned.jpg" if kind == "aligned" else name)
    if not path.is_file():
        return Skip(name, f"image not found in {IMAGE_DIRS[kind]}/")
    return Item(
        path=path.absolute(),
        expression=LABELS[code],
        extra={"split": stem.split("_", 1)[0]},
    )


def _check(settings: dict) -> None:
    check_choice("rafdb", "images", settings["images"], tuple(IMAGE_DIRS))


IMPORTER = Importer(
    name="rafdb",
    title="RAF-DB (basic)",
    layout=f"{LIST} and Image/aligned/<name>_aligned.jpg or Image/original/<name>",
    point_at="RAF-DB's basic/ folder (it holds EmoLabel/ and Image/)",
    read=read,
    defaults={"images": "aligned"},
    check=_check,
    extra_columns=("split",),
)
