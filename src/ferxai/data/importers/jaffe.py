"""JAFFE (Japanese Female Facial Expression, Lyons et al. 1998): 10 women, 213 grey images.

Layout as distributed: one flat folder (``jaffedbase/``) of ``<subject>.<expr><n>.<number>.tiff``
(``KA.AN1.39.tiff``). Expression codes: AN, DI, FE, HA, NE (skipped), SA, SU. Subject: the
initials (``KA``). Other files (README) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ferxai.data.importers.common import (
    Importer,
    Item,
    Record,
    Skip,
    layout_error,
    require_source_dir,
)

LABELS = {
    "AN": "Anger",
    "DI": "Disgust",
    "FE": "Fear",
    "HA": "Happiness",
    "SA": "Sadness",
    "SU": "Surprise",
}
NOT_SIX = {"NE": "neutral is not one of the 6 expressions"}
NAME = re.compile(r"^([A-Z]+)\.([A-Z]{2})(\d+)\.(\d+)$", re.IGNORECASE)
TIFF = (".tiff", ".tif")


def read(source: Path, settings: Mapping[str, Any]) -> Iterator[Record]:
    require_source_dir(IMPORTER, source)
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in TIFF)
    if not files:
        nested = sorted({p.parent.name for p in source.glob("*/*.tif*")})
        hint = f" (there are some in {nested[0]}/: point at it)" if nested else ""
        raise layout_error(
            IMPORTER, source, source / "KA.AN1.39.tiff", "any .tiff image like this" + hint
        )
    for file in files:
        yield _record(file)


def _record(file: Path) -> Record:
    match = NAME.match(file.stem)
    if match is None:
        return Skip(
            file.name, "file name does not follow JAFFE's <subject>.<expr><n>.<number>.tiff"
        )
    subject, code = match.group(1).upper(), match.group(2).upper()
    if code in NOT_SIX:
        return Skip(file.name, NOT_SIX[code])
    if code not in LABELS:
        return Skip(file.name, f"expression code {code} is not a JAFFE code (AN DI FE HA NE SA SU)")
    return Item(path=file.absolute(), expression=LABELS[code], subject=subject)


IMPORTER = Importer(
    name="jaffe",
    title="JAFFE",
    layout="one folder of <subject>.<expr><n>.<number>.tiff, e.g. KA.AN1.39.tiff",
    point_at="the folder of .tiff images (jaffedbase/)",
    read=read,
    subjects=True,
)
