"""Cost of the quality stage (issue 23) per explained image, at a configuration's sizes.

For every network of the configuration, at its input size and with the configuration's LIME and
quality settings, a randomly initialised network (the cost does not depend on the weights) measures
random images of its input size: faithfulness curves, cascading MPRT and RandomLogit as configured,
exactly as a quality job (``ferxai.quality.job.measure``). Prints seconds per image and per job
(start-up excluded; the start-up of a job is measured once, as ``python -c 'import torch, timm'``).

    python bench/bench_quality.py [--config config/config.yaml] [--images 6] [--no-mprt]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import yaml


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--images", type=int, default=6, help="images per network (one job's)")
    parser.add_argument("--networks", nargs="*", default=None)
    parser.add_argument("--no-mprt", action="store_true", help="faithfulness alone")
    args = parser.parse_args()

    import torch

    from ferxai.attribution.settings import job_settings
    from ferxai.core.config import network_settings, validate_config
    from ferxai.core.constants import EXPRESSIONS
    from ferxai.networks import create_model
    from ferxai.networks.registry import resolve_input_size
    from ferxai.quality.job import DEFAULTS, measure, quality_settings

    torch.set_num_threads(1)
    config = validate_config(yaml.safe_load(open(args.config)))
    quality = quality_settings({k: config["quality"][k] for k in DEFAULTS})
    if args.no_mprt:
        quality["mprt"]["enabled"] = quality["random_logit"] = False
    method = "lime"
    settings = job_settings(method, config["attribution"][method], "fp32", config["cpu_forward"])
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import torch, timm, ferxai.attribution.lime"], check=True
    )
    startup = time.perf_counter() - started
    print(f"start-up (import torch, timm, ferxai LIME): {startup:.1f} s")
    print("network,input_size,images,s_per_image,s_per_job_without_startup")
    total = 0.0
    rng = np.random.default_rng(0)
    device = torch.device("cpu")
    names = args.networks or config["quality"]["networks"] or config["networks"]["names"]
    for name in names:
        net = network_settings(config, name)
        size = resolve_input_size(net.get("arch") or name, net["input_size"])
        model = create_model(name, input_size=size).eval()
        images = rng.random((args.images, 3, size, size)).astype(np.float32)
        maps = rng.random((args.images, size, size))
        began = time.perf_counter()
        measure(model, device, images, maps, EXPRESSIONS[0], quality, method, settings, 42)
        elapsed = time.perf_counter() - began
        total += elapsed
        print(f"{name},{size},{args.images},{elapsed / args.images:.2f},{elapsed:.1f}", flush=True)
    jobs = len(names)
    print(f"total: {total:.0f} s measuring + {jobs} x {startup:.1f} s start-up "
          f"= {total + jobs * startup:.0f} s of jobs per fold")


if __name__ == "__main__":
    main()
