"""Benchmark: ferxai's canonical warp vs scikit-image's PiecewiseAffineTransform, on one core.

Both warp the same LIME-like maps (S x S, constant patches) with the same jittered landmarks onto
the 224 x 275 canvas, nearest sampling (the paper's setting). scikit-image is timed as the paper
used it: ``estimate`` the mesh for each map's landmarks, then ``warp``. Rates are given per CPU
second of this single-threaded process (robust to other jobs sharing the machine) and per wall
second.

    .venv/bin/python bench/warp.py [--maps 512] [--skimage-maps 8] [--size 224] [--json out.json]
"""

from __future__ import annotations

import os

# One core: pin every thread pool before numpy/OpenCV load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ferxai.core.template import canonical_landmarks, canonical_points, mesh_points  # noqa: E402
from ferxai.normalization.warp import get_warper, warp_to_canonical  # noqa: E402


def make_inputs(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    block = 16
    cells = -(-size // block)
    patches = rng.random((count, cells, cells)).astype(np.float32)
    maps = np.kron(patches, np.ones((block, block), np.float32))[:, :size, :size]
    base = canonical_landmarks() * np.array([size / 224, size / 275])
    landmarks = base + rng.normal(0.0, 3.0, (count, 68, 2))
    return np.ascontiguousarray(maps), landmarks


def time_ferxai(
    maps: np.ndarray, landmarks: np.ndarray, repeats: int, order: str = "nearest"
) -> tuple[float, float, np.ndarray]:
    """Best of ``repeats``: (maps per wall second, maps per CPU second, output)."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = warp_to_canonical(maps, landmarks, order=order)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return len(maps) / best_wall, len(maps) / best_cpu, out


def time_skimage(maps: np.ndarray, landmarks: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(maps per wall second, maps per CPU second, output)."""
    from skimage.transform import PiecewiseAffineTransform, warp

    canonical = canonical_points()
    size = maps.shape[1]
    out = np.empty((len(maps), 275, 224), np.float32)
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(len(maps)):
        transform = PiecewiseAffineTransform()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # estimate() renamed in 0.26
            transform.estimate(canonical, mesh_points(landmarks[k], size, size))
        out[k] = warp(maps[k], transform, output_shape=(275, 224), order=0, preserve_range=True)
    cpu = time.process_time() - cpu
    return len(maps) / (time.perf_counter() - wall), len(maps) / cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=512, help="maps warped by ferxai")
    parser.add_argument("--skimage-maps", type=int, default=8, help="maps warped by scikit-image")
    parser.add_argument("--size", type=int, default=224, help="map side (network input size)")
    parser.add_argument("--repeats", type=int, default=3, help="ferxai timing: best of N runs")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    start = time.perf_counter()
    get_warper()  # one-time per template: per-pixel triangles and barycentric weights
    setup_s = time.perf_counter() - start

    maps, landmarks = make_inputs(args.maps, args.size)
    ours_wall, ours_cpu, ours = time_ferxai(maps, landmarks, args.repeats)
    bilinear_wall, bilinear_cpu, _ = time_ferxai(maps, landmarks, args.repeats, "bilinear")
    n_sk = min(args.skimage_maps, args.maps)
    sk_wall, sk_cpu, theirs = time_skimage(maps[:n_sk], landmarks[:n_sk])
    agreement = float((ours[:n_sk] == theirs)[:, 1:-1, 1:-1].mean())

    result = {
        "map_size": args.size,
        "canvas": [224, 275],
        "ferxai_maps_per_cpu_s": round(ours_cpu, 1),
        "ferxai_maps_per_wall_s": round(ours_wall, 1),
        "ferxai_bilinear_maps_per_cpu_s": round(bilinear_cpu, 1),
        "skimage_maps_per_cpu_s": round(sk_cpu, 3),
        "skimage_maps_per_wall_s": round(sk_wall, 3),
        "speedup_cpu": round(ours_cpu / sk_cpu, 1),
        "speedup_wall": round(ours_wall / sk_wall, 1),
        "nearest_agreement_interior": round(agreement, 5),
        "warper_setup_s": round(setup_s, 3),
        "ferxai_maps": args.maps,
        "skimage_maps": n_sk,
        "threads": 1,
        "cpu": platform.processor() or platform.machine(),
        "opencv": cv2.__version__,
    }
    for key, value in result.items():
        print(f"{key:32s} {value}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
