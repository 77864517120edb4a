"""Train one network on one fold with Lightning: ``ferxai train``.

The bare ``nn.Module`` from :mod:`ferxai.networks` is wrapped by :class:`FerClassifier` (a
LightningModule) and fed by :class:`FerDataModule`. Training set: images with ``fold != k``; test
set (``fold == k``) is never loaded here. An optional validation split holds out whole subjects.

Reproducibility and resume: every random stream of an epoch (sample order, augmentation, dropout)
is seeded from ``(seed, epoch)`` at the start of that epoch, and checkpoints are written at epoch
end, so a job killed after epoch *e* and rerun continues from ``checkpoints/last.ckpt`` and ends
with bit-identical weights (on CPU) to an uninterrupted run. A checkpoint is reused only when
``checkpoints/settings.json`` (settings except ``epochs``, network, fold, training ids) matches.

Time limits (SLURM): on SIGTERM (the profile's warning ``--signal=TERM@...``, the time limit
itself, preemption, ``scancel``) or SIGUSR1, the running epoch is finished when that takes at most
``FERXAI_STOP_GRACE_S`` seconds (default 60; its checkpoint is written as usual), else training
stops after the current batch and the last epoch's checkpoint is the resume point. The job then
exits with status 143, Snakemake's retry reruns it and it resumes: a training longer than its
job's time limit finishes over several jobs with the weights of one long job.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ferxai.core.device import configure_threads, resolve_precision, select_device
from ferxai.core.errors import ConfigError
from ferxai.core.io import atomic_path, read_json, write_csv, write_json
from ferxai.networks import create_model, model_info, resolve_input_size
from ferxai.networks.inputs import (
    ids_digest,
    labels_of,
    preload_uint8,
    read_fold_split,
    split_validation,
    to_float,
)
from ferxai.networks.scratch import ScratchNet
from ferxai.networks.train_settings import (
    EpochSeededSampler,
    TrainSettings,
    augment_batch,
    parse_settings,
    stream_seed,
)

try:
    import lightning.pytorch as pl
    from lightning.fabric.plugins.environments import LightningEnvironment
    from lightning.pytorch.plugins.io import TorchCheckpointIO
    from lightning.pytorch.utilities.exceptions import SIGTERMException
except ImportError:  # the standalone package, same API
    import pytorch_lightning as pl
    from lightning_fabric.plugins.environments import LightningEnvironment
    from pytorch_lightning.plugins.io import TorchCheckpointIO
    from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
# Exit status of a training stopped by a signal (128 + SIGTERM): Snakemake's retry resumes it.
STOPPED_EXIT = 143


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
        )


class FerClassifier(pl.LightningModule):
    """Cross-entropy training of a bare ``nn.Module`` classifier; keeps a per-epoch history."""

    def __init__(self, model, optimizer: str, lr: float, seed: int, augment: bool = False,
                 channels_last: bool = False, label: str = ""):
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
                     _epoch_summary(row))

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
    """Checkpoints written through :func:`ferxai.core.io.atomic_path`: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class StopOnSignal(pl.Callback):
    """SIGTERM or SIGUSR1 during training: finish the running epoch if that takes at most
    ``grace_s`` seconds (estimated from its batches so far), so its checkpoint is written; else stop
    after the current batch. Lightning itself turns SIGTERM into ``SIGTERMException`` after the
    batch; this callback defers that to the end of the epoch when there is time, and adds SIGUSR1.
    A second signal stops after the current batch."""

    def __init__(self, grace_s: float, label: str = ""):
        self.grace_s, self.label = grace_s, label
        self.signal_name: str | None = None
        self.finish_epoch = False
        self._usr1 = 0
        self._epoch_started = 0.0

    @contextlib.contextmanager
    def listening(self):
        """SIGUSR1 handled while the block (``trainer.fit``) runs; SIGTERM is Lightning's."""
        previous = signal.signal(signal.SIGUSR1, self._on_usr1)
        try:
            yield self
        finally:
            signal.signal(signal.SIGUSR1, previous)

    def _on_usr1(self, signum, frame):
        self._usr1 += 1

    def on_train_epoch_start(self, trainer, pl_module):
        if self.finish_epoch:  # the epoch the signal arrived in is done and checkpointed
            raise SIGTERMException()
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        connector = trainer._signal_connector
        if not (self._usr1 or connector.received_sigterm):
            return
        epoch = trainer.current_epoch + 1
        if self.signal_name is not None:  # another signal while finishing the epoch: stop now
            if self.finish_epoch:
                log.warning("%s: another signal; stopping now, in epoch %d.", self.label, epoch)
            self.finish_epoch = False
            connector.received_sigterm = True
            return
        self.signal_name = "SIGTERM" if connector.received_sigterm else "SIGUSR1"
        self._usr1 = 0
        left = trainer.num_training_batches - batch_idx - 1
        per_batch = (time.perf_counter() - self._epoch_started) / (batch_idx + 1)
        estimate = 1.2 * left * per_batch  # + validation, roughly
        if estimate <= self.grace_s:
            self.finish_epoch = True
            connector.received_sigterm = False
            log.warning("%s: %s received; finishing epoch %d (about %.0f s more) and its "
                        "checkpoint, then stopping.", self.label, self.signal_name, epoch,
                        estimate)
        else:
            connector.received_sigterm = True
            log.warning("%s: %s received; epoch %d needs about %.0f s more (> %.0f s): stopping "
                        "now, the last epoch's checkpoint is the resume point.", self.label,
                        self.signal_name, epoch, estimate, self.grace_s)


def stop_grace_seconds() -> float:
    """``FERXAI_STOP_GRACE_S``: how long a signalled training may still run to finish its epoch."""
    raw = os.environ.get("FERXAI_STOP_GRACE_S", "60")
    try:
        return max(0.0, float(raw))
    except ValueError as exc:
        raise ConfigError(f"FERXAI_STOP_GRACE_S={raw!r}: give a number of seconds.") from exc


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
    resumes = _read_resumes(ckpt_dir) + [{"epochs_done": done}]
    write_json(ckpt_dir / "resumes.json", resumes)
    log.info("resuming from %s (%d of %d epochs done); resume %d of this training.", last, done,
             epochs, len(resumes))
    return last


def _checkpoint_epochs(path: Path) -> int | None:
    """Epochs a Lightning checkpoint holds (None when it cannot be read)."""
    try:  # mmap: only the epoch counter is read, not gigabytes of weights
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)["epoch"] + 1
    except Exception:
        return None


def _read_resumes(ckpt_dir: Path) -> list[dict[str, Any]]:
    """Where earlier jobs of this training stopped (``checkpoints/resumes.json``)."""
    try:
        resumes = read_json(ckpt_dir / "resumes.json")
    except (OSError, ValueError):
        return []
    return resumes if isinstance(resumes, list) else []


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

    # a signal before fit (while the images load) exits at once: nothing to keep yet
    with exit_on_signals(f"{network} fold {fold}"):
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
                 ", ImageNet weights" if settings.pretrained else ", from scratch")
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
                                             steps=math.ceil(len(train_rows) / settings.batch_size))
    stopper = next(c for c in trainer.callbacks if isinstance(c, StopOnSignal))
    try:
        with stopper.listening():
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except SIGTERMException:
        last = ckpt_dir / "last.ckpt"
        done = _checkpoint_epochs(last) if last.exists() else 0
        log.warning("%s fold %d: stopped by a signal (time limit, preemption or cancel) with %d "
                    "of %d epochs checkpointed in %s; rerun the job (Snakemake's retry does) to "
                    "resume from there.", network, fold, done or 0, plan.epochs, last)
        raise SystemExit(STOPPED_EXIT) from None
    if not trainer.is_global_zero:
        return out_dir / "model.pt"
    resumes = _read_resumes(ckpt_dir)
    if resumes:
        log.info("%s fold %d: trained in %d jobs, resumed %d time(s), after %s epochs.", network,
                 fold, len(resumes) + 1, len(resumes),
                 ", ".join(str(r["epochs_done"]) for r in resumes))
    return _export(module, checkpoint, out_dir)


@contextlib.contextmanager
def exit_on_signals(label: str, when: str = "before training started",
                    remedy: str = "rerun the job to train"):
    """SIGTERM/SIGUSR1 outside ``trainer.fit`` (before training starts, or while
    :mod:`ferxai.networks.train_evaluate` evaluates): exit 143 with a message saying ``when`` and the
    ``remedy``. During ``trainer.fit`` :class:`StopOnSignal` and Lightning handle them."""

    def stop(signum, frame):
        name = signal.Signals(signum).name
        log.warning("%s: %s %s; stopping (%s).", label, name, when, remedy)
        raise SystemExit(STOPPED_EXIT)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
                         input_size=plan.input_size, scratch_init=settings.scratch_init)
    channels_last = plan.device == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return FerClassifier(model, plan.optimizer, plan.lr, settings.seed, settings.augment,
                         channels_last, label=f"{plan.network} fold {plan.fold}")


def _build_trainer(plan: TrainPlan, out_dir: Path, has_val: bool, steps: int):
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor="val_loss" if has_val else None,
        mode="min",
        save_top_k=1,
        # without validation best.ckpt is the last epoch: last.ckpt links to it instead of being
        # a second copy written every epoch (AlexNet: 0.5 GB each)
        save_last=True if has_val else "link",
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
        callbacks=[
            checkpoint,
            StopOnSignal(stop_grace_seconds(), f"{plan.network} fold {plan.fold}"),
        ],
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
             out_dir / "history.csv")
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
    parser.set_defaults(provenance_inputs=("dataset", "folds"), provenance_outputs=("out_dir",))


def cli_train(args: argparse.Namespace) -> None:
    train(args.model, args.fold, args.dataset, args.folds, args.settings, args.out_dir,
          threads=args.threads)
