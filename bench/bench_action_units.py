"""Timing of the action-unit comparisons (issue 24) on stacks of the demo's size.

Run: .venv/bin/python bench/bench_action_units.py [--boot 200] [--images 6 10]
12 networks × 6 expressions × 2 folds, 6–10 explained images per network, expression and fold
(275 × 224, LIME-like blobs), each face coded with its expression's prototype AUs plus random
trace AUs as `ferxai synth` writes them. Prints seconds for the per-AU coverage of the 72
by-network and 144 by-fold heatmaps (19 AU regions, localisation scores, bootstrap CIs) and for
the per-face comparison (every image vs its own AUs and its prototype, paired bootstrap).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ferxai.comparison.au_atlas import atlas_masks, prototype_aus
from ferxai.comparison.au_coverage import coverage_rows, fold_of
from ferxai.comparison.per_face import paired_summary, per_face_rows
from ferxai.comparison.thresholds import ThresholdSpec
from ferxai.core.constants import EXPRESSIONS, NETWORKS
from ferxai.core.io import Stack, write_stack
from ferxai.heatmaps.pooling import pool_stacks

SHAPE = (275, 224)


def _maps(rng: np.random.Generator, net: int, n: int) -> np.ndarray:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    centre = (90 + 12 * (net % 4), 70 + 8 * net)
    maps = []
    for _ in range(n):
        cy, cx = centre[0] + rng.integers(-30, 30), centre[1] + rng.integers(-30, 30)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 25.0**2))
        maps.append(blob + 0.5 * rng.random(SHAPE))
    return np.asarray(maps, np.float32)


def _timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - start:.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boot", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--images", type=int, nargs=2, default=(6, 10), help="per stack, min max")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    atlas, prototypes = atlas_masks(), prototype_aus()
    distractors = [au for au in atlas if au not in (6, 12)]
    with tempfile.TemporaryDirectory() as tmp:
        stacks: dict[str, list[str]] = {}
        codes: dict[str, str] = {}
        for i, net in enumerate(NETWORKS):
            for expr in EXPRESSIONS:
                for fold in (1, 2):
                    n = int(rng.integers(args.images[0], args.images[1] + 1))
                    ids = [f"{expr}{fold}_{k}" for k in range(n)]
                    for image_id in ids:
                        extra = rng.choice(distractors, size=2, replace=False)
                        aus = sorted({*prototypes[expr], *extra.tolist()})
                        codes[image_id] = "+".join(map(str, aus))
                    path = Path(tmp) / f"{net}/fold{fold}/{expr}.h5"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    maps = _maps(rng, i, n)
                    write_stack(path, Stack(maps, ids, np.zeros(n), np.zeros(n),
                                            np.ones((n, 6)) / 6))
                    stacks.setdefault(f"{net}/{expr}", []).append(str(path))
        heatmaps = {}
        for key, paths in stacks.items():
            net, expr = key.split("/")
            heatmaps[(net, "all", expr)] = (pool_stacks(paths), key)
            for path in paths:
                heatmaps[(net, fold_of(path), expr)] = (pool_stacks([path]), path)
        rows = _timed(
            f"au-coverage: {len(heatmaps)} heatmaps x {len(atlas)} AUs, B={args.boot}",
            lambda: coverage_rows(heatmaps, atlas, prototypes, stacks, args.boot, 42),
        )
        print(f"  {len(rows)} rows")
        faces, _ = _timed(
            "per-face: every image vs own AUs and prototype (Otsu, 7 metrics)",
            lambda: per_face_rows(stacks, codes, atlas, prototypes, ThresholdSpec("otsu")),
        )
        _timed(
            f"per-face paired bootstrap, B={args.boot}", lambda: paired_summary(faces, args.boot)
        )
        print(f"  {len(faces)} images")


if __name__ == "__main__":
    main()
