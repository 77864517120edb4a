"""Training: settings, seeded epoch streams, augmentation, resume (bit-identical), stale
checkpoints, outputs, the CLI, and scratch networks learning a tiny synthetic task."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError
from ferxai.core.io import write_csv
from ferxai.networks.training import (
    EpochSeededSampler,
    augment_batch,
    parse_settings,
    stream_seed,
    train,
)

torch.set_num_threads(1)

# A tiny learnable FER dataset (not the `synth` stage): each class puts a bright square at its
# own cell of a 3x3 grid on a noisy gray image. test_evaluation.py uses it too.
_CELLS = [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2), (1, 0)]  # class → (row, col) of a 3x3 grid


def make_dataset(root: Path, subjects: int = 4, per_class: int = 2, size: int = 36, folds: int = 2,
                 seed: int = 0) -> tuple[Path, Path]:
    """Write PNGs, dataset.csv and folds.csv (subjects split round-robin into folds)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows, fold_rows = [], []
    cell = size // 3
    for subject in range(subjects):
        for label, expression in enumerate(EXPRESSIONS):
            for k in range(per_class):
                image = rng.integers(40, 110, (size, size, 3)).astype(np.uint8)
                r, c = _CELLS[label]
                image[r * cell + 2 : (r + 1) * cell - 2, c * cell + 2 : (c + 1) * cell - 2] = 240
                image_id = f"s{subject}_{expression}_{k}"
                path = root / f"{image_id}.png"
                cv2.imwrite(str(path), image)
                rows.append({"image_id": image_id, "path": str(path), "expression": expression,
                             "label": label, "subject": f"s{subject}", "width": size,
                             "height": size, "landmarks": "", "sha1": ""})
                fold_rows.append({"image_id": image_id, "fold": subject % folds + 1,
                                  "subject": f"s{subject}", "expression": expression})
    dataset_csv, folds_csv = root / "dataset.csv", root / "folds.csv"
    write_csv(dataset_csv, rows, list(rows[0]))
    write_csv(folds_csv, fold_rows, list(fold_rows[0]))
    return dataset_csv, folds_csv


FAST = {"batch_size": 8, "input_size": 24, "seed": 3, "device": "cpu", "val_fraction": 0.5}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fer"), subjects=4, per_class=1, size=24)


def test_settings_defaults_and_errors():
    s = parse_settings(None)
    assert (s.batch_size, s.val_batch_size, s.optimizer, s.epochs) == (128, 32, "paper", None)
    assert parse_settings('{"lr": 0.01, "augment": true}').lr == 0.01
    for bad, match in [
        ('{"epoch": 3}', "unknown keys \\['epoch'\\]"),
        ('{"batch_size": "64"}', "batch_size"),
        ('{"augment": 1}', "augment"),
        ('{"optimizer": "sgd"}', "optimizer"),
        ('{"val_fraction": 1.0}', "val_fraction"),
        ("{oops", "not valid JSON"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_settings(bad)


def test_epoch_streams_depend_on_seed_and_epoch_only():
    sampler = EpochSeededSampler(50, seed=1)
    sampler.set_epoch(2)
    order = list(sampler)
    assert sorted(order) == list(range(50))
    again = EpochSeededSampler(50, seed=1)
    again.set_epoch(2)
    assert list(again) == order
    again.set_epoch(3)
    assert list(again) != order
    assert len({stream_seed(1, 2, s) for s in range(3)} | {stream_seed(2, 1, 0)}) == 4


def test_augmentation_is_seeded_bounded_and_varied():
    x = torch.rand(6, 3, 20, 20)
    first = augment_batch(x, torch.Generator().manual_seed(5))
    second = augment_batch(x, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)
    assert first.shape == x.shape and first.min() >= 0 and first.max() <= 1
    assert not torch.allclose(first, x)
    assert not torch.equal(first, augment_batch(x, torch.Generator().manual_seed(6)))


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(data, tmp_path, caplog):
    dataset_csv, folds_csv = data
    settings = {**FAST, "augment": True}  # augmentation and dropout streams must replay too
    straight = train("SongNet", 1, dataset_csv, folds_csv, {**settings, "epochs": 2},
                     tmp_path / "straight", threads=1)
    # "killed" after epoch 1: only the first epoch's checkpoint exists, then the job is rerun
    interrupted = tmp_path / "interrupted"
    train("SongNet", 1, dataset_csv, folds_csv, {**settings, "epochs": 1}, interrupted, threads=1)
    assert (interrupted / "checkpoints" / "last.ckpt").exists()
    with caplog.at_level(logging.INFO, logger="ferxai.networks.training"):
        resumed = train("SongNet", 1, dataset_csv, folds_csv, {**settings, "epochs": 2},
                        interrupted, threads=1)
    assert "resuming from" in caplog.text and "1 of 2 epochs done" in caplog.text

    a = torch.load(straight, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = (interrupted / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc")
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"]  # the count continued
    assert (interrupted / "checkpoints" / "best.ckpt").exists()
    assert list((interrupted / "logs").rglob("metrics.csv")), "no CSV metrics log"


def test_changed_settings_make_the_checkpoint_stale(data, tmp_path, caplog):
    dataset_csv, folds_csv = data
    out = tmp_path / "run"
    train("WeiNet", 2, dataset_csv, folds_csv, {**FAST, "epochs": 1}, out, threads=1)
    with caplog.at_level(logging.INFO, logger="ferxai.networks.training"):
        train("WeiNet", 2, dataset_csv, folds_csv, {**FAST, "epochs": 1, "seed": 4}, out,
              threads=1)
    assert "stale checkpoint" in caplog.text and "resuming" not in caplog.text
    stored = json.loads((out / "checkpoints" / "settings.json").read_text())
    assert stored["settings"]["seed"] == 4
    assert (out / "history.csv").read_text().count("\n") == 2  # header + one fresh epoch


def test_cli_train_writes_a_weights_only_state_dict(data, tmp_path):
    from ferxai.cli import main

    dataset_csv, folds_csv = data
    out = tmp_path / "cli"
    settings = json.dumps({**FAST, "epochs": 1, "val_fraction": 0})
    argv = ["train", "--model", "WeiNet", "--fold", "1", "--dataset", str(dataset_csv),
            "--folds", str(folds_csv), "--settings", settings, "--out-dir", str(out),
            "--threads", "1"]
    assert main(argv) == 0
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.is_tensor(v) for v in state.values())
    assert (out / "checkpoints" / "last.ckpt").exists() and (
        out / "checkpoints" / "best.ckpt"
    ).exists()
    assert (out / "checkpoints" / "last.ckpt").is_symlink()  # no validation: not a second copy
    bad = argv.copy()
    bad[2] = "NotANet"
    assert main(bad) == 2


def test_centred_training_stores_the_mean_training_image_with_the_weights(data, tmp_path):
    from ferxai.networks.inputs import preload_uint8, read_fold_split, to_float

    dataset_csv, folds_csv = data
    run = {**FAST, "epochs": 1, "val_fraction": 0, "center_inputs": True}
    weights = train("WeiNet", 1, dataset_csv, folds_csv, run, tmp_path / "model", threads=1)
    images = preload_uint8(read_fold_split(dataset_csv, folds_csv, 1).train, FAST["input_size"])
    expected = to_float(torch.from_numpy(images)).mean(0)
    stored = torch.load(weights, weights_only=True)["input_mean"]
    torch.testing.assert_close(stored, expected)


@pytest.mark.parametrize(
    "name, settings",
    [
        ("WeiNet", {"epochs": 6}),
        # the demo configuration (config/config.yaml) gives SongNet and AlexNet Adam, larger steps
        ("SongNet", {"epochs": 12, "optimizer": "adam", "lr": 1e-3}),
        # tens of millions of dense weights: 25-130 s on a busy 2-core machine
        pytest.param("SilNet", {"epochs": 5}, marks=pytest.mark.slow),
        pytest.param(
            "AlexNet",
            {"epochs": 6, "optimizer": "adam", "lr": 2e-4, "input_size": 64},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_scratch_networks_learn_the_synthetic_task(name, settings, tmp_path_factory):
    from ferxai.networks.evaluate import evaluate

    root = tmp_path_factory.mktemp(name)
    dataset_csv, folds_csv = make_dataset(root / "data", subjects=4, per_class=3, size=36)
    run = {"batch_size": 12, "input_size": 32, "seed": 0, "device": "cpu", "val_fraction": 0}
    run.update(settings)
    weights = train(name, 1, dataset_csv, folds_csv, run, root / "model", threads=1)
    metrics = evaluate(name, weights, 1, dataset_csv, folds_csv, run, root / "eval", threads=1)
    assert metrics["n"] == 36
    assert metrics["accuracy"] >= 0.5, f"{name}: {metrics['accuracy']:.3f} (chance 0.167)"


@pytest.mark.slow
def test_killed_job_resumes_from_its_last_checkpoint(data, tmp_path):
    """A real kill (SIGKILL) of `ferxai train` after its first checkpoint, then a rerun."""
    import signal
    import subprocess
    import sys
    import time

    dataset_csv, folds_csv = data
    out = tmp_path / "killed"
    settings = json.dumps({**FAST, "epochs": 30, "val_fraction": 0})
    argv = [sys.executable, "-m", "ferxai.cli", "train", "--model", "SongNet", "--fold", "1",
            "--dataset", str(dataset_csv), "--folds", str(folds_csv), "--settings", settings,
            "--out-dir", str(out), "--threads", "1"]
    job = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.communicate()
    assert not (out / "model.pt").exists(), "the job finished before it could be killed"
    killed_at = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] + 1

    rerun = subprocess.run(argv, stderr=subprocess.PIPE, text=True, check=True)
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'}" in rerun.stderr
    assert f"({killed_at} of 30 epochs done)" in rerun.stderr
    epochs = [line.split(",")[0] for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 31)]
    first_new = f"epoch {killed_at + 1}/30"
    assert first_new in rerun.stderr and f"epoch {killed_at}/30" not in rerun.stderr
