"""``ferxai quality``: faithfulness and randomisation of one (method, network, fold)'s explanations.

A job loads the trained network once (as ``ferxai attribute`` does) and, for the first
``images_per_class`` positives of every expression, reads the maps the attribution stage wrote
and measures, with the network:

- deletion and insertion curves (Petsiuk et al. 2018) and Quantus's PixelFlipping and
  RegionPerturbation curves (:mod:`ferxai.quality.faithfulness`);
- the cascading model-parameter randomisation (MPRT) and RandomLogit similarities
  (:mod:`ferxai.quality.randomisation`), with the maps recomputed by ferxai's explainer of the
  study's method, same settings and per-image seeds as the attribution stage.

Outputs: every curve in one HDF5 (``--curves``), one row per image with the curves' areas and the
similarities in a CSV (``--scores``). Resumable per expression: each finished expression is kept in
``.{curves}.{Expression}.resume.h5`` beside the output until the job ends.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from ferxai import __version__
from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError, DataError, FerxaiError
from ferxai.core.io import read_h5, read_stack, write_csv, write_h5

log = logging.getLogger("ferxai.quality")

SCORE_COLUMNS = (
    "method",
    "network",
    "fold",
    "expression",
    "image_id",
    "deletion_auc",
    "insertion_auc",
    "pixel_flipping_auc",
    "region_perturbation_auc",
    "road_auc",
    "mprt_spearman",
    "mprt_ssim",
    "random_logit_ssim",
)
CURVES = ("deletion", "insertion", "pixel_flipping", "region_perturbation")
# The job's settings and their defaults, the schema's (tests/test_quality_config.py checks it).
DEFAULTS = {
    "images_per_class": 2,
    "steps": 16,
    "baseline": "black",
    "patch_size": 4,
    "order": "morf",
    "regions": 32,
    "batch_size": None,
    "mprt": {"enabled": True, "layers": 3, "similarities": ["spearman", "ssim"]},
    "random_logit": False,
    "road": {"enabled": False, "percentages": [10, 20, 30, 40, 50, 60, 70, 80, 90], "noise": 0.01},
}


def cli_quality_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="network name, e.g. ResNet50")
    parser.add_argument("--weights", required=True, help="trained state dict (model.pt)")
    parser.add_argument("--arch", default=None, help="architecture of weights trained elsewhere")
    parser.add_argument("--class-order", nargs="+", default=None,
                        help="classes of that model's head in output order")
    parser.add_argument("--input-size", type=int, required=True, help="network input size (px)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset.csv from prepare")
    parser.add_argument(
        "--stacks",
        type=Path,
        nargs="+",
        required=True,
        help="attribution stacks, one per expression",
    )
    parser.add_argument(
        "--expression", nargs="+", required=True, choices=EXPRESSIONS, help="one per --stacks"
    )
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--method", default="lime", help="attribution method of the stacks")
    parser.add_argument("--settings", default="{}", help="JSON of the method's settings")
    parser.add_argument("--quality", default="{}", help="JSON of the quality settings")
    parser.add_argument("--seed", type=int, default=42, help="the attribution stage's base seed")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: job's)")
    parser.add_argument("--curves", type=Path, required=True, help="output HDF5 of the curves")
    parser.add_argument("--scores", type=Path, required=True, help="output CSV, one row per image")
    parser.set_defaults(
        provenance_inputs=("weights", "dataset", "stacks"),
        provenance_outputs=("curves", "scores"),
    )


def quality_settings(text: str | dict) -> dict:
    """The quality settings of ``--quality`` over :data:`DEFAULTS`, checked."""
    try:
        given = json.loads(text) if isinstance(text, str) else dict(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--quality: not valid JSON ({exc}); give a JSON object.") from exc
    # the other keys of the config's quality section are the workflow's and the trust table's
    others = {"enabled", "methods", "folds", "networks", "top_k", "bootstrap"}
    unknown = sorted(set(given) - set(DEFAULTS) - others)
    if unknown:
        raise ConfigError(f"--quality: unknown key(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(DEFAULTS)}.")
    settings = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    for group in ("mprt", "road"):
        settings[group] = {**DEFAULTS[group], **given.get(group, {})}
    if settings["steps"] < 2:
        raise ConfigError(f"quality.steps = {settings['steps']}: needs at least 2 steps.")
    bad = [s for s in settings["mprt"]["similarities"] if s not in ("spearman", "ssim")]
    if bad:
        raise ConfigError(f"quality.mprt.similarities: unknown {bad}; use spearman and/or ssim.")
    return settings


def cli_quality(args: argparse.Namespace) -> None:
    if len(args.stacks) != len(args.expression):
        raise ConfigError(
            f"quality: {len(args.stacks)} --stacks for {len(args.expression)} --expression; give "
            "one stack per expression."
        )
    from ferxai.attribution.attribute import parse_settings

    settings = quality_settings(args.quality)
    method_settings = parse_settings(args.settings)
    if not 1 <= settings["patch_size"] <= args.input_size:
        raise ConfigError(
            f"quality.patch_size = {settings['patch_size']} is larger than {args.model}'s input "
            f"({args.input_size} px); lower it."
        )
    results = run_quality(args, settings, method_settings)
    write_outputs(args, settings, results)
    for expression in args.expression:
        resume_path(args.curves, expression).unlink(missing_ok=True)


def resume_path(curves: Path, expression: str) -> Path:
    return curves.with_name(f".{curves.stem}.{expression}.resume{curves.suffix}")


def _identity(args, settings: dict, method_settings: dict, expression: str, ids) -> str:
    key = {"args": [args.model, args.weights, args.input_size, args.fold, args.method, args.seed,
                    args.arch, args.class_order, expression, list(ids)],
           "settings": settings, "method": method_settings, "version": __version__}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def run_quality(args, settings: dict, method_settings: dict) -> list[dict]:
    """Per expression: {"expression", "image_id", curves..., "mprt_*", "random_logit_*"}."""
    from ferxai.attribution.attribute import AttributeJob, image_paths, load_model, sha256_file
    from ferxai.core.device import configure_threads, select_device

    configure_threads(args.threads)
    device = select_device(args.device)
    weights = None if args.weights.lower() == "none" else args.weights
    job = AttributeJob(model=args.model, weights=weights, input_size=args.input_size,
                       dataset=args.dataset, positives=Path(), expression=EXPRESSIONS[0],
                       fold=args.fold, method=args.method, settings=method_settings,
                       seed=args.seed, out=Path(), device=args.device, arch=args.arch,
                       class_order=tuple(args.class_order) if args.class_order else None)
    checkpoint = sha256_file(weights) if weights else "none"
    model = None
    results = []
    for expression, stack_path in zip(args.expression, args.stacks, strict=True):
        stack = read_stack(stack_path)
        keep = min(len(stack), settings["images_per_class"])
        ids = stack.image_id[:keep]
        identity = _identity(args, settings, method_settings, expression, [checkpoint, *ids])
        resumed = _load_resume(resume_path(args.curves, expression), identity)
        if resumed is not None:
            log.info("quality: %s %s: resumed from %s", args.model, expression,
                     resume_path(args.curves, expression))
            results.append(resumed)
            continue
        if model is None:
            model = load_model(job, device)
        maps = np.asarray(stack.maps[:keep], dtype=np.float64)
        if keep and maps.shape[1:] != (args.input_size, args.input_size):
            raise DataError(
                f"{stack_path}: maps are {maps.shape[1:]}, not {args.model}'s input "
                f"{args.input_size} px: give the attribution stacks, not the normalized ones."
            )
        from ferxai.data.images import load_batch

        images = load_batch(image_paths(args.dataset, ids, stack_path), args.input_size)
        started = time.perf_counter()
        segments = stack.extras.get("segments") if args.method == "lime" else None
        segments = None if segments is None else np.asarray(segments[:keep], dtype=np.int64)
        result = measure(model, device, images, maps, expression, settings,
                         args.method, method_settings, args.seed, segments)
        result |= {"expression": expression, "image_id": np.array(ids, dtype=object)}
        log.info("quality %s %s fold %d %s: %d images, %.2f s/image", args.method, args.model,
                 args.fold, expression, keep, (time.perf_counter() - started) / max(keep, 1))
        _save_resume(resume_path(args.curves, expression), identity, result)
        results.append(result)
    return results


def measure(model, device, images, maps, expression, settings, method, method_settings, seed,
            segments=None):
    """Every curve and similarity of one expression's images (dict of arrays, N rows each)."""
    from ferxai.quality.faithfulness import (
        deletion_insertion,
        features_in_step_for,
        pixel_flipping,
        probability_forward,
        region_perturbation,
    )
    from ferxai.quality.randomisation import cascading_randomisation, ferxai_explain, random_logit

    n = len(images)
    target = np.full(n, EXPRESSIONS.index(expression), dtype=np.int64)
    steps, baseline = settings["steps"], settings["baseline"]
    batch = settings["batch_size"] or (512 if device.type == "cuda" else 64)
    out: dict[str, object] = {}
    if n == 0:
        return out
    forward = probability_forward(model, batch)
    out["deletion"], out["insertion"] = deletion_insertion(
        forward, images, maps, target, steps, baseline, batch
    )
    c, h, w = images.shape[1:]
    features = features_in_step_for(h, w, c, steps)
    out["pixel_flipping"] = pixel_flipping(forward, images, maps, target, features, baseline, batch)
    out["region_perturbation"] = region_perturbation(
        forward, images, maps, target, settings["patch_size"], settings["order"],
        settings["regions"], baseline, batch,
    )
    out["features_in_step"] = np.full(n, features)
    if settings["road"]["enabled"]:
        from ferxai.quality.faithfulness import road

        road_settings = settings["road"]
        out["road"] = road(forward, images, maps, target, road_settings["percentages"],
                           road_settings["noise"], seed, batch)
    # Per-image seeds as the attribution stage (image i of a stack: seed + i), so the maps of the
    # trained network are the stack's and only the randomised layers change them.
    explain = ferxai_explain(method, method_settings, [seed + i for i in range(n)], segments)
    mprt = settings["mprt"]
    if mprt["enabled"]:
        cascade = cascading_randomisation(model, explain, images, target, mprt["layers"],
                                          mprt["similarities"], seed, original=maps)
        out["mprt_layers"] = np.array(cascade["layers"], dtype=object)
        for name in mprt["similarities"]:
            out[f"mprt_{name}"] = cascade[name]
    if settings["random_logit"]:
        logit = random_logit(model, explain, images, target, len(EXPRESSIONS), ("ssim",), seed,
                             original=maps)
        out["random_logit_ssim"] = logit["ssim"]
        out["random_logit_class"] = logit["off_class"]
    return out


def _road_area(curves, settings: dict, n: int) -> np.ndarray:
    """Trapezoid area of the ROAD curves over the fraction of pixels imputed (NaN without)."""
    if curves is None:
        return np.full(n, np.nan)
    x = np.asarray(settings["road"]["percentages"], dtype=np.float64) / 100.0
    return np.trapezoid(np.asarray(curves, dtype=np.float64), x, axis=1)


def _save_resume(path: Path, identity: str, result: dict) -> None:
    arrays = {k: _h5_array(v) for k, v in result.items() if k != "expression"}
    write_h5(path, arrays, {"resume_identity": identity, "expression": result["expression"]})


def _load_resume(path: Path, identity: str) -> dict | None:
    if not path.exists():
        return None
    try:
        arrays, attrs = read_h5(path, what="quality resume file")
    except FerxaiError as exc:
        log.warning("quality: ignoring %s (%s)", path, exc)
        path.unlink(missing_ok=True)
        return None
    if attrs.get("resume_identity") != identity:
        path.unlink(missing_ok=True)
        return None
    result: dict[str, object] = {"expression": attrs["expression"]}
    for key, value in arrays.items():
        result[key] = (
            np.array([_text(v) for v in value], dtype=object) if value.dtype.kind in "SO" else value
        )
    return result


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_array(value) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype == object:
        return np.array([str(v).encode() for v in value], dtype="S")
    return value


def write_outputs(args, settings: dict, results: list[dict]) -> None:
    """The curves of every expression in one HDF5 (groups per dataset name prefixed by the
    expression) and one CSV row per image."""
    from ferxai.quality.faithfulness import curve_area

    datasets: dict[str, np.ndarray] = {}
    rows = []
    layers: list[str] = []
    for result in results:
        expression = result["expression"]
        for key, value in result.items():
            if key != "expression":
                datasets[f"{expression}/{key}"] = _h5_array(value)
        if "mprt_layers" in result:
            layers = [str(v) for v in result["mprt_layers"]]
        ids = list(result.get("image_id", []))
        if not ids:
            continue
        steps = result["deletion"].shape[1] - 1
        areas = {
            "deletion_auc": curve_area(result["deletion"], 1.0 / steps),
            "insertion_auc": curve_area(result["insertion"], 1.0 / steps),
            "pixel_flipping_auc": curve_area(result["pixel_flipping"]),  # Quantus: unit spacing
            "region_perturbation_auc": curve_area(result["region_perturbation"]),
            "road_auc": _road_area(result.get("road"), settings, len(ids)),
        }
        for name in ("mprt_spearman", "mprt_ssim"):  # after the last randomised layer
            areas[name] = result[name][:, -1] if name in result else np.full(len(ids), np.nan)
        areas["random_logit_ssim"] = result.get("random_logit_ssim", np.full(len(ids), np.nan))
        for i, image_id in enumerate(ids):
            rows.append(
                {"method": args.method, "network": args.model, "fold": args.fold,
                 "expression": expression, "image_id": _text(image_id)}
                | {k: float(v[i]) for k, v in areas.items()}
            )
    attrs = {"method": args.method, "network": args.model, "fold": args.fold,
             "settings": json.dumps(settings, sort_keys=True), "mprt_layers": json.dumps(layers),
             "ferxai_version": __version__}
    write_h5(args.curves, datasets, attrs)
    write_csv(args.scores, rows, SCORE_COLUMNS)
