"""``ferxai folds``: the k-fold table. Subject-grouped when subjects are known, so no identity is in
both the training and the test set of a fold; stratified by expression either way."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ferxai.core.errors import ConfigError, DataError
from ferxai.core.io import write_csv

log = logging.getLogger(__name__)

FOLD_COLUMNS = ("image_id", "fold", "subject", "expression")
_FIX = "fix: lower data.folds (k) or add data"


def assign_folds(
    expressions: Sequence[str], subjects: Sequence[str], k: int, seed: int = 0
) -> np.ndarray:
    """Fold number (1..k) of every row; grouped by subject where it is given.

    Rows without a subject are their own group, so a dataset with no subjects at all is a plain
    stratified k-fold and a partly annotated one never splits a known identity.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if k < 2:
        raise ConfigError(f"data.folds: k = {k}; cross-validation needs k ≥ 2 (the paper uses 5).")
    labels = np.asarray(expressions)
    subject_cells = [s.strip() for s in subjects]
    _check_class_sizes(labels, k)
    folds = np.zeros(len(labels), dtype=np.int64)
    if any(subject_cells):
        groups = [s if s else f"\0row{i}" for i, s in enumerate(subject_cells)]
        _check_subjects(labels, groups, k)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups)
    else:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    for fold, (_, test) in enumerate(splits, start=1):
        folds[test] = fold
    _check_every_fold_has_every_class(labels, folds, k)
    return folds


def _check_class_sizes(labels: np.ndarray, k: int) -> None:
    counts = Counter(labels.tolist())
    small = {e: n for e, n in sorted(counts.items()) if n < k}
    if small:
        listed = ", ".join(f"{e} ({n})" for e, n in small.items())
        raise DataError(
            f"folds: {listed} image(s) — fewer than k = {k}, so some test fold would lack the "
            f"class; {_FIX} for these classes."
        )


def _check_subjects(labels: np.ndarray, groups: list[str], k: int) -> None:
    n_subjects = len(set(groups))
    if n_subjects < k:
        raise DataError(
            f"folds: only {n_subjects} subject(s) for k = {k} subject-disjoint folds; {_FIX} "
            "from more people (or leave the subject column empty to split images, not people)."
        )
    per_class = Counter(label for label, _ in set(zip(labels.tolist(), groups, strict=True)))
    few = {e: n for e, n in sorted(per_class.items()) if n < k}
    if few:
        listed = ", ".join(f"{e} ({n} subjects)" for e, n in few.items())
        raise DataError(
            f"folds: {listed} — fewer subjects than k = {k}, so some test fold would lack the "
            f"class; {_FIX} for these classes."
        )


def _check_every_fold_has_every_class(labels: np.ndarray, folds: np.ndarray, k: int) -> None:
    for fold in range(1, k + 1):
        missing = sorted(set(labels.tolist()) - set(labels[folds == fold].tolist()))
        if missing:
            raise DataError(
                f"folds: fold {fold} has no test image of {', '.join(missing)} (subjects are "
                f"unevenly spread over classes); {_FIX}, or try another data.seed."
            )


def make_folds(dataset_csv: str | Path, k: int, seed: int, out: str | Path) -> list[dict]:
    """Read ``dataset.csv``, assign folds, write ``folds.csv`` (rows in dataset order)."""
    from ferxai.data.dataset import iter_rows

    rows = list(iter_rows(dataset_csv))
    if not rows:
        raise DataError(f"{dataset_csv}: no images; fix: rerun `ferxai prepare` on a real dataset.")
    folds = assign_folds([r["expression"] for r in rows], [r["subject"] for r in rows], k, seed)
    table = [
        {
            "image_id": r["image_id"],
            "fold": int(f),
            "subject": r["subject"],
            "expression": r["expression"],
        }
        for r, f in zip(rows, folds, strict=True)
    ]
    write_csv(out, table, FOLD_COLUMNS)
    sizes = Counter(int(f) for f in folds)
    log.info("folds: %s -> %s", ", ".join(f"fold {f}: {sizes[f]}" for f in sorted(sizes)), out)
    return table


def cli_folds_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, type=Path, help="dataset.csv from prepare")
    parser.add_argument("--k", type=int, default=2, help="number of folds (paper: 5)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True, type=Path, help="folds.csv to write")
    parser.set_defaults(provenance_inputs=("dataset",), provenance_outputs=("out",))


def cli_folds(args: argparse.Namespace) -> None:
    make_folds(args.dataset, args.k, args.seed, args.out)
