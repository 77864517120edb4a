"""``ferxai landmarks-qa``: the landmark QA figure of the report.

Per expression a seeded sample of faces, each with its 68 points drawn (coloured by region) beside
the same face warped onto the canonical canvas by the warp that normalizes the explanations
(``ferxai.normalization.warp.warp_images``), so a wrong fit shows at a glance; below, faces whose landmarks
the plausibility check rejected (``ferxai.normalization.plausibility``), with their rejected points.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

REJECTED_ROW = "rejected"


def qa_panels(dataset_rows, table, per_expression: int, seed: int, template=None) -> dict:
    """Panels of the figure: {expression: [QAPanel, ...], "rejected": [...]} (see the module)."""
    from ferxai.data.images import load_rgb
    from ferxai.normalization.landmark_figures import QAPanel
    from ferxai.normalization.plausibility import sample_per_expression
    from ferxai.normalization.warp import warp_images

    index = {image_id: k for k, image_id in enumerate(table.image_id)}
    residual = table.residual if table.residual is not None else np.full(len(index), np.nan)
    rejected = table.rejected

    def panel(row, rejected_view: bool = False):
        k = index.get(row["image_id"])
        try:
            rgb = load_rgb(row["path"])
        except DataError:
            rgb = np.zeros((8, 8, 3), np.uint8)
        ok = k is not None and bool(table.ok[k])
        points = table.landmarks[k] if ok else None
        if rejected_view and rejected is not None:
            points = rejected[k]
        note = "" if k is None else table.reason[k]
        if k is not None and np.isfinite(residual[k]) and not note:
            note = f"residual {residual[k]:.2f}"
        warped = None
        if points is not None and np.isfinite(points).all():
            warped = warp_images(rgb[None], points[None], "bilinear", template)[0]
        return QAPanel(rgb, points, warped, _short(row["image_id"]), note, failed=not ok)

    expressions = [e for e in EXPRESSIONS if any(r["expression"] == e for r in dataset_rows)]
    chosen = sample_per_expression(dataset_rows, expressions, per_expression, seed)
    rows = {e: [panel(dataset_rows[k]) for k in chosen[e]] for e in expressions}
    by_id = {row["image_id"]: row for row in dataset_rows}
    flagged = [] if rejected is None else np.flatnonzero(np.isfinite(rejected).all(axis=(1, 2)))
    flagged = [table.image_id[k] for k in flagged if table.image_id[k] in by_id][:per_expression]
    if flagged:
        rows[REJECTED_ROW] = [panel(by_id[i], rejected_view=True) for i in flagged]
    return rows


def _short(image_id: str, keep: int = 28) -> str:
    name = Path(image_id).name
    return name if len(name) <= keep else "…" + name[-keep + 1 :]


def cli_landmarks_qa_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, type=Path, help="dataset.csv of `prepare`")
    parser.add_argument("--landmarks", required=True, type=Path, help="landmarks.h5")
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--per-expression", type=int, default=3, help="faces per expression")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--template", type=Path, default=None, help="canonical template JSON")
    parser.set_defaults(
        provenance_inputs=("dataset", "landmarks", "template"), provenance_outputs=("out",)
    )


def cli_landmarks_qa(args: argparse.Namespace) -> None:
    from ferxai.core.template import canonical_landmarks, load_template
    from ferxai.data.dataset import iter_rows
    from ferxai.normalization.landmark_figures import landmark_qa_figure
    from ferxai.normalization.landmarks import read_landmarks

    if args.per_expression < 1:
        raise ConfigError(f"--per-expression {args.per_expression}: show at least 1 face.")
    rows = list(iter_rows(args.dataset))
    table = read_landmarks(args.landmarks)
    template = load_template(args.template)
    panels = qa_panels(rows, table, args.per_expression, args.seed, template)
    failures = int((~table.ok).sum())
    title = (
        f"Landmark QA: {len(rows)} faces, {failures} without usable landmarks "
        f"({int(table.attrs.get('implausible', 0))} implausible); source "
        f"{table.attrs.get('source', '?')}"
    )
    landmark_qa_figure(panels, canonical_landmarks(template), args.out, title=title)
    log.info("landmarks-qa: %d faces drawn -> %s", sum(map(len, panels.values())), args.out)
