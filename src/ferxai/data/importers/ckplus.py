"""CK+ (extended Cohn-Kanade, Lucey et al. 2010): posed sequences from neutral to peak.

Layout as distributed (three archives unpacked side by side)::

    cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
    Emotion/S005/001/S005_001_00000011_emotion.txt    one float, for the peak (last) frame
    Landmarks/S005/001/S005_001_00000011_landmarks.txt  68 lines "x y" per frame
    FACS/S005/001/S005_001_00000011_facs.txt      (optional) the peak frame's action units

Emotion codes: 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise.
Only about a third of the sequences have an emotion file; unlabelled, contempt and neutral sequences
are skipped and counted. Setting ``frames``: how many frames, ending at the peak, each labelled
sequence gives (default 1: the peak only). Subject: ``S###``.

Where the FACS archive is unpacked beside the others, each peak frame's ``*_facs.txt`` (two numbers
a line, as ``1.0000000e+00   3.0000000e+00``: the AU and its intensity 1-5, 0 = intensity not
coded) fills the manifest's ``aus`` column in FACS notation (``1C+2+26``); the frames before the
peak, and sequences without a FACS file, are left uncoded. A line that is not two such numbers
stops the import naming the file and the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.core.errors import DataError
from ferxai.data.importers.common import (
    Importer,
    Item,
    Record,
    Skip,
    check_int,
    landmark_array,
    layout_error,
    require_dir,
    require_source_dir,
)

LABELS = {1: "Anger", 3: "Disgust", 4: "Fear", 5: "Happiness", 6: "Sadness", 7: "Surprise"}
NOT_SIX = {
    0: "neutral is not one of the 6 expressions",
    2: "contempt is not one of the 6 expressions",
}
FRAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)
IMAGES, EMOTION, LANDMARKS, FACS = "cohn-kanade-images", "Emotion", "Landmarks", "FACS"


def read(source: Path, settings: Mapping[str, Any]) -> Iterator[Record]:
    require_source_dir(IMPORTER, source)
    images = require_dir(IMPORTER, source, IMAGES, "the image folder")
    emotions = require_dir(IMPORTER, source, EMOTION, "the emotion label folder")
    landmarks = require_dir(IMPORTER, source, LANDMARKS, "the landmark folder")
    sequences = sorted(p for p in images.glob("*/*") if p.is_dir() and not p.name.startswith("."))
    if not sequences:
        raise layout_error(
            IMPORTER, source, images, "the image folder", "has no S###/###/ sequence"
        )
    facs = source / FACS if (source / FACS).is_dir() else None
    for sequence in sequences:
        yield from _sequence(sequence, emotions, landmarks, settings["frames"], facs)


def _sequence(
    sequence: Path, emotions: Path, landmarks: Path, frames: int, facs: Path | None
) -> Iterator[Record]:
    subject, number = sequence.parent.name, sequence.name
    where = f"{IMAGES}/{subject}/{number}"
    shots = sorted(p for p in sequence.iterdir() if FRAME.match(p.name))
    if not shots:
        yield Skip(where, "sequence folder without S###_###_########.png frames")
        return
    labels = sorted((emotions / subject / number).glob("*_emotion.txt"))
    if not labels:
        yield Skip(where, "unlabelled sequence (no Emotion/.../*_emotion.txt)")
        return
    code = _emotion_code(labels[0])
    if code is None:
        yield Skip(where, "unreadable emotion file (expected one number 0-7)")
        return
    if code in NOT_SIX:
        yield Skip(where, NOT_SIX[code])
        return
    if code not in LABELS:
        yield Skip(where, f"emotion code {code} is not a CK+ label (0-7)")
        return
    peak_name = labels[0].name[: -len("_emotion.txt")] + ".png"
    names = [p.name.lower() for p in shots]
    if peak_name.lower() not in names:
        yield Skip(where, "the emotion file names a frame that is not in cohn-kanade-images")
        return
    peak = names.index(peak_name.lower())
    coded = ""
    if facs is not None:
        coded = read_facs_file(facs / subject / number / (peak_name[: -len(".png")] + "_facs.txt"))
    for shot in shots[max(0, peak - frames + 1) : peak + 1]:
        aus = coded if shot is shots[peak] else ""
        yield _frame(shot, subject, number, landmarks, LABELS[code], aus)


def read_facs_file(path: Path) -> str:
    """The FACS code (``1C+2+26``) of a CK+ ``*_facs.txt``; ``""`` when absent or empty.

    AU 0 lines are skipped; intensity 0 (not coded) gives the AU without a letter.
    """
    from ferxai.data.facs import ActionUnit, format_aus, intensity_letter, parse_aus

    if not path.is_file():
        return ""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: cannot read the FACS file ({exc}); re-extract the archive."
        ) from exc
    units = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        au, level = _facs_line(line, f"{path} line {number}")
        if au == 0:
            continue
        parse_aus(str(au), f"{path} line {number}")  # a known AU number
        units.append(ActionUnit(au, intensity_letter(level)))
    code = format_aus(units)
    parse_aus(code, str(path))  # an AU listed twice
    return code


def _facs_line(line: str, where: str) -> tuple[int, int]:
    fields = line.split()
    try:
        au, level = (float(f) for f in fields) if len(fields) == 2 else (None, None)
    except ValueError:
        au = level = None
    if au is None or not au.is_integer() or not level.is_integer() or not 0 <= level <= 5:
        raise DataError(
            f"{where}: {line.strip()!r} is not an AU code and an intensity 0-5 (two numbers, as "
            "'1.0000000e+00   3.0000000e+00'); fix or remove the line, or move the FACS folder "
            "away to import without action units."
        )
    return int(au), int(level)


def _frame(
    shot: Path, subject: str, number: str, landmarks: Path, expression: str, aus: str
) -> Record:
    where = f"{IMAGES}/{subject}/{number}/{shot.name}"
    file = landmarks / subject / number / f"{shot.stem}_landmarks.txt"
    if not file.is_file():
        return Skip(where, "no landmark file in Landmarks/ for this frame")
    try:
        points = landmark_array(np.loadtxt(file, ndmin=2), file.name)
    except (ValueError, OSError, UnicodeDecodeError):
        return Skip(where, "landmark file is not 68 lines of 'x y' numbers")
    return Item(
        path=shot.absolute(),
        expression=expression,
        subject=subject,
        landmarks=points,
        landmarks_name=shot.stem,
        extra={"aus": aus},
    )


def _emotion_code(path: Path) -> int | None:
    try:
        value = float(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return int(value) if value.is_integer() else None


def _check(settings: dict) -> None:
    check_int("ckplus", "frames", settings["frames"], 1)


IMPORTER = Importer(
    name="ckplus",
    title="CK+",
    layout=(
        "cohn-kanade-images/S###/###/S###_###_########.png, "
        "Emotion/S###/###/S###_###_########_emotion.txt, "
        "Landmarks/S###/###/S###_###_########_landmarks.txt"
    ),
    point_at="the folder that holds cohn-kanade-images/, Emotion/ and Landmarks/",
    read=read,
    defaults={"frames": 1},
    check=_check,
    landmarks=True,
    subjects=True,
    extra_columns=("aus",),
)
