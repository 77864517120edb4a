"""Timing of the comparison stage's hot paths on synthetic data (canonical 275 × 224 canvas).

Run: .venv/bin/python bench/bench_comparison.py [--n 400] [--boot 200]
Prints seconds for: streamed aggregation of N maps, Otsu on a batch of heatmaps (vs OpenCV one by
one), and the vectorized IoU bootstrap (B resamples of N images).

     .venv/bin/python bench/bench_comparison.py --demo [--boot 200] [--images 6 10]
The comparison stage's bootstraps on stacks of the demo's size (12 networks × 6 expressions ×
2 folds, 6–10 explained images per network, expression and fold, 275 × 224): the per-network IoU
CIs that extended-metrics always computed, the paired IoU differences it adds, the clusters'
bootstrap support that cluster adds, and the group test of compare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ferxai.comparison.group_test import default_groups, group_test
from ferxai.comparison.localisation import bootstrap_iou, extended_metric_rows, iou_difference_rows
from ferxai.comparison.similarity import cluster_images
from ferxai.comparison.stability import clade_support
from ferxai.comparison.thresholds import otsu_thresholds
from ferxai.core.constants import EXPRESSIONS, NETWORKS
from ferxai.core.io import Stack, write_stack
from ferxai.heatmaps.pooling import pool_stacks

SHAPE = (275, 224)


def _stack(path: Path, n: int, rng: np.random.Generator, maps=None, prefix="i") -> Path:
    maps = rng.random((n, *SHAPE), dtype=np.float32) if maps is None else maps
    write_stack(
        path,
        Stack(
            maps,
            [f"{prefix}{k}" for k in range(n)],
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


def _demo_maps(rng: np.random.Generator, net: int, n: int) -> np.ndarray:
    """n LIME-like maps of one network: blobs around the network's own spot, plus noise."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    centre = (90 + 12 * (net % 4), 70 + 8 * net)
    maps = []
    for _ in range(n):
        cy, cx = centre[0] + rng.integers(-30, 30), centre[1] + rng.integers(-30, 30)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 25.0**2))
        maps.append(blob + 0.5 * rng.random(SHAPE))
    return np.asarray(maps, np.float32)


def demo(args: argparse.Namespace) -> None:
    """Time the comparison stage's bootstraps on stacks of the demo's size."""
    rng = np.random.default_rng(0)
    low, high = args.images
    mask = np.zeros(SHAPE, bool)
    mask[80:180, 50:170] = True
    masks = dict.fromkeys(EXPRESSIONS, mask)
    with tempfile.TemporaryDirectory() as tmp:
        stacks: dict[str, list[str]] = {}
        start = time.perf_counter()
        for i, net in enumerate(NETWORKS):
            for expr in EXPRESSIONS:
                for fold in (1, 2):
                    n = int(rng.integers(low, high + 1))
                    path = Path(tmp) / f"{net}_{expr}_{fold}.h5"
                    # image ids shared across networks (the same test images), as positives are
                    _stack(path, n, rng, _demo_maps(rng, i, n), f"{expr}{fold}_")
                    stacks.setdefault(f"{net}/{expr}", []).append(str(path))
        n_stacks = sum(len(v) for v in stacks.values())
        print(f"wrote {n_stacks} stacks in {time.perf_counter() - start:.1f} s")
        heatmaps = {
            (net, expr): (pool_stacks(stacks[f"{net}/{expr}"]), net)
            for net in NETWORKS
            for expr in EXPRESSIONS
        }
        groups = default_groups(NETWORKS)
        B = args.boot
        _timed(
            f"extended-metrics per-network IoU CIs (existing), B={B}",
            lambda: extended_metric_rows(heatmaps, masks, stacks, B, 42),
        )
        _timed(
            f"extended-metrics paired IoU differences (new), B={B}",
            lambda: iou_difference_rows(heatmaps, masks, stacks, groups, B, 42),
        )

        def support():
            for expr in EXPRESSIONS:
                images = np.stack([heatmaps[(net, expr)][0].uint8 for net in NETWORKS])
                clustering = cluster_images(images, list(NETWORKS), [False] * len(NETWORKS))
                leaf_stacks = {net: stacks[f"{net}/{expr}"] for net in NETWORKS}
                clade_support(clustering, leaf_stacks, B, 42, f"clusters/{expr}")

        _timed(f"cluster support, 6 dendrograms, B={B} (new)", support)
        maps = {e: {n: heatmaps[(n, e)][0].uint8 for n in NETWORKS} for e in EXPRESSIONS}
        _timed("group test, 495 relabellings × 7 (new)", lambda: group_test(maps, groups))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400, help="maps (split over 5 fold stacks)")
    parser.add_argument("--boot", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--demo", action="store_true", help="the demo-size comparison bootstraps")
    parser.add_argument(
        "--images", type=int, nargs=2, default=(6, 10), help="--demo: images per stack, min max"
    )
    args = parser.parse_args()
    if args.demo:
        demo(args)
        return
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
