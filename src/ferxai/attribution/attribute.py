"""``ferxai attribute``: explain one (network, fold, expression)'s positives into an HDF5 stack.

Resumable: after every chunk of images the maps explained so far are written (atomically, with
checksums) to ``.{stack}.resume.h5`` beside the output, a file no rule declares and no reader
globs. A job killed or cancelled half way (time limit, preemption, ``scancel``, node loss) and rerun
with the same inputs and settings continues after the images already explained, and writes the
same stack as an uninterrupted job (chunk boundaries do not move). The resume files of a job are
deleted once all its stacks are written.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferxai import __version__
from ferxai.attribution.settings import METHODS, check_method, resolve_settings
from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError, DataError, FerxaiError
from ferxai.core.io import Stack, read_csv, read_stack, write_stack

log = logging.getLogger("ferxai.attribution")

POSITIVE_COLUMNS = ("image_id", "true_label", "predicted", "probability")
# Images loaded, explained and released together: bounds memory for any number of positives, and
# the unit of resuming (FERXAI_IMAGES_PER_CHUNK sets it). Which images share a forward batch
# follows the chunks, so results may change in the last bits with it: a resume keeps the size.
IMAGES_PER_CHUNK = int(os.environ.get("FERXAI_IMAGES_PER_CHUNK", "32"))


@dataclass
class AttributeJob:
    """Everything one ``attribute`` job needs; the CLI flags map one to one onto it."""

    model: str
    weights: str | None
    input_size: int
    dataset: Path
    positives: Path
    expression: str
    fold: int
    method: str
    settings: dict[str, Any]
    seed: int
    out: Path
    device: str = "auto"
    threads: int | None = None
    randomize: bool = False
    arch: str | None = None  # weights trained elsewhere: their architecture (default: model)
    class_order: tuple[str, ...] | None = None  # ... and their head's classes, in output order
    card: dict[str, Any] | None = None  # ... and a whole model's input/output card


def cli_attribute_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="network name, e.g. ResNet50")
    parser.add_argument(
        "--weights", required=True, help="trained state dict (model.pt), or 'none' for no weights"
    )
    parser.add_argument(
        "--randomize",
        action="store_true",
        help="re-initialize all weights from --seed (model-randomization sanity check)",
    )
    parser.add_argument("--input-size", type=int, required=True, help="network input size (px)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset.csv from prepare")
    parser.add_argument(
        "--positives", type=Path, nargs="+", required=True, help="positives CSV(s) to explain"
    )
    parser.add_argument(
        "--expression", nargs="+", required=True, choices=EXPRESSIONS, help="one per --positives"
    )
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--method", default="lime", choices=METHODS)
    parser.add_argument("--settings", default="{}", help="JSON object of method settings")
    parser.add_argument("--seed", type=int, default=42, help="base seed (image i uses seed + i)")
    parser.add_argument(
        "--out",
        type=Path,
        nargs="+",
        required=True,
        help="output HDF5 stack(s), one per --positives",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: job's)")
    parser.add_argument("--arch", default=None, help="architecture of weights trained elsewhere")
    parser.add_argument("--class-order", nargs="+", default=None,
                        help="classes of that model's head in output order")
    parser.add_argument("--card", default=None,
                        help="JSON: a whole model's input/output card (docs/models.md)")
    parser.set_defaults(
        provenance_inputs=("weights", "dataset", "positives"), provenance_outputs=("out",)
    )


def cli_attribute(args: argparse.Namespace) -> None:
    """Explain one or several expressions' positives; the network is loaded once for all."""
    if not len(args.positives) == len(args.expression) == len(args.out):
        raise ConfigError(
            f"attribute: {len(args.expression)} --expression, {len(args.positives)} --positives "
            f"and {len(args.out)} --out: give one of each per expression."
        )
    with _stop_on_signals():
        for expression, positives, out in zip(
            args.expression, args.positives, args.out, strict=True
        ):
            _run_one(args, expression, positives, out)
    for out in args.out:  # every stack of the job is written: its resume files are done with
        resume_path(out).unlink(missing_ok=True)


class JobInterrupted(BaseException):
    """SIGTERM (time limit, preemption, scancel) or SIGUSR1 (SLURM's warning) arrived."""


@contextlib.contextmanager
def _stop_on_signals():
    """Turn SIGTERM/SIGUSR1 into a clean exit that says how far the job came (the resume files
    already hold every finished chunk; a rerun continues from them)."""

    def handler(signum, frame):
        raise JobInterrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield
    except JobInterrupted as exc:
        log.warning(
            "attribute: stopped by %s; the images explained so far are kept in the .*.resume.h5 "
            "files beside the outputs and the rerun of this job resumes from them.",
            exc.args[0],
        )
        raise SystemExit(143) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run_one(args: argparse.Namespace, expression: str, positives: Path, out: Path) -> None:
    job = AttributeJob(
        model=args.model,
        weights=None if args.weights.lower() == "none" else args.weights,
        input_size=args.input_size,
        dataset=args.dataset,
        positives=positives,
        expression=expression,
        fold=args.fold,
        method=args.method,
        settings=parse_settings(args.settings),
        seed=args.seed,
        out=out,
        device=args.device,
        threads=args.threads,
        randomize=args.randomize,
        arch=getattr(args, "arch", None),
        class_order=tuple(args.class_order) if getattr(args, "class_order", None) else None,
        card=_card(getattr(args, "card", None)),
    )
    run_attribute(job, keep_resume=True)


def _card(text: str | None) -> dict[str, Any] | None:
    from ferxai.networks.evaluate import parse_card

    return parse_card(text)


def parse_settings(text: str) -> dict[str, Any]:
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--settings: not valid JSON ({exc}); give a JSON object.") from exc
    if not isinstance(settings, dict):
        raise ConfigError(f"--settings: expected a JSON object, got {type(settings).__name__}.")
    return settings


def resume_path(out: str | os.PathLike) -> Path:
    """Where the maps explained so far for the stack ``out`` are kept: ``.{name}.resume.h5``."""
    out = Path(out)
    return out.with_name(f".{out.stem}.resume{out.suffix}")


def run_attribute(job: AttributeJob, keep_resume: bool = False) -> Stack:
    """Explain every positive of ``job`` and write the stack atomically to ``job.out``.

    Resumes from ``resume_path(job.out)`` when it belongs to this very job; deletes it at the end
    unless ``keep_resume`` (the CLI deletes a job's resume files once all its stacks exist)."""
    settings = _job_settings(job)
    positives = read_positives(job.positives)
    paths = image_paths(job.dataset, [row["image_id"] for row in positives], job.positives)
    attrs = {
        "method": job.method,
        "network": job.model,
        "fold": job.fold,
        "expression": job.expression,
        "checkpoint_sha256": sha256_file(job.weights) if job.weights else "none",
        "ferxai_version": __version__,
        "seed": job.seed,
        "randomized": job.randomize,
        "input_size": job.input_size,
    }
    if not positives:
        stack = _empty_stack(job.input_size, {**attrs, "settings": settings, "empty": True})
        write_stack(job.out, stack)
        log.info("attribute: %s has no positives; wrote an empty stack %s", job.positives, job.out)
        return stack
    stack = _explain_positives(job, settings, positives, paths, attrs, keep_resume)
    if not keep_resume:
        resume_path(job.out).unlink(missing_ok=True)
    return stack


def _job_settings(job: AttributeJob) -> dict[str, Any]:
    check_method(job.method)
    if job.expression not in EXPRESSIONS:
        raise ConfigError(
            f"expression {job.expression!r} is unknown; use one of {', '.join(EXPRESSIONS)}."
        )
    settings = dict(job.settings)
    if "seed" in resolve_settings(job.method):
        settings["seed"] = job.seed  # --seed is the one seed of a job
    return resolve_settings(job.method, settings)


def _explain_positives(job, settings, positives, paths, attrs, keep_resume=False) -> Stack:
    import torch

    from ferxai.attribution import create_explainer
    from ferxai.core.device import configure_threads, select_device

    configure_threads(job.threads)
    device = select_device(job.device)
    model = load_model(job, device)
    explainer = create_explainer(job.method, model, **settings)
    forward = _plan_forward(explainer, job, paths, len(positives))
    identity = _resume_identity(job, settings, positives, attrs["checkpoint_sha256"], forward)
    chunks = _load_resume(job, identity, len(positives))
    first = sum(len(c["probabilities"]) for c in chunks)
    label = f"attribute {job.method} {job.model} fold {job.fold} {job.expression}"
    if first:
        log.info("%s: resuming from %s: %d of %d images already explained, %d to go.",
                 label, resume_path(job.out), first, len(positives), len(positives) - first)
    started = time.perf_counter()
    for start in range(first, len(positives), IMAGES_PER_CHUNK):
        chunks.append(_explain_chunk(explainer, model, job, paths, positives, start))
        done = min(start + IMAGES_PER_CHUNK, len(positives))
        if done < len(positives) or keep_resume:  # a job's finished stacks are resume points
            _save_resume(job, identity, chunks, positives, done)
        elapsed = time.perf_counter() - started
        log.info("%s: %d/%d images, %.2f s/image", label, done, len(positives),
                 elapsed / (done - first))
    maps = torch.cat([c["maps"] for c in chunks]).numpy()
    extras = {}
    if chunks[0]["segments"] is not None:
        extras["segments"] = torch.cat([c["segments"] for c in chunks]).numpy().astype(np.int16)
    probabilities = np.concatenate([c["probabilities"] for c in chunks])
    predicted = probabilities.argmax(axis=1)
    listed = np.array([int(row["predicted"]) for row in positives])
    if (predicted != listed).any() and not job.randomize:
        log.warning(
            "attribute: %d of %d images are predicted differently than %s says; "
            "are --weights the checkpoint the positives were selected with?",
            int((predicted != listed).sum()),
            len(listed),
            job.positives,
        )
    attrs.update(settings=settings, precision=explainer.precision, device=str(device))
    if forward is not None:  # which CPU forward path made the maps, and why (cpu_forward: auto)
        attrs.update(forward_path=forward["path"], forward_batch=forward["batch"],
                     forward_auto_rule=forward["auto_rule"])
    attrs["empty"] = False
    fidelity = [c["bf16_max_prob_diff"] for c in chunks if c["bf16_max_prob_diff"] is not None]
    if fidelity:
        attrs["bf16_max_prob_diff"] = float(max(fidelity))
    stack = Stack(
        maps=maps.astype(np.float32),
        image_id=[row["image_id"] for row in positives],
        true_label=np.array([int(row["true_label"]) for row in positives]),
        predicted=predicted,
        probabilities=probabilities,
        attrs=attrs,
        extras=extras,
    )
    write_stack(job.out, stack)
    return stack


def _plan_forward(explainer, job: AttributeJob, paths, total: int) -> dict | None:
    """The explainer's CPU forward path, chosen before any image is explained (LIME in fp32 on
    the CPU; others have none): on the stack's first images and for its whole size, so that the
    first attempt, a resumed one and a rerun all choose alike (``cpu_forward: auto`` is a rule)."""
    plan = getattr(explainer, "plan_forward", None)
    if plan is None or not getattr(explainer, "cpu_path_pending", False) or not total:
        return None
    import torch

    from ferxai.data.images import load_batch
    from ferxai.networks.forward import CHECK_BATCH

    # the path is checked on (perturbations of) at most CHECK_BATCH images: load only those
    first = torch.from_numpy(load_batch(paths[:CHECK_BATCH], job.input_size))
    expected = total * explainer.settings["num_samples"]
    record = plan(first, expected)
    # What the stack records: the deterministic part (the record's timings differ run to run).
    return {"path": record["path"], "batch": explainer.batch_size_for(first, expected),
            "auto_rule": record.get("auto")}


def _resume_identity(job: AttributeJob, settings, positives, checkpoint_sha256: str,
                     forward: dict | None = None) -> str:
    """What a resume file must match: everything that decides the maps of the stack, the CPU
    forward path included (ONNX Runtime and oneDNN agree only to ~1e-8)."""
    key = {
        "forward_path": None if forward is None else forward.get("path"),
        "method": job.method,
        "settings": settings,
        "model": job.model,
        "checkpoint_sha256": checkpoint_sha256,
        "input_size": job.input_size,
        "seed": job.seed,
        "randomize": job.randomize,
        "arch": job.arch,
        "class_order": list(job.class_order or []),
        "card": job.card or {},
        "expression": job.expression,
        "fold": job.fold,
        "positives": [row["image_id"] for row in positives],
        "images_per_chunk": IMAGES_PER_CHUNK,
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _save_resume(job: AttributeJob, identity: str, chunks: list[dict], positives, done: int):
    import torch

    maps = torch.cat([c["maps"] for c in chunks]).numpy().astype(np.float32)
    probabilities = np.concatenate([c["probabilities"] for c in chunks]).astype(np.float32)
    extras = {}
    if chunks[0]["segments"] is not None:
        extras["segments"] = torch.cat([c["segments"] for c in chunks]).numpy().astype(np.int16)
    fidelity = [c["bf16_max_prob_diff"] for c in chunks if c["bf16_max_prob_diff"] is not None]
    attrs = {"resume_identity": identity, "resume_of": str(job.out)}
    if fidelity:
        attrs["bf16_max_prob_diff"] = float(max(fidelity))
    write_stack(
        resume_path(job.out),
        Stack(
            maps=maps,
            image_id=[row["image_id"] for row in positives[:done]],
            true_label=np.array([int(row["true_label"]) for row in positives[:done]]),
            predicted=probabilities.argmax(axis=1),
            probabilities=probabilities,
            attrs=attrs,
            extras=extras,
        ),
    )


def _load_resume(job: AttributeJob, identity: str, total: int) -> list[dict]:
    """The chunks a previous attempt of this very job explained (as one chunk), or []."""
    import torch

    path = resume_path(job.out)
    if not path.exists():
        return []
    try:
        stack = read_stack(path)
    except FerxaiError as exc:  # damaged or half-written: explain from the start
        log.warning("attribute: ignoring %s (%s); explaining from the first image.", path, exc)
        path.unlink(missing_ok=True)
        return []
    done = len(stack)
    usable = done <= total and (done % IMAGES_PER_CHUNK == 0 or done == total)
    if stack.attrs.get("resume_identity") != identity or not usable:
        log.info("attribute: %s is from other inputs or settings; explaining from the start.", path)
        path.unlink(missing_ok=True)
        return []
    segments = stack.extras.get("segments")
    return [
        {
            "maps": torch.from_numpy(stack.maps),
            "segments": None if segments is None else torch.from_numpy(segments),
            "probabilities": np.asarray(stack.probabilities, dtype=np.float32),
            "bf16_max_prob_diff": stack.attrs.get("bf16_max_prob_diff"),
        }
    ]


def _explain_chunk(explainer, model, job: AttributeJob, paths, positives, start: int) -> dict:
    """Load, classify and explain images [start, start + IMAGES_PER_CHUNK) of the positives."""
    import torch

    from ferxai.core.device import autocast
    from ferxai.data.images import load_batch

    stop = min(start + IMAGES_PER_CHUNK, len(positives))
    images = torch.from_numpy(load_batch(paths[start:stop], job.input_size))
    device = explainer.device
    with torch.inference_mode():
        batch = images.to(device).contiguous(memory_format=torch.channels_last)
        probabilities = torch.softmax(model(batch).float(), dim=1)
        fidelity = None
        if explainer.precision == "bf16":
            # How far bf16 moves the probabilities LIME regresses on, for the job's record.
            with autocast(device, "bf16"):
                low = torch.softmax(model(batch).float(), dim=1)
            fidelity = float((low - probabilities).abs().max())
    target = torch.full((stop - start,), EXPRESSIONS.index(job.expression), dtype=torch.long)
    explanation = explainer.explain(
        images, target, seeds=[job.seed + i for i in range(start, stop)]
    )
    return {
        "maps": explanation.maps,
        "segments": explanation.segments,
        "probabilities": probabilities.cpu().numpy(),
        "bf16_max_prob_diff": fidelity,
    }


_MODELS: dict[tuple, Any] = {}


def load_model(job: AttributeJob, device):
    """The network with ``job.weights`` loaded (or re-initialized from the seed), in eval mode.

    Cached per process: the expressions of one job share one network.
    """
    key = (job.model, job.weights, job.input_size, job.randomize, job.seed, str(device),
           job.arch, job.class_order, json.dumps(job.card, sort_keys=True), job.method)
    if key not in _MODELS:
        _MODELS[key] = _build_model(job, device)
    return _MODELS[key]


def _build_model(job: AttributeJob, device):
    import torch

    from ferxai.networks import create_model, load_trained
    from ferxai.networks.model_card import is_whole_model

    if job.weights and is_whole_model(job.weights):
        return _whole_model(job, device)
    external = job.weights and (job.arch or job.class_order or job.card)
    if external:  # trained elsewhere: its architecture, its head's class order (a card: refused)
        model = load_trained(job.arch or job.model, job.weights, job.input_size, job.class_order,
                             job.model, **(job.card or {}))
    else:
        model = create_model(job.arch or job.model, input_size=job.input_size)
    if job.weights and not external:
        model.load_state_dict(read_weights(job.weights, job.model))
    if job.randomize:
        randomize_weights(model, job.seed)
    elif not job.weights:
        log.warning("attribute: --weights none: explaining an untrained %s", job.model)
    return model.to(device).to(memory_format=torch.channels_last).eval()


def _whole_model(job: AttributeJob, device):
    """A model trained elsewhere behind its card (ferxai.networks.loaders): ONNX runs on ONNX
    Runtime for the methods that only run the model, on onnx2torch for the others; the
    randomized twin redraws the file's weights from the seed."""
    import torch

    from ferxai.networks import load_trained
    from ferxai.networks.capabilities import FORWARD, method_needs

    runtime = "auto" if method_needs(job.method) <= FORWARD else "torch"
    model = load_trained(job.model, job.weights, job.input_size, job.class_order, job.model,
                         runtime=runtime, randomize_seed=job.seed if job.randomize else None,
                         device=str(device), **(job.card or {}))
    log.info("attribute: %s is a %s model on %s", job.model, model.format, model.runtime)
    if model.runtime == "onnxruntime":  # ONNX Runtime's CPU provider: the explainer stays there
        device = torch.device("cpu")
    return model.to(device).to(memory_format=torch.channels_last).eval()


def read_weights(path: str, network: str) -> dict:
    import torch

    if not Path(path).is_file():
        raise ConfigError(
            f"--weights {path}: no such file. Train {network} first (ferxai train) or pass the "
            "path of its model.pt."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ConfigError(
            f"--weights {path}: cannot read it as a torch state dict ({exc}). "
            "Delete it and rerun the train job for this network and fold."
        ) from exc


def randomize_weights(model, seed: int) -> None:
    """Re-initialize every layer from ``seed`` (Adebayo et al.'s full model randomization)."""
    from ferxai.networks.loaders import reset_layers

    reset_layers(model, seed)


def read_positives(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path}: positives file not found; run the positives stage first.")
    rows = read_csv(path)
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    missing = [c for c in POSITIVE_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; a positives file has "
            f"{','.join(POSITIVE_COLUMNS)}. Rerun the positives stage."
        )
    return rows


def image_paths(dataset: Path, image_ids: list[str], positives: Path) -> list[str]:
    if not dataset.is_file():
        raise DataError(f"{dataset}: dataset table not found; run ferxai prepare first.")
    path_of = {row["image_id"]: row["path"] for row in read_csv(dataset)}
    unknown = [i for i in image_ids if i not in path_of]
    if unknown:
        raise DataError(
            f"{positives}: {len(unknown)} image id(s) not in {dataset} (first: {unknown[0]!r}); "
            "the positives come from another dataset. Rerun evaluate and positives."
        )
    return [path_of[i] for i in image_ids]


def sha256_file(path: str | os.PathLike) -> str:
    if not Path(path).is_file():
        raise ConfigError(f"--weights {path}: no such file; pass the trained model.pt or 'none'.")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _empty_stack(size: int, attrs: dict[str, Any]) -> Stack:
    return Stack(
        maps=np.zeros((0, size, size), np.float32),
        image_id=[],
        true_label=np.zeros(0, np.int64),
        predicted=np.zeros(0, np.int64),
        probabilities=np.zeros((0, len(EXPRESSIONS)), np.float32),
        attrs=attrs,
    )
