"""Jobs stopped half way (SLURM time limit, preemption, scancel) resume where they stopped.

Attribution keeps the maps explained so far in ``.{stack}.resume.h5`` and continues after them;
training stops cleanly on SIGTERM and resumes from its last epoch checkpoint. Both end with the
results of an uninterrupted job. The same faults on a real SLURM: tests/test_slurm_faults.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal

import numpy as np
import pytest

import ferxai.attribution.attribute as attribute_cli
from ferxai.core.io import read_stack, write_stack
from ferxai.networks.forward import onnxruntime_available
from tests import test_attribute_cli

run = test_attribute_cli.run
job_files = test_attribute_cli.job_files  # the fixtures: three images, WeiNet weights, positives
one_thread = test_attribute_cli.one_thread


def _stop_after(monkeypatch, chunks: int) -> None:
    """SIGTERM to ourselves once ``chunks`` chunks are explained (what SLURM sends at a limit)."""
    real = attribute_cli._explain_chunk
    calls = []

    def explain(*args, **kwargs):
        if len(calls) == chunks:
            os.kill(os.getpid(), signal.SIGTERM)
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(attribute_cli, "_explain_chunk", explain)


def test_stopped_attribution_resumes_after_the_images_done(
    job_files, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(attribute_cli, "IMAGES_PER_CHUNK", 1)
    reference = tmp_path / "reference" / "Fear.h5"
    assert run(job_files, reference) == 0
    assert not attribute_cli.resume_path(reference).exists()  # cleaned up once the job is done

    out = tmp_path / "Fear.h5"
    with monkeypatch.context() as patch:
        _stop_after(patch, 2)
        with pytest.raises(SystemExit) as stopped:
            run(job_files, out)
    assert stopped.value.code == 143
    assert not out.exists()
    partial = attribute_cli.resume_path(out)
    assert partial.name == ".Fear.resume.h5" and len(read_stack(partial)) == 2

    with caplog.at_level(logging.INFO, logger="ferxai.attribution"):
        assert run(job_files, out) == 0
    assert "2 of 3 images already explained, 1 to go" in caplog.text
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists()


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime/onnx not installed")
def test_auto_forward_path_is_recorded_and_the_same_on_resume_and_rerun(
    job_files, tmp_path, monkeypatch
):
    """cpu_forward: auto (the default) takes ONNX Runtime when the stack's forward passes repay
    the export, by a rule: the first attempt, the resumed one and a rerun all take it, and the
    stacks are byte-identical. (NOMINAL_FLOPS lowered so that this small job repays it.)"""
    import ferxai.networks.forward as forward_module

    monkeypatch.setattr(forward_module, "NOMINAL_FLOPS", 1e6)
    monkeypatch.setattr(attribute_cli, "IMAGES_PER_CHUNK", 1)
    reference = tmp_path / "reference" / "Fear.h5"
    assert run(job_files, reference) == 0
    attrs = read_stack(reference).attrs
    assert attrs["forward_path"] == "onnxruntime"
    rule = attrs["forward_auto_rule"]
    rule = json.loads(rule) if isinstance(rule, str) else rule
    assert rule["onnxruntime"] is True and rule["expected_images"] == 3 * 24  # images x samples
    assert attrs["forward_batch"] >= 8
    rerun = tmp_path / "rerun" / "Fear.h5"
    assert run(job_files, rerun) == 0
    assert rerun.read_bytes() == reference.read_bytes()
    out = tmp_path / "Fear.h5"
    with monkeypatch.context() as patch:
        _stop_after(patch, 1)
        with pytest.raises(SystemExit):
            run(job_files, out)
    assert run(job_files, out) == 0
    assert out.read_bytes() == reference.read_bytes()


def test_resume_file_of_other_settings_is_ignored(job_files, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(attribute_cli, "IMAGES_PER_CHUNK", 1)
    reference = tmp_path / "reference" / "Fear.h5"
    assert run(job_files, reference) == 0
    out = tmp_path / "Fear.h5"
    stale = read_stack(reference)
    stale.attrs["resume_identity"] = "another job"
    write_stack(attribute_cli.resume_path(out), stale)
    with caplog.at_level(logging.INFO, logger="ferxai.attribution"):
        assert run(job_files, out) == 0
    assert "from other inputs or settings" in caplog.text
    assert out.read_bytes() == reference.read_bytes()


def test_damaged_resume_file_is_ignored(job_files, tmp_path, monkeypatch):
    out = tmp_path / "Fear.h5"
    attribute_cli.resume_path(out).write_bytes(b"\x89HDF half")
    assert run(job_files, out) == 0
    reference = tmp_path / "reference.h5"
    assert run(job_files, reference) == 0
    np.testing.assert_array_equal(read_stack(out).maps, read_stack(reference).maps)


# ------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def fer_data(tmp_path_factory):
    from tests.test_training import make_dataset

    return make_dataset(tmp_path_factory.mktemp("fer"), subjects=4, per_class=1, size=24)


TRAIN = {"batch_size": 2, "input_size": 24, "seed": 3, "device": "cpu", "val_fraction": 0.5,
         "augment": True, "epochs": 3}


def _signal_during(monkeypatch, signum: int, epoch: int, batch: int) -> None:
    """Send ``signum`` to ourselves inside training step ``batch`` of ``epoch`` (0-based)."""
    from ferxai.networks.training import FerClassifier

    real = FerClassifier.training_step

    def step(self, batch_data, batch_idx):
        if (self.current_epoch, batch_idx) == (epoch, batch):
            os.kill(os.getpid(), signum)
        return real(self, batch_data, batch_idx)

    monkeypatch.setattr(FerClassifier, "training_step", step)


@pytest.mark.parametrize(
    ("signum", "grace", "checkpointed"),
    [(signal.SIGTERM, "60", 2), (signal.SIGUSR1, "60", 2), (signal.SIGTERM, "0", 1)],
    ids=["sigterm-finishes-epoch", "sigusr1-finishes-epoch", "sigterm-no-time-stops-now"],
)
def test_signalled_training_stops_cleanly_and_resumes_identically(
    fer_data, tmp_path, monkeypatch, caplog, signum, grace, checkpointed
):
    import torch

    from ferxai.networks.training import train

    dataset_csv, folds_csv = fer_data
    straight = train("WeiNet", 1, dataset_csv, folds_csv, TRAIN, tmp_path / "straight", threads=1)
    out = tmp_path / "signalled"
    monkeypatch.setenv("FERXAI_STOP_GRACE_S", grace)
    with monkeypatch.context() as patch:
        _signal_during(patch, signum, epoch=1, batch=0)
        with pytest.raises(SystemExit) as stopped, caplog.at_level(logging.INFO):
            train("WeiNet", 1, dataset_csv, folds_csv, TRAIN, out, threads=1)
    assert stopped.value.code == 143
    assert f"with {checkpointed} of 3 epochs checkpointed" in caplog.text
    assert not (out / "model.pt").exists()
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] + 1 == (
        checkpointed
    )
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # handlers restored
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ferxai.networks.training"):
        resumed = train("WeiNet", 1, dataset_csv, folds_csv, TRAIN, out, threads=1)
    assert f"({checkpointed} of 3 epochs done); resume 1 of this training" in caplog.text
    assert "trained in 2 jobs, resumed 1 time(s)" in caplog.text
    assert resumed.read_bytes() == straight.read_bytes()
    columns = slice(0, -1)  # all but the wall-clock seconds
    rows = [line.split(",")[columns] for line in (out / "history.csv").read_text().splitlines()]
    reference = (tmp_path / "straight" / "history.csv").read_text().splitlines()
    assert rows == [line.split(",")[columns] for line in reference]


def test_signal_before_training_starts_exits_143(fer_data, tmp_path, monkeypatch, caplog):
    import ferxai.networks.training

    real = ferxai.networks.training.preload_uint8

    def preload(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(ferxai.networks.training, "preload_uint8", preload)
    dataset_csv, folds_csv = fer_data
    with pytest.raises(SystemExit) as stopped, caplog.at_level(logging.INFO):
        ferxai.networks.training.train("WeiNet", 1, dataset_csv, folds_csv, TRAIN, tmp_path, threads=1)
    assert stopped.value.code == 143 and "SIGTERM before training started" in caplog.text
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
