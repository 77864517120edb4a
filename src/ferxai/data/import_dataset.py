"""``ferxai import-dataset``: a common FER dataset, in its native layout, to a ferxai manifest.

``--format`` names one of :data:`ferxai.data.importers.FORMATS` (fer2013, ckplus, kdef, jaffe, rafdb,
affectnet), ``--source`` the dataset as distributed. The output folder gets

- ``manifest.csv``: ``path,expression,subject[,landmarks]`` plus the columns the format carries
  (``split``, AffectNet's face box, KDEF's ``angle``), expressions spelled as
  :data:`ferxai.core.constants.EXPRESSIONS`, subject empty where the format knows none. Written **last**,
  so an interrupted import is never taken as complete;
- ``skipped.csv``: ``item,reason`` for every input left out (neutral, contempt, unlabelled, ...);
- ``images/`` for a source that has no image files (FER2013's pixel table), ``landmarks/*.npy``
  ((68, 2) float32 ``[x, y]``) for a source that carries landmarks (CK+, AffectNet).

Images of the other formats stay where they are and are listed with absolute paths; landmark files
are listed with absolute paths too then. :func:`prepare_root` says which ``--root`` ``ferxai
prepare`` needs for such a manifest (every path must resolve inside it).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import write_csv
from ferxai.data.importers import FORMATS, Importer, Item, Skip
from ferxai.data.importers.common import write_item_files

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
SKIPPED = "skipped.csv"
SKIPPED_COLUMNS = ("item", "reason")
PROGRESS_EVERY = 5000  # inputs between two progress lines
MAX_PENDING = 256  # file writes queued before the reader waits for them
# CLI flags that set one format's settings: flag -> (format, setting)
SETTING_FLAGS = {"frames": ("ckplus", "frames"), "angles": ("kdef", "angles"),
                 "images": ("rafdb", "images")}


def get_importer(name: str) -> Importer:
    if name not in FORMATS:
        raise ConfigError(
            f"import format {name!r} is unknown; use one of {', '.join(FORMATS)} "
            "(data.source / --format)."
        )
    return FORMATS[name]


def prepare_root(name: str, source: str | Path, out_dir: str | Path) -> Path | None:
    """The ``--root`` that ``ferxai prepare`` needs for this import's manifest (None: its folder).

    Images that stay in the source need a root containing the source; landmark files written under
    the output folder need one containing both (their common ancestor). The path is relative to the
    working directory when under it, so the workflow's parameters do not change with its location.
    """
    importer = get_importer(name)
    if not importer.in_place:
        return None
    root = Path(source).resolve()
    if importer.landmarks:
        root = Path(os.path.commonpath([root, Path(out_dir).resolve()]))
    try:
        return root.relative_to(Path.cwd().resolve())
    except ValueError:
        return root


def import_dataset(
    name: str,
    source: str | Path,
    out_dir: str | Path,
    settings: Mapping[str, Any] | None = None,
    workers: int | None = None,
) -> tuple[list[dict], list[dict]]:
    """Read ``source`` in format ``name``; write the manifest, skipped.csv and files under
    ``out_dir``; return (manifest rows, skipped rows)."""
    from ferxai.core.device import job_cpus

    importer = get_importer(name)
    settings = importer.settings(settings)
    source, out = Path(source), Path(out_dir)
    start = time.perf_counter()
    log.info("import-dataset: reading %s from %s (settings %s)", importer.title, source, settings)
    rows: list[dict] = []
    skipped: list[dict] = []
    pending: deque[Future] = deque()
    # Writes are small and wait on fsync (atomic files), so a few threads hide that latency.
    with ThreadPoolExecutor(max_workers=max(2, min(8, 2 * (workers or job_cpus())))) as pool:
        for seen, record in enumerate(importer.read(source, settings), start=1):
            if isinstance(record, Skip):
                skipped.append({"item": record.item, "reason": record.reason})
            else:
                rows.append(_manifest_row(importer, record, out))
                if record.pixels is not None or record.landmarks is not None:
                    pending.append(pool.submit(write_item_files, record, out))
                    while len(pending) > MAX_PENDING:
                        pending.popleft().result()
            if seen % PROGRESS_EVERY == 0:
                log.info(
                    "import-dataset: %d inputs read (%d kept, %d skipped), %.0f s",
                    seen, len(rows), len(skipped), time.perf_counter() - start,
                )
        for future in pending:
            future.result()
    if not rows:
        raise DataError(
            f"{source}: no image of the six expressions found in this {importer.title} source "
            f"({len(skipped)} input(s) skipped{_top_reasons(skipped)}). Fix: point data.path "
            f"(--source) at {importer.point_at}."
        )
    write_csv(out / SKIPPED, skipped, SKIPPED_COLUMNS)
    write_csv(out / MANIFEST, rows, importer.columns)  # last: its presence means complete
    _log_summary(importer, rows, skipped, out, time.perf_counter() - start)
    return rows, skipped


def _manifest_row(importer: Importer, item: Item, out: Path) -> dict:
    if item.expression not in EXPRESSIONS:  # importers map to the six; a bug otherwise
        raise AssertionError(f"{importer.name} importer gave expression {item.expression!r}")
    row = {
        "path": str(item.path) if item.path.is_absolute() else item.path.as_posix(),
        "expression": item.expression,
        "subject": item.subject,
    }
    if importer.landmarks:
        row["landmarks"] = ""
        if item.landmarks is not None:
            relative = f"landmarks/{item.landmarks_name}.npy"
            row["landmarks"] = str(out.absolute() / relative) if importer.in_place else relative
    for column in importer.extra_columns:
        row[column] = item.extra.get(column, "")
    return row


def _top_reasons(skipped: list[dict], n: int = 3) -> str:
    counts = Counter(s["reason"] for s in skipped).most_common(n)
    return (": " + "; ".join(f"{k} x {reason}" for reason, k in counts)) if counts else ""


def _log_summary(importer, rows, skipped, out: Path, seconds: float) -> None:
    by_expression = Counter(r["expression"] for r in rows)
    listed = ", ".join(f"{e} {by_expression[e]}" for e in EXPRESSIONS)
    subjects = len({r["subject"] for r in rows if r["subject"]})
    log.info(
        "import-dataset: %d images (%s), %s -> %s in %.1f s",
        len(rows), listed, f"{subjects} subjects" if subjects else "no subjects",
        out / MANIFEST, seconds,
    )
    for reason, count in Counter(s["reason"] for s in skipped).most_common():
        log.info("import-dataset: skipped %d: %s", count, reason)
    if skipped:
        log.warning("import-dataset: skipped %d input(s); see %s", len(skipped), out / SKIPPED)


# ------------------------------------------------------------------------------------------- CLI
def cli_import_dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=tuple(FORMATS), help="dataset format")
    parser.add_argument(
        "--source", required=True, type=Path, help="the dataset as distributed (folder or CSV)"
    )
    parser.add_argument(
        "--out-dir", required=True, type=Path, help="folder for manifest.csv, skipped.csv, files"
    )
    parser.add_argument("--settings", help="JSON object of the format's settings (or a JSON file)")
    parser.add_argument("--frames", type=int, help="ckplus: frames per sequence, ending at peak")
    parser.add_argument(
        "--angles", nargs="+", help="kdef: angles to import (S HL HR FL FR; default S)"
    )
    parser.add_argument(
        "--images", choices=("aligned", "original"), help="rafdb: which images (default aligned)"
    )
    parser.set_defaults(provenance_inputs=("source",), provenance_outputs=("out_dir", _tables))


def _tables(args: argparse.Namespace) -> list[Path]:
    """The tables an import writes, so ``ferxai provenance DIR/manifest.csv`` answers too."""
    return [args.out_dir / MANIFEST, args.out_dir / SKIPPED]


def cli_import_dataset(args: argparse.Namespace) -> None:
    from ferxai.data.dataset import _json_arg

    settings = _json_arg(args.settings, "--settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError("--settings: expected a JSON object of the format's settings.")
    for flag, (owner, key) in SETTING_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if owner != args.format:
            raise ConfigError(
                f"--{flag} is a {owner} setting, but --format is {args.format}; drop it."
            )
        settings[key] = value
    import_dataset(args.format, args.source, args.out_dir, settings)
    root = prepare_root(args.format, args.source, args.out_dir)
    log.info(
        "import-dataset: validate with `ferxai prepare --manifest %s%s --out ... --skipped ...`",
        args.out_dir / MANIFEST, f" --root {root}" if root is not None else "",
    )
