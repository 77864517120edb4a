"""``ferxai make-template``: regenerate the canonical template (:mod:`ferxai.core.template`) from
what dlib's 68-point predictor returns on an all-black canvas, as the paper defines it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ferxai.core.constants import CANVAS_HEIGHT, CANVAS_WIDTH, FACE_BOX
from ferxai.core.io import write_json
from ferxai.core.template import (
    CanonicalTemplate,
    build_template,
    check_canvas,
    packaged_template_path,
)
from ferxai.normalization.landmarks import load_dlib_predictor

log = logging.getLogger(__name__)


def dlib_canonical_landmarks(
    canvas_width: int = CANVAS_WIDTH,
    canvas_height: int = CANVAS_HEIGHT,
    face_box: tuple[int, int, int, int] = FACE_BOX,
) -> np.ndarray:
    """What dlib's 68-point predictor returns on an all-black canvas for ``face_box``: (68, 2)."""
    import dlib

    check_canvas(canvas_width, canvas_height, face_box)
    predictor = load_dlib_predictor()
    black = np.zeros((canvas_height, canvas_width, 3), dtype=np.uint8)
    shape = predictor(black, dlib.rectangle(*(int(v) for v in face_box)))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)



def make_template(
    out: str | Path,
    canvas_width: int = CANVAS_WIDTH,
    canvas_height: int = CANVAS_HEIGHT,
    face_box: tuple[int, int, int, int] = FACE_BOX,
) -> CanonicalTemplate:
    """Regenerate a template JSON from dlib's predictor (the shipped one comes from this)."""
    landmarks = dlib_canonical_landmarks(canvas_width, canvas_height, face_box)
    template = build_template(landmarks, canvas_width, canvas_height, face_box)
    write_json(out, template.to_json())
    return template



def cli_make_template_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON to write (default: the shipped template)"
    )
    parser.add_argument(
        "--canvas-width", type=int, default=CANVAS_WIDTH, help="canvas width (paper: 224)"
    )
    parser.add_argument(
        "--canvas-height", type=int, default=CANVAS_HEIGHT, help="canvas height (paper: 275)"
    )
    parser.add_argument(
        "--face-box",
        type=int,
        nargs=4,
        default=list(FACE_BOX),
        metavar=("X0", "Y0", "X1", "Y1"),
        help="dlib face box on the canvas; rows below Y1 are the margin (paper: 0 0 224 250)",
    )
    parser.set_defaults(provenance_inputs=(), provenance_outputs=("out",))


def cli_make_template(args: argparse.Namespace) -> None:
    out = args.out or packaged_template_path()
    template = make_template(out, args.canvas_width, args.canvas_height, tuple(args.face_box))
    log.info(
        "%s: %dx%d canvas, face box %s, %d triangles",
        out,
        template.canvas_width,
        template.canvas_height,
        template.face_box,
        len(template.triangles),
    )
