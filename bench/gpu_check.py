"""The GPU check: train one short epoch and explain a few images with LIME for each of the twelve
networks, then project the GPU-hours of the paper-scale study. Run it through ``bench/gpu_check.sh``
(which caps it at 8 minutes):

    bench/gpu_check.sh --out results/gpu_check.json              # on a GPU node
    bench/gpu_check.sh --device cpu --tiny --out /tmp/gpu.json   # CI: tiny sizes, ~30 s

Per network, at its native input size (``--tiny``: 32 px, 75 / 71 for InceptionV3 / Xception):

* training: ferxai's own step (``ferxai.networks.training.FerClassifier.training_step`` and its optimizer:
  the paper's Adam/RMSprop and learning rate), batch ``--train-batch`` (paper.yaml: 128), bf16
  autocast (Lightning's ``bf16-mixed``) and ``channels_last`` on a GPU, fp32 on a CPU; one epoch of
  ``--train-images`` random uint8 images already on the device (a loader is not what is measured),
  after one warm-up step;
* LIME: ``ferxai.attribution.create_explainer('lime', ...)`` at ``--lime-samples`` (1000, the
  paper's) on ``--lime-images`` synthetic faces, batch memory-probed on a GPU
  (``auto_batch_size``), after one warm-up image; on a CPU the ``cpu_forward: auto`` path.

Weights are random (``pretrained=False``): throughput does not depend on them; nothing is
downloaded. The JSON (``--out``, rewritten after every network so that a killed run still leaves
one) holds per network: input size, precision, memory format, train images/s and batch size, LIME
explanations/s and forward images/s inside LIME, peak GPU memory; and the projection of the
paper-scale study (60 trainings: 12 networks x 5 folds at the paper's epochs over
``--dataset-images`` images; 36,000 explanations: 12 x 5 folds x 6 expressions x 100 images at
1000 samples) in GPU-hours, per stage and in total. ``--budget-s`` stops early (the JSON then says
which networks are missing and projects only the measured ones).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ferxai.attribution import create_explainer
from ferxai.core.constants import EXPRESSIONS
from ferxai.core.device import autocast, configure_threads, resolve_precision, select_device
from ferxai.networks import (
    create_model,
    list_models,
    min_input_size,
    model_info,
    resolve_input_size,
)
from ferxai.networks.training import FerClassifier

SCHEMA = "ferxai.gpu_check/1"
# The paper's study: 12 networks x 5 folds; per fold 6 expressions x 100 explained test images.
FOLDS, POSITIVES_PER_CLASS, PAPER_SAMPLES = 5, 100, 1000
# 100 positives per expression and fold need >= 600 test images per fold, >= 3,000 images in all;
# the default assumes twice that ("a few thousand images", docs/hpc.md). Training cost is linear in it.
DATASET_IMAGES = 6000
TINY = {"train_images": 2, "train_batch": 2, "lime_images": 1, "lime_samples": 8}
FULL = {"train_images": 1024, "train_batch": 128, "lime_images": 4, "lime_samples": PAPER_SAMPLES}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--tiny", action="store_true", help="CI: tiny sizes, few samples/images")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="stop starting networks after this many seconds; the JSON is written")
    parser.add_argument("--networks", nargs="+", default=list_models())
    parser.add_argument("--train-images", type=int, help="images of the short epoch")
    parser.add_argument("--train-batch", type=int, help="training batch size (paper.yaml: 128)")
    parser.add_argument("--lime-images", type=int, help="images explained per network")
    parser.add_argument("--lime-samples", type=int, help="LIME samples per image (paper: 1000)")
    parser.add_argument("--dataset-images", type=int, default=DATASET_IMAGES,
                        help="size of the paper-scale dataset for the projection")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: job's)")
    args = parser.parse_args(argv)
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def faces(n: int, size: int) -> torch.Tensor:
    """``n`` synthetic FACS faces (float32 NCHW in [0, 1]): SLIC needs real structure."""
    from ferxai.data.face_model import make_subject
    from ferxai.data.synth import Pose, au_intensities, render_face

    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        image, _ = render_face(make_subject(f"s{i}", rng), au_intensities(EXPRESSIONS[i % 6], rng),
                               Pose.random(rng), size, rng, expressiveness=2.0)
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    return torch.stack(images)


def input_size(name: str, tiny: bool) -> int:
    return resolve_input_size(name, max(32, min_input_size(name)) if tiny else None)


def bench_train(model, name: str, size: int, args, device, precision: str, time_left: float):
    """One short epoch of ferxai's training step; images/s over the steps after the warm-up."""
    info = model_info(name)
    cuda = device.type == "cuda"
    if cuda:  # as ferxai.networks.training._build_module: channels_last model and inputs on a GPU
        model = model.to(memory_format=torch.channels_last)
    module = FerClassifier(model, info.optimizer, info.lr, seed=0, channels_last=cuda).to(device)
    optimizer = module.configure_optimizers()
    module.train()
    module.on_train_epoch_start()
    batch = args.train_batch
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)
    x, y = x.to(device), (torch.arange(batch) % len(EXPRESSIONS)).to(device)

    def step(i: int) -> None:
        with autocast(device, precision):
            loss = module.training_step((x, y), i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    reset_peak(device)
    start = time.perf_counter()
    step(0)  # warm-up: allocations, cuDNN algorithm search
    sync(device)
    warm_s = time.perf_counter() - start
    steps = max(1, math.ceil(args.train_images / batch))
    start, done = time.perf_counter(), 0
    while done < steps:
        step(done + 1)
        done += 1
        if done >= 2 and time.perf_counter() - start > time_left:
            sync(device)
            if time.perf_counter() - start > time_left:
                break
    sync(device)
    seconds = time.perf_counter() - start
    return {"batch_size": batch, "steps": done, "images": done * batch,
            "epoch_steps": steps, "warmup_s": round(warm_s, 3), "seconds": round(seconds, 3),
            "images_per_s": round(done * batch / seconds, 2),
            "peak_memory_mib": peak_mib(device)}


def bench_lime(model, size: int, args, device, precision: str):
    """LIME on ``--lime-images`` faces (one call, several images share the forward batches)."""
    model.eval()
    settings = {"num_samples": args.lime_samples, "precision": precision}
    if args.tiny:
        settings["n_segments"] = 10
    explainer = create_explainer("lime", model, **settings)
    images = faces(args.lime_images + 1, size).to(device)
    target = torch.arange(args.lime_images + 1) % len(EXPRESSIONS)
    start = time.perf_counter()
    explainer.attribute(images[:1], target[:1])  # warm-up: memory probe, forward path, kernels
    sync(device)
    warm_s = time.perf_counter() - start
    reset_peak(device)
    start = time.perf_counter()
    maps = explainer.attribute(images[1:], target[1:])
    sync(device)
    seconds = time.perf_counter() - start
    assert maps.shape == (args.lime_images, size, size)
    peak = peak_mib(device)  # before _lime_batch: its memory probe resets the peak
    n, samples = args.lime_images, args.lime_samples
    batch = explainer.settings["batch_size"] or _lime_batch(explainer, images, n * samples)
    return {"images": n, "samples": samples, "batch_size": batch, "warmup_s": round(warm_s, 3),
            "seconds": round(seconds, 3), "explanations_per_s": round(n / seconds, 4),
            "forward_images_per_s": round(n * samples / seconds, 1), "peak_memory_mib": peak,
            "cpu_forward": (explainer.forward_record or {}).get("path")}


def _lime_batch(explainer, images, limit: int) -> int:
    from ferxai.attribution.common import auto_batch_size

    return auto_batch_size(explainer.forward, tuple(images.shape[1:]), explainer.device, limit)


def project(rows: list[dict], args) -> dict:
    """GPU-hours of the paper-scale study from the measured throughputs."""
    train_images = args.dataset_images * (FOLDS - 1) / FOLDS  # the training folds of one fold
    explanations = FOLDS * len(EXPRESSIONS) * POSITIVES_PER_CLASS  # per network: 3,000
    per_network, train_h, lime_h = {}, 0.0, 0.0
    for row in rows:
        if "train" not in row or "lime" not in row:
            continue
        epochs = model_info(row["network"]).paper_epochs
        t = FOLDS * epochs * train_images / row["train"]["images_per_s"] / 3600
        # seconds per explanation, scaled linearly to the paper's 1000 samples when fewer were run
        per_explanation = PAPER_SAMPLES / row["lime"]["samples"] / row["lime"]["explanations_per_s"]
        lime = explanations * per_explanation / 3600
        per_network[row["network"]] = {"epochs": epochs, "train_gpu_hours": round(t, 4),
                                       "lime_gpu_hours": round(lime, 4)}
        train_h, lime_h = train_h + t, lime_h + lime
    missing = [r["network"] for r in rows if r["network"] not in per_network]
    return {
        "assumptions": {
            "trainings": f"{len(per_network)} networks x {FOLDS} folds at the paper's epochs",
            "dataset_images": args.dataset_images,
            "why": "100 positives per expression and fold need >= 600 test images per fold "
            "(>= 3,000 in all); assumed twice that unless --dataset-images says otherwise",
            "train_images_per_training": train_images,
            "explanations": explanations * len(per_network),
            "samples_per_explanation": PAPER_SAMPLES,
            "not_included": "job start-up, data loading, validation passes, evaluation, SLIC "
            "beyond what LIME measured, queueing",
        },
        "per_network": per_network,
        "train_gpu_hours": round(train_h, 3),
        "lime_gpu_hours": round(lime_h, 3),
        "total_gpu_hours": round(train_h + lime_h, 3),
        "missing": missing,
        "meaningful": not args.tiny and not missing,
    }


def device_info(device: torch.device, threads: int) -> dict:
    info = {"type": device.type, "torch": torch.__version__, "threads": threads,
            "host": platform.node(), "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        info.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    memory_gib=round(torch.cuda.get_device_properties(device).total_memory
                                     / 2**30, 1))
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
    threads = configure_threads(args.threads)
    device = select_device(args.device)
    precision = resolve_precision("auto", device)
    # a CPU trains contiguous; its LIME path (cpu_forward: auto) is in each row's lime.cpu_forward
    memory_format = "channels_last" if device.type == "cuda" else "contiguous"
    result = {"schema": SCHEMA, "started": started.isoformat(timespec="seconds"),
              "device": device_info(device, threads), "tiny": args.tiny,
              "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"out": str(args.out)},
              "networks": []}
    rows = result["networks"]
    for index, name in enumerate(args.networks):
        elapsed = time.perf_counter() - clock
        size = input_size(name, args.tiny)
        row = {"network": name, "input_size": size, "precision": precision,
               "memory_format": memory_format}
        rows.append(row)
        if elapsed > args.budget_s:
            row["skipped"] = f"budget of {args.budget_s:.0f} s spent"
            continue
        share = (args.budget_s - elapsed) / (len(args.networks) - index)
        try:
            torch.manual_seed(0)
            model = create_model(name, input_size=size).to(device)
            row["train"] = bench_train(model, name, size, args, device, precision, 0.4 * share)
            row["lime"] = bench_lime(model, size, args, device, precision)
        except Exception as exc:  # one network's failure must not lose the others' numbers
            row["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        finally:
            model = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(json.dumps(row), flush=True)
        _write(args.out, result, clock, rows, args)
    _write(args.out, result, clock, rows, args)
    projection = result["projection"]
    print(f"projection ({'tiny: not meaningful' if args.tiny else device.type}): "
          f"train {projection['train_gpu_hours']} + LIME {projection['lime_gpu_hours']} = "
          f"{projection['total_gpu_hours']} GPU-hours; missing: {projection['missing']}")
    return 0 if result["complete"] else 1


def _write(path: Path, result: dict, clock: float, rows: list[dict], args) -> None:
    result["projection"] = project(rows, args) | {"device": result["device"]["type"]}
    result["wall_s"] = round(time.perf_counter() - clock, 1)
    result["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result["complete"] = len(rows) == len(args.networks) and all(
        "train" in r and "lime" in r for r in rows
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
