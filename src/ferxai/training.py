"""Train one network on one fold with Lightning: ``ferxai train``.

The bare ``nn.Module`` from :mod:`ferxai.models` is wrapped by :class:`FerClassifier` (a
LightningModule) and fed by :class:`FerDataModule`. Training set: images with ``fold != k``; test
set (``fold == k``) is never loaded here. An optional validation split holds out whole subjects.

Reproducibility and resume: every random stream of an epoch (sample order, augmentation, dropout)
is seeded from ``(seed, epoch)`` at the start of that epoch, and checkpoints are written at epoch
end, so a job killed after epoch *e* and rerun continues from ``checkpoints/last.ckpt`` and ends
with bit-identical weights (on CPU) to an uninterrupted run. A checkpoint is reused only when
``checkpoints/settings.json`` (settings except ``epochs``, network, fold, training ids) matches.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ferxai.device import configure_threads, resolve_precision, select_device
from ferxai.errors import ConfigError
from ferxai.io import atomic_path, read_json, write_csv, write_json
from ferxai.models import create_model, model_info, resolve_input_size
from ferxai.models.inputs import (
    ids_digest,
    labels_of,
    preload_uint8,
    read_fold_split,
    split_validation,
    to_float,
)
from ferxai.models.scratch import INITIALIZERS, ScratchNet

try:
    import lightning.pytorch as pl
    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.plugins.io import TorchCheckpointIO
except ImportError:  # the standalone package, same API
    import pytorch_lightning as pl
    from lightning_fabric.plugins.environments import LightningEnvironment
    from pytorch_lightning.plugins.io import TorchCheckpointIO

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


# ------------------------------------------------------------------------------------ settings


@dataclass
class TrainSettings:
    """``--settings`` JSON of ``ferxai train``; every key is optional."""

    epochs: int | None = None  # None → the paper's epochs for the network
    batch_size: int = 128
    val_batch_size: int = 32
    optimizer: str = "paper"  # "rmsprop" | "adam" | "paper" (the network's optimizer in the paper)
    lr: float | None = None  # None → the paper's learning rate for the network
    input_size: int | None = None  # None → native size
    augment: bool = False
    seed: int = 0
    pretrained: bool = False
    weights: str | None = None
    scratch_init: str = "keras"  # "keras" (Glorot, as the paper) | "he"; from-scratch nets only
    center_inputs: bool = False  # subtract the mean training image; from-scratch nets only
    device: str = "auto"
    precision: str = "auto"
    val_fraction: float = 0.1
    num_workers: int = 0


_TYPES: dict[str, tuple[type, ...]] = {
    "epochs": (int, type(None)),
    "batch_size": (int,),
    "val_batch_size": (int,),
    "optimizer": (str,),
    "lr": (int, float, type(None)),
    "input_size": (int, type(None)),
    "augment": (bool,),
    "seed": (int,),
    "pretrained": (bool,),
    "weights": (str, type(None)),
    "scratch_init": (str,),
    "center_inputs": (bool,),
    "device": (str,),
    "precision": (str,),
    "val_fraction": (int, float),
    "num_workers": (int,),
}


def parse_settings(settings: str | dict | None) -> TrainSettings:
    """Validate a settings JSON string or dict; unknown keys and wrong types raise ConfigError."""
    if settings is None or settings == "":
        raw: dict[str, Any] = {}
    elif isinstance(settings, str):
        try:
            raw = json.loads(settings)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings: not valid JSON ({exc}). Pass a JSON object.") from exc
    else:
        raw = dict(settings)
    if not isinstance(raw, dict):
        raise ConfigError("--settings: expected a JSON object of training settings.")
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"train settings: unknown keys {unknown}; known: {sorted(known)}.")
    for key, value in raw.items():
        bad_bool = isinstance(value, bool) and bool not in _TYPES[key]
        if bad_bool or not isinstance(value, _TYPES[key]):
            raise ConfigError(f"train settings: {key}={value!r} has the wrong type.")
    parsed = TrainSettings(**raw)
    _check_ranges(parsed)
    return parsed


def _check_ranges(s: TrainSettings) -> None:
    if s.epochs is not None and s.epochs < 1:
        raise ConfigError(f"train settings: epochs={s.epochs}; use at least 1.")
    if s.batch_size < 1 or s.val_batch_size < 1:
        raise ConfigError("train settings: batch_size and val_batch_size must be >= 1.")
    if s.optimizer not in ("paper", "rmsprop", "adam"):
        raise ConfigError(f"train settings: optimizer={s.optimizer!r}; use paper, rmsprop or adam.")
    if s.lr is not None and not s.lr > 0:
        raise ConfigError(f"train settings: lr={s.lr}; use a positive learning rate or null.")
    if not 0 <= s.val_fraction < 1:
        raise ConfigError(f"train settings: val_fraction={s.val_fraction}; use 0 <= value < 1.")
    if s.scratch_init not in INITIALIZERS:
        raise ConfigError(f"train settings: scratch_init={s.scratch_init!r}; use one of "
                          f"{sorted(INITIALIZERS)}.")  # fmt: skip
    if s.num_workers < 0:
        raise ConfigError("train settings: num_workers must be >= 0.")


# ---------------------------------------------------------------------------------- randomness


def stream_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent 63-bit seed for one random stream (0 order, 1 augmentation, 2 torch) of an epoch."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(2, np.uint64)[0] >> 1)


class EpochSeededSampler(torch.utils.data.Sampler):
    """Random permutation that depends only on ``(seed, epoch)``: identical after a resume."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch, 0))
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


# ------------------------------------------------------------------------------- augmentation


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Keras-style random flip, rotation ±3 % of a turn, translation ±5 %, contrast ±10 %.

    Parameters are drawn on the CPU from ``generator`` (same numbers on any device) and applied
    to the whole batch with one ``grid_sample``; borders are reflected like Keras' default.
    """
    n = x.shape[0]
    draw = torch.rand(n, 5, generator=generator).to(x.device, x.dtype)
    flip = torch.where(draw[:, 0] < 0.5, -1.0, 1.0).to(x.dtype)
    angle = (draw[:, 1] * 2 - 1) * 0.03 * 2 * math.pi
    shift = (draw[:, 2:4] * 2 - 1) * 0.05 * 2  # grid units: the image spans [-1, 1]
    contrast = 1 + (draw[:, 4] * 2 - 1) * 0.1
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
            torch.stack([sin * flip, cos, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * contrast.view(n, 1, 1, 1) + mean).clamp(0, 1)


# ------------------------------------------------------------------------------ lightning parts


class FerDataModule(pl.LightningDataModule):
    """Preloaded uint8 tensors of the training (and validation) images of one fold."""

    def __init__(self, train_x, train_y, val_x, val_y, settings: TrainSettings):
        super().__init__()
        self.train_set = torch.utils.data.TensorDataset(train_x, train_y)
        self.val_set = torch.utils.data.TensorDataset(val_x, val_y) if len(val_y) else None
        self.settings = settings

    def train_dataloader(self):
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_size=self.settings.batch_size,
            sampler=EpochSeededSampler(len(self.train_set), self.settings.seed),
            num_workers=self.settings.num_workers,
            # own generator: creating the iterator must not consume the global torch stream
            generator=torch.Generator().manual_seed(self.settings.seed),
        )

    def val_dataloader(self):
        if self.val_set is None:
            return []
        return torch.utils.data.DataLoader(
            self.val_set, batch_size=self.settings.val_batch_size, shuffle=False,
            num_workers=self.settings.num_workers,
        )  # fmt: skip


class FerClassifier(pl.LightningModule):
    """Cross-entropy training of a bare ``nn.Module`` classifier; keeps a per-epoch history."""

    def __init__(self, model, optimizer: str, lr: float, seed: int, augment: bool = False,
                 channels_last: bool = False, label: str = ""):  # fmt: skip
        super().__init__()
        self.model = model
        self.optimizer_name, self.lr, self.seed = optimizer, lr, seed
        self.augment, self.channels_last, self.label = augment, channels_last, label
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, torch.Tensor] = {}
        self._augment_generator = torch.Generator()
        self._epoch_started = 0.0

    def forward(self, x):
        return self.model(x)

    def configure_optimizers(self):
        if self.optimizer_name == "rmsprop":  # Keras defaults: rho 0.9, epsilon 1e-7
            return torch.optim.RMSprop(self.parameters(), lr=self.lr, alpha=0.9, eps=1e-7)
        return torch.optim.Adam(self.parameters(), lr=self.lr, eps=1e-7)

    def on_train_epoch_start(self):
        epoch = self.current_epoch
        torch.manual_seed(stream_seed(self.seed, epoch, 2))  # dropout
        self._augment_generator.manual_seed(stream_seed(self.seed, epoch, 1))
        self._reset("train")
        self._epoch_started = time.perf_counter()

    def _inputs(self, x):
        x = to_float(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = self._inputs(x)
        if self.augment:
            x = augment_batch(x, self._augment_generator)
        logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y)
        self._accumulate("train", loss, logits, y)
        return loss

    def on_validation_epoch_start(self):
        self._reset("val")

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(self._inputs(x))
        self._accumulate("val", F.cross_entropy(logits.float(), y), logits, y)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        loss, acc = self._epoch_metrics("val")
        self.log_dict({"val_loss": loss, "val_acc": acc})

    def on_train_epoch_end(self):
        loss, acc = self._epoch_metrics("train")
        self.log_dict({"train_loss": loss, "train_acc": acc})
        metrics = self.trainer.callback_metrics
        row = {
            "epoch": self.current_epoch + 1,
            "train_loss": loss,
            "train_acc": acc,
            "val_loss": float(metrics["val_loss"]) if "val_loss" in metrics else "",
            "val_acc": float(metrics["val_acc"]) if "val_acc" in metrics else "",
            "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - self._epoch_started, 3),
        }
        self.history.append(row)
        if self.trainer.is_global_zero:  # one line per epoch: readable in SLURM/Snakemake logs
            log.info("%s epoch %d/%d: %s", self.label, row["epoch"], self.trainer.max_epochs,
                     _epoch_summary(row))  # fmt: skip

    def _reset(self, split: str) -> None:
        self._sums[split] = torch.zeros(3, dtype=torch.float64, device=self.device)

    def _accumulate(self, split: str, loss, logits, y) -> None:
        n = y.shape[0]
        correct = (logits.argmax(dim=1) == y).sum().double()
        self._sums[split] += torch.stack(
            [loss.detach().double() * n, correct, correct.new_tensor(n)]
        )

    def _epoch_metrics(self, split: str) -> tuple[float, float]:
        sums = self.trainer.strategy.reduce(self._sums[split], reduce_op="sum")
        total_loss, correct, count = (float(v) for v in sums)
        return total_loss / max(count, 1), correct / max(count, 1)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["ferxai_history"] = self.history

    def on_load_checkpoint(self, checkpoint):
        self.history = list(checkpoint.get("ferxai_history", []))


def _epoch_summary(row: dict[str, Any]) -> str:
    text = f"train_loss {row['train_loss']:.4f} train_acc {row['train_acc']:.3f}"
    if row["val_loss"] != "":
        text += f" | val_loss {row['val_loss']:.4f} val_acc {row['val_acc']:.3f}"
    return text + f" ({row['seconds']:.1f} s)"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written through :func:`ferxai.io.atomic_path`: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


# ------------------------------------------------------------------------------------- driver


@dataclass
class TrainPlan:
    """Everything resolved from settings and network: what one training job will do."""

    network: str
    fold: int
    input_size: int
    epochs: int
    optimizer: str
    lr: float
    precision: str
    device: str


def resolve_plan(network: str, fold: int, settings: TrainSettings, device) -> TrainPlan:
    info = model_info(network)
    return TrainPlan(
        network=network,
        fold=fold,
        input_size=resolve_input_size(network, settings.input_size),
        epochs=settings.epochs or info.paper_epochs,
        optimizer=info.optimizer if settings.optimizer == "paper" else settings.optimizer,
        lr=float(settings.lr if settings.lr is not None else info.lr),
        precision=resolve_precision(settings.precision, device),
        device=device.type,
    )


def _run_identity(plan: TrainPlan, settings: TrainSettings, train_digest: str) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: all but the number of epochs (and the number
    of loader workers, which changes no result)."""
    identity = {k: v for k, v in asdict(settings).items() if k not in ("epochs", "num_workers")}
    plan_part = {k: v for k, v in asdict(plan).items() if k != "epochs"}
    return {"settings": identity, "plan": plan_part, "train_ids_sha256": train_digest}


def _resumable_checkpoint(ckpt_dir: Path, identity: dict, epochs: int) -> Path | None:
    """``last.ckpt`` if it belongs to this very run and has epochs left; else wipe the folder."""
    last = ckpt_dir / "last.ckpt"
    meta = ckpt_dir / "settings.json"
    if not last.exists():
        if ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)
        return None
    reason = None
    try:
        stored = read_json(meta)
    except (OSError, ValueError):
        stored = None
    if stored != identity:
        reason = "its settings, network, fold or training images differ from this run"
    else:
        try:  # mmap: only the epoch counter is read, not gigabytes of weights
            done = torch.load(last, map_location="cpu", weights_only=False, mmap=True)["epoch"] + 1
        except Exception as exc:  # a truncated or foreign file: start over
            done, reason = None, f"it cannot be read ({exc})"
        if done is not None and done > epochs:
            reason = f"it has {done} epochs, more than the {epochs} asked for"
    if reason:
        log.warning("ignoring stale checkpoint %s: %s; training from scratch.", last, reason)
        shutil.rmtree(ckpt_dir)
        return None
    log.info("resuming from %s (%d of %d epochs done).", last, done, epochs)
    return last


def train(
    network: str,
    fold: int,
    dataset_csv: str | os.PathLike,
    folds_csv: str | os.PathLike,
    settings: TrainSettings | dict | str | None,
    out_dir: str | os.PathLike,
    threads: int | None = None,
) -> Path:
    """Train ``network`` on the training images of ``fold``; write ``out_dir/model.pt`` and
    ``out_dir/history.csv`` and return the path of ``model.pt``."""
    if not isinstance(settings, TrainSettings):
        settings = parse_settings(settings)
    _quiet_lightning()
    out_dir = Path(out_dir)
    configure_threads(threads)
    device = select_device(settings.device)
    plan = resolve_plan(network, fold, settings, device)

    split = read_fold_split(dataset_csv, folds_csv, fold)
    train_rows, val_rows = split_validation(split.train, settings.val_fraction, settings.seed)
    identity = _run_identity(plan, settings, ids_digest(split.train))
    ckpt_dir = out_dir / "checkpoints"
    if os.environ.get("LOCAL_RANK", "0") == "0":
        resume_from = _resumable_checkpoint(ckpt_dir, identity, plan.epochs)
        write_json(ckpt_dir / "settings.json", identity)
    else:  # a DDP rank Lightning re-launched: rank 0 has already vetted the folder
        last = ckpt_dir / "last.ckpt"
        resume_from = last if last.exists() else None

    log.info("%s fold %d: %d training, %d validation images at %d px, %d epochs, %s lr %g, %s "
             "on %s%s", network, fold, len(train_rows), len(val_rows), plan.input_size,
             plan.epochs, plan.optimizer, plan.lr, plan.precision, plan.device,
             ", ImageNet weights" if settings.pretrained else ", from scratch")  # fmt: skip
    datamodule = FerDataModule(
        torch.from_numpy(preload_uint8(train_rows, plan.input_size)),
        torch.from_numpy(labels_of(train_rows)),
        torch.from_numpy(preload_uint8(val_rows, plan.input_size)),
        torch.from_numpy(labels_of(val_rows)),
        settings,
    )
    module = _build_module(plan, settings)
    if settings.center_inputs and isinstance(module.model, ScratchNet):
        module.model.center_inputs(datamodule.train_set.tensors[0])  # uint8, summed in chunks
    trainer, checkpoint = _build_trainer(plan, out_dir, has_val=bool(val_rows),
                                         steps=math.ceil(len(train_rows) / settings.batch_size))  # fmt: skip
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return out_dir / "model.pt"
    return _export(module, checkpoint, out_dir)


def _quiet_lightning() -> None:
    """Our own per-epoch lines say what matters; drop Lightning's banners and tips."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # settings.json lives in checkpoints/ on purpose; resuming there is the point
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # one task per job by design (LightningEnvironment launches DDP ranks itself)
    warnings.filterwarnings("ignore", message=r"The `srun` command is available")


def _build_module(plan: TrainPlan, settings: TrainSettings) -> FerClassifier:
    torch.manual_seed(settings.seed)  # initial weights
    model = create_model(plan.network, pretrained=settings.pretrained, weights=settings.weights,
                         input_size=plan.input_size, scratch_init=settings.scratch_init)  # fmt: skip
    channels_last = plan.device == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return FerClassifier(model, plan.optimizer, plan.lr, settings.seed, settings.augment,
                         channels_last, label=f"{plan.network} fold {plan.fold}")  # fmt: skip


def _build_trainer(plan: TrainPlan, out_dir: Path, has_val: bool, steps: int):
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor="val_loss" if has_val else None,
        mode="min",
        save_top_k=1,
        save_last=True,
        save_on_train_epoch_end=True,  # after the history row of the epoch is appended
        enable_version_counter=False,
    )
    gpus = torch.cuda.device_count() if plan.device == "cuda" else 0
    return pl.Trainer(
        accelerator="gpu" if gpus else "cpu",
        devices=gpus or 1,
        strategy="ddp" if gpus > 1 else "auto",
        precision="bf16-mixed" if plan.precision == "bf16" else "32-true",
        max_epochs=plan.epochs,
        callbacks=[checkpoint],
        # one node, processes launched by Lightning itself: not SLURM's srun (one task per job)
        plugins=[AtomicCheckpointIO(), LightningEnvironment()],
        logger=pl.loggers.CSVLogger(save_dir=out_dir, name="logs"),
        default_root_dir=out_dir,
        deterministic="warn" if plan.device == "cpu" else False,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if has_val else 0,
        log_every_n_steps=max(1, min(50, steps)),
    ), checkpoint


def _export(module: FerClassifier, checkpoint, out_dir: Path) -> Path:
    """Write the best weights as a plain state dict (``torch.load(weights_only=True)``)."""
    best = checkpoint.best_model_path
    if best and Path(best).exists():
        full = torch.load(best, map_location="cpu", weights_only=False, mmap=True)["state_dict"]
        state = {k.removeprefix("model."): v for k, v in full.items() if k.startswith("model.")}
    else:
        state = module.model.state_dict()
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    target = out_dir / "model.pt"
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    write_csv(out_dir / "history.csv", module.history, HISTORY_COLUMNS)
    log.info("wrote %s (weights of %s) and %s", target, best or "the last epoch",
             out_dir / "history.csv")  # fmt: skip
    return target


# ---------------------------------------------------------------------------------------- CLI


def cli_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="network name, e.g. WeiNet (see docs)")
    parser.add_argument("--fold", required=True, type=int, help="test fold k (trains on the rest)")
    parser.add_argument("--dataset", required=True, help="dataset.csv from `ferxai prepare`")
    parser.add_argument("--folds", required=True, help="folds.csv from `ferxai folds`")
    parser.add_argument("--settings", default="{}", help="training settings as a JSON object")
    parser.add_argument("--out-dir", required=True, help="writes model.pt, history.csv there")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: job's)")


def cli_train(args: argparse.Namespace) -> None:
    train(args.model, args.fold, args.dataset, args.folds, args.settings, args.out_dir,
          threads=args.threads)  # fmt: skip
