"""``ferxai prepare``: turn a manifest or a folder-per-class tree into the validated ``dataset.csv``.

Every input image is decoded once. What cannot be used is either *skipped and recorded* in
``skipped.csv`` (unreadable/truncated, too small, exact duplicate, bad landmark file, neutral when not
requested) or *fails the job early* with a message naming the file, the problem and the fix
(unknown labels, paths escaping the data root, a missing/empty class, malformed manifest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferxai.core.constants import EXPRESSIONS, LABEL_ALIASES, NEUTRAL
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import read_csv, write_csv

log = logging.getLogger(__name__)

DATASET_COLUMNS = (
    "image_id", "path", "expression", "label", "subject", "width", "height", "landmarks", "sha1",
    "aus",
)
# Tables written before the column existed still read: no "aus" means no face is FACS-coded.
OPTIONAL_COLUMNS = frozenset({"aus"})
SKIPPED_COLUMNS = ("path", "reason")
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pnm"}
)
LANDMARK_SUFFIXES = (".npy", ".txt", ".csv", ".pts")
MAX_LISTED = 5  # problems listed in one error message before "... and N more"


@dataclass(frozen=True)
class Entry:
    """One candidate image, before its pixels are checked."""

    image_id: str
    path: Path  # absolute, resolved
    expression: str  # canonical name
    subject: str = ""
    landmarks: Path | None = None
    source: str = ""  # where it came from, for messages ("manifest.csv row 12")
    box: tuple[float, float, float, float] | None = None  # face_x, face_y, face_width, face_height
    aus: str = ""  # FACS code of the face (1+2+5B+26), canonical order; "" = not coded


@dataclass(frozen=True)
class Inspection:
    """What decoding one file found: its digest and size, or why it cannot be used."""

    sha1: str = ""
    width: int = 0
    height: int = 0
    problem: str = ""


# --------------------------------------------------------------------------------------- labels
def merge_aliases(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Default aliases plus the user's (``{alias: Expression}``), keys lower-cased."""
    valid = {name.lower(): name for name in (*EXPRESSIONS, NEUTRAL)}
    aliases = dict(LABEL_ALIASES)
    for alias, target in (extra or {}).items():
        canonical = valid.get(str(target).strip().lower())
        if canonical is None:
            raise ConfigError(
                f"data.label_aliases: {alias!r} maps to {target!r}, which is not an expression; "
                f"use one of {', '.join((*EXPRESSIONS, NEUTRAL))}."
            )
        aliases[str(alias).strip().lower()] = canonical
    return aliases


def canonical_label(raw: str, aliases: Mapping[str, str]) -> str | None:
    return aliases.get(raw.strip().lower())


def parse_expressions(names: Sequence[str] | None) -> tuple[str, ...]:
    """Requested expressions in label order (default: the six); Neutral last when asked for."""
    if not names:
        return EXPRESSIONS
    valid = {name.lower(): name for name in (*EXPRESSIONS, NEUTRAL)}
    unknown = [n for n in names if str(n).lower() not in valid]
    if unknown:
        raise ConfigError(
            f"data.expressions: unknown expression(s) {', '.join(map(repr, unknown))}; "
            f"use names from {', '.join((*EXPRESSIONS, NEUTRAL))}."
        )
    wanted = {valid[str(n).lower()] for n in names}
    return tuple(e for e in (*EXPRESSIONS, NEUTRAL) if e in wanted)


def label_index(expression: str) -> int:
    return len(EXPRESSIONS) if expression == NEUTRAL else EXPRESSIONS.index(expression)


def _unknown_label_error(where: str, unknown: list[tuple[str, str]], kind: str) -> DataError:
    listed = "; ".join(f"{loc}: {label!r}" for loc, label in unknown[:MAX_LISTED])
    more = f" ... and {len(unknown) - MAX_LISTED} more" if len(unknown) > MAX_LISTED else ""
    labels = sorted({label for _, label in unknown})
    return DataError(
        f"{where}: unknown expression {kind} ({listed}{more}). Fix: map them in config "
        f"data.label_aliases (e.g. {{{labels[0]!r}: 'Anger'}}) or remove those images; "
        f"known labels: {', '.join(sorted(LABEL_ALIASES))}."
    )


# ------------------------------------------------------------------------------------- manifest
def read_manifest(
    manifest: str | Path, root: str | Path | None, aliases: Mapping[str, str]
) -> list[Entry]:
    """Entries of a ``path,expression[,subject][,landmarks][,aus]`` CSV; relative paths from
    ``root``. An ``aus`` cell is a FACS code (``1+2+5B+26``); a bad one stops naming the row."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DataError(
            f"{manifest}: manifest not found; fix: set data.manifest to an existing CSV."
        )
    root_dir = Path(root) if root else manifest.parent
    if not root_dir.is_dir():
        raise DataError(f"{root_dir}: data root is not a folder; fix: set data.root to the folder.")
    root_dir = root_dir.resolve()
    try:
        rows = read_csv(manifest)
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{manifest}: cannot read it as UTF-8 CSV ({exc}); re-save it.") from exc
    columns = set(rows[0]) if rows else set()
    missing = {"path", "expression"} - columns
    if missing or not rows:
        raise DataError(
            f"{manifest}: {'no data rows' if not rows else 'missing column(s) ' + ', '.join(sorted(missing))}"
            f"; fix: a header 'path,expression[,subject][,landmarks]' and one row per image."
        )
    from ferxai.data.crop import parse_box
    from ferxai.data.facs import normalize_aus

    entries, unknown = [], []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        source = f"{manifest} row {number}"
        label = canonical_label(row.get("expression") or "", aliases)
        if label is None:
            unknown.append((f"row {number}", (row.get("expression") or "").strip()))
            continue
        path = _inside_root((row.get("path") or "").strip(), root_dir, source, "path")
        landmarks_cell = (row.get("landmarks") or "").strip()
        landmarks = (
            _inside_root(landmarks_cell, root_dir, source, "landmarks") if landmarks_cell else None
        )
        entries.append(
            Entry(
                image_id=path.relative_to(root_dir).as_posix(),
                path=path,
                expression=label,
                subject=(row.get("subject") or "").strip(),
                landmarks=landmarks,
                source=source,
                box=parse_box(row),
                aus=normalize_aus(row.get("aus"), f"{source}, column aus"),
            )
        )
    if unknown:
        raise _unknown_label_error(str(manifest), unknown, "labels")
    return entries


def _inside_root(cell: str, root: Path, source: str, column: str) -> Path:
    """Resolve a manifest cell (symlinks and '..' included) and refuse what lands outside root."""
    if not cell:
        raise DataError(f"{source}: empty {column}; fix: fill it in or delete the row.")
    candidate = Path(cell).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise DataError(
            f"{source}: {column} {cell!r} resolves to {resolved}, outside the data root {root}; "
            "fix: move the file under the root or set data.root to a folder that contains it."
        )
    return resolved


# --------------------------------------------------------------------------------------- folder
def scan_folder(
    folder: str | Path, expressions: Sequence[str], aliases: Mapping[str, str]
) -> tuple[list[Entry], list[dict]]:
    """Entries of a folder-per-class tree, and the non-image files found (to record as skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found; fix: set data.folder to it.")
    root = folder.resolve()
    class_dirs: dict[str, list[Path]] = {}
    unknown = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = canonical_label(sub.name, aliases)
        if label is None:
            unknown.append((f"folder {sub.name}/", sub.name))
        else:
            class_dirs.setdefault(label, []).append(sub)
    if unknown:
        raise _unknown_label_error(str(folder), unknown, "folders")
    _require_class_folders(root, expressions, class_dirs, aliases)
    entries, ignored = [], []
    for label, dirs in class_dirs.items():
        for class_dir in dirs:
            for file in sorted(p for p in class_dir.rglob("*") if p.is_file()):
                if file.name.startswith("."):
                    continue
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    ignored.append({"path": str(file), "reason": "not an image file (extension)"})
                    continue
                resolved = file.resolve()
                if not resolved.is_relative_to(root):
                    raise DataError(
                        f"{file}: a link to {resolved}, outside the dataset folder {root}; "
                        "fix: copy the file into the folder instead of linking it."
                    )
                image_id = resolved.relative_to(root).as_posix()
                entries.append(Entry(image_id, resolved, label, source=str(file)))
    return entries, ignored


def _require_class_folders(root, expressions, class_dirs, aliases) -> None:
    for expression in expressions:
        if expression not in class_dirs:
            names = sorted(a for a, target in aliases.items() if target == expression)
            raise DataError(
                f"{root}: no class folder for {expression} (looked for a subfolder named one of "
                f"{', '.join(names)}, any case); fix: add {root / expression}/ with its images or "
                "drop the expression from data.expressions."
            )


# ------------------------------------------------------------------------------------- checking
def inspect_image(path: Path, min_size: int) -> Inspection:
    """Decode one file fully: digest, size, or the reason it cannot be used."""
    from ferxai.data.images import load_rgb

    try:
        data = path.read_bytes()
    except OSError as exc:
        return Inspection(problem=f"cannot open the file ({exc.strerror or exc})")
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        height, width = load_rgb(path).shape[:2]
    except DataError as exc:
        reason = str(exc).split(": ", 1)[-1].split("; fix:")[0]
        return Inspection(sha1=sha1, problem=reason)
    if min(width, height) < min_size:
        return Inspection(
            sha1, width, height, f"too small: {width}x{height} px, below --min-size {min_size} px"
        )
    return Inspection(sha1, width, height)


def read_landmark_file(path: str | Path) -> np.ndarray:
    """(68, 2) float landmarks from .npy, .txt/.csv (``x,y`` or ``x y`` lines) or iBUG .pts."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            points = np.load(path, allow_pickle=False)
        elif suffix == ".pts":
            text = path.read_text(encoding="utf-8")
            body = text.split("{", 1)[1].split("}", 1)[0] if "{" in text else text
            points = np.loadtxt(body.splitlines(), ndmin=2)
        elif suffix in (".txt", ".csv"):
            lines = path.read_text(encoding="utf-8").replace(",", " ").splitlines()
            points = np.loadtxt(lines, ndmin=2)
        else:
            raise DataError(
                f"{path}: unknown landmark file type; fix: use one of {', '.join(LANDMARK_SUFFIXES)}."
            )
    except (OSError, ValueError, IndexError) as exc:
        raise DataError(f"{path}: cannot read landmarks ({exc}); fix: re-export the file.") from exc
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        shape = "x".join(map(str, points.shape))
        raise DataError(
            f"{path}: landmarks have shape ({shape}), expected (68, 2) finite [x, y] points; "
            "fix: export the 68-point iBUG layout or leave the landmarks column empty."
        )
    return points


def _landmark_problem(path: Path | None) -> str:
    if path is None:
        return ""
    if not path.is_file():
        return f"landmark file {path} does not exist"
    try:
        read_landmark_file(path)
    except DataError as exc:
        return "landmark file " + str(exc).split("; fix:")[0]
    return ""


def validate(
    entries: Sequence[Entry],
    expressions: Sequence[str],
    min_size: int = 32,
    duplicates: str = "skip",
    workers: int | None = None,
) -> tuple[list[dict], list[dict]]:
    """Check every entry; return (dataset rows sorted by image_id, skipped rows)."""
    if duplicates not in ("skip", "error"):
        raise ConfigError(f"data.duplicates: {duplicates!r}; use skip or error.")
    _refuse_repeated_ids(entries)
    entries = sorted(entries, key=lambda e: e.image_id)
    wanted = set(expressions)
    skipped: list[dict] = []
    candidates = []
    for entry in entries:
        if entry.expression not in wanted:
            reason = (
                "neutral is not one of the 6 expressions"
                if entry.expression == NEUTRAL
                else f"{entry.expression} is not in data.expressions"
            )
            skipped.append({"path": str(entry.path), "reason": reason})
        else:
            candidates.append(entry)
    inspections = _inspect_all(candidates, min_size, workers)
    rows: list[dict] = []
    first_by_digest: dict[str, Entry] = {}
    for entry, found in zip(candidates, inspections, strict=True):
        reason = found.problem or _duplicate_problem(entry, found, first_by_digest, duplicates)
        reason = reason or _landmark_problem(entry.landmarks)
        if reason:
            skipped.append({"path": str(entry.path), "reason": reason})
            continue
        first_by_digest[found.sha1] = entry
        rows.append(_dataset_row(entry, found))
    _require_every_class(rows, skipped, expressions)
    return rows, skipped


def _refuse_repeated_ids(entries: Sequence[Entry]) -> None:
    counts = Counter(e.image_id for e in entries)
    repeated = [image_id for image_id, n in counts.items() if n > 1]
    if repeated:
        first = next(e for e in entries if e.image_id == repeated[0])
        raise DataError(
            f"{first.source}: the file {first.path} is listed {counts[repeated[0]]} times "
            f"({len(repeated)} file(s) repeated in all); fix: list each file once."
        )


def _inspect_all(entries: Sequence[Entry], min_size: int, workers: int | None) -> list[Inspection]:
    from ferxai.core.device import job_cpus

    # Pillow and hashlib release the GIL while decoding/hashing, so threads do scale here.
    n = max(1, min(workers or job_cpus(), 16))
    paths = [e.path for e in entries]
    if n == 1 or len(paths) < 64:
        return [inspect_image(p, min_size) for p in paths]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(inspect_image, paths, [min_size] * len(paths), chunksize=16))


def _duplicate_problem(entry: Entry, found: Inspection, first_by_digest, mode: str) -> str:
    first = first_by_digest.get(found.sha1)
    if first is None:
        return ""
    if mode == "error":
        raise DataError(
            f"{entry.path}: identical bytes to {first.path} (sha1 {found.sha1[:12]}); the same "
            "image could land in two folds. Fix: delete one copy or set data.duplicates: skip."
        )
    return f"duplicate of {first.path}"


def _portable(path: Path) -> str:
    """Relative to the working directory when under it (results then move with their folder and
    two runs in different folders are byte-identical), else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _dataset_row(entry: Entry, found: Inspection) -> dict:
    return {
        "image_id": entry.image_id,
        "path": _portable(entry.path),
        "expression": entry.expression,
        "label": label_index(entry.expression),
        "subject": entry.subject,
        "width": found.width,
        "height": found.height,
        "landmarks": _portable(entry.landmarks) if entry.landmarks else "",
        "sha1": found.sha1,
        "aus": entry.aus,
    }


def _require_every_class(rows: list[dict], skipped: list[dict], expressions: Sequence[str]) -> None:
    counts = Counter(r["expression"] for r in rows)
    empty = [e for e in expressions if counts[e] == 0]
    if not empty:
        return
    examples = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:MAX_LISTED])
    raise DataError(
        f"no usable image for {', '.join(empty)} (every image of that class was missing or "
        f"skipped{': ' + examples if examples else ''}). Fix: add readable images of that class, "
        "check data.root / data.label_aliases, or drop it from data.expressions."
    )


# ---------------------------------------------------------------------------------------- stage
def prepare(
    out: str | Path,
    skipped_out: str | Path,
    manifest: str | Path | None = None,
    folder: str | Path | None = None,
    root: str | Path | None = None,
    aliases: Mapping[str, str] | None = None,
    expressions: Sequence[str] | None = None,
    min_size: int = 32,
    duplicates: str = "skip",
    crop: str | None = None,
    crop_margin: float | None = None,
    crop_dir: str | Path | None = None,
) -> tuple[list[dict], list[dict]]:
    """Validate a manifest or a folder tree; write ``dataset.csv`` and ``skipped.csv``.

    ``crop`` (box | landmarks | detector; None or none: no crop) crops every usable image to its
    face into ``crop_dir`` (:mod:`ferxai.data.crop`): ``dataset.csv`` then lists the crops and
    their carried landmarks, under the original image ids; faces not found are skipped."""
    if (manifest is None) == (folder is None):
        raise ConfigError("prepare: give exactly one of --manifest or --folder.")
    if min_size < 1:
        raise ConfigError(f"data.min_size: {min_size} must be ≥ 1 px (default 32).")
    alias_map = merge_aliases(aliases)
    wanted = parse_expressions(expressions)
    if manifest is not None:
        entries, ignored = read_manifest(manifest, root, alias_map), []
    else:
        entries, ignored = scan_folder(folder, wanted, alias_map)
    rows, skipped = validate(entries, wanted, min_size, duplicates)
    if crop not in (None, "none"):
        rows, crop_skipped = _crop(rows, entries, crop, crop_margin, crop_dir, min_size)
        skipped += crop_skipped
        _require_every_class(rows, crop_skipped, wanted)
    skipped = sorted(ignored + skipped, key=lambda s: s["path"])
    write_csv(skipped_out, skipped, SKIPPED_COLUMNS)
    write_csv(out, rows, DATASET_COLUMNS)
    if skipped:
        log.warning("prepare: skipped %d input(s); see %s", len(skipped), skipped_out)
    log.info("prepare: %d usable images -> %s", len(rows), out)
    return rows, skipped


def _crop(rows, entries, mode, margin, crop_dir, min_size) -> tuple[list[dict], list[dict]]:
    from ferxai.data.crop import BOX_COLUMNS, DEFAULT_MARGIN, crop_rows

    if crop_dir is None:
        raise ConfigError(f"prepare --crop {mode}: --crop-dir (where the crops go) is missing.")
    boxes = {e.image_id: e.box for e in entries}
    if mode == "box" and not any(boxes.values()):
        raise ConfigError(
            f"data.crop: box needs a face box per image ({','.join(BOX_COLUMNS)} columns in the "
            "manifest, as AffectNet's import writes) and no image has one; fix: crop with "
            "landmarks or detector, or add the columns."
        )
    margin = DEFAULT_MARGIN if margin is None else margin
    cropped, skipped = crop_rows(rows, mode, crop_dir, margin, boxes, read_landmark_file, min_size)
    for row in cropped:
        row["path"] = _portable(Path(row["path"]))
        row["landmarks"] = _portable(Path(row["landmarks"])) if row["landmarks"] else ""
    for entry in skipped:
        entry["path"] = str(Path(entry["path"]).resolve())
    return cropped, skipped


def _json_arg(value: str | None, what: str):
    """A JSON value given inline or as a path to a JSON file."""
    if value is None or value == "":
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        path = Path(value)
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: {what} is not valid JSON ({exc}).") from exc
        raise ConfigError(f"{what}: {value!r} is neither JSON nor a JSON file.") from None


def cli_prepare_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="CSV: path,expression[,subject][,landmarks]")
    source.add_argument("--folder", type=Path, help="one subfolder of images per expression")
    parser.add_argument("--out", required=True, type=Path, help="dataset.csv to write")
    parser.add_argument("--skipped", required=True, type=Path, help="skipped.csv to write")
    parser.add_argument("--root", type=Path, help="base of relative manifest paths")
    parser.add_argument("--aliases", help="JSON {alias: Expression} (inline or a file)")
    parser.add_argument("--expressions", help='JSON list, e.g. ["Anger", ..., "Neutral"]')
    parser.add_argument("--min-size", type=int, default=32, help="smallest usable side in px")
    parser.add_argument("--duplicates", choices=("skip", "error"), default="skip")
    parser.add_argument(
        "--crop",
        choices=("none", "box", "landmarks", "detector"),
        help="crop each image to its face: the manifest's face box, the given landmarks' extent "
        "or dlib's detector (default none)",
    )
    parser.add_argument(
        "--crop-margin", type=float, help="square crop: side = (1 + 2 margin) x face (0.25)"
    )
    parser.add_argument("--crop-dir", type=Path, help="folder for the crops and their landmarks")
    parser.set_defaults(
        provenance_inputs=("manifest", "folder"),
        provenance_outputs=("out", "skipped", "crop_dir"),
    )


def cli_prepare(args: argparse.Namespace) -> None:
    aliases = _json_arg(args.aliases, "--aliases")
    expressions = _json_arg(args.expressions, "--expressions")
    if aliases is not None and not isinstance(aliases, dict):
        raise ConfigError("--aliases: expected a JSON object {alias: Expression}.")
    if expressions is not None and not isinstance(expressions, list):
        raise ConfigError("--expressions: expected a JSON list of expression names.")
    prepare(
        args.out,
        args.skipped,
        manifest=args.manifest,
        folder=args.folder,
        root=args.root,
        aliases=aliases,
        expressions=expressions,
        min_size=args.min_size,
        duplicates=args.duplicates,
        crop=args.crop,
        crop_margin=args.crop_margin,
        crop_dir=args.crop_dir,
    )


def iter_rows(dataset_csv: str | Path) -> Iterable[dict]:
    """Rows of a ``dataset.csv``, checking its header first."""
    path = Path(dataset_csv)
    if not path.is_file():
        raise DataError(f"{path}: dataset table not found; fix: run `ferxai prepare` first.")
    rows = read_csv(path)
    required = set(DATASET_COLUMNS) - OPTIONAL_COLUMNS
    if rows and required - set(rows[0]):
        missing = ", ".join(sorted(required - set(rows[0])))
        raise DataError(f"{path}: missing column(s) {missing}; fix: rerun `ferxai prepare`.")
    return rows
