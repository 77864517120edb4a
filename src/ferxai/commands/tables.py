"""``ferxai tables``: the paper's metric tables (CSV, Markdown, LaTeX) from ``metrics.csv``."""

from __future__ import annotations

import argparse
import logging

from ferxai.tables import table_paths, write_tables

log = logging.getLogger(__name__)


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
