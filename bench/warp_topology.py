"""How often does a face's own Delaunay mesh differ from the canonical one, and what does it change?

The reference implementation triangulates each source face's own 89 mesh points
(``Delaunay(points)`` in its ``transform_mask``) and applies those triangles to the canonical
points; ``triangulation="canonical"`` triangulates the canonical points once. This script measures,
on real landmark sets:

- dlib's 68 points on scikit-image's astronaut (a square of 1.3 x the box dlib's detector finds,
  resized to 224 px, then fitted with the whole image as the box, as the pipeline does),
  jittered with Gaussian noise of sigma 1, 2 and 3 px;
- the embedded synthetic faces (``ferxai.data.synth``, 20 subjects x 6 expressions at 128 px):
  their given landmarks, dlib's landmarks on them, and dlib's jittered by 2 px;

per set: the share of faces whose own Delaunay triangles differ from the canonical ones, the
triangles that differ, the faces with triangles folded over on the canvas (the reference's mesh
then overlaps itself and leaves holes, canvas pixels in no triangle: 0), the canvas pixels whose
source point moves by >= 0.5 px between the two topologies (holes left out), the canvas pixels that differ between the two nearest warps of white-noise maps; and
the effect on global heatmaps: LIME-like maps (each face's Ekman mask of its expression carried
into the face's own grid by a thin-plate spline, plus 16-px blocks of noise) are warped with both topologies and averaged
per expression; the heatmaps are stretched, Otsu-thresholded and scored (IoU) against the masks.

    .venv/bin/python bench/warp_topology.py [--draws 240] [--subjects 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.template import canonical_points, mesh_points
from ferxai.normalization.warp import _orientations, get_warper, warp_to_canonical

H, W = 275, 224


def astronaut_landmarks(size: int = 224, crop: float = 1.3) -> np.ndarray:
    """dlib's 68 points on the astronaut's face: a square ``crop`` x dlib's detector box around
    it (1.3: every point inside the crop, as ferxai's landmarks stage requires), resized."""
    import dlib
    from skimage import data

    from ferxai.normalization.landmarks import DlibLandmarks

    image = data.astronaut()
    box = dlib.get_frontal_face_detector()(image, 1)[0]
    side = int(max(box.width(), box.height()) * crop)
    cx, cy = (box.left() + box.right()) // 2, (box.top() + box.bottom()) // 2
    x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
    crop = np.ascontiguousarray(image[y0 : y0 + side, x0 : x0 + side])
    face = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return DlibLandmarks()(face)


def synthetic_faces(subjects: int, size: int, seed: int = 0):
    """(images (N, size, size, 3) uint8, given landmarks (N, 68, 2), expressions (N,))."""
    from ferxai.data import synth

    images, landmarks, expressions = [], [], []
    for s in range(subjects):
        subject = synth.make_subject(f"S{s + 1:03d}", np.random.default_rng([seed, s]))
        for e, expression in enumerate(EXPRESSIONS):
            rng = np.random.default_rng([seed, s, e + 1, 0])
            intensity = synth.au_intensities(expression, rng, 0.5)
            image, points = synth.render_face(
                subject, intensity, synth.Pose.random(rng), size, rng, 0.03, 1.0
            )
            images.append(image)
            landmarks.append(points)
            expressions.append(expression)
    return np.stack(images), np.stack(landmarks).astype(np.float64), np.array(expressions)


def dlib_landmarks(images: np.ndarray) -> np.ndarray:
    from ferxai.normalization.landmarks import DlibLandmarks

    source = DlibLandmarks()
    return np.stack([source(image) for image in images])


def ekman_in_source(masks: dict, landmarks: np.ndarray, expressions, size: int) -> np.ndarray:
    """Each face's Ekman mask of its expression, carried from the canvas into its own grid by a
    thin-plate spline through the 89 mesh points: smooth, and neutral between the two meshes."""
    from scipy.interpolate import RBFInterpolator

    ys, xs = np.mgrid[0:size, 0:size]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    canvas = canonical_points()
    out = np.empty((len(landmarks), size, size), np.float32)
    for k, (points, expression) in enumerate(zip(landmarks, expressions, strict=True)):
        spline = RBFInterpolator(
            mesh_points(points, size, size), canvas, kernel="thin_plate_spline", smoothing=1e-6
        )
        canvas_xy = spline(grid).reshape(size, size, 2).astype(np.float32)
        mask = masks[expression].astype(np.float32)
        out[k] = cv2.remap(mask, canvas_xy, None, cv2.INTER_LINEAR, borderValue=0)
    return out


def heatmap_uint8(maps: np.ndarray) -> np.ndarray:
    mean = maps.astype(np.float64).mean(axis=0)
    low, high = mean.min(), mean.max()
    stretched = (mean - low) / (high - low) if high > low and high > 0 else mean
    return np.clip(np.floor(stretched * 255), 0, 255).astype(np.uint8)


def otsu_mask(heatmap: np.ndarray) -> np.ndarray:
    threshold, _ = cv2.threshold(heatmap, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return heatmap > threshold


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def report(result: dict) -> None:
    print(result["set"])
    for key, value in result.items():
        if key not in ("set", "per_expression"):
            print(f"  {key:34s} {value}")
    print(flush=True)


def measure(name: str, landmarks: np.ndarray, expressions, size: int, masks: dict, rng) -> dict:
    warper = get_warper()
    points = mesh_points(landmarks, size, size)
    canonical_set = {tuple(t) for t in np.sort(warper.template.triangles, axis=1).tolist()}
    differing, folded = [], []
    start = time.perf_counter()
    canvas = canonical_points()
    for k in range(len(points)):
        triangles = warper.face_triangles(points[k])
        own = {tuple(t) for t in np.sort(triangles, axis=1).tolist()}
        differing.append(len(own - canonical_set))
        on_canvas = _orientations(canvas[None], triangles)[0]
        in_face = _orientations(points[k][None], triangles)[0]
        folded.append(int((np.sign(on_canvas) != np.sign(in_face)).sum()))
    per_face = warper.source_coordinates(points, "per_face")
    canonical = warper.source_coordinates(points, "canonical")
    holes = (per_face[..., 0] < -1000).mean(axis=(1, 2))  # canvas pixels in no own triangle
    inside = per_face[..., 0] > -1000
    shift = np.where(inside, np.linalg.norm(per_face - canonical, axis=-1), 0.0)
    moved = (shift >= 0.5).mean(axis=(1, 2))
    noise = rng.random((len(points), size, size)).astype(np.float32)
    noise_equal = (
        warp_to_canonical(noise, landmarks, triangulation="per_face")
        == warp_to_canonical(noise, landmarks, triangulation="canonical")
    ).mean(axis=(1, 2))

    cells = -(-size // 16)
    blocks = np.kron(rng.random((len(points), cells, cells)), np.ones((16, 16)))[:, :size, :size]
    maps = 0.5 * ekman_in_source(masks, landmarks, expressions, size) + 0.5 * blocks
    warped = {
        tri: warp_to_canonical(maps, landmarks, triangulation=tri)
        for tri in ("per_face", "canonical")
    }
    per_expression = {}
    for expression in EXPRESSIONS:
        chosen = np.asarray(expressions) == expression
        if not chosen.any():
            continue
        heat = {tri: heatmap_uint8(warped[tri][chosen]) for tri in warped}
        binary = {tri: otsu_mask(h) for tri, h in heat.items()}
        per_expression[expression] = {
            "faces": int(chosen.sum()),
            "iou_per_face": iou(binary["per_face"], masks[expression]),
            "iou_canonical": iou(binary["canonical"], masks[expression]),
            "iou_between": iou(binary["per_face"], binary["canonical"]),
            "max_abs_uint8": int(
                np.abs(heat["per_face"].astype(int) - heat["canonical"].astype(int)).max()
            ),
        }
    delta = [abs(v["iou_per_face"] - v["iou_canonical"]) for v in per_expression.values()]
    differing = np.array(differing)
    result = {
        "set": name,
        "faces": len(points),
        "share_topology_differs": round(float((differing > 0).mean()), 4),
        "triangles_differing_mean": round(float(differing.mean()), 2),
        "triangles_differing_max": int(differing.max()),
        "share_faces_with_folds": round(float((np.array(folded) > 0).mean()), 4),
        "folded_triangles_mean": round(float(np.mean(folded)), 2),
        "share_canvas_in_holes_mean": round(float(holes.mean()), 5),
        "share_pixels_moved_0.5px_mean": round(float(moved.mean()), 4),
        "max_shift_px": round(float(shift.max()), 2),
        "share_noise_pixels_differ_mean": round(float(1 - noise_equal.mean()), 4),
        "heatmap_iou_per_face_mean": round(
            float(np.mean([v["iou_per_face"] for v in per_expression.values()])), 4
        ),
        "heatmap_iou_canonical_mean": round(
            float(np.mean([v["iou_canonical"] for v in per_expression.values()])), 4
        ),
        "heatmap_iou_abs_delta_max": round(float(max(delta)), 4),
        "otsu_masks_iou_between_min": round(
            float(min(v["iou_between"] for v in per_expression.values())), 4
        ),
        "heatmap_uint8_abs_diff_max": max(v["max_abs_uint8"] for v in per_expression.values()),
        "seconds": round(time.perf_counter() - start, 1),
        "per_expression": per_expression,
    }
    report(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=240, help="jittered astronauts per sigma")
    parser.add_argument("--subjects", type=int, default=20, help="synthetic subjects (x 6)")
    parser.add_argument("--synth-size", type=int, default=128, help="synthetic image side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop", type=float, default=1.3, help="astronaut crop / detector box")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    from ferxai.comparison.groundtruth import ekman_masks

    masks = {e: np.asarray(m, bool) for e, m in ekman_masks().items()}
    rng = np.random.default_rng(args.seed)
    expressions = np.resize(np.array(EXPRESSIONS), args.draws)
    results = []
    astronaut = astronaut_landmarks(crop=args.crop)
    for sigma in (1.0, 2.0, 3.0):
        jittered = astronaut + rng.normal(0.0, sigma, (args.draws, 68, 2))
        results.append(
            measure(f"astronaut, dlib, jitter {sigma:g} px", jittered, expressions, 224, masks, rng)
        )
    images, given, labels = synthetic_faces(args.subjects, args.synth_size, args.seed)
    found = dlib_landmarks(images)
    size = args.synth_size
    results.append(measure("synthetic, given landmarks", given, labels, size, masks, rng))
    results.append(measure("synthetic, dlib", found, labels, size, masks, rng))
    jittered = found + rng.normal(0.0, 2.0, found.shape)
    results.append(measure("synthetic, dlib, jitter 2 px", jittered, labels, size, masks, rng))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
