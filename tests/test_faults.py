"""Kill -9 during the `.test` run, rerun: it completes, training resumes from its checkpoint, and the
final artifacts are bit-identical to the uninterrupted run (bench/fault_injection.py, two stages)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO, local_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

spec = importlib.util.spec_from_file_location(
    "fault_injection", REPO / "bench" / "fault_injection.py"
)
fault_injection = importlib.util.module_from_spec(spec)
sys.modules["fault_injection"] = fault_injection  # dataclasses look their module up there
spec.loader.exec_module(fault_injection)


@pytest.mark.parametrize("stage, fault", [("train", "workflow"), ("attribute", "job")])
def test_killed_run_resumes_identically(test_run, tmp_path, stage, fault):
    outcome = fault_injection.inject(
        stage, fault, test_run, tmp_path, REPO / ".test" / "config.yaml", env=local_env()
    )
    assert outcome.outcome == "completed", outcome
    assert outcome.identical == "yes", outcome
    assert outcome.lost == 0 and outcome.partial_left == 0, outcome
    if stage == "train":
        assert outcome.resumed == "yes", outcome
