"""Crop every image of a dataset to its face, carrying its landmarks into the crop.

Modes (``data.crop`` / ``ferxai prepare --crop``):

- ``box``: the manifest's face box (``face_x,face_y,face_width,face_height``, AffectNet's columns);
- ``landmarks``: the extent of the image's given 68 landmarks;
- ``detector``: dlib's frontal face detector (upsampled once), the largest face found.

The box found is made **square** about its centre, its larger side grown by ``margin`` of itself on
every side (side = (1 + 2 margin) x the larger side; default 0.25, which around the landmarks leaves
the forehead room of the canonical face: its brows lie 49 px below the top of a 275 px canvas, 0.22
of the landmarks' height), so ``to_network_input`` resizes without distorting the face. Pixels of
the square outside the photo are black (the canonical canvas' background). Crops keep the photo's
resolution and are written as PNG; given landmarks are shifted into the crop's pixels and written
as ``.npy`` beside them. A photo where no face (box, landmarks, detection) is found is skipped and
listed with the reason, as ``ferxai prepare`` lists every other skipped input.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ferxai.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CROP_MODES = ("none", "box", "landmarks", "detector")
DEFAULT_MARGIN = 0.25
BOX_COLUMNS = ("face_x", "face_y", "face_width", "face_height")
DETECTOR_UPSAMPLE = 1


class CropFailure(Exception):
    """No face to crop to; ``reason`` is recorded in skipped.csv."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Square:
    """A square crop: columns ``x .. x + side - 1``, rows ``y .. y + side - 1`` of the photo
    (possibly reaching outside it)."""

    x: int
    y: int
    side: int


# ----------------------------------------------------------------------------------- geometry
def square_about(cx: float, cy: float, width: float, height: float, margin: float) -> Square:
    """The square centred on pixel-centre ``(cx, cy)`` whose side is the larger of ``width`` and
    ``height`` grown by ``margin`` of it on each side."""
    side = max(1, int(round((1.0 + 2.0 * margin) * max(width, height, 1.0))))
    half = (side - 1) / 2.0
    return Square(int(np.floor(cx - half + 0.5)), int(np.floor(cy - half + 0.5)), side)


def landmark_square(points: np.ndarray, margin: float) -> Square:
    """Square about the extent of the 68 points (pixel centres)."""
    lo, hi = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    return square_about((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, *(hi - lo), margin)


def box_square(box: Sequence[float], margin: float) -> Square:
    """Square about a box ``(x, y, width, height)`` covering pixels ``x .. x + width - 1``."""
    x, y, width, height = box
    return square_about(x + (width - 1) / 2, y + (height - 1) / 2, width, height, margin)


def crop_square(rgb: np.ndarray, square: Square) -> np.ndarray:
    """The pixels of ``square`` (side, side, 3); outside the photo black."""
    height, width = rgb.shape[:2]
    out = np.zeros((square.side, square.side, 3), dtype=np.uint8)
    x0, y0 = max(square.x, 0), max(square.y, 0)
    x1, y1 = min(square.x + square.side, width), min(square.y + square.side, height)
    if x1 > x0 and y1 > y0:
        out[y0 - square.y : y1 - square.y, x0 - square.x : x1 - square.x] = rgb[y0:y1, x0:x1]
    return out


def carry(points: np.ndarray, square: Square) -> np.ndarray:
    """Landmarks ``[x, y]`` of the photo in the crop's pixels."""
    return np.asarray(points, dtype=np.float64) - np.array([square.x, square.y], dtype=np.float64)


def parse_box(cells: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """A face box from a manifest row's ``face_x,face_y,face_width,face_height``; None when absent
    or not four numbers with a positive width and height."""
    try:
        box = tuple(float(str(cells.get(c) or "").strip()) for c in BOX_COLUMNS)
    except ValueError:
        return None
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        return None
    return box  # type: ignore[return-value]


# ----------------------------------------------------------------------------------- detector
class FaceDetector:
    """dlib's frontal face detector: the largest face's box ``(x, y, width, height)``."""

    def __init__(self, upsample: int = DETECTOR_UPSAMPLE):
        try:
            import dlib
        except ImportError as exc:
            raise ConfigError(
                "data.crop: detector needs the dlib package, which is not installed; fix: pip "
                "install 'ferxai[landmarks]', or crop with box or landmarks."
            ) from exc
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)

    def __call__(self, rgb: np.ndarray) -> tuple[float, float, float, float]:
        boxes, scores, _ = self._detector.run(np.ascontiguousarray(rgb), self.upsample, 0.0)
        if len(boxes) == 0:
            raise CropFailure("no face found by dlib's face detector")
        areas = [(b.width() * b.height(), s) for b, s in zip(boxes, scores)]
        best = boxes[max(range(len(boxes)), key=lambda k: areas[k])]
        return (best.left(), best.top(), best.width(), best.height())


# ------------------------------------------------------------------------------------ dataset
@dataclass(frozen=True)
class CropJob:
    """One image to crop: its dataset row, its face box (mode box) and where its files go."""

    row: Mapping[str, str]
    box: tuple[float, float, float, float] | None
    image_out: Path
    landmarks_out: Path


def crop_one(
    job: CropJob,
    mode: str,
    margin: float,
    min_size: int,
    read_points: Callable[[Path], np.ndarray],
    detector: FaceDetector | None = None,
) -> dict:
    """Crop one image; return its new dataset row (absolute paths). CropFailure when no face."""
    from ferxai.core.io import atomic_path, write_png
    from ferxai.data.images import load_rgb

    row = job.row
    cell = (row.get("landmarks") or "").strip()
    points = read_points(Path(cell)) if cell else None
    if mode == "landmarks" and points is None:
        raise CropFailure("no landmarks given to crop to (landmarks column empty)")
    if mode == "box" and job.box is None:
        raise CropFailure(f"no face box ({','.join(BOX_COLUMNS)} empty or not numbers)")
    rgb = load_rgb(row["path"])
    height, width = rgb.shape[:2]
    if mode == "landmarks":
        square = landmark_square(points, margin)
    elif mode == "box":
        square = box_square(job.box, margin)
    else:
        square = box_square((detector or FaceDetector())(rgb), margin)
    if not (square.x < width and square.y < height and square.x + square.side > 0
            and square.y + square.side > 0):
        raise CropFailure(f"face box outside the {width}x{height} image")
    if square.side < min_size:
        raise CropFailure(f"face too small: {square.side} px square, below --min-size {min_size}")
    crop = crop_square(rgb, square)
    write_png(job.image_out, crop)
    out = dict(row)
    out.update(path=str(job.image_out), width=square.side, height=square.side, landmarks="")
    out["sha1"] = hashlib.sha1(job.image_out.read_bytes()).hexdigest()
    if points is not None:
        buffer = io.BytesIO()
        np.save(buffer, carry(points, square).astype(np.float32), allow_pickle=False)
        with atomic_path(job.landmarks_out) as tmp:
            tmp.write_bytes(buffer.getvalue())
        out["landmarks"] = str(job.landmarks_out)
    return out


def output_names(image_ids: Sequence[str]) -> list[str]:
    """Relative file stem per image id (its folders kept, suffix dropped); ids that would share a
    stem (``a.jpg``, ``a.png``) keep their suffix in it."""
    stems = [str(PurePosixPath(i).with_suffix("")) for i in image_ids]
    counts = Counter(stems)
    return [s if counts[s] == 1 else i for s, i in zip(stems, image_ids)]


def crop_rows(
    rows: Sequence[Mapping[str, str]],
    mode: str,
    out_dir: str | Path,
    margin: float = DEFAULT_MARGIN,
    boxes: Mapping[str, tuple[float, float, float, float] | None] | None = None,
    read_points: Callable[[Path], np.ndarray] | None = None,
    min_size: int = 1,
    workers: int | None = None,
) -> tuple[list[dict], list[dict]]:
    """Crop every dataset row (``mode`` box | landmarks | detector) into ``out_dir``
    (``images/<id>.png``, ``landmarks/<id>.npy``); return (new rows, skipped ``path,reason``)."""
    from ferxai.core.device import job_cpus

    check_crop_settings(mode, margin)
    if read_points is None:
        read_points = _read_npy
    out = Path(out_dir).resolve()
    boxes = boxes or {}
    names = output_names([r["image_id"] for r in rows])
    jobs = [
        CropJob(row, boxes.get(row["image_id"]), out / "images" / f"{name}.png",
                out / "landmarks" / f"{name}.npy")
        for row, name in zip(rows, names)
    ]
    if mode == "detector":
        FaceDetector()  # a missing dlib fails here, once, with its fix
    local = threading.local()  # dlib's detector is not safe to share between threads

    def attempt(job: CropJob) -> dict | str:
        if mode == "detector" and not hasattr(local, "detector"):
            local.detector = FaceDetector()
        try:
            return crop_one(
                job, mode, margin, min_size, read_points, getattr(local, "detector", None)
            )
        except CropFailure as failure:
            return f"crop {mode}: {failure.reason}"
        except DataError as exc:
            return f"crop {mode}: {str(exc).split('; fix:')[0]}"

    # Pillow's decoding and OpenCV's PNG encoding run outside the GIL.
    n = max(1, min(workers or job_cpus(), 16))
    if n == 1 or len(jobs) < 32:
        results = [attempt(job) for job in jobs]
    else:
        with ThreadPoolExecutor(max_workers=n) as pool:
            results = list(pool.map(attempt, jobs, chunksize=8))
    kept = [r for r in results if isinstance(r, dict)]
    skipped = [
        {"path": job.row["path"], "reason": r}
        for job, r in zip(jobs, results)
        if isinstance(r, str)
    ]
    log.info("crop %s: %d of %d images cropped into %s", mode, len(kept), len(rows), out)
    if skipped:
        reasons = Counter(s["reason"] for s in skipped).most_common()
        log.warning("crop %s: skipped %s", mode, "; ".join(f"{n} x {r}" for r, n in reasons))
    return kept, skipped


def check_crop_settings(mode: str, margin: float) -> None:
    if mode not in CROP_MODES or mode == "none":
        raise ConfigError(f"data.crop: {mode!r}; use one of {', '.join(CROP_MODES[1:])} to crop.")
    if not 0.0 <= margin <= 2.0:
        raise ConfigError(
            f"data.crop_margin: {margin} must be in [0, 2] (a fraction of the face box added on "
            f"each side; default {DEFAULT_MARGIN})."
        )


def _read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False).astype(np.float64)
