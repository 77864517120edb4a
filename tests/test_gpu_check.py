"""bench/gpu_check.sh, the prepared GPU run, on the CPU at tiny sizes (as CI runs it): every one of
the twelve networks trains and explains, the JSON has the documented keys and a projection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ferxai.networks import list_models

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu_at_tiny_sizes(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_LIMIT_S": "400"}
    run = subprocess.run(
        [str(REPO / "bench" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--threads", "1",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=460,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["schema"] == "ferxai.gpu_check/1" and result["complete"] is True
    assert result["tiny"] is True and result["device"]["type"] == "cpu"
    assert [row["network"] for row in result["networks"]] == list_models()
    for row in result["networks"]:
        assert "error" not in row and "skipped" not in row, row
        assert row["input_size"] >= 32 and row["precision"] == "fp32"
        train, lime = row["train"], row["lime"]
        assert train["images_per_s"] > 0 and train["batch_size"] == 2 and train["steps"] >= 1
        assert lime["explanations_per_s"] > 0 and lime["forward_images_per_s"] > 0
        assert lime["samples"] == 8 and lime["batch_size"] >= 1
        assert lime["cpu_forward"] in ("eager", "channels_last", "onnxruntime", "compile")
        assert train["peak_memory_mib"] is None and lime["peak_memory_mib"] is None  # no GPU
    projection = result["projection"]
    assert projection["missing"] == [] and projection["meaningful"] is False  # tiny sizes
    assert set(projection["per_network"]) == set(list_models())
    assert projection["assumptions"]["explanations"] == 36_000
    assert projection["assumptions"]["dataset_images"] == 6000
    total = projection["train_gpu_hours"] + projection["lime_gpu_hours"]
    assert projection["total_gpu_hours"] > 0
    assert abs(projection["total_gpu_hours"] - total) < 1e-2
    assert "projection" in run.stdout


def test_gpu_check_stops_at_its_budget_and_still_writes_the_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--tiny",
         "--threads", "1", "--budget-s", "0", "--networks", "WeiNet", "SongNet", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1  # incomplete
    result = json.loads(out.read_text())
    assert result["complete"] is False
    assert all("skipped" in row for row in result["networks"])
    assert result["projection"]["missing"] == ["WeiNet", "SongNet"]
