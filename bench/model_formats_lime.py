"""LIME on a model given as an ONNX file vs the same network in PyTorch, on the CPU (issue 25).

    .venv/bin/python bench/model_formats_lime.py [--networks WeiNet ResNet50] [--size 64]
        [--samples 1000] [--images 2] [--rounds 3] [--threads 1] [--markdown] [--json FILE]

Per network (random init, ``pretrained=False``): the ferxai network itself (PyTorch, LIME's
default ``cpu_forward``), and the same network exported with ``torch.onnx.export`` to a file and
read back with ``ferxai.networks.loaders.load_trained`` as a model trained elsewhere (ONNX Runtime,
the runtime the workflow gives ONNX models for LIME). One explainer per row, configured once; the
same images (synthetic FACS faces), superpixels and seeds; an untimed warm-up call each, then
``--rounds`` interleaved rounds and the median wall time. ``max |dw|`` is the largest difference of
the two rows' superpixel weights (the explanations are the same when it is ~1e-6).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["WeiNet", "ResNet50"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def faces(n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` synthetic FACS faces at ``size`` px, RGB in [0, 1] (as bench/forward_paths.py)."""
    sys.path.insert(0, str(REPO / "bench"))
    from forward_paths import faces as render

    return render(n, size, seed)


def export_onnx(model: torch.nn.Module, size: int, folder: Path) -> Path:
    path = folder / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(2, 3, size, size),), str(path), input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                          opset_version=17, dynamo=False)
    return path


def run_row(explainer, images, target, seeds, segments):
    """(wall seconds, CPU seconds of the process, the explanation) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    explanation = explainer.explain(images, target, seeds=seeds, segments=segments)
    return time.perf_counter() - start, time.process_time() - cpu, explanation


def bench_network(name: str, args) -> dict:
    from ferxai.attribution import create_explainer
    from ferxai.attribution.common import slic_segments, to_hwc_numpy
    from ferxai.networks import create_model
    from ferxai.networks.loaders import load_trained

    torch.manual_seed(args.seed)
    model = create_model(name, input_size=args.size).eval()
    images = faces(args.images, args.size, args.seed)
    target = torch.full((args.images,), 3, dtype=torch.long)
    seeds = [args.seed + i for i in range(args.images)]
    segments = [slic_segments(to_hwc_numpy(im), 30, 20.0) for im in images]
    settings = {"num_samples": args.samples, "seed": args.seed}
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, args.size, Path(folder))
        onnx_model = load_trained(path, network=name, input_size=args.size, runtime="onnxruntime")
        rows = {
            "pytorch": create_explainer("lime", model, **settings),
            "onnx file (ONNX Runtime)": create_explainer("lime", onnx_model, **settings),
        }
        times: dict[str, list[float]] = {k: [] for k in rows}
        cpu: dict[str, list[float]] = {k: [] for k in rows}
        weights = {}
        for key, explainer in rows.items():  # warm-up: forward path check, first-call costs
            weights[key] = run_row(explainer, images, target, seeds, segments)[2].segment_weights
        order = list(rows)
        for round_index in range(args.rounds):
            for key in order[round_index % 2 :] + order[: round_index % 2]:
                wall, cpu_s, _ = run_row(rows[key], images, target, seeds, segments)
                times[key].append(wall)
                cpu[key].append(cpu_s)
    dw = max(float(np.abs(a - b).max()) for a, b in zip(*weights.values()))
    medians = {k: statistics.median(v) for k, v in times.items()}
    keys = list(medians)
    return {
        "network": name,
        "size": args.size,
        "samples": args.samples,
        "images": args.images,
        "seconds": medians,
        "all_seconds": times,
        "cpu_seconds": {k: statistics.median(v) for k, v in cpu.items()},
        "speedup_onnx_over_pytorch": medians[keys[0]] / medians[keys[1]],
        "max_abs_dw": dw,
        "pytorch_forward": rows["pytorch"].forward_record,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    torch.set_num_threads(args.threads)
    results = [bench_network(name, args) for name in args.networks]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    if args.markdown:
        print("| network | px | samples x images | PyTorch s (CPU s) | ONNX file on ONNX Runtime "
              "s (CPU s) | ONNX / PyTorch speed (CPU) | max abs dw |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in results:
            (torch_s, onnx_s), (torch_cpu, onnx_cpu) = (
                r["seconds"].values(),
                r["cpu_seconds"].values(),
            )
            print(f"| {r['network']} | {r['size']} | {r['samples']} x {r['images']} | "
                  f"{torch_s:.2f} ({torch_cpu:.2f}) | {onnx_s:.2f} ({onnx_cpu:.2f}) | "
                  f"{r['speedup_onnx_over_pytorch']:.2f}x ({torch_cpu / onnx_cpu:.2f}x) | "
                  f"{r['max_abs_dw']:.1e} |")
    else:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
