"""Train one network on one fold, then evaluate it on its test fold: ``ferxai train-evaluate``.

The two stages in one process (the workflow's ``evaluation.in_training_job``): the interpreter and
its torch/timm imports start once per (network, fold) instead of twice. It calls
:func:`ferxai.networks.training.train`, then :func:`ferxai.networks.evaluate.evaluate` on the ``model.pt`` it
exported, so its outputs are byte for byte those of ``ferxai train`` followed by
``ferxai evaluate`` with the same settings.

Signals keep their meaning: during training as in ``ferxai train`` (finish or stop the epoch,
checkpoint, exit 143); during evaluation the job exits 143 at once. Snakemake then removes the
job's outputs (``model.pt`` among them), and its retry resumes from the complete checkpoint: no
epoch is trained again, the weights are exported again and evaluated.
"""

from __future__ import annotations

import argparse
import os

from ferxai.networks.evaluate import evaluate
from ferxai.networks.training import exit_on_signals, train


def train_evaluate(
    network: str,
    fold: int,
    dataset_csv: str | os.PathLike,
    folds_csv: str | os.PathLike,
    settings,
    out_dir: str | os.PathLike,
    eval_settings,
    eval_out_dir: str | os.PathLike,
    threads: int | None = None,
) -> dict | None:
    """Train (``out_dir``: model.pt, history.csv), then evaluate (``eval_out_dir``: predictions,
    metrics, confusion matrix and figure); return the metrics (None on a non-zero DDP rank)."""
    weights = train(network, fold, dataset_csv, folds_csv, settings, out_dir, threads=threads)
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP rank: rank 0 exports and evaluates
        return None
    # the retry resumes from the finished training's checkpoint: no epoch is trained again
    with exit_on_signals(
        f"{network} fold {fold}",
        "while evaluating",
        "the rerun resumes from the complete checkpoint and evaluates again",
    ):
        return evaluate(network, weights, fold, dataset_csv, folds_csv, eval_settings,
                        eval_out_dir, threads=threads)


# ---------------------------------------------------------------------------------------- CLI


def cli_train_evaluate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="network name, e.g. WeiNet (see docs)")
    parser.add_argument("--fold", required=True, type=int, help="test fold k (trains on the rest)")
    parser.add_argument("--dataset", required=True, help="dataset.csv from `ferxai prepare`")
    parser.add_argument("--folds", required=True, help="folds.csv from `ferxai folds`")
    parser.add_argument("--settings", default="{}", help="training settings as a JSON object")
    parser.add_argument("--out-dir", required=True, help="writes model.pt, history.csv there")
    parser.add_argument("--eval-settings", default="{}",
                        help="JSON: input_size, device, precision, batch_size, cpu_forward "
                             "(`ferxai evaluate --settings`)")
    parser.add_argument("--eval-out-dir", required=True,
                        help="writes predictions/metrics/confusion there")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: job's)")
    parser.set_defaults(provenance_inputs=("dataset", "folds"),
                        provenance_outputs=("out_dir", "eval_out_dir"))


def cli_train_evaluate(args: argparse.Namespace) -> None:
    train_evaluate(args.model, args.fold, args.dataset, args.folds, args.settings, args.out_dir,
                   args.eval_settings, args.eval_out_dir, threads=args.threads)
