"""bench/lime_vs_lime_package.py and bench/lime_forward_floor.py at tiny settings: rows, JSON fields,
agreement with lime."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "lime_vs_lime_package.py"

pytest.importorskip("lime")


def load_bench():
    spec = importlib.util.spec_from_file_location("lime_vs_lime_package", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_rows_follow_the_config(tmp_path):
    bench = load_bench()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["networks"]["overrides"]["SilNet"] = {"input_size": 48}
    config["attribution"]["lime"] = {"num_samples": 77, "batch_size": 33}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    args = bench.parse_args(["--demo", "--paper-rows", "--config", str(path)])
    rows = bench.plan_rows(args)
    names = config["networks"]["names"]
    assert [r["network"] for r in rows] == [*names, "WeiNet", "ResNet50"]
    by_name = {r["network"]: r for r in rows[: len(names)]}
    assert by_name["SilNet"]["size"] == 48
    assert by_name["VGG16"]["size"] == config["networks"]["defaults"]["input_size"]
    assert all(r["samples"] == 77 and r["batch"] == 33 for r in rows[: len(names)])
    assert rows[-2:] == [
        {"network": "WeiNet", "size": 64, "samples": 1000, "batch": None},
        {"network": "ResNet50", "size": 224, "samples": 1000, "batch": None},
    ]


def test_tiny_run_writes_rows_and_agrees_with_lime(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "lime.json"
    rows = bench.main(["--demo", "--networks", "SilNet", "--samples", "12", "--batch-size", "8",
                       "--rounds", "1", "--min-seconds", "0", "--threads", "1",
                       "--cpu-forward", "eager", "channels_last", "--markdown",
                       "--json", str(out)])
    assert [(r["network"], r["cpu_forward"]) for r in rows] == [
        ("SilNet", "eager"),
        ("SilNet", "channels_last"),
    ]
    saved = json.loads(out.read_text())["rows"]
    for row in saved:
        for key in ("lime_package_s", "ferxai_s", "speedup", "bare_forward_s",
                    "ferxai_over_bare_forward", "ferxai_over_bare_forward_cpu",
                    "weights_max_abs_diff", "forward_path", "ferxai_batch_size",
                    "lime_bare_forward_s", "forward_speedup_needed_for_2x"):
            assert key in row, key
        assert row["size"] == 32 and row["samples"] == 12 and row["ferxai_batch_size"] == 8
        assert row["forward_batches"] == 2
        assert row["weights_max_abs_diff"] <= 1e-6
        assert row["lime_package_s"] > 0 and row["bare_forward_s"] > 0
        assert row["lime_bare_forward_s"] > 0 and row["forward_speedup_needed_for_2x"] > 0
    assert saved[1]["forward_path"] == "channels_last"
    table = capsys.readouterr().out
    assert "| network | px | samples | lime s |" in table
    assert table.count("| SilNet | 32 | 12 |") == 2


def test_forward_floor_ranks_every_path_against_limes_forward(capsys):
    pytest.importorskip("onnxruntime")
    spec = importlib.util.spec_from_file_location(
        "lime_forward_floor", REPO / "bench" / "lime_forward_floor.py"
    )
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    floor.main(["--networks", "SilNet:32", "--images", "16", "--rounds", "1", "--batches", "8",
                "--threads", "1"])
    out = capsys.readouterr().out
    assert "SilNet at 32 px" in out and "1.00x  lime (plain model, NHWC, batch 10)" in out
    for label in ("eager NCHW, batch 8", "channels-last weights, batch 8",
                  "ONNX Runtime, batch 8", "ONNX Runtime, 1 single-thread streams, batch 8"):
        assert label in out
