"""ferxai's LIME vs lime 0.2.0.1 on the same networks, image, superpixels and settings.

    .venv/bin/python bench/lime_vs_lime_package.py --demo --paper-rows --rounds 3 --markdown \\
        [--networks WeiNet ...] [--cpu-forward channels_last onnxruntime] [--json FILE]

One row per network (and per ferxai forward path): lime's wall time (its ``explain_instance`` on
the plain fp32 model, contiguous NCHW, batches of ``--lime-batch-size``, 10 as in lime), ferxai's
(one explainer per row and path, configured once: its first call, which checks the forward path
against eager and exports / compiles where the path needs it, is the untimed warm-up), their
ratio, ferxai's *bare forward passes* (the same perturbed images, batch size and forward path as
its call, nothing else: the floor any LIME implementation pays) and the agreement of the segment
weights (max |Δw|). Each tool gets an untimed warm-up call; then ``--rounds`` interleaved rounds
(every measurement once per round, the order rotated) and the median, so that load from other jobs
hits them alike; calls shorter than ``--min-seconds`` are repeated within a measurement (per-call
times reported). CPU seconds of the process are kept in the JSON as well (``*_cpu_s``): on a shared
machine their ratios are steadier than wall-clock ones.

``--demo`` takes each network's input size from ``config/config.yaml`` (``networks.defaults`` and
``overrides``) and LIME's ``num_samples`` / ``batch_size`` and ``cpu_forward`` from it too;
``--paper-rows`` adds WeiNet at 64 px and ResNet50 at 224 px at the paper's 1000 samples (ferxai's
automatic batch). Without ``--demo``: ``--size``, ``--samples``, ``--batch-size``. The image is one
synthetic FACS face (``ferxai.data.synth``, as ``bench/forward_paths.py`` renders them) at each
row's size, its SLIC superpixels computed once and given to both tools; weights are random
(``pretrained=False``): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # lime draws a tqdm bar per sample

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
PAPER_ROWS = (("WeiNet", 64), ("ResNet50", 224))
PAPER_SAMPLES = 1000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="*", default=None,
                        help="default: all 12 (config/config.yaml networks.names)")
    parser.add_argument("--demo", action="store_true",
                        help="sizes, samples, batch, cpu_forward from --config")
    parser.add_argument("--paper-rows", action="store_true",
                        help="add WeiNet 64 px and ResNet50 224 px at 1000 samples")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=None, help="default 1000, --demo: config")
    parser.add_argument("--batch-size", type=int, default=None, help="ferxai's (default: auto)")
    parser.add_argument("--cpu-forward", nargs="+", default=None,
                        help="ferxai's forward path(s), a row each (default: the config's, "
                             "channels_last)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--lime-batch-size", type=int, default=10, help="lime's default is 10")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="repeat shorter calls inside a measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print the rows as a table")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def load_config(path: str) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text()) or {}


def plan_rows(args: argparse.Namespace) -> list[dict]:
    """(network, px, samples, ferxai batch) of every row, in order."""
    config = load_config(args.config)
    networks_cfg = config.get("networks", {})
    names = args.networks or networks_cfg.get("names")
    if not names:
        from ferxai.networks import list_models

        names = list_models()
    rows = []
    if args.demo:
        default = networks_cfg.get("defaults", {}).get("input_size")
        overrides = networks_cfg.get("overrides", {}) or {}
        lime_cfg = (config.get("attribution", {}) or {}).get("lime", {}) or {}
        samples = args.samples or lime_cfg.get("num_samples") or PAPER_SAMPLES
        batch = args.batch_size or lime_cfg.get("batch_size")
        for name in names:
            size = (overrides.get(name) or {}).get("input_size") or default
            rows.append({"network": name, "size": int(size), "samples": samples, "batch": batch})
    elif args.networks or not args.paper_rows:
        for name in names:
            rows.append({"network": name, "size": args.size,
                         "samples": args.samples or PAPER_SAMPLES,
                         "batch": args.batch_size})
    if args.paper_rows:
        for name, size in PAPER_ROWS:
            rows.append({"network": name, "size": size, "samples": PAPER_SAMPLES, "batch": None})
    return rows


def cpu_forward_choices(args: argparse.Namespace) -> list[str]:
    if args.cpu_forward:
        return args.cpu_forward
    if args.demo:
        value = load_config(args.config).get("cpu_forward")
        if value:
            return [value]
    from ferxai.attribution.settings import DEFAULT_SETTINGS

    return [DEFAULT_SETTINGS["lime"]["cpu_forward"]]


def face_image(size: int, seed: int = 0) -> np.ndarray:
    """One synthetic face, HWC float32 in [0, 1]."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from forward_paths import faces

    return faces(1, size, seed)[0].permute(1, 2, 0).contiguous().numpy()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lime_package(model, image, segments, samples, args, device):
    """``(call() -> weights, classifier_fn)``: lime's explain_instance, its classifier a plain
    fp32 softmax forward of ``model`` on ``device``, as a user would write it."""
    from lime.lime_image import LimeImageExplainer

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = torch.from_numpy(batch).permute(0, 3, 1, 2).to(device, torch.float32)
            return torch.softmax(model(inputs), dim=1).cpu().numpy()

    def call(num_samples: int = samples) -> np.ndarray:
        explanation = LimeImageExplainer(
            kernel_width=0.25, random_state=args.seed
        ).explain_instance(
            image,
            classifier_fn,
            labels=(args.target,),
            hide_color=0,
            top_labels=None,
            num_features=100000,
            num_samples=num_samples,
            batch_size=args.lime_batch_size,
            segmentation_fn=lambda _image: segments,
            random_seed=args.seed,
        )
        weights = np.zeros(segments.max() + 1)
        for feature, weight in explanation.local_exp[args.target]:
            weights[feature] = weight
        return weights

    return call, classifier_fn


def lime_bare(classifier_fn, batches: list[torch.Tensor], lime_batch: int):
    """lime's forward passes alone: its classifier on the same perturbed images as ferxai's
    call, in lime's NHWC numpy batches of ``lime_batch``; what lime pays beyond it is its own
    work (per-sample copies, distances, the ridge)."""
    # C-contiguous NHWC float32, as lime's ``np.array(imgs)`` hands them to the classifier
    images = np.ascontiguousarray(np.concatenate([b.permute(0, 2, 3, 1).cpu().numpy()
                                                  for b in batches]))
    chunks = [images[i : i + lime_batch] for i in range(0, len(images), lime_batch)]

    def bare() -> None:
        for chunk in chunks:
            classifier_fn(chunk)

    return bare


def ferxai_lime(model, image, segments, row, choice, args, device):
    """The explainer (configured once), ``call() -> weights`` and ``bare()``: its forward on the
    call's own perturbed batches, nothing else. Makes the first call (warm-up, path check)."""
    from ferxai.attribution import create_explainer

    explainer = create_explainer(
        "lime", model, num_samples=row["samples"], seed=args.seed, precision=args.precision,
        batch_size=row["batch"], cpu_forward=choice,
    )
    images = torch.from_numpy(image).permute(2, 0, 1)[None].to(device)
    target = torch.tensor([args.target])

    def call() -> np.ndarray:
        result = explainer.explain(images, target, segments=[segments])
        synchronize(device)
        return result.segment_weights[0]

    start = time.perf_counter()
    call()
    setup_s = time.perf_counter() - start
    from ferxai.attribution.common import auto_batch_size

    batch_size = row["batch"] or auto_batch_size(
        explainer.forward, tuple(images.shape[1:]), explainer.device, row["samples"]
    )
    masks, _ = explainer._masks([args.seed], [segments])
    segment_map = torch.from_numpy(segments[None])
    with torch.inference_mode():
        batches = [
            b for _, b in explainer.perturbed_batches(images, segment_map, masks, batch_size)
        ]

    @torch.inference_mode()
    def bare() -> None:
        for batch in batches:
            explainer.forward(batch)
        synchronize(device)

    bare.batches = batches
    return explainer, call, bare, batch_size, setup_s


def measure_row(row: dict, choices: list[str], args, device) -> list[dict]:
    from ferxai.attribution.common import slic_segments
    from ferxai.attribution.settings import DEFAULT_SETTINGS
    from ferxai.networks import create_model

    lime_settings = DEFAULT_SETTINGS["lime"]
    torch.manual_seed(args.seed)
    model = create_model(row["network"], input_size=row["size"]).eval().to(device)
    plain = copy.deepcopy(model)  # lime's: the plain fp32 model, whatever ferxai's paths do
    image = face_image(row["size"], args.seed)
    segments = slic_segments(image, lime_settings["n_segments"], lime_settings["compactness"])

    lime_call, classifier_fn = lime_package(plain, image, segments, row["samples"], args, device)
    warm = min(row["samples"], 2 * args.lime_batch_size)
    start = time.perf_counter()
    lime_call(warm)  # warm-up, untimed
    estimates = {"lime": (time.perf_counter() - start) * row["samples"] / warm}
    tasks = {"lime": lime_call}
    tools = {}
    for choice in choices:
        explainer, call, bare, batch_size, setup_s = ferxai_lime(
            copy.deepcopy(model), image, segments, row, choice, args, device
        )  # a copy per path: eager and channels_last set the memory format of the model
        if "lime_bare" not in tasks:
            tasks["lime_bare"] = lime_bare(classifier_fn, bare.batches, args.lime_batch_size)
            estimates["lime_bare"] = estimates["lime"]
        tools[choice] = (explainer, batch_size, setup_s)
        estimates[f"ferxai:{choice}"] = estimates[f"bare:{choice}"] = setup_s  # upper bounds
        tasks[f"ferxai:{choice}"] = call
        tasks[f"bare:{choice}"] = bare
    # Short calls are repeated within a measurement (``--min-seconds`` each; per-call times are
    # reported) so that one scheduling hiccup of a loaded machine does not decide a ratio.
    repeats = {}
    for key, task in tasks.items():
        estimate = estimates[key]
        if estimate < 3 * args.min_seconds:
            start = time.perf_counter()
            task()  # untimed: how long one call takes now
            estimate = time.perf_counter() - start
        repeats[key] = max(1, math.ceil(args.min_seconds / max(estimate, 1e-6)))
    wall: dict[str, list[float]] = {k: [] for k in tasks}
    cpu: dict[str, list[float]] = {k: [] for k in tasks}
    outputs: dict[str, np.ndarray] = {}
    order = list(tasks)
    for r in range(args.rounds):
        for key in order[r % len(order) :] + order[: r % len(order)]:
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(repeats[key]):
                out = tasks[key]()
            wall[key].append((time.perf_counter() - w0) / repeats[key])
            cpu[key].append((time.process_time() - c0) / repeats[key])
            if out is not None:
                outputs[key] = out
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    results = []
    for choice in choices:
        explainer, batch_size, setup_s = tools[choice]
        ferxai_s, bare_s = med[f"ferxai:{choice}"], med[f"bare:{choice}"]
        ferxai_w, lime_w = outputs[f"ferxai:{choice}"], outputs["lime"]
        record = explainer.forward_record or {}
        results.append({
            "network": row["network"], "size": row["size"], "samples": row["samples"],
            "superpixels": int(segments.max()) + 1, "device": str(device),
            "threads": torch.get_num_threads(), "precision": explainer.precision,
            "cpu_forward": choice, "forward_path": record.get("path", choice),
            "ferxai_batch_size": batch_size, "lime_batch_size": args.lime_batch_size,
            "forward_batches": math.ceil(row["samples"] / batch_size), "rounds": args.rounds,
            "repeats": {"lime": repeats["lime"], "ferxai": repeats[f"ferxai:{choice}"],
                        "bare": repeats[f"bare:{choice}"]},
            "lime_package_s": round(med["lime"], 3), "ferxai_s": round(ferxai_s, 3),
            "speedup": round(med["lime"] / ferxai_s, 2),
            "bare_forward_s": round(bare_s, 3),
            "lime_bare_forward_s": round(med["lime_bare"], 3),
            # how much faster than lime's own forward passes a LIME with no work of its own
            # would have to run them to be 2x faster than lime
            "forward_speedup_needed_for_2x": round(2 * med["lime_bare"] / med["lime"], 2),
            "ferxai_over_bare_forward": round(ferxai_s / bare_s, 3),
            "lime_package_cpu_s": round(med_cpu["lime"], 3),
            "ferxai_cpu_s": round(med_cpu[f"ferxai:{choice}"], 3),
            "bare_forward_cpu_s": round(med_cpu[f"bare:{choice}"], 3),
            "ferxai_over_bare_forward_cpu": round(
                med_cpu[f"ferxai:{choice}"] / max(med_cpu[f"bare:{choice}"], 1e-9), 3),
            "ferxai_setup_s": round(setup_s, 2),
            "weights_max_abs_diff": float(np.abs(ferxai_w - lime_w).max()),
            "weights_correlation": correlation(ferxai_w, lime_w),
            "wall_s": {k: [round(x, 3) for x in v] for k, v in wall.items()},
        })
    return results


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r, None where one side is constant (a network whose output ignores the image)."""
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def markdown(rows: list[dict]) -> str:
    lines = [
        "| network | px | samples | lime s | lime's forward s | ferxai s | speed-up "
        "| bare forward s (batch) | forward speed-up needed for 2× | ferxai / bare "
        "| max \\|Δw\\| | forward path |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['network']} | {r['size']} | {r['samples']} | {r['lime_package_s']:.2f} "
            f"| {r['lime_bare_forward_s']:.2f} | {r['ferxai_s']:.2f} | {r['speedup']:.2f}× "
            f"| {r['bare_forward_s']:.2f} ({r['ferxai_batch_size']}) "
            f"| {r['forward_speedup_needed_for_2x']:.2f}× "
            f"| {r['ferxai_over_bare_forward']:.2f} | {r['weights_max_abs_diff']:.1e} "
            f"| {r['forward_path']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    from ferxai.core.device import configure_threads, select_device

    configure_threads(args.threads)
    device = select_device(args.device)
    choices = cpu_forward_choices(args)
    started = time.perf_counter()
    results = []
    for row in plan_rows(args):
        t0 = time.perf_counter()
        for result in measure_row(row, choices, args, device):
            results.append(result)
            summary = {k: v for k, v in result.items() if k != "wall_s"}
            print(json.dumps(summary), flush=True)
        print(f"# {row['network']} {row['size']} px: {time.perf_counter() - t0:.0f} s",
              file=sys.stderr, flush=True)
    print(f"# total {time.perf_counter() - started:.0f} s, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    if args.markdown:
        print(markdown(results))
    if args.json:
        from ferxai.core.io import write_json

        write_json(args.json, {"rows": results, "argv": sys.argv[1:]})
    return results


if __name__ == "__main__":
    main()
