"""Images per second of each attribution family on the CPU: a batch per call vs one image per call.

    .venv/bin/python bench/attribution_methods.py --threads 2 --images 8 --markdown \\
        [--network ResNet50] [--size N] [--methods saliency gradcam ...] [--json FILE]

The network (random weights, ``pretrained=False``: speed does not depend on them) at the demo's
input size (``config/config.yaml``: ``networks.defaults.input_size`` and the network's override;
``--size`` sets another), ``--images`` synthetic FACS faces (``ferxai.data.synth``), each method
with its default settings except where ``METHOD_SETTINGS`` says (named in the table). Per method:
one untimed warm-up call, then the best of ``--rounds`` of (a) one ``attribute`` call on all the
images (ferxai's path: the explainer splits them into its forward batches) and (b) one call per
image (the per-image loop the captum explainers had before); images/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# family -> methods; settings beside the defaults (kept to the defaults where a run stays short)
FAMILIES = {
    "captum gradient": ["saliency", "saliency+smoothgrad", "input_x_gradient", "guided_backprop",
                        "deeplift", "gradient_shap", "integrated_gradients", "guided_gradcam",
                        "gradcam"],
    "pytorch-grad-cam": ["gradcam_plusplus", "xgradcam", "eigencam", "layercam", "hirescam",
                         "fullgrad", "scorecam"],
    "perturbation": ["occlusion", "feature_ablation", "rise", "lime"],
}
METHOD_SETTINGS = {
    "saliency+smoothgrad": ("saliency", {"noise_tunnel": {"type": "smoothgrad", "samples": 5}}),
    "rise": ("rise", {"masks": 200}),
    "lime": ("lime", {"num_samples": 200}),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="ResNet50")
    parser.add_argument("--size", type=int, default=None, help="default: the demo's size")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every row above")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def demo_size(config_path: str, network: str) -> int:
    import yaml

    networks = (yaml.safe_load(Path(config_path).read_text()) or {}).get("networks", {})
    override = (networks.get("overrides") or {}).get(network) or {}
    return int(override.get("input_size") or (networks.get("defaults") or {})["input_size"])


def faces(count: int, size: int):
    """``count`` synthetic faces (float32 NCHW in [0, 1]), the six expressions in turn (as
    ``bench/forward_paths.py`` renders them)."""
    import numpy as np
    import torch

    from ferxai.core.constants import EXPRESSIONS
    from ferxai.data.face_model import make_subject
    from ferxai.data.synth import Pose, au_intensities, render_face

    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        subject = make_subject(f"s{i}", rng)
        expression = EXPRESSIONS[i % len(EXPRESSIONS)]
        image, _ = render_face(subject, au_intensities(expression, rng), Pose.random(rng), size,
                               rng, expressiveness=2.0)
        out.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def best_seconds(call, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    from ferxai.attribution import create_explainer
    from ferxai.networks import create_model

    torch.set_num_threads(args.threads)
    size = args.size or demo_size(args.config, args.network)
    torch.manual_seed(0)
    model = create_model(args.network, input_size=size, pretrained=False).eval()
    model = model.to(memory_format=torch.channels_last)
    images = faces(args.images, size)
    target = torch.arange(args.images) % 6
    rows = []
    for family, methods in FAMILIES.items():
        for name in methods:
            if args.methods and name not in args.methods:
                continue
            method, settings = METHOD_SETTINGS.get(name, (name, {}))
            explainer = create_explainer(method, model, **settings)
            explainer.attribute(images[:2], target[:2])  # warm-up: imports, layer search, caches

            def batch(explainer=explainer):
                explainer.attribute(images, target)

            def single(explainer=explainer):
                for i in range(args.images):
                    explainer.attribute(images[i : i + 1], target[i : i + 1])

            batched, alone = best_seconds(batch, args.rounds), best_seconds(single, args.rounds)
            rows.append({"family": family, "method": name, "settings": settings,
                         "batch_images_per_s": args.images / batched,
                         "single_images_per_s": args.images / alone,
                         "speedup": alone / batched})
            print(f"{family:17s} {name:22s} batch {rows[-1]['batch_images_per_s']:8.2f} img/s "
                  f"one-by-one {rows[-1]['single_images_per_s']:8.2f} img/s "
                  f"x{rows[-1]['speedup']:.2f}", flush=True)
    header = {"network": args.network, "size": size, "images": args.images,
              "threads": args.threads, "rounds": args.rounds}
    if args.json:
        Path(args.json).write_text(json.dumps({**header, "rows": rows}, indent=1))
    if args.markdown:
        print(f"\n{args.network} {size} px, {args.images} images, {args.threads} threads\n")
        print("| family | method | batch (img/s) | one image per call (img/s) | speed-up |")
        print("| --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| {r['family']} | `{r['method']}` | {r['batch_images_per_s']:.2f} | "
                  f"{r['single_images_per_s']:.2f} | {r['speedup']:.2f}× |")


if __name__ == "__main__":
    main()
