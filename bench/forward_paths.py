"""CPU forward paths per network: eager fp32, channels_last, torch.compile, ONNX Runtime.

    .venv/bin/python bench/forward_paths.py [--networks WeiNet ...] [--sizes demo|native|N]
        [--batch 64] [--rounds 5] [--threads 2] [--paths eager channels_last compile onnxruntime]
        [--out FILE.json]

Inputs are synthetic FACS faces (``ferxai.data.synth``) at each network's input size in the
embedded demo (``config/config.yaml``), half of them with LIME-like hidden blocks. Every path is
checked against eager fp32 (max |Δ softmax probability|), then the paths are timed *interleaved*
(round r runs every path once, in a rotated order) so that load from other jobs hits them alike;
images/s is the median over ``--rounds``. ``compile`` is inductor with freezing on the
channels_last model, ``onnxruntime`` an ONNX export (TorchScript exporter, opset 17) run by ORT's
CPU provider (``ferxai.networks.forward``); their first call, the compilation or export, is reported apart
as set-up seconds (``--ort-path`` adds a folder holding onnxruntime and onnx to ``sys.path``). Prints a Markdown
table; ``--out`` also writes the numbers as JSON. Weights are random (``pretrained=False``): speed
does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ferxai.networks import create_model, list_models, resolve_input_size
from ferxai.networks.forward import build_path, count_layers, perturbed_examples

REPO = Path(__file__).resolve().parents[1]


def demo_sizes() -> dict[str, int]:
    """Input size of every network in config/config.yaml (defaults, then overrides)."""
    import yaml

    networks = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["networks"]
    default = networks["defaults"].get("input_size")
    overrides = networks.get("overrides", {})
    return {name: (overrides.get(name, {}).get("input_size") or default) for name in list_models()}


def faces(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` synthetic faces (float32 NCHW in [0, 1]), the six expressions in turn."""
    from ferxai.core.constants import EXPRESSIONS
    from ferxai.data.face_model import make_subject
    from ferxai.data.synth import Pose, au_intensities, render_face

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        subject = make_subject(f"s{i}", rng)
        expression = EXPRESSIONS[i % len(EXPRESSIONS)]
        image, _ = render_face(subject, au_intensities(expression, rng), Pose.random(rng), size,
                               rng, expressiveness=2.0)
        out.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def bench_network(name: str, size: int, args) -> dict:
    torch.manual_seed(0)
    model = create_model(name, input_size=size).eval()
    x = perturbed_examples(faces(min(args.batch, 24), size), args.batch, seed=1)
    row: dict = {"network": name, "px": size, "batch": args.batch, "layers": count_layers(model),
                 "images_per_s": {}, "max_abs_dprob": {}, "setup_s": {}, "errors": {}}
    forwards = {}
    with torch.inference_mode():
        reference = torch.softmax(build_path(model, "eager", x)(x), dim=1)
        for path in args.paths:
            try:
                start = time.perf_counter()
                forward = build_path(model, path, x)
                probs = torch.softmax(forward(x).float(), dim=1)  # first call: warm-up / compile
                row["setup_s"][path] = round(time.perf_counter() - start, 2)
                row["max_abs_dprob"][path] = float((probs - reference).abs().max())
                forwards[path] = forward
            except Exception as exc:  # report and go on with the other paths
                row["errors"][path] = f"{type(exc).__name__}: {str(exc)[:200]}"
                print(f"  {name}: {path} failed: {row['errors'][path]}", file=sys.stderr)
        times: dict[str, list[float]] = {p: [] for p in forwards}
        order = list(forwards)
        for r in range(args.rounds):
            for path in order[r % len(order) :] + order[: r % len(order)]:
                if path == "channels_last" or path == "compile":
                    model.to(memory_format=torch.channels_last)
                elif path == "eager":
                    model.to(memory_format=torch.contiguous_format)
                start = time.perf_counter()
                forwards[path](x)
                times[path].append(time.perf_counter() - start)
    for path, values in times.items():
        row["images_per_s"][path] = round(args.batch / statistics.median(values), 1)
    return row


def bench_lime(name: str, size: int, args) -> dict:
    """Whole LIME calls (SLIC, perturbations, forward passes, ridge) per ``cpu_forward`` value,
    interleaved: ``--lime-images`` faces at ``--lime-samples`` samples, batch ``--batch``."""
    from ferxai.attribution import create_explainer

    torch.manual_seed(0)
    model = create_model(name, input_size=size).eval()
    images = faces(args.lime_images, size)
    target = torch.arange(args.lime_images) % 6
    settings = {"num_samples": args.lime_samples, "batch_size": args.batch}
    times: dict[str, list[float]] = {c: [] for c in args.lime}
    paths, maps = {}, {}
    for r in range(args.rounds):
        for choice in args.lime[r % len(args.lime) :] + args.lime[: r % len(args.lime)]:
            explainer = create_explainer("lime", model, cpu_forward=choice, **settings)
            start = time.perf_counter()
            maps[choice] = explainer.attribute(images, target)
            times[choice].append(time.perf_counter() - start)
            paths[choice] = (explainer.forward_record or {}).get("path")
    reference = maps[args.lime[0]]
    return {"network": name, "px": size, "images": args.lime_images, "samples": args.lime_samples,
            "seconds": {c: round(statistics.median(v), 2) for c, v in times.items()},
            "path": paths,
            "max_abs_dmap": {c: float((m - reference).abs().max()) for c, m in maps.items()}}


def table(rows: list[dict], paths: list[str]) -> str:
    head = "| network | px | " + " | ".join(f"{p} img/s (max \\|Δp\\|)" for p in paths)
    head += " | set-up s (compile, ORT) | best vs eager |"
    lines = [head, "| --- | ---: |" + " ---: |" * (len(paths) + 2)]
    for row in rows:
        cells = []
        for p in paths:
            if p in row["images_per_s"]:
                cells.append(f"{row['images_per_s'][p]:.1f} ({row['max_abs_dprob'][p]:.1e})")
            else:
                cells.append("failed")
        speeds = row["images_per_s"]
        best = max(speeds, key=speeds.get) if speeds else "-"
        gain = speeds[best] / speeds["eager"] if "eager" in speeds and speeds else float("nan")
        setup = ", ".join(str(row["setup_s"].get(p, "-")) for p in ("compile", "onnxruntime"))
        lines.append(f"| {row['network']} | {row['px']} | " + " | ".join(cells)
                     + f" | {setup} | {best} {gain:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="*", default=list_models())
    parser.add_argument("--sizes", default="demo", help="demo (config/config.yaml), native, or px")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=["eager", "channels_last", "onnxruntime",
                                                         "compile"])
    parser.add_argument("--ort-path", help="folder holding the onnxruntime package")
    parser.add_argument("--lime", nargs="*", help="time whole LIME calls for these cpu_forward "
                        "values (e.g. eager auto) instead of bare forward paths")
    parser.add_argument("--lime-images", type=int, default=3)
    parser.add_argument("--lime-samples", type=int, default=150)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.ort_path:
        sys.path.insert(0, args.ort_path)
    torch.set_num_threads(args.threads)
    sizes = demo_sizes() if args.sizes == "demo" else {}
    rows = []
    for name in args.networks:
        wanted = None if args.sizes in ("native", "demo") else int(args.sizes)
        size = sizes.get(name) or resolve_input_size(name, wanted)
        rows.append(bench_lime(name, size, args) if args.lime else bench_network(name, size, args))
        print(json.dumps(rows[-1]), flush=True)
        if args.out:
            args.out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__,
                                            "rows": rows}, indent=1))
    if not args.lime:
        print("\n" + table(rows, args.paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
