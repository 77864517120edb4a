"""The Python API page's example runs as it stands (docs/python-api.md), so the page cannot go
stale, and what it computes is the workflow's computation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "docs/python-api.md should hold exactly one python example"
    return blocks[0]


def test_the_documented_example_runs(capsys):
    namespace: dict = {}
    exec(compile(_example(), str(DOC), "exec"), namespace)
    heatmaps, rows, scores = namespace["heatmaps"], namespace["rows"], namespace["scores"]
    assert len(heatmaps) == 6 and len(rows) == 6
    assert all(0.0 <= row["iou"] <= 1.0 for row in rows if np.isfinite(row["iou"]))
    n = len(namespace["faces"].labels)
    assert all(values.shape == (n,) for values in scores.values())
    assert sorted(namespace["tree"]["ivl"]) == sorted(namespace["clustering"].labels)
    assert capsys.readouterr().out.count("\n") == 3


def test_the_example_is_short():
    lines = [line for line in _example().splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) <= 45, len(lines)


def test_global_heatmap_equals_the_workflow_pooling(tmp_path):
    """The in-memory pooling is the stacks' pooling (ferxai.heatmaps.pooling.pool_stacks)."""
    import ferxai
    from ferxai.core.io import Stack, write_stack
    from ferxai.heatmaps.pooling import pool_stacks

    rng = np.random.default_rng(0)
    maps = rng.random((5, 275, 224)).astype(np.float32)
    valid = np.array([True, True, False, True, True])
    path = tmp_path / "s.h5"
    stack = Stack(
        maps, [f"i{k}" for k in range(5)], np.zeros(5, np.int64), np.zeros(5, np.int64),
        np.full((5, 6), 1 / 6), extras={"valid": valid},
    )
    write_stack(path, stack)
    pooled = pool_stacks([path])
    in_memory = ferxai.global_heatmap(maps, valid)
    assert np.array_equal(pooled.uint8, in_memory.uint8)
    assert np.allclose(pooled.mean, in_memory.mean)
