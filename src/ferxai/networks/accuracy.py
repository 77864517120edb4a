"""Run-level summaries for the report: accuracy per network and fold, explained-image counts.

``ferxai accuracy`` gathers every evaluation's ``metrics.json`` (each names its network and fold)
into one table with the mean ± sd over folds, and every positives ``counts.csv`` into one table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ferxai.core.io import read_csv, save_figure, write_csv

METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")


def positives_rows(count_files: list[str]) -> list[dict]:
    """Merge ``positives/{network}/fold{k}/counts.csv`` files (network and fold from the path)."""
    rows = []
    for path in count_files:
        folder = Path(path).parent
        fold, network = folder.name.removeprefix("fold"), folder.parent.name
        for row in read_csv(path):
            rows.append({"network": network, "fold": fold, **row})
    return rows


def accuracy_figure(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = [r for r in rows if r["fold"] == "mean"]
    sds = {r["network"]: r["accuracy"] for r in rows if r["fold"] == "sd"}
    means.sort(key=lambda r: r["accuracy"])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(means) + 1.2))
    y = np.arange(len(means))
    ax.barh(
        y,
        [r["accuracy"] for r in means],
        xerr=[sds[r["network"]] for r in means],
        color="#4c72b0",
        capsize=3,
    )
    ax.set_yticks(y, [r["network"] for r in means])
    ax.axvline(1 / 6, color="crimson", ls="--", lw=1, label="chance (1/6)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("test accuracy (mean ± sd over folds)")
    ax.legend(loc="lower right")
    save_figure(fig, path)


def cli_accuracy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", nargs="+", required=True, help="evaluation metrics.json files")
    parser.add_argument("--counts", nargs="*", default=[], help="positives counts.csv files")
    parser.add_argument("--out", required=True, help="accuracy table (CSV)")
    parser.add_argument("--positives-out", help="merged positives counts (CSV)")
    parser.add_argument("--figure", help="bar chart of accuracy per network (PNG)")
    parser.set_defaults(
        provenance_inputs=("metrics", "counts"),
        provenance_outputs=("out", "positives_out", "figure"),
    )


def cli_accuracy(args: argparse.Namespace) -> None:
    from ferxai.networks.evaluate import accuracy_table

    rows = accuracy_table(args.metrics)
    write_csv(args.out, rows, ["network", "fold", "n", *METRICS])
    if args.positives_out:
        fields = ["network", "fold", "expression", "available", "selected", "requested"]
        write_csv(args.positives_out, positives_rows(args.counts), fields)
    if args.figure:
        accuracy_figure(rows, args.figure)
