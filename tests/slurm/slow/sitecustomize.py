"""Slow ferxai's jobs down without using CPU, for the SLURM fault tests (tests/test_slurm_faults.py).

On PYTHONPATH, Python imports this at start-up. When ``ferxai.networks.training`` or
``ferxai.attribution.attribute`` is imported later, each training batch sleeps ``FERXAI_TEST_SLOW_BATCH_S``
seconds and each attribution chunk ``FERXAI_TEST_SLOW_CHUNK_S`` seconds: a tiny `.test` job then
lasts long enough to meet a SLURM time limit or an ``scancel``, and its results are unchanged.

``FERXAI_TEST_STATUS_POLL_S`` caps the seconds between Snakemake's status checks of its remote
jobs: the SLURM plugin adds 10 s per check while a job runs (1, 11, 21, 31 s...), so the end of a
one-minute job is otherwise noticed up to 40 s late, and a chain of retried jobs waits for it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time


def _slow_training(module) -> None:
    delay = float(os.environ.get("FERXAI_TEST_SLOW_BATCH_S", "0"))
    real = module.FerClassifier.training_step

    def training_step(self, batch, batch_idx):
        time.sleep(delay)
        return real(self, batch, batch_idx)

    module.FerClassifier.training_step = training_step


def _slow_attribution(module) -> None:
    delay = float(os.environ.get("FERXAI_TEST_SLOW_CHUNK_S", "0"))
    real = module._explain_chunk

    def explain_chunk(*args, **kwargs):
        time.sleep(delay)
        return real(*args, **kwargs)

    module._explain_chunk = explain_chunk


def _fast_polls(module) -> None:
    cap = float(os.environ.get("FERXAI_TEST_STATUS_POLL_S", "0"))
    if cap <= 0:
        return
    prop = module.RemoteExecutor.next_seconds_between_status_checks

    def capped(self, value):
        prop.fset(self, min(value, cap))

    module.RemoteExecutor.next_seconds_between_status_checks = property(prop.fget, capped)


PATCHES = {
    "ferxai.networks.training": _slow_training,
    "ferxai.attribution.attribute": _slow_attribution,
    "snakemake_interface_executor_plugins.executors.remote": _fast_polls,
}


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            PATCHES[name](module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
