"""How much faster than lime's own forward passes can any exact fp32 path run a network?

    .venv/bin/python bench/lime_forward_floor.py --networks WeiNet:40 SongNet:64 [--rounds 5]

The question behind issue 22's "≥ 2× the lime package": lime hands its classifier C-contiguous
NHWC batches of 10, so a plain PyTorch model already runs oneDNN's channels-last kernels, and
those forward passes are 82-100 % of lime's time (bench/lime_vs_lime_package.py). This script
times, interleaved in the same rounds (median images/s, 2 threads by default), lime's forward
(``model(torch.from_numpy(nhwc).permute(0, 3, 1, 2))`` at batch 10, as lime's classifier) against
every exact path ferxai could take: eager NCHW, channels-last weights, ONNX Runtime with the job's
threads, and ONNX Runtime as one single-thread session per core fed from a thread pool, each at
batches 8-64; and prints each path's best rate over lime's. A LIME doing nothing but its forward
passes is 2× faster than lime only where that ratio reaches ``forward speed-up needed for 2×``.
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", default=["WeiNet:40", "SongNet:64"],
                        help="NAME:PX")
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 16, 32, 64])
    parser.add_argument("--images", type=int, default=320, help="forward images per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def onnx_sessions(model, size: int, threads: int):
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 3, size, size),), buffer, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                          opset_version=17, dynamo=False)

    def session(intra: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = intra, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(buffer.getvalue(), options,
                                    providers=["CPUExecutionProvider"])

    return session(threads), session(1)


def candidates(name: str, size: int, batches: list[int], threads: int) -> dict:
    """``{label: run(nhwc_images)}``; each run does the forward passes of all images."""
    from ferxai.networks import create_model

    torch.manual_seed(0)
    plain = create_model(name, input_size=size).eval()
    last = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    shared, single = onnx_sessions(plain, size, threads)
    pool = ThreadPoolExecutor(threads)

    def torch_run(model, batch, nchw_contiguous=False):
        def run(images):
            with torch.inference_mode():
                for start in range(0, len(images), batch):
                    x = torch.from_numpy(images[start : start + batch]).permute(0, 3, 1, 2)
                    model(x.contiguous() if nchw_contiguous else x)
        return run

    def ort_run(batch):
        def run(images):
            nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
            for start in range(0, len(nchw), batch):
                shared.run(None, {"x": nchw[start : start + batch]})
        return run

    def ort_streams(batch):
        def run(images):
            nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
            chunks = [nchw[s : s + batch] for s in range(0, len(nchw), batch)]
            list(pool.map(lambda c: single.run(None, {"x": c}), chunks))
        return run

    runs = {"lime (plain model, NHWC, batch 10)": torch_run(plain, 10)}
    for batch in batches:
        runs[f"eager NCHW, batch {batch}"] = torch_run(plain, batch, nchw_contiguous=True)
        runs[f"channels-last weights, batch {batch}"] = torch_run(last, batch)
        runs[f"ONNX Runtime, batch {batch}"] = ort_run(batch)
        runs[f"ONNX Runtime, {threads} single-thread streams, batch {batch}"] = ort_streams(batch)
    return runs


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    for spec in args.networks:
        name, size = spec.split(":")
        size = int(size)
        images = np.random.default_rng(0).random((args.images, size, size, 3), dtype=np.float32)
        runs = candidates(name, size, args.batches, args.threads)
        for run in runs.values():
            run(images[:32])  # warm-up: first calls, ONNX Runtime's arenas
        times: dict[str, list[float]] = {label: [] for label in runs}
        labels = list(runs)
        for r in range(args.rounds):
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                start = time.perf_counter()
                runs[label](images)
                times[label].append(time.perf_counter() - start)
        rates = {label: args.images / statistics.median(t) for label, t in times.items()}
        lime = rates[labels[0]]
        print(f"\n{name} at {size} px ({args.images} images, {args.rounds} rounds, "
              f"{args.threads} threads): images/s, and over lime's forward")
        for label, rate in sorted(rates.items(), key=lambda kv: -kv[1]):
            print(f"  {rate:8.0f}  {rate / lime:5.2f}x  {label}")


if __name__ == "__main__":
    main()
