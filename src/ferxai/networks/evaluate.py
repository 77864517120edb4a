"""Test-fold evaluation (``ferxai evaluate``), accuracy tables, and positives (``ferxai positives``).

``evaluate`` runs a trained network on the test images of its fold (``fold == k``) and writes
predictions with class probabilities, metrics (accuracy, macro precision/recall/F1, sklearn's
classification report) and the confusion matrix. ``select_positives`` picks, per expression, up to
N test images the network predicts as that expression: the images the paper explains with LIME.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import read_csv, read_json, save_figure, write_csv, write_json

log = logging.getLogger(__name__)

PROB_COLUMNS = tuple(f"prob_{i}" for i in range(len(EXPRESSIONS)))
PREDICTION_COLUMNS = ("image_id", "true_label", "predicted", *PROB_COLUMNS)
POSITIVE_COLUMNS = ("image_id", "true_label", "predicted", "probability")
COUNT_COLUMNS = ("expression", "available", "selected", "requested")
TABLE_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")

_EVAL_DEFAULTS = {"input_size": None, "device": "auto", "precision": "auto", "batch_size": 64,
                  "cpu_forward": "auto"}


# ---------------------------------------------------------------------------------- evaluate


def parse_eval_settings(settings: str | dict | None) -> dict[str, Any]:
    """Evaluation settings (input_size, device, precision, batch_size, cpu_forward: the CPU
    forward path, :mod:`ferxai.networks.forward`); other keys are ignored
    so the training settings JSON can be passed as is."""
    if isinstance(settings, str):
        try:
            settings = json.loads(settings or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings: not valid JSON ({exc}). Pass a JSON object.") from exc
    settings = dict(settings or {})
    resolved = {k: settings.get(k, v) if settings.get(k) is not None else v
                for k, v in _EVAL_DEFAULTS.items()}
    if not isinstance(resolved["batch_size"], int) or resolved["batch_size"] < 1:
        raise ConfigError(f"evaluate settings: batch_size={resolved['batch_size']!r}; use >= 1.")
    from ferxai.networks.forward import check_choice

    check_choice(resolved["cpu_forward"])
    return resolved


def load_trained_model(network: str, weights: str | os.PathLike, input_size: int | None,
                       arch: str | None = None, class_order=None, card=None,
                       device=None):
    """Build ``network`` and load a ``model.pt`` state dict (``weights_only=True``) into it; with
    ``arch``/``class_order``, weights trained elsewhere (:func:`ferxai.networks.load_trained`); a
    whole model (TorchScript, torch.export, ONNX, Keras) with its ``card`` too (ONNX on ONNX
    Runtime when installed)."""
    import torch

    from ferxai.networks import create_model, load_trained
    from ferxai.networks.model_card import is_whole_model

    if is_whole_model(weights):  # the factory sends it to ferxai.networks.loaders
        return load_trained(network, str(weights), input_size, class_order, network,
                            device=device and str(device), **(card or {}))
    if card:  # a state dict takes none: refused with the reason
        return load_trained(arch or network, str(weights), input_size, class_order, network,
                            **card)
    if arch or class_order:
        return load_trained(arch or network, str(weights), input_size, class_order, network)
    model = create_model(network, input_size=input_size)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError as exc:
        raise DataError(f"{weights}: weights file not found; run `ferxai train` first.") from exc
    except (RuntimeError, KeyError, OSError, EOFError) as exc:
        raise DataError(
            f"{weights}: cannot load it into {network} at input_size {input_size} ({exc}). "
            "Use the input_size the network was trained with, or retrain it."
        ) from exc
    return model.eval()


def predict_probabilities(model, images_uint8: np.ndarray, device, precision: str,
                          batch_size: int, cpu_forward: str = "eager") -> np.ndarray:
    """Softmax probabilities (N, C) float64 of preloaded uint8 (N, 3, S, S) images; on the CPU in
    fp32 through the ``cpu_forward`` path (:func:`ferxai.networks.forward.select_forward`)."""
    import torch

    from ferxai.core.device import autocast
    from ferxai.networks.inputs import to_float

    model = model.to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = model
    if device.type == "cpu" and precision == "fp32" and len(images_uint8):
        from ferxai.networks.forward import select_forward

        first = to_float(torch.from_numpy(images_uint8[:batch_size]))
        forward = select_forward(model, first, cpu_forward, len(images_uint8)).forward
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images_uint8), batch_size):
            x = to_float(torch.from_numpy(images_uint8[start : start + batch_size]).to(device))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits = forward(x)
            chunks.append(torch.softmax(logits.float(), dim=1).double().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, len(EXPRESSIONS)))


def classification_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and sklearn's report over all six expressions."""
    from sklearn.metrics import classification_report, precision_recall_fscore_support

    labels = list(range(len(EXPRESSIONS)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        true, predicted, labels=labels, average="macro", zero_division=0
    )
    report = classification_report(true, predicted, labels=labels, target_names=EXPRESSIONS,
                                   output_dict=True, zero_division=0)
    return {
        "accuracy": float(np.mean(true == predicted)) if len(true) else float("nan"),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "classification_report": report,
        "n": int(len(true)),
    }


def confusion(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts (6, 6): rows = true expression, columns = predicted expression."""
    from sklearn.metrics import confusion_matrix

    n = len(EXPRESSIONS)
    if len(true) == 0:  # sklearn refuses empty input; an empty fold has no predictions
        return np.zeros((n, n), dtype=np.int64)
    return confusion_matrix(true, predicted, labels=list(range(n)))


def plot_confusion(matrix: np.ndarray, title: str, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    row_sums = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_sums, out=np.zeros(matrix.shape), where=row_sums > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                color="white" if shares[i, j] > 0.5 else "black")
    ticks = range(len(EXPRESSIONS))
    ax.set_xticks(ticks, EXPRESSIONS, rotation=35, ha="right")
    ax.set_yticks(ticks, EXPRESSIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true class")
    save_figure(fig, path)


def evaluate(
    network: str,
    weights: str | os.PathLike,
    fold: int,
    dataset_csv: str | os.PathLike,
    folds_csv: str | os.PathLike,
    settings: str | dict | None,
    out_dir: str | os.PathLike,
    threads: int | None = None,
    arch: str | None = None,
    class_order: Sequence[str] | None = None,
    card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate trained ``network`` on the test images of ``fold``; write the four outputs.
    ``arch``/``class_order``/``card``: a model trained elsewhere (its architecture, its head's
    classes, its input/output card: :mod:`ferxai.networks.model_card`)."""
    from ferxai.core.device import configure_threads, resolve_precision, select_device
    from ferxai.networks import resolve_input_size
    from ferxai.networks.inputs import labels_of, preload_uint8, read_fold_split

    options = parse_eval_settings(settings)
    configure_threads(threads)
    device = select_device(options["device"])
    precision = resolve_precision(options["precision"], device)
    from ferxai.networks.model_card import is_whole_model

    if is_whole_model(weights):  # its own size: the card's, else the one its file declares
        from ferxai.networks.model_check import trained_input_size

        given = {"input_size": options["input_size"], "class_order": class_order, **(card or {})}
        size = trained_input_size(weights, given, network)
    else:
        size = resolve_input_size(arch or network, options["input_size"])
    model = load_trained_model(network, weights, size, arch, class_order, card, device)

    rows = read_fold_split(dataset_csv, folds_csv, fold).test
    true = labels_of(rows)
    probabilities = predict_probabilities(model, preload_uint8(rows, size), device, precision,
                                          options["batch_size"], options["cpu_forward"])
    predicted = probabilities.argmax(axis=1)

    out_dir = Path(out_dir)
    write_csv(out_dir / "predictions.csv", _prediction_rows(rows, true, predicted, probabilities),
              PREDICTION_COLUMNS)
    metrics = {"network": network, "fold": fold, **classification_metrics(true, predicted)}
    metrics.update(_other_classes(model, class_order, rows, size, options["batch_size"], device))
    write_json(out_dir / "metrics.json", metrics)
    matrix = confusion(true, predicted)
    write_csv(out_dir / "confusion.csv", _confusion_rows(matrix), ("true", *EXPRESSIONS))
    plot_confusion(matrix, f"{network}, fold {fold}: accuracy {metrics['accuracy']:.3f}",
                   out_dir / "confusion.png")
    log.info("%s fold %d: accuracy %.4f, macro F1 %.4f on %d test images", network, fold,
             metrics["accuracy"], metrics["macro_f1"], metrics["n"])
    return metrics


def _other_classes(model, class_order, rows, size: int, batch_size: int,
                   device=None) -> dict[str, Any]:
    """The head's classes the six-expression study drops (Neutral, Contempt, ...) and, when the
    model's full output is at hand (:class:`ferxai.networks.loaders.CardModel`), the share of
    test images it scores highest on one of them: faces the six-way scores force into an
    expression. Nothing for a model with the six classes only."""
    from ferxai.networks.registry import class_rows

    order = list(getattr(getattr(model, "card", None), "class_order", None) or class_order or [])
    if not order:
        return {}
    kept, _ = class_rows(order, "class_order")
    dropped = [i for i in range(len(order)) if i not in kept]
    if not dropped:
        return {}
    out: dict[str, Any] = {"dropped_classes": [order[i] for i in dropped]}
    if hasattr(model, "scores") and rows:
        import torch

        from ferxai.networks.inputs import preload_uint8, to_float

        images = preload_uint8(rows, size)
        top = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = to_float(torch.from_numpy(images[start : start + batch_size]))
                top.append(model.scores(x.to(device or x.device)).argmax(dim=1))
        top = torch.cat(top).cpu().numpy()
        out["dropped_top_share"] = {order[i]: float(np.mean(top == i)) for i in dropped}
    return out


def _prediction_rows(rows, true, predicted, probabilities) -> Iterable[dict[str, Any]]:
    for row, t, p, probs in zip(rows, true, predicted, probabilities):
        yield {"image_id": row["image_id"], "true_label": int(t), "predicted": int(p),
               **{c: float(v) for c, v in zip(PROB_COLUMNS, probs)}}


def _confusion_rows(matrix: np.ndarray) -> Iterable[dict[str, Any]]:
    for expression, counts in zip(EXPRESSIONS, matrix):
        yield {"true": expression, **{e: int(c) for e, c in zip(EXPRESSIONS, counts)}}


# ------------------------------------------------------------------------------------ tables


def summarize_metrics(entries: Sequence[tuple[str, int, str | os.PathLike]]) -> list[dict]:
    """Rows per (network, fold) then ``mean`` and ``sd`` (sample sd, ddof=1; 0 for one fold)
    per network, networks in the paper's order (others after, alphabetically)."""
    from ferxai.core.constants import NETWORKS

    by_network: dict[str, list[dict[str, Any]]] = {}
    for network, fold, path in entries:
        metrics = read_json(path)
        row = {"network": network, "fold": int(fold)}
        row.update({k: float(metrics[k]) for k in TABLE_METRICS})
        row["n"] = int(metrics.get("n", 0))
        by_network.setdefault(network, []).append(row)
    order = {name: i for i, name in enumerate(NETWORKS)}
    table: list[dict[str, Any]] = []
    for network in sorted(by_network, key=lambda n: (order.get(n, len(order)), n)):
        rows = sorted(by_network[network], key=lambda r: r["fold"])
        values = np.array([[r[k] for k in TABLE_METRICS] for r in rows])
        sd = values.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(len(TABLE_METRICS))
        table += rows
        table.append({"network": network, "fold": "mean", "n": sum(r["n"] for r in rows),
                      **dict(zip(TABLE_METRICS, values.mean(axis=0).tolist()))})
        table.append({"network": network, "fold": "sd", "n": len(rows),
                      **dict(zip(TABLE_METRICS, sd.tolist()))})
    return table


def accuracy_table(metric_files: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """:func:`summarize_metrics` from metrics.json files alone (their ``network``/``fold`` keys).

    Columns: network, fold (int, "mean" or "sd"), accuracy, macro_precision, macro_recall,
    macro_f1, n (test images; for "sd" rows the number of folds).
    """
    entries = []
    for path in metric_files:
        metrics = read_json(path)
        if "network" not in metrics or "fold" not in metrics:
            raise DataError(f"{path}: no 'network'/'fold' keys; rerun `ferxai evaluate` for it.")
        entries.append((metrics["network"], int(metrics["fold"]), path))
    return summarize_metrics(entries)


# --------------------------------------------------------------------------------- positives


def read_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    rows = read_csv(path)
    missing = [c for c in PREDICTION_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; rerun `ferxai evaluate`.")
    return {
        "image_id": np.array([r["image_id"] for r in rows], dtype=object),
        "true_label": np.array([int(r["true_label"]) for r in rows], dtype=np.int64),
        "predicted": np.array([int(r["predicted"]) for r in rows], dtype=np.int64),
        "probabilities": np.array([[float(r[c]) for c in PROB_COLUMNS] for r in rows],
                                  dtype=np.float64).reshape(len(rows), len(PROB_COLUMNS)),
    }


def choose_positives(predicted: np.ndarray, true: np.ndarray, label: int, n: int, seed: int,
                     only_correct: bool) -> tuple[np.ndarray, int]:
    """Indices of up to ``n`` images predicted as ``label`` (and correct if ``only_correct``),
    drawn with ``Generator(seed + label)``; also returns how many were available."""
    mask = predicted == label
    if only_correct:
        mask &= true == label
    candidates = np.flatnonzero(mask)
    take = min(n, len(candidates))
    chosen = np.random.default_rng(seed + label).choice(candidates, size=take, replace=False)
    return chosen, len(candidates)


def select_positives(predictions_csv: str | os.PathLike, n: int, seed: int, only_correct: bool,
                     out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Write ``{Expression}.csv`` for all six expressions and ``counts.csv``; return the counts."""
    if n < 1:
        raise ConfigError(f"--n {n}: ask for at least one image per expression.")
    data = read_predictions(predictions_csv)
    out_dir = Path(out_dir)
    counts = []
    for label, expression in enumerate(EXPRESSIONS):
        chosen, available = choose_positives(data["predicted"], data["true_label"], label, n,
                                             seed, only_correct)
        chosen = chosen[np.argsort(data["image_id"][chosen].astype(str), kind="stable")]
        rows = [{"image_id": data["image_id"][i], "true_label": int(data["true_label"][i]),
                 "predicted": label, "probability": float(data["probabilities"][i, label])}
                for i in chosen]
        write_csv(out_dir / f"{expression}.csv", rows, POSITIVE_COLUMNS)
        counts.append({"expression": expression, "available": available,
                       "selected": len(chosen), "requested": n})
        if len(chosen) < n:
            log.warning("%s: only %d test images predicted as %s%s (asked for %d); using them all.",
                        predictions_csv, available, expression,
                        " and correct" if only_correct else "", n)
    write_csv(out_dir / "counts.csv", counts, COUNT_COLUMNS)
    return counts


# ---------------------------------------------------------------------------------------- CLI


def cli_evaluate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="network name, e.g. WeiNet")
    parser.add_argument("--weights", required=True, help="model.pt written by `ferxai train`")
    parser.add_argument("--fold", required=True, type=int, help="test fold k")
    parser.add_argument("--dataset", required=True, help="dataset.csv from `ferxai prepare`")
    parser.add_argument("--folds", required=True, help="folds.csv from `ferxai folds`")
    parser.add_argument("--settings", default="{}",
                        help="JSON: input_size, device, precision, batch_size, cpu_forward")
    parser.add_argument("--out-dir", required=True, help="writes predictions/metrics/confusion")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: job's)")
    parser.add_argument("--arch", default=None,
                        help="architecture of weights trained elsewhere (default: --model)")
    parser.add_argument("--class-order", nargs="+", default=None,
                        help="classes of that model's head in output order (default: ferxai's)")
    parser.add_argument("--card", default=None,
                        help="JSON: that model's input/output card (channels, layout, scale, "
                        "mean, std, output; docs/models.md)")
    parser.set_defaults(
        provenance_inputs=("weights", "dataset", "folds"), provenance_outputs=("out_dir",)
    )


def cli_evaluate(args: argparse.Namespace) -> None:
    evaluate(args.model, args.weights, args.fold, args.dataset, args.folds, args.settings,
             args.out_dir, threads=args.threads, arch=args.arch,
             class_order=args.class_order, card=parse_card(args.card))


def parse_card(text: str | None) -> dict[str, Any] | None:
    """``--card`` JSON → the card's keys (None without one)."""
    if not text:
        return None
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--card: not valid JSON ({exc}); give a JSON object.") from exc
    if not isinstance(card, dict):
        raise ConfigError(f"--card: expected a JSON object, got {type(card).__name__}.")
    return card


def cli_positives_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="predictions.csv of `evaluate`")
    parser.add_argument("--n", type=int, default=3, help="images per expression (paper: 100)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the draw")
    parser.add_argument("--only-correct", action="store_true",
                        help="keep only images whose true label is the predicted one")
    parser.add_argument("--out-dir", required=True, help="writes {Expression}.csv and counts.csv")
    parser.set_defaults(provenance_inputs=("predictions",), provenance_outputs=("out_dir",))


def cli_positives(args: argparse.Namespace) -> None:
    select_positives(args.predictions, args.n, args.seed, args.only_correct, args.out_dir)
