"""ferxai's LIME vs lime 0.2.0.1 on the same network, image, superpixels and settings.

Prints both wall times, their ratio, the cost of ferxai's bare forward passes at its batch size
(the floor any LIME implementation pays) and the agreement of the segment weights. Example:

    .venv/bin/python bench/lime_vs_lime_package.py --network ResNet50 --size 224 --samples 1000
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # lime draws a tqdm bar per sample

import numpy as np
import torch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="ResNet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--batch-size", type=int, default=None, help="ferxai's (default: auto)")
    parser.add_argument("--lime-batch-size", type=int, default=10, help="lime's default is 10")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    return parser.parse_args()


def test_image(size: int) -> np.ndarray:
    from skimage.data import astronaut
    from skimage.transform import resize

    return resize(astronaut(), (size, size), anti_aliasing=True).astype(np.float32)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_lime_package(model, image, segments, args, device) -> tuple[float, np.ndarray]:
    """lime's explain_instance, its classifier a plain fp32 softmax forward on ``device``."""
    from lime.lime_image import LimeImageExplainer

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = torch.from_numpy(batch).permute(0, 3, 1, 2).to(device, torch.float32)
            return torch.softmax(model(inputs), dim=1).cpu().numpy()

    start = time.perf_counter()
    explanation = LimeImageExplainer(kernel_width=0.25, random_state=args.seed).explain_instance(
        image,
        classifier_fn,
        labels=(args.target,),
        hide_color=0,
        top_labels=None,
        num_features=100000,
        num_samples=args.samples,
        batch_size=args.lime_batch_size,
        segmentation_fn=lambda _image: segments,
        random_seed=args.seed,
    )
    elapsed = time.perf_counter() - start
    weights = np.zeros(segments.max() + 1)
    for feature, weight in explanation.local_exp[args.target]:
        weights[feature] = weight
    return elapsed, weights


def time_ferxai(model, image, segments, args, device) -> tuple[float, np.ndarray, object]:
    from ferxai.attribution import create_explainer

    explainer = create_explainer(
        "lime", model, num_samples=args.samples, seed=args.seed,
        precision=args.precision, batch_size=args.batch_size,
    )  # fmt: skip
    images = torch.from_numpy(image).permute(2, 0, 1)[None].to(device)
    target = torch.tensor([args.target])
    start = time.perf_counter()
    result = explainer.explain(images, target, segments=[segments])
    synchronize(device)
    return time.perf_counter() - start, result.segment_weights[0], explainer


def resolved_batch_size(explainer, size: int) -> int:
    from ferxai.attribution.common import auto_batch_size

    if explainer.settings["batch_size"]:
        return explainer.settings["batch_size"]
    shape = (3, size, size)
    return auto_batch_size(
        explainer.forward, shape, explainer.device, explainer.settings["num_samples"]
    )


@torch.inference_mode()
def time_bare_forward(explainer, size: int, samples: int, batch_size: int) -> float:
    """Only the network: ``samples`` images in batches of ``batch_size``, as ferxai runs them."""
    device = explainer.device
    batch = torch.rand((batch_size, 3, size, size), device=device)
    explainer.forward(batch[:2])  # warm-up outside the timing
    synchronize(device)
    start = time.perf_counter()
    for done in range(0, samples, batch_size):
        explainer.forward(batch[: min(batch_size, samples - done)])
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    from ferxai.attribution.common import slic_segments
    from ferxai.device import configure_threads, select_device
    from ferxai.models import create_model

    threads = configure_threads(args.threads)
    device = select_device(args.device)
    torch.manual_seed(args.seed)
    model = create_model(args.network, input_size=args.size).eval().to(device)
    model = model.to(memory_format=torch.channels_last)
    image = test_image(args.size)
    segments = slic_segments(image, n_segments=30, compactness=20.0)

    ferxai_s, ferxai_w, explainer = time_ferxai(model, image, segments, args, device)
    lime_s, lime_w = time_lime_package(model, image, segments, args, device)
    batch_size = resolved_batch_size(explainer, args.size)
    forward_s = time_bare_forward(explainer, args.size, args.samples, batch_size)
    numbers = {
        "network": args.network,
        "size": args.size,
        "samples": args.samples,
        "superpixels": int(segments.max()) + 1,
        "device": str(device),
        "threads": threads,
        "precision": explainer.precision,
        "ferxai_batch_size": batch_size,
        "lime_batch_size": args.lime_batch_size,
        "lime_package_s": round(lime_s, 3),
        "ferxai_s": round(ferxai_s, 3),
        "speedup": round(lime_s / ferxai_s, 2),
        "bare_forward_s": round(forward_s, 3),
        "ferxai_over_bare_forward": round(ferxai_s / forward_s, 3),
        "weights_max_abs_diff": float(np.abs(ferxai_w - lime_w).max()),
        "weights_correlation": float(np.corrcoef(ferxai_w, lime_w)[0, 1]),
        "forward_batches": math.ceil(args.samples / batch_size),
    }
    for key, value in numbers.items():
        print(f"{key:>26}: {value}")
    if args.json:
        from ferxai.io import write_json

        write_json(args.json, numbers)


if __name__ == "__main__":
    main()
