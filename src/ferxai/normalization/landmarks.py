"""68-point facial landmarks of every image: given with the data, or found by dlib.

Sources are callables ``source(rgb) -> (68, 2) [x, y]`` that raise :class:`LandmarkFailure` with a
short reason when they cannot place the face; new ones join :data:`LANDMARK_SOURCES` through
:func:`register_landmark_source`. ``given`` is not such a source: it reads the per-image file that
``dataset.csv`` points to, without decoding the image.

A face without usable landmarks is *recorded* (reason in the table and in ``failures.csv``) and left
out downstream; only when failures exceed ``max_failure_fraction`` does the job fail. Landmarks that
are not face-shaped (:mod:`ferxai.normalization.plausibility`, ``--max-residual``) count as such failures.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ferxai.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FORMAT = "ferxai-landmarks/1"
FAILURE_COLUMNS = ("image_id", "path", "reason")
NO_FACE = "no face found"
OUTSIDE = "landmarks outside the image"
FILE_MISSING = "landmark file missing"
NO_FILE = "no landmark file given"
IMAGE_UNREADABLE = "image unreadable"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
MAX_LISTED = 5


class LandmarkFailure(Exception):
    """A face whose landmarks cannot be used; ``reason`` is the short text recorded for it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class LandmarkSource(Protocol):
    """Finds the 68 landmarks ``[x, y]`` (image pixels) of the face in an RGB uint8 image."""

    def __call__(self, rgb: np.ndarray) -> np.ndarray:  # (68, 2); raises LandmarkFailure
        ...


# name -> factory(**options) returning a LandmarkSource
LANDMARK_SOURCES: dict[str, Callable[..., LandmarkSource]] = {}


def register_landmark_source(name: str):
    """Class/function decorator: make a source factory available as ``--source NAME``."""

    def register(factory):
        LANDMARK_SOURCES[name] = factory
        return factory

    return register


def make_landmark_source(name: str, **options: Any) -> LandmarkSource:
    if name not in LANDMARK_SOURCES:
        known = ", ".join(["given", *LANDMARK_SOURCES])
        raise ConfigError(f"landmarks source: unknown value {name!r}; use one of {known}.")
    return LANDMARK_SOURCES[name](**options)


# ----------------------------------------------------------------------------------------- dlib


def dlib_predictor_path() -> Path:
    """dlib's 68-point predictor, shipped by face-recognition-models (found without importing it:
    its import needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "models" / PREDICTOR_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"dlib's landmark model {PREDICTOR_FILE} was not found (package face-recognition-models "
        f"{'has no such file' if locations else 'is not installed'}); "
        "fix: pip install 'ferxai[landmarks]', or give landmark files with the data (--source given)."
    )


def _import_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise ConfigError(
            "landmarks source 'dlib' needs the dlib package, which is not installed; "
            "fix: pip install 'ferxai[landmarks]', or use --source given with landmark files."
        ) from exc
    return dlib


@functools.cache
def load_dlib_predictor(path: str | None = None):
    """dlib's shape predictor (about 100 MB, slow to parse), loaded once per process and path."""
    return _import_dlib().shape_predictor(str(path or dlib_predictor_path()))


@register_landmark_source("dlib")
class DlibLandmarks:
    """dlib's 68-point shape predictor.

    ``detect=False`` (the paper, for pre-cropped faces): the whole image is the face box.
    ``detect=True``: dlib's frontal face detector picks the box (the highest-scoring face).
    """

    def __init__(self, detect: bool = False, upsample: int = 1, predictor_path: str | None = None):
        dlib = _import_dlib()
        self._dlib = dlib
        self.detect = detect
        self.upsample = int(upsample)
        self._predictor = load_dlib_predictor(predictor_path)
        self._detector = dlib.get_frontal_face_detector() if detect else None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        height, width = rgb.shape[:2]
        if self._detector is None:
            if rgb.min() == rgb.max():  # nothing to fit: the predictor would return its mean shape
                raise LandmarkFailure(NO_FACE)
            box = self._dlib.rectangle(0, 0, width, height)
        else:
            boxes, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
            if len(boxes) == 0:
                raise LandmarkFailure(NO_FACE)
            box = boxes[int(np.argmax(scores))]
        shape = self._predictor(rgb, box)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


register_landmark_source("dlib-detector")(functools.partial(DlibLandmarks, detect=True))


# ---------------------------------------------------------------------------------- per image


def landmarks_inside(points: np.ndarray, width: int, height: int, tolerance: float = 0.0) -> bool:
    """All points within the image's pixel centres (0..width-1, 0..height-1), +- ``tolerance`` px."""
    x, y = np.asarray(points, dtype=np.float64).T
    return bool(
        np.isfinite(points).all()
        and x.min() >= -tolerance
        and y.min() >= -tolerance
        and x.max() <= width - 1 + tolerance
        and y.max() <= height - 1 + tolerance
    )


def read_given_landmarks(cell: str) -> np.ndarray:
    """The landmark file named in a dataset row's ``landmarks`` cell; LandmarkFailure if unusable."""
    from ferxai.data.dataset import read_landmark_file

    if not cell.strip():
        raise LandmarkFailure(NO_FILE)
    path = Path(cell)
    if not path.is_file():
        raise LandmarkFailure(FILE_MISSING)
    try:
        return read_landmark_file(path)
    except DataError as exc:
        shape = _stored_shape(path)
        if shape is not None and shape != (68, 2):
            raise LandmarkFailure(f"landmark file has shape {shape} not (68, 2)") from None
        problem = str(exc).split("; fix:")[0].removeprefix(f"{path}: ")
        raise LandmarkFailure(f"landmark file unusable: {problem}") from None


def _stored_shape(path: Path) -> tuple[int, ...] | None:
    """Shape of the points a landmark file holds, when it can be read at all."""
    try:
        if path.suffix.lower() == ".npy":
            return tuple(np.load(path, allow_pickle=False, mmap_mode="r").shape)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".pts" and "{" in text:
            text = text.split("{", 1)[1].split("}", 1)[0]
        return tuple(np.loadtxt(text.replace(",", " ").splitlines(), ndmin=2).shape)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def row_landmarks(
    row: Mapping[str, str], source: LandmarkSource | None, tolerance: float = 0.0
) -> np.ndarray:
    """Landmarks (68, 2) of one dataset row: from its file (``source=None``) or from its pixels."""
    if source is None:
        points = read_given_landmarks(row.get("landmarks") or "")
        width, height = _row_size(row)
    else:
        from ferxai.data.images import load_rgb

        try:
            rgb = load_rgb(row["path"])
        except DataError:
            raise LandmarkFailure(IMAGE_UNREADABLE) from None
        height, width = rgb.shape[:2]
        points = np.asarray(source(rgb), dtype=np.float64)
        if points.shape != (68, 2):
            raise LandmarkFailure(f"landmark source returned shape {points.shape} not (68, 2)")
    if not landmarks_inside(points, width, height, tolerance):
        raise LandmarkFailure(OUTSIDE)
    return points


def _row_size(row: Mapping[str, str]) -> tuple[int, int]:
    """(width, height) from the dataset row, else from the image itself."""
    try:
        return int(row["width"]), int(row["height"])
    except (KeyError, TypeError, ValueError):
        from ferxai.data.images import load_rgb

        try:
            height, width = load_rgb(row["path"]).shape[:2]
        except DataError:
            raise LandmarkFailure(IMAGE_UNREADABLE) from None
        return width, height


def _attempt(row, source, tolerance) -> tuple[np.ndarray | None, str]:
    try:
        return row_landmarks(row, source, tolerance), ""
    except LandmarkFailure as failure:
        return None, failure.reason


# Worker processes build their source once (dlib models are not picklable).
_worker_state: dict[str, Any] = {}


def _init_worker(source_name: str, options: dict, tolerance: float) -> None:
    _worker_state["source"] = make_landmark_source(source_name, **options)
    _worker_state["tolerance"] = tolerance


def _worker_attempt(row: Mapping[str, str]) -> tuple[np.ndarray | None, str]:
    return _attempt(row, _worker_state["source"], _worker_state["tolerance"])


def landmarks_of(images: Sequence[np.ndarray] | np.ndarray, source: str = "dlib", **options: Any):
    """The 68 landmarks ``[x, y]`` of each RGB uint8 image (N, H, W, 3) with ``source`` (default
    dlib): (N, 68, 2) float32, NaN for a face that cannot be placed (the Python API's face finder;
    the workflow's ``landmarks`` rule also records why, per face)."""
    detector = make_landmark_source(source, **options)
    points = np.full((len(images), 68, 2), np.nan, dtype=np.float32)
    for k, rgb in enumerate(images):
        try:
            points[k] = detector(np.asarray(rgb))
        except LandmarkFailure as failure:
            log.info("image %d: %s", k, failure.reason)
    return points


# ------------------------------------------------------------------------------------- tables


@dataclass
class LandmarkTable:
    """Landmarks of a dataset: (N, 68, 2) float32 image pixels (NaN where ``ok`` is False)."""

    image_id: list[str]
    paths: list[str]
    landmarks: np.ndarray
    ok: np.ndarray
    reason: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    # plausibility (ferxai.normalization.plausibility): Procrustes residual (N,), NaN without points; the points
    # of faces rejected as implausible (N, 68, 2), NaN for every other face
    residual: np.ndarray | None = None
    rejected: np.ndarray | None = None

    @property
    def failures(self) -> int:
        return int((~self.ok).sum())

    def failure_rows(self) -> list[dict[str, str]]:
        return [
            {"image_id": i, "path": p, "reason": r}
            for i, p, r, ok in zip(self.image_id, self.paths, self.reason, self.ok)
            if not ok
        ]

    def select(self, image_ids: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
        """(landmarks (n, 68, 2), ok (n,)) of ``image_ids``; an id absent from the table is an error."""
        index = {image_id: k for k, image_id in enumerate(self.image_id)}
        missing = [i for i in image_ids if i not in index]
        if missing:
            listed = ", ".join(missing[:MAX_LISTED]) + (" ..." if len(missing) > MAX_LISTED else "")
            raise DataError(
                f"{where}: {len(missing)} image(s) have no row in the landmark table ({listed}); "
                "fix: rerun `ferxai landmarks` on the dataset these maps were computed from."
            )
        rows = np.array([index[i] for i in image_ids], dtype=np.int64)
        return self.landmarks[rows], self.ok[rows]


def extract_landmarks(
    rows: Sequence[Mapping[str, str]],
    source: str = "given",
    threads: int = 1,
    outside_tolerance: float = 0.0,
    options: Mapping[str, Any] | None = None,
) -> LandmarkTable:
    """Landmarks of every dataset row with ``source`` (``given`` or a registered source name)."""
    options = dict(options or {})
    if source == "given":
        results = [_attempt(row, None, outside_tolerance) for row in rows]
    elif threads <= 1 or len(rows) < 2 * threads:
        detector = make_landmark_source(source, **options)
        results = [_attempt(row, detector, outside_tolerance) for row in rows]
    else:
        results = _parallel_attempts(rows, source, options, outside_tolerance, threads)
    landmarks = np.full((len(rows), 68, 2), np.nan, dtype=np.float32)
    for k, (points, _) in enumerate(results):
        if points is not None:
            landmarks[k] = points
    return LandmarkTable(
        image_id=[row["image_id"] for row in rows],
        paths=[row.get("path", "") for row in rows],
        landmarks=landmarks,
        ok=np.array([points is not None for points, _ in results], dtype=bool),
        reason=[reason for _, reason in results],
        attrs={"source": source, "outside_tolerance": float(outside_tolerance)},
    )


def _parallel_attempts(rows, source, options, tolerance, threads):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    make_landmark_source(source, **options)  # fail here, with a clear message, not in a worker
    with ProcessPoolExecutor(
        max_workers=threads,
        mp_context=multiprocessing.get_context("fork"),  # registered custom sources carry over
        initializer=_init_worker,
        initargs=(source, options, tolerance),
    ) as pool:
        chunk = max(1, len(rows) // (threads * 8))
        return list(pool.map(_worker_attempt, rows, chunksize=chunk))


def write_landmarks(path: str | Path, table: LandmarkTable) -> None:
    """HDF5: image_id, landmarks (N, 68, 2) float32, ok, reason; attrs incl. complete=True."""
    import h5py

    from ferxai import __version__
    from ferxai.core.io import atomic_path, create_dataset

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:  # every dataset checksummed
        create_dataset(h5, "image_id", np.array(table.image_id, dtype=object))
        create_dataset(h5, "landmarks", table.landmarks.astype(np.float32))
        create_dataset(h5, "ok", table.ok.astype(bool))
        create_dataset(h5, "reason", np.array(table.reason, dtype=object))
        create_dataset(h5, "path", np.array(table.paths, dtype=object))
        if table.residual is not None:
            create_dataset(h5, "residual", np.asarray(table.residual, dtype=np.float32))
        if table.rejected is not None:  # only the rejected faces' rows are stored
            index = np.flatnonzero(np.isfinite(table.rejected).all(axis=(1, 2)))
            create_dataset(h5, "rejected_index", index.astype(np.int64))
            create_dataset(h5, "rejected", table.rejected[index].astype(np.float32))
        for key, value in table.attrs.items():
            h5.attrs[key] = value  # str / int / float only (see extract_landmarks, the CLI)
        h5.attrs["format"] = FORMAT
        h5.attrs["ferxai_version"] = __version__
        h5.attrs["count"] = len(table.image_id)
        h5.attrs["failures"] = table.failures
        h5.attrs["complete"] = True


def read_landmarks(path: str | Path) -> LandmarkTable:
    """Read a table written by :func:`write_landmarks`; refuse one not marked complete."""
    from ferxai.core.io import open_h5, read_dataset

    fix = "fix: delete it and rerun `ferxai landmarks`."
    with open_h5(path, "landmark table") as h5:
        if not h5.attrs.get("complete", False) or "landmarks" not in h5:
            raise DataError(f"{path}: incomplete landmark table (no 'complete' mark); {fix}")

        def read(name):
            return read_dataset(h5, name, path)

        landmarks = read("landmarks").astype(np.float32)
        if landmarks.shape[1:] != (68, 2):
            raise DataError(
                f"{path}: landmarks have shape {landmarks.shape}, not (N, 68, 2); {fix}"
            )
        n = len(landmarks)
        rejected = None
        if "rejected" in h5:
            rejected = np.full((n, 68, 2), np.nan, dtype=np.float32)
            rejected[read("rejected_index")] = read("rejected")
        return LandmarkTable(
            image_id=_strings(read("image_id")),
            paths=_strings(read("path")) if "path" in h5 else [""] * n,
            landmarks=landmarks,
            ok=read("ok").astype(bool),
            reason=_strings(read("reason")),
            attrs={k: v.item() if isinstance(v, np.generic) else v for k, v in h5.attrs.items()},
            residual=read("residual").astype(np.float32) if "residual" in h5 else None,
            rejected=rejected,
        )


def _strings(dataset) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[...]]


def check_plausibility(table: LandmarkTable, max_residual: float | None) -> int:
    """Record faces whose landmarks are not face-shaped as failures (:mod:`ferxai.normalization.plausibility`);
    their points move to ``table.rejected``. Returns how many were rejected."""
    from ferxai.normalization.plausibility import DEFAULT_MAX_RESIDUAL, flag_implausible

    max_residual = DEFAULT_MAX_RESIDUAL if max_residual is None else float(max_residual)
    before = table.landmarks.copy()
    table.residual, rejected = flag_implausible(
        table.landmarks, table.ok, table.reason, max_residual
    )
    newly = np.isnan(table.landmarks) & np.isfinite(before)
    table.rejected = np.where(newly, before, np.float32(np.nan)).astype(np.float32)
    table.attrs.update(max_residual=max_residual, implausible=rejected)
    if rejected:
        log.warning(
            "landmarks: %d face(s) with implausible landmarks recorded as failures", rejected
        )
    return rejected


def check_failure_fraction(
    table: LandmarkTable, max_fraction: float, dataset: str | Path, failures_csv: str | Path
) -> None:
    """DataError when more than ``max_fraction`` of the images have no landmarks."""
    total, failed = len(table.image_id), table.failures
    if total == 0 or failed / total <= max_fraction:
        return
    reasons = Counter(r for r, ok in zip(table.reason, table.ok) if not ok)
    summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    listed = [i for i, ok in zip(table.image_id, table.ok) if not ok][:MAX_LISTED]
    raise DataError(
        f"{dataset}: {failed} of {total} images ({100 * failed / total:.1f}%) have no landmarks "
        f"(source {table.attrs.get('source', '?')}: {summary}; e.g. {', '.join(listed)}), "
        f"above max_failure_fraction={max_fraction:g}; see {failures_csv} for the list. "
        "fix: give landmark files with the data (--source given), use --source dlib-detector for "
        "images that are not cropped to the face, remove those images, or raise "
        "max_failure_fraction."
    )


# ------------------------------------------------------------------------------------------ CLI


def cli_landmarks_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, type=Path, help="dataset.csv from `prepare`")
    parser.add_argument(
        "--source",
        default="given",
        help="given (files named in dataset.csv), dlib (whole image as the face box, as the "
        "paper), dlib-detector (dlib's face detector picks the box) or a registered source",
    )
    parser.add_argument(
        "--max-failure-fraction",
        type=float,
        default=0.05,
        help="fail the job when more images than this fraction have no landmarks (default 0.05)",
    )
    parser.add_argument(
        "--outside-tolerance",
        type=float,
        default=0.0,
        help="pixels a landmark may lie outside the image before the face counts as a failure",
    )
    parser.add_argument(
        "--max-residual",
        type=float,
        default=None,
        help="faces whose Procrustes residual to the canonical face exceeds this are failures "
        "(implausible); default 0.4, 0 only measures (ferxai.normalization.plausibility)",
    )
    parser.add_argument("--out", required=True, type=Path, help="landmarks.h5 to write")
    parser.add_argument("--failures", required=True, type=Path, help="failures.csv to write")
    parser.add_argument("--threads", type=int, default=None, help="worker processes for dlib")
    parser.set_defaults(provenance_inputs=("dataset",), provenance_outputs=("out", "failures"))


def cli_landmarks(args: argparse.Namespace) -> None:
    from ferxai.core.device import job_cpus
    from ferxai.core.io import read_csv, write_csv

    if not 0.0 <= args.max_failure_fraction <= 1.0:
        raise ConfigError(
            f"--max-failure-fraction {args.max_failure_fraction}: use a fraction in [0, 1]."
        )
    if not args.dataset.is_file():
        raise DataError(f"{args.dataset}: dataset table not found; fix: run `ferxai prepare`.")
    rows = read_csv(args.dataset)
    if rows and "image_id" not in rows[0]:
        raise DataError(f"{args.dataset}: no image_id column; fix: regenerate it with prepare.")
    table = extract_landmarks(
        rows,
        source=args.source,
        threads=args.threads or job_cpus(),
        outside_tolerance=args.outside_tolerance,
    )
    table.attrs.update(dataset=str(args.dataset), max_failure_fraction=args.max_failure_fraction)
    check_plausibility(table, args.max_residual)
    write_csv(args.failures, table.failure_rows(), FAILURE_COLUMNS)
    log.info(
        "%s: landmarks of %d images from %s, %d failures",
        args.dataset,
        len(rows),
        args.source,
        table.failures,
    )
    check_failure_fraction(table, args.max_failure_fraction, args.dataset, args.failures)
    write_landmarks(args.out, table)
