"""Paper-style metric tables from ``metrics.csv``: CSV, Markdown and LaTeX.

For each metric (iou, f1, precision, recall) three tables, each with an ``Average`` column (mean over
expressions) and a last ``Average`` row (mean over rows), NaN (empty heatmaps) skipped in means:

* ``{prefix}_{metric}_by_network``: the by-network heatmaps (``fold == all``), networks × expressions;
* ``{prefix}_{metric}_by_fold``: the by-fold heatmaps, (network, fold) × expressions;
* ``{prefix}_{metric}_fold_mean``: per network, the mean over folds of the by-fold values.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ferxai.comparison.metrics import BINARY_METRICS
from ferxai.core.constants import EXPRESSIONS, network_order
from ferxai.core.errors import DataError
from ferxai.core.io import read_csv, write_csv, write_text

log = logging.getLogger(__name__)

TABLE_KINDS = ("by_network", "by_fold", "fold_mean")


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _with_averages(
    keys: list[tuple], cells: Mapping[tuple, dict[str, float]], expressions: Sequence[str]
) -> list[tuple[tuple, list[float]]]:
    """Rows of values (expressions + Average) followed by the Average row."""
    body = []
    for key in keys:
        values = [cells[key].get(e, float("nan")) for e in expressions]
        body.append((key, [*values, _nanmean(values)]))
    if body:
        columns = np.array([values for _, values in body], dtype=float).T
        body.append((("Average",), [_nanmean(list(col)) for col in columns]))
    return body


def build_table(
    rows: Sequence[Mapping[str, str]], metric: str, kind: str
) -> tuple[list[str], list[tuple[tuple, list[float]]]]:
    """(key column names, [(key, values)]) of one table; values follow EXPRESSIONS + Average."""
    fold_rows = [r for r in rows if r["fold"] != "all"]
    source = [r for r in rows if r["fold"] == "all"] if kind == "by_network" else fold_rows
    cells: dict[tuple, dict[str, list[float]]] = {}
    for r in source:
        key = (r["network"], int(r["fold"])) if kind == "by_fold" else (r["network"],)
        cells.setdefault(key, {}).setdefault(r["expression"], []).append(float(r[metric]))
    networks = network_order(sorted({k[0] for k in cells}))
    keys = sorted(cells, key=lambda k: (networks.index(k[0]), *k[1:]))
    means = {k: {e: _nanmean(v) for e, v in by_expr.items()} for k, by_expr in cells.items()}
    key_names = ["Network", "Fold"] if kind == "by_fold" else ["Network"]
    return key_names, _with_averages(keys, means, EXPRESSIONS)


def _cell(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.4f}"


def to_markdown(key_names: list[str], body, caption: str) -> str:
    header = [*key_names, *EXPRESSIONS, "Average"]
    lines = [f"**{caption}**", "", "| " + " | ".join(header) + " |"]
    lines.append(
        "| "
        + " | ".join(["---"] * len(key_names) + ["---:"] * (len(header) - len(key_names)))
        + " |"
    )
    for key, values in body:
        key_cells = list(key) + [""] * (len(key_names) - len(key))
        lines.append("| " + " | ".join([*map(str, key_cells), *map(_cell, values)]) + " |")
    if not body:
        lines.append("")
        lines.append("_No heatmaps of this kind were compared._")
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def to_latex(key_names: list[str], body, caption: str) -> str:
    header = [*key_names, *EXPRESSIONS, "Average"]
    spec = "l" * len(key_names) + "r" * (len(header) - len(key_names))
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{_tex_escape(caption)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(header) + r" \\",
        r"\hline",
    ]
    for key, values in body:
        if key == ("Average",):
            lines.append(r"\hline")
        key_cells = [_tex_escape(str(k)) for k in key] + [""] * (len(key_names) - len(key))
        lines.append(" & ".join([*key_cells, *map(_cell, values)]).replace("–", "--") + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def table_paths(prefix: str) -> list[Path]:
    """Every file :func:`write_tables` writes for ``prefix``."""
    return [
        Path(f"{prefix}_{metric}_{kind}.{suffix}")
        for metric in BINARY_METRICS
        for kind in TABLE_KINDS
        for suffix in ("csv", "md", "tex")
    ]


def write_table(
    prefix: str, metric: str, kind: str, rows: Sequence[Mapping[str, str]]
) -> list[Path]:
    """Write ``{prefix}_{metric}_{kind}.{csv,md,tex}``."""
    key_names, body = build_table(rows, metric, kind)
    base = f"{prefix}_{metric}_{kind}"
    caption = f"{metric.upper()} {kind.replace('_', ' ')}"
    fieldnames = [*key_names, *EXPRESSIONS, "Average"]
    csv_rows = []
    for key, values in body:
        key_cells = list(key) + [""] * (len(key_names) - len(key))
        csv_rows.append(dict(zip(fieldnames, [*key_cells, *values])))
    paths = [Path(base + ".csv"), Path(base + ".md"), Path(base + ".tex")]
    write_csv(paths[0], csv_rows, fieldnames)
    write_text(paths[1], to_markdown(key_names, body, caption))
    write_text(paths[2], to_latex(key_names, body, caption))
    return paths


def write_tables(metrics_csv: str | os.PathLike, prefix: str) -> list[Path]:
    """Every metric × table kind from one ``metrics.csv``."""
    rows = read_csv(metrics_csv)
    missing = {"network", "fold", "expression", *BINARY_METRICS} - set(rows[0] if rows else {})
    if not rows or missing:
        raise DataError(
            f"--metrics {metrics_csv}: expected the rows of `ferxai compare` (columns network, "
            f"fold, expression, {', '.join(BINARY_METRICS)}); "
            + (f"missing {sorted(missing)}." if rows else "it has no rows.")
        )
    return [
        p
        for m in BINARY_METRICS
        for kind in TABLE_KINDS
        for p in write_table(prefix, m, kind, rows)
    ]


# ``ferxai tables``: the paper's metric tables (CSV, Markdown, LaTeX) from ``metrics.csv``.
def cli_tables_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", required=True, help="metrics.csv of `ferxai compare`")
    parser.add_argument(
        "--out-prefix",
        required=True,
        help="PREFIX → PREFIX_{metric}_{by_network,by_fold,fold_mean}.{csv,md,tex}",
    )
    parser.set_defaults(
        provenance_inputs=("metrics",), provenance_outputs=(lambda a: table_paths(a.out_prefix),)
    )


def cli_tables(args: argparse.Namespace) -> None:
    written = write_tables(args.metrics, args.out_prefix)
    log.info("wrote %d tables", len(written))
