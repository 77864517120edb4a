"""FACS codes of a face in the usual notation, ``1+2+5B+26``: parse, check and write them.

Each term is an action unit (AU) number, optionally prefixed ``L`` or ``R`` (the subject's left or
right side only) and optionally followed by an intensity letter ``A`` (trace) to ``E`` (maximum),
as in the FACS manual (Ekman, Friesen & Hager 2002). ``+`` separates the terms; spaces around them
are ignored; an empty cell means "not coded". The parser is pure (no files): the callers name the
row or file a bad code came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ferxai.core.errors import DataError

INTENSITIES = "ABCDE"
SIDES = ("L", "R")
# The action units and action descriptors of FACS 2002 (there is no AU3; 40, 47-49, 59-60 and
# 65-68 are unused). Head (51-58) and eye (61-64) positions are codes CK+ and DISFA ship too.
KNOWN_AUS = frozenset(
    [1, 2, *range(4, 40), *range(41, 47), 50, *range(51, 59), *range(61, 65), *range(69, 75)]
    + list(range(80, 86))
)
_TERM = re.compile(r"^(?P<side>[LR])?(?P<au>\d{1,3})(?P<intensity>[A-Za-z])?$")


@dataclass(frozen=True, order=True)
class ActionUnit:
    """One coded action unit: its number, ``A``-``E`` or ``""``, and ``L``/``R`` or ``""``."""

    au: int
    intensity: str = ""
    side: str = ""

    def __str__(self) -> str:
        return f"{self.side}{self.au}{self.intensity}"


def parse_aus(code: str | None, where: str = "aus") -> tuple[ActionUnit, ...]:
    """The action units of ``code`` (``"1+2+5B+26"``, ``"L12A+R14"``, ``""``), in written order.

    Raises :class:`DataError` naming ``where`` (e.g. ``manifest.csv row 7``), the term and the fix
    for an unknown AU, an intensity letter outside A-E, a malformed term or a repeated AU.
    """
    text = (code or "").strip()
    if not text:
        return ()
    units, seen = [], set()
    for raw in text.split("+"):
        term = raw.strip()
        match = _TERM.match(term)
        if match is None:
            raise DataError(
                f"{where}: {term!r} in {text!r} is not a FACS term; write each AU as its number "
                "with an optional L/R prefix and intensity letter A-E, joined by '+', e.g. "
                "1+2+5B+26 or L12A+R14."
            )
        au, intensity = int(match["au"]), (match["intensity"] or "").upper()
        if au not in KNOWN_AUS:
            raise DataError(
                f"{where}: AU{au} in {text!r} is not a FACS action unit (known: 1, 2, 4-39, "
                "41-46, 50-58, 61-64, 69-74, 80-85); fix the number."
            )
        if intensity and intensity not in INTENSITIES:
            raise DataError(
                f"{where}: intensity {match['intensity']!r} of AU{au} in {text!r} is not a FACS "
                "intensity; use A (trace) to E (maximum), or no letter."
            )
        key = (au, match["side"] or "")
        if key in seen:
            raise DataError(f"{where}: AU{au} is coded twice in {text!r}; keep one term.")
        seen.add(key)
        units.append(ActionUnit(au, intensity, match["side"] or ""))
    return tuple(units)


def format_aus(units: Iterable[ActionUnit]) -> str:
    """The FACS notation of ``units``, sorted by AU number then side (``1+2+5B+26``)."""
    return "+".join(str(u) for u in sorted(units, key=lambda u: (u.au, u.side)))


def normalize_aus(code: str | None, where: str = "aus") -> str:
    """``code`` checked and rewritten in canonical order and case (``"26+1+5b"`` -> ``"1+5B+26"``)."""
    return format_aus(parse_aus(code, where))


def au_numbers(code: str | None, where: str = "aus") -> tuple[int, ...]:
    """The distinct AU numbers of ``code``, sorted (sides and intensities dropped)."""
    return tuple(sorted({u.au for u in parse_aus(code, where)}))


def intensity_letter(level: float) -> str:
    """FACS letter of a 1-5 intensity level (CK+'s files): 1 -> A ... 5 -> E; 0 -> ``""``."""
    if level == 0:
        return ""
    if level not in (1, 2, 3, 4, 5):
        raise ValueError(f"intensity {level:g} is not 0 (not coded) or 1-5")
    return INTENSITIES[int(level) - 1]


def letter_of_fraction(value: float) -> str:
    """FACS letter of an intensity in (0, 1] (the renderer's scale), in five equal bands."""
    return INTENSITIES[min(4, max(0, int(value * 5 - 1e-9)))]


def from_intensities(intensities: Mapping[int, float], threshold: float) -> str:
    """The FACS code of the AUs whose intensity in [0, 1] is at least ``threshold``, lettered."""
    return format_aus(
        ActionUnit(au, letter_of_fraction(value))
        for au, value in intensities.items()
        if value >= threshold and value > 0
    )
