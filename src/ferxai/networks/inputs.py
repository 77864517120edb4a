"""The images of one fold as preloaded network inputs, shared by training and evaluation.

Images are decoded and resized once (``ferxai.data.images``) and kept as uint8: the network input
``to_network_input`` makes is exactly ``uint8 / 255``, so storing the bytes is lossless and four
times smaller than float32, and training never decodes an image per step.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import DataError
from ferxai.core.io import read_csv


@dataclass
class FoldSplit:
    """Rows of dataset.csv split by fold: ``train`` (fold != k) and ``test`` (fold == k)."""

    fold: int
    train: list[dict[str, str]]
    test: list[dict[str, str]]


def read_fold_split(dataset_csv: str | os.PathLike, folds_csv: str | os.PathLike, fold: int):
    """Join dataset.csv with folds.csv on ``image_id`` and split by ``fold``."""
    dataset = read_csv(dataset_csv)
    folds = {row["image_id"]: row for row in read_csv(folds_csv)}
    missing = [row["image_id"] for row in dataset if row["image_id"] not in folds]
    if missing:
        raise DataError(
            f"{folds_csv}: {len(missing)} images of {dataset_csv} have no fold (first: "
            f"{missing[0]}). The folds table is stale; rerun `ferxai folds`."
        )
    known = sorted({int(row["fold"]) for row in folds.values()})
    if fold not in known:
        raise DataError(
            f"{folds_csv}: fold {fold} does not exist (folds: {known}). Use one of those folds."
        )
    train = [row for row in dataset if int(folds[row["image_id"]]["fold"]) != fold]
    test = [row for row in dataset if int(folds[row["image_id"]]["fold"]) == fold]
    if not train or not test:
        raise DataError(f"{folds_csv}: fold {fold} leaves an empty training or test set.")
    return FoldSplit(fold, train, test)


def split_validation(rows: list[dict[str, str]], fraction: float, seed: int):
    """Hold out ``fraction`` of the *subjects* (drawn with ``seed``) so no face is in both sets."""
    if fraction <= 0:
        return rows, []
    subjects = sorted({row["subject"] for row in rows})
    n_val = min(max(1, round(fraction * len(subjects))), len(subjects) - 1)
    if n_val < 1:
        return rows, []  # a single subject cannot be split; train on all of it
    held = set(np.random.default_rng(seed).permutation(subjects)[:n_val].tolist())
    return (
        [row for row in rows if row["subject"] not in held],
        [row for row in rows if row["subject"] in held],
    )


def ids_digest(rows: list[dict[str, str]]) -> str:
    """sha256 of the sorted image ids: identifies a training set for resume checks."""
    joined = "\n".join(sorted(row["image_id"] for row in rows))
    return hashlib.sha256(joined.encode()).hexdigest()


def labels_of(rows: list[dict[str, str]]) -> np.ndarray:
    labels = np.array([int(row["label"]) for row in rows], dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(EXPRESSIONS)):
        raise DataError(f"dataset.csv: labels must be 0..{len(EXPRESSIONS) - 1}.")
    return labels


def preload_uint8(rows: list[dict[str, str]], size: int) -> np.ndarray:
    """Decode and resize every image once into uint8 (N, 3, size, size)."""
    from ferxai.data.images import load_rgb, to_network_input

    batch = np.empty((len(rows), 3, size, size), dtype=np.uint8)
    for i, row in enumerate(rows):
        batch[i] = np.rint(to_network_input(load_rgb(row["path"]), size) * 255.0)
    return batch


def to_float(batch_uint8):
    """uint8 tensor → float32 in [0, 1], bit-identical to ``to_network_input``."""
    return batch_uint8.float() / 255.0
