"""Timing of the comparison stage's hot paths on synthetic data (canonical 275 × 224 canvas).

Run: .venv/bin/python bench/bench_comparison.py [--n 400] [--boot 200]
Prints seconds for: streamed aggregation of N maps, Otsu on a batch of heatmaps (vs OpenCV one by
one), and the vectorized IoU bootstrap (B resamples of N images).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ferxai.aggregate import pool_stacks
from ferxai.compare import bootstrap_iou
from ferxai.io import Stack, write_stack
from ferxai.thresholds import otsu_thresholds

SHAPE = (275, 224)


def _stack(path: Path, n: int, rng: np.random.Generator) -> Path:
    maps = rng.random((n, *SHAPE), dtype=np.float32)
    write_stack(
        path,
        Stack(
            maps,
            [f"i{k}" for k in range(n)],
            np.zeros(n),
            np.zeros(n),
            np.ones((n, 6)) / 6,
            extras={"valid": np.ones(n, bool)},
        ),
    )
    return path


def _timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - start:.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400, help="maps (split over 5 fold stacks)")
    parser.add_argument("--boot", type=int, default=200, help="bootstrap resamples")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [_stack(Path(tmp) / f"f{k}.h5", args.n // 5, rng) for k in range(5)]
        _timed(f"aggregate {args.n} maps (streamed, chunk 64)", lambda: pool_stacks(paths))
        images = (rng.random((72, *SHAPE)) ** 2 * 255).astype(np.uint8)
        _timed("otsu_thresholds, batch of 72", lambda: otsu_thresholds(images))
        _timed(
            "cv2 Otsu, 72 one by one",
            lambda: [
                cv2.threshold(im, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU) for im in images
            ],
        )
        mask = np.zeros(SHAPE, bool)
        mask[80:180, 50:170] = True
        _timed(
            f"bootstrap IoU, B={args.boot}, N={args.n}",
            lambda: bootstrap_iou(paths, mask, args.boot, np.random.default_rng(1)),
        )


if __name__ == "__main__":
    main()
