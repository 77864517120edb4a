"""Which device a job runs on, how many threads it uses, and its numeric precision."""

from __future__ import annotations

import contextlib
import os

from ferxai.core.errors import ConfigError


def job_cpus(default: int | None = None) -> int:
    """CPUs given to this job: SLURM's allocation, Snakemake's ``threads``, else the machine's."""
    for var in ("FERXAI_THREADS", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return default or os.cpu_count() or 1


def configure_threads(threads: int | None = None) -> int:
    """Make torch use the job's CPUs (not the whole node's) and return that number."""
    import torch

    n = threads or job_cpus()
    torch.set_num_threads(n)
    return n


def select_device(preference: str = "auto"):
    """``auto`` → the first GPU this job was given (CUDA_VISIBLE_DEVICES) else CPU; ``cpu``; ``cuda``.

    ``cuda`` where no GPU is visible raises :class:`ConfigError` instead of failing deep in torch.
    """
    import torch

    if preference == "cpu":
        return torch.device("cpu")
    if preference in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "device: 'cuda' was requested but no GPU is visible to this job "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). "
                "Set device: auto (GPU when present, else CPU) or run on a GPU node."
            )
        return torch.device("cuda")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    raise ConfigError(f"device: unknown value {preference!r}; use auto, cpu or cuda.")


def resolve_precision(precision: str, device) -> str:
    """``auto`` → bf16 on GPU, fp32 on CPU; otherwise ``fp32`` or ``bf16`` as given."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision: unknown value {precision!r}; use auto, fp32 or bf16.")
    return precision


def autocast(device, precision: str):
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
