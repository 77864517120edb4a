"""Evaluation outputs, metric tables and positives selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import read_csv, write_csv, write_json
from ferxai.networks import create_model
from ferxai.networks.evaluate import (
    accuracy_table,
    choose_positives,
    classification_metrics,
    confusion,
    evaluate,
    select_positives,
)
from tests.test_training import make_dataset

torch.set_num_threads(1)


def test_metrics_by_hand():
    true = np.array([0, 0, 1, 1, 2, 3])
    predicted = np.array([0, 1, 1, 1, 2, 5])
    metrics = classification_metrics(true, predicted)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # per class precision: 1, 2/3, 1, 0, 0(none predicted), 0 → macro over all six classes
    assert metrics["macro_precision"] == pytest.approx((1 + 2 / 3 + 1) / 6)
    assert metrics["macro_recall"] == pytest.approx((0.5 + 1 + 1) / 6)
    assert metrics["classification_report"]["Disgust"]["support"] == 2
    matrix = confusion(true, predicted)
    assert matrix.shape == (6, 6) and matrix.sum() == 6
    assert matrix[0, 1] == 1 and matrix[1, 1] == 2 and matrix[3, 5] == 1


def test_evaluate_writes_predictions_metrics_and_confusion(tmp_path):
    dataset_csv, folds_csv = make_dataset(tmp_path / "data", subjects=2, per_class=1, size=24)
    torch.manual_seed(0)
    weights = tmp_path / "model.pt"
    torch.save(create_model("WeiNet", input_size=24).state_dict(), weights)
    out = tmp_path / "eval"
    metrics = evaluate("WeiNet", weights, 2, dataset_csv, folds_csv, {"input_size": 24,
                       "device": "cpu", "epochs": 3}, out, threads=1)

    rows = read_csv(out / "predictions.csv")
    assert list(rows[0]) == ["image_id", "true_label", "predicted"] + [
        f"prob_{i}" for i in range(6)
    ]
    assert len(rows) == 6 and all(r["image_id"].startswith("s1_") for r in rows)  # fold 2 = s1
    probs = np.array([[float(r[f"prob_{i}"]) for i in range(6)] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1)
    assert [int(r["predicted"]) for r in rows] == probs.argmax(axis=1).tolist()

    stored = json.loads((out / "metrics.json").read_text())
    assert stored["network"] == "WeiNet" and stored["fold"] == 2 and stored["n"] == 6
    assert stored["accuracy"] == metrics["accuracy"]
    assert {"macro_precision", "macro_recall", "macro_f1", "classification_report"} <= set(stored)
    matrix = read_csv(out / "confusion.csv")
    assert [r["true"] for r in matrix] == list(EXPRESSIONS)
    assert sum(int(r[e]) for r in matrix for e in EXPRESSIONS) == 6
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_weights_of_another_size(tmp_path):
    dataset_csv, folds_csv = make_dataset(tmp_path / "data", subjects=2, per_class=1, size=24)
    weights = tmp_path / "model.pt"
    torch.save(create_model("WeiNet", input_size=24).state_dict(), weights)
    with pytest.raises(DataError, match="input_size"):
        evaluate("WeiNet", weights, 1, dataset_csv, folds_csv, {"input_size": 32}, tmp_path / "e")


def _metrics_file(path, network, fold, accuracy, f1):
    write_json(path, {"network": network, "fold": fold, "accuracy": accuracy, "macro_f1": f1,
                      "macro_precision": f1, "macro_recall": f1, "n": 10})
    return path


def test_accuracy_table_mean_and_sd_per_network(tmp_path):
    files = [
        _metrics_file(tmp_path / "a.json", "VGG16", 2, 0.7, 0.6),
        _metrics_file(tmp_path / "b.json", "VGG16", 1, 0.9, 0.8),
        _metrics_file(tmp_path / "c.json", "WeiNet", 1, 0.5, 0.4),
    ]
    table = accuracy_table([str(f) for f in files])
    assert [(r["network"], r["fold"]) for r in table] == [
        ("WeiNet", 1), ("WeiNet", "mean"), ("WeiNet", "sd"),  # the paper's order
        ("VGG16", 1), ("VGG16", 2), ("VGG16", "mean"), ("VGG16", "sd"),
    ]
    vgg_mean, vgg_sd = table[5], table[6]
    assert vgg_mean["accuracy"] == pytest.approx(0.8)
    assert vgg_sd["accuracy"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert table[2]["accuracy"] == 0.0  # one fold: no spread
    write_json(tmp_path / "bad.json", {"accuracy": 1})
    with pytest.raises(DataError, match="network"):
        accuracy_table([str(tmp_path / "bad.json")])


# --------------------------------------------------------------------------------- positives


def _predictions(path, true, predicted):
    rng = np.random.default_rng(0)
    rows = []
    for i, (t, p) in enumerate(zip(true, predicted)):
        probs = rng.dirichlet(np.ones(6))
        probs[[p, probs.argmax()]] = probs[[probs.argmax(), p]]  # make p the argmax
        rows.append({"image_id": f"img{i:03d}", "true_label": t, "predicted": p,
                     **{f"prob_{k}": float(v) for k, v in enumerate(probs)}})
    write_csv(path, rows, list(rows[0]))
    return rows


def test_positives_selection(tmp_path):
    rng = np.random.default_rng(1)
    # Anger predicted 30 times, Fear 3 times, Surprise never
    predicted = np.array([0] * 30 + [1] * 12 + [2] * 3 + [3] * 8 + [4] * 7)
    true = np.where(rng.random(len(predicted)) < 0.7, predicted, (predicted + 1) % 6)
    rows = _predictions(tmp_path / "predictions.csv", true, predicted)
    counts = select_positives(tmp_path / "predictions.csv", 10, 5, False, tmp_path / "pos")

    by_name = {c["expression"]: c for c in counts}
    assert by_name["Anger"] == {"expression": "Anger", "available": 30, "selected": 10,
                                "requested": 10}
    assert (by_name["Fear"]["available"], by_name["Fear"]["selected"]) == (3, 3)
    assert by_name["Surprise"]["selected"] == 0
    assert (tmp_path / "pos" / "Surprise.csv").read_text().strip() == (
        "image_id,true_label,predicted,probability"
    )
    anger = read_csv(tmp_path / "pos" / "Anger.csv")
    ids = [r["image_id"] for r in anger]
    assert ids == sorted(ids) and len(set(ids)) == 10
    assert all(r["predicted"] == "0" for r in anger)
    by_id = {r["image_id"]: r for r in rows}
    assert all(float(r["probability"]) == by_id[r["image_id"]]["prob_0"] for r in anger)
    # the draw is numpy's Generator(seed + label) over the candidates in file order
    expected = np.random.default_rng(5 + 0).choice(np.arange(30), size=10, replace=False)
    assert ids == sorted(f"img{i:03d}" for i in expected)
    assert read_csv(tmp_path / "pos" / "counts.csv")[0]["available"] == "30"

    again = select_positives(tmp_path / "predictions.csv", 10, 5, False, tmp_path / "pos2")
    assert again == counts
    assert (tmp_path / "pos2" / "Anger.csv").read_bytes() == (
        tmp_path / "pos" / "Anger.csv"
    ).read_bytes()


def test_only_correct_positives():
    predicted = np.array([0, 0, 0, 0, 1])
    true = np.array([0, 2, 0, 3, 1])
    chosen, available = choose_positives(predicted, true, 0, 10, 0, only_correct=True)
    assert available == 2 and sorted(chosen.tolist()) == [0, 2]
    chosen, available = choose_positives(predicted, true, 0, 10, 0, only_correct=False)
    assert available == 4 and len(chosen) == 4


def test_positives_cli_and_errors(tmp_path):
    from ferxai.cli import main

    _predictions(tmp_path / "predictions.csv", [0, 1, 1], [0, 1, 0])
    argv = ["positives", "--predictions", str(tmp_path / "predictions.csv"), "--n", "1",
            "--seed", "0", "--only-correct", "--out-dir", str(tmp_path / "pos")]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "pos").iterdir()) == sorted(
        [f"{e}.csv" for e in EXPRESSIONS] + ["counts.csv"]
    )
    assert read_csv(tmp_path / "pos" / "Anger.csv")[0]["image_id"] == "img000"
    with pytest.raises(ConfigError):
        select_positives(tmp_path / "predictions.csv", 0, 0, False, tmp_path / "x")
