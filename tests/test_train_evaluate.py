"""``ferxai train-evaluate`` (evaluation.in_training_job): one process, the outputs of two."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from ferxai.cli import main
from ferxai.core import provenance
from ferxai.core.io import read_csv
from tests.test_training import FAST, make_dataset

torch.set_num_threads(1)

EVAL_FILES = ("predictions.csv", "metrics.json", "confusion.csv")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("fer"), subjects=4, per_class=1, size=24)


def _argv(dataset_csv, folds_csv):
    common = ["--model", "WeiNet", "--fold", "2", "--dataset", str(dataset_csv),
              "--folds", str(folds_csv), "--threads", "1"]
    train = json.dumps({**FAST, "epochs": 2, "val_fraction": 0})
    evaluate = json.dumps({"input_size": FAST["input_size"], "device": "cpu", "batch_size": 4})
    return common, train, evaluate


def test_merged_command_writes_what_train_then_evaluate_write(data, tmp_path):
    dataset_csv, folds_csv = data
    common, train, evaluate = _argv(dataset_csv, folds_csv)
    apart, merged = tmp_path / "apart", tmp_path / "merged"
    assert main(["train", *common, "--settings", train, "--out-dir", str(apart / "model")]) == 0
    assert main(["evaluate", *common, "--weights", str(apart / "model" / "model.pt"),
                 "--settings", evaluate, "--out-dir", str(apart / "eval")]) == 0
    assert main(["train-evaluate", *common, "--settings", train, "--out-dir",
                 str(merged / "model"), "--eval-settings", evaluate, "--eval-out-dir",
                 str(merged / "eval")]) == 0

    for name in EVAL_FILES:
        assert (merged / "eval" / name).read_bytes() == (apart / "eval" / name).read_bytes(), name
    assert (merged / "eval" / "confusion.png").is_file()
    ours, theirs = (read_csv(d / "model" / "history.csv") for d in (merged, apart))
    assert [{**r, "seconds": None} for r in ours] == [{**r, "seconds": None} for r in theirs]
    ours = torch.load(merged / "model" / "model.pt", weights_only=True)
    theirs = torch.load(apart / "model" / "model.pt", weights_only=True)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)

    # provenance: both output folders, with the dataset and folds as inputs, both settings
    for folder in ("model", "eval"):
        record = provenance.find(merged / folder)
        assert record is not None, folder
        text = json.dumps(record)
        assert str(dataset_csv) in text and str(folds_csv) in text
        assert '"batch_size": 4' in text and '"epochs": 2' in text  # eval and train settings


def test_signal_while_evaluating_exits_143(data, tmp_path, monkeypatch):
    """A time limit during evaluation: exit 143 (Snakemake's retry resumes from the checkpoint)."""
    import ferxai.networks.train_evaluate as merged

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM did not stop the evaluation")

    monkeypatch.setattr(merged, "evaluate", killed)
    dataset_csv, folds_csv = data
    _, train, evaluate = _argv(dataset_csv, folds_csv)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        merged.train_evaluate("WeiNet", 2, dataset_csv, folds_csv,
                              {**json.loads(train), "epochs": 1}, tmp_path / "model", evaluate,
                              tmp_path / "eval", threads=1)
    assert stop.value.code == 143
    assert (tmp_path / "model" / "checkpoints" / "last.ckpt").is_file()
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored


def test_rerun_for_new_evaluation_settings_trains_no_epoch_again(data, tmp_path, caplog):
    """Snakemake reruns the merged job when an evaluation setting changes, after removing its
    outputs: the training resumes from its complete checkpoint and exports the same weights."""
    import logging

    from ferxai.networks.train_evaluate import train_evaluate

    dataset_csv, folds_csv = data
    _, train, evaluate = _argv(dataset_csv, folds_csv)
    model, evaluated = tmp_path / "model", tmp_path / "eval"
    train_evaluate(
        "WeiNet", 2, dataset_csv, folds_csv, train, model, evaluate, evaluated, threads=1
    )
    first = torch.load(model / "model.pt", weights_only=True)
    history = read_csv(model / "history.csv")
    for name in ("model.pt", "history.csv", *EVAL_FILES):  # what Snakemake removes
        (model / name if name in ("model.pt", "history.csv") else evaluated / name).unlink()
    caplog.set_level(logging.INFO)
    caplog.clear()
    other = json.dumps({**json.loads(evaluate), "batch_size": 2})
    train_evaluate("WeiNet", 2, dataset_csv, folds_csv, train, model, other, evaluated, threads=1)
    assert "2 of 2 epochs done" in caplog.text
    assert "epoch 1/2" not in caplog.text and "epoch 2/2" not in caplog.text
    again = torch.load(model / "model.pt", weights_only=True)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert read_csv(model / "history.csv") == history
    assert (evaluated / "metrics.json").is_file()
