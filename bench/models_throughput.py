"""Training and inference throughput of the twelve networks: fp32 vs channels_last + bf16.

    python bench/models_throughput.py [--size 64] [--batch 8] [--steps 3] [--threads 2]
                                      [--device cpu] [--models WeiNet VGG16 ...] [--out FILE.md]

``--size native`` uses each network's native input size (slow on a CPU: VGG/SilNet/AlexNet
take seconds per image). Numbers are images per second, the median over ``--steps`` timed steps
after one warm-up step; a training step is forward + backward + optimizer step (the paper's
optimizer). Prints a Markdown table (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from ferxai.core.device import autocast, select_device
from ferxai.networks import (
    create_model,
    list_models,
    min_input_size,
    model_info,
    resolve_input_size,
)

MODES = {"fp32": (False, "fp32"), "cl+bf16": (True, "bf16")}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps: int, device) -> float:
    """Median seconds of ``steps`` calls of ``step`` after one warm-up call."""
    step()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_network(name: str, size: int, batch: int, steps: int, device, mode: str) -> dict:
    channels_last, precision = MODES[mode]
    info = model_info(name)
    torch.manual_seed(0)
    model = create_model(name, input_size=size).to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.arange(batch, device=device) % 6
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = (torch.optim.RMSprop if info.optimizer == "rmsprop" else torch.optim.Adam)(
        model.parameters(), lr=info.lr
    )

    def infer():
        with torch.inference_mode(), autocast(device, precision):
            model(x)

    def train_step():
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.eval()
    infer_s = time_steps(infer, steps, device)
    model.train()
    train_s = time_steps(train_step, steps, device)
    return {"infer": batch / infer_s, "train": batch / train_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="64", help="input px, or 'native'")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="*", default=list_models())
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = select_device(args.device)

    lines = [
        f"device {device.type}, {args.threads} threads, batch {args.batch}, torch "
        f"{torch.__version__}; images/s (higher is better)",
        "",
        "| network | px | infer fp32 | infer cl+bf16 | train fp32 | train cl+bf16 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.models:
        # a requested size below a network's minimum (InceptionV3 75, Xception 71) is raised to it
        wanted = None if args.size == "native" else max(int(args.size), min_input_size(name))
        size = resolve_input_size(name, wanted)
        result = {m: bench_network(name, size, args.batch, args.steps, device, m) for m in MODES}
        lines.append(
            f"| {name} | {size} | {result['fp32']['infer']:.1f} | {result['cl+bf16']['infer']:.1f}"
            f" | {result['fp32']['train']:.1f} | {result['cl+bf16']['train']:.1f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
