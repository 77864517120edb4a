"""KDEF (Karolinska Directed Emotional Faces, Lundqvist et al. 1998): 70 people, two sessions.

Layout as distributed: one folder per session and person, ``<session A|B><gender F|M><id>/``,
holding ``<same><expr><angle>.JPG`` (``AF01/AF01AFS.JPG``). Expression codes: AF afraid,
AN angry, DI disgusted, HA happy, NE neutral (skipped), SA sad, SU surprised. Angles: S straight,
HL/HR half left/right, FL/FR full left/right profile; setting ``angles`` picks them (default
``[S]``; images at other angles are not candidates and are not listed as skipped). The angle is
kept as a column. Subject: gender + id (``F01``), so both sessions of one person stay in one fold.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ferxai.core.errors import ConfigError
from ferxai.data.importers.common import (
    IMAGE_SUFFIXES,
    Importer,
    Item,
    Record,
    Skip,
    layout_error,
    require_source_dir,
)

LABELS = {
    "AF": "Fear",
    "AN": "Anger",
    "DI": "Disgust",
    "HA": "Happiness",
    "SA": "Sadness",
    "SU": "Surprise",
}
NOT_SIX = {"NE": "neutral is not one of the 6 expressions"}
ANGLES = ("S", "HL", "HR", "FL", "FR")
FOLDER = re.compile(r"^[AB][FM]\d+$", re.IGNORECASE)
NAME = re.compile(r"^([AB])([FM])(\d+)([A-Z]{2})(S|HL|HR|FL|FR)$", re.IGNORECASE)


def read(source: Path, settings: Mapping[str, Any]) -> Iterator[Record]:
    require_source_dir(IMPORTER, source)
    folders = sorted(p for p in source.iterdir() if p.is_dir() and FOLDER.match(p.name))
    if not folders:
        nested = sorted(p.name for p in source.glob("*/*") if p.is_dir() and FOLDER.match(p.name))
        hint = " (one level down there are such folders: point at their parent)" if nested else ""
        raise layout_error(IMPORTER, source, source / "AF01", "a person folder like AF01/" + hint)
    angles = set(settings["angles"])
    for folder in folders:
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            record = _record(source, file, angles)
            if record is not None:
                yield record


def _record(source: Path, file: Path, angles: set[str]) -> Record | None:
    where = f"{file.parent.name}/{file.name}"
    match = NAME.match(file.stem)
    if match is None:
        return Skip(where, "file name does not follow KDEF's <A|B><F|M><id><expr><angle>.JPG")
    _session, gender, number, code, angle = (g.upper() for g in match.groups())
    if angle not in angles:
        return None  # not asked for (data.import.kdef.angles)
    if code in NOT_SIX:
        return Skip(where, NOT_SIX[code])
    if code not in LABELS:
        return Skip(where, f"expression code {code} is not a KDEF code (AF AN DI HA NE SA SU)")
    return Item(
        path=file.absolute(),
        expression=LABELS[code],
        subject=f"{gender}{number}",
        extra={"angle": angle},
    )


def _check(settings: dict) -> None:
    angles = settings["angles"]
    if isinstance(angles, str):
        angles = settings["angles"] = [angles]
    bad = [a for a in angles if a not in ANGLES] if isinstance(angles, list) else [angles]
    if bad or not angles:
        raise ConfigError(
            f"data.import.kdef.angles: {angles!r}; give a non-empty list of "
            f"{', '.join(ANGLES)} (S straight, HL/HR half, FL/FR full profile)."
        )


IMPORTER = Importer(
    name="kdef",
    title="KDEF",
    layout="<A|B><F|M><id>/<A|B><F|M><id><expr><angle>.JPG, e.g. AF01/AF01HAS.JPG",
    point_at="the KDEF folder that holds AF01/, AM01/, ..., BM35/",
    read=read,
    defaults={"angles": ["S"]},
    check=_check,
    extra_columns=("angle",),
    subjects=True,
)
