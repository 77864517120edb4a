"""``ferxai normalize``: warp a stack of attribution maps onto the canonical face.

Each map is warped with its image's 68 landmarks (:mod:`ferxai.normalization.warp`, onto the canvas of
:mod:`ferxai.core.template`); images without landmarks keep an all-zero map marked ``valid=False``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ferxai.core.errors import DataError
from ferxai.core.template import CanonicalTemplate, load_template
from ferxai.normalization.warp import (
    DEFAULT_TRIANGULATION,
    ORDERS,
    TRIANGULATIONS,
    check_triangulation,
    interpolation_flag,
    warp_to_canonical,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- stage / CLI


def normalize_stack(
    stack,
    landmarks,
    sizes: dict[str, tuple[int, int]],
    order: str = "nearest",
    template: CanonicalTemplate | None = None,
    where: str = "stack",
    triangulation: str = DEFAULT_TRIANGULATION,
):
    """Warp a :class:`ferxai.core.io.Stack` of maps onto the canvas.

    ``landmarks`` is a :class:`ferxai.normalization.landmarks.LandmarkTable` (image pixels) and ``sizes`` maps
    image_id -> (width, height) of the original image; landmarks are scaled into the map grid.
    Images without landmarks keep an all-zero map and ``valid=False``.
    """
    from ferxai.core.io import Stack

    interpolation_flag(order)  # reject a bad order or triangulation before any work
    check_triangulation(triangulation)
    template = template or load_template()
    points, ok = landmarks.select(stack.image_id, where)
    map_height, map_width = stack.maps.shape[1:3]
    scale = np.ones((len(stack), 1, 2), dtype=np.float64)
    for k, image_id in enumerate(stack.image_id):
        if image_id not in sizes:
            raise DataError(
                f"{where}: image {image_id!r} is not in the dataset table; fix: use the "
                "dataset.csv the attributions were computed from."
            )
        width, height = sizes[image_id]
        scale[k, 0] = (map_width / width, map_height / height)
    grid_landmarks = np.where(ok[:, None, None], points * scale, np.nan)
    maps = warp_to_canonical(stack.maps, grid_landmarks, order, template, triangulation)
    attrs = {k: v for k, v in stack.attrs.items() if k not in ("format", "count", "complete")}
    attrs.update(
        order=order,
        triangulation=triangulation,
        normalized=True,
        landmark_failures=int((~ok).sum()),
        canvas_width=template.canvas_width,
        canvas_height=template.canvas_height,
        template=template.key(),
    )
    return Stack(
        maps=maps,
        image_id=list(stack.image_id),
        true_label=stack.true_label,
        predicted=stack.predicted,
        probabilities=stack.probabilities,
        attrs=attrs,
        extras={"valid": ok.astype(bool), "landmarks": grid_landmarks.astype(np.float32)},
    )


def dataset_sizes(path: str | Path) -> dict[str, tuple[int, int]]:
    """image_id -> (width, height) from dataset.csv."""
    from ferxai.core.io import read_csv

    try:
        sizes = {row["image_id"]: (int(row["width"]), int(row["height"])) for row in read_csv(path)}
    except FileNotFoundError as exc:
        raise DataError(f"{path}: dataset table not found; fix: run `ferxai prepare`.") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{path}: needs image_id, width and height columns with integer sizes ({exc!r}); "
            "fix: regenerate it with `ferxai prepare`."
        ) from exc
    bad = [image_id for image_id, (w, h) in sizes.items() if w <= 0 or h <= 0]
    if bad:
        raise DataError(
            f"{path}: images {bad[:5]} have a width or height <= 0; "
            "fix: regenerate it with `ferxai prepare`."
        )
    return sizes


def cli_normalize_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", required=True, type=Path, nargs="+", help="attribution stack(s) (HDF5)"
    )
    parser.add_argument("--landmarks", required=True, type=Path, help="landmarks.h5 (`landmarks`)")
    parser.add_argument("--dataset", required=True, type=Path, help="dataset.csv (image sizes)")
    parser.add_argument(
        "--order", choices=ORDERS, default="nearest", help="sampling (paper: nearest)"
    )
    parser.add_argument(
        "--triangulation",
        choices=TRIANGULATIONS,
        default=DEFAULT_TRIANGULATION,
        help="mesh triangles: per_face (the reference: each face's own Delaunay) or canonical "
        f"(default {DEFAULT_TRIANGULATION})",
    )
    parser.add_argument(
        "--out", required=True, type=Path, nargs="+", help="normalized stack(s), one per --stack"
    )
    parser.add_argument(
        "--template", type=Path, default=None, help="template JSON (default: the shipped one)"
    )
    parser.set_defaults(
        provenance_inputs=("stack", "landmarks", "dataset", "template"), provenance_outputs=("out",)
    )


def cli_normalize(args: argparse.Namespace) -> None:
    import cv2

    from ferxai.core.device import job_cpus
    from ferxai.core.errors import FerxaiError
    from ferxai.core.io import read_stack, write_stack
    from ferxai.normalization.landmarks import read_landmarks

    if len(args.stack) != len(args.out):
        raise FerxaiError(f"normalize: {len(args.stack)} --stack but {len(args.out)} --out paths.")
    cv2.setNumThreads(job_cpus())  # the job's CPUs, not the whole node's
    template = load_template(args.template)
    landmarks = read_landmarks(args.landmarks)
    sizes = dataset_sizes(args.dataset)
    for source, out in zip(args.stack, args.out, strict=True):
        stack = read_stack(source)
        result = normalize_stack(
            stack,
            landmarks,
            sizes,
            order=args.order,
            template=template,
            where=str(source),
            triangulation=args.triangulation,
        )
        write_stack(out, result)
        log.info(
            "%s: %d maps normalized (%s, %s triangles), %d without landmarks",
            out,
            len(result),
            args.order,
            args.triangulation,
            result.attrs["landmark_failures"],
        )
