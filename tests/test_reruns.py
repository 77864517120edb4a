"""What Snakemake reruns after a change, on a complete local run of the `.test` config.

Each case edits one thing (a network's epochs, the comparison threshold, a stage's source) and
dry-runs: exactly the jobs that depend on the change are listed, nothing upstream of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import complete_local_run, local_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TEST_CONFIG = REPO / ".test" / "config.yaml"
RUN_TIMEOUT_S = 1800

# rules whose jobs belong to one network (they carry a `model` wildcard)
PER_NETWORK = {
    "train",
    "evaluate",
    "select_positives",
    "attribute",
    "attribute_randomized",
    "normalize",
    "normalize_randomized",
    "aggregate_by_fold",
    "aggregate_by_network",
    "aggregate_randomized",
}
DATA = {"synth", "prepare_dataset", "folds", "landmarks", "groundtruth"}
# everything after the heatmaps: comparison, clustering, tables, figures, report
DOWNSTREAM = {
    "compare",
    "cluster",
    "extended_metrics",
    "sanity",
    "tables",
    "figures",
    "accuracy_table",
    "methods_comparison",
    "run_config",
    "all",
}

if not SNAKEMAKE.exists() or not (REPO / "workflow" / "Snakefile").is_file():
    pytestmark.append(pytest.mark.skip(reason="snakemake or workflow/Snakefile missing"))


def snakemake(workdir: Path, configfile: Path, *extra: str, env: dict | None = None):
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--configfile",
        str(configfile),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *extra,
    ]
    result = subprocess.run(
        cmd, cwd=REPO, env=env or local_env(), capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{(result.stdout + result.stderr)[-6000:]}"
    return result.stdout + result.stderr


def planned_jobs(log: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job in a `snakemake -n` log."""
    jobs = []
    for block in re.split(r"^(?:localrule|rule) ", log, flags=re.M)[1:]:
        rule = block.split(":", 1)[0].strip()
        match = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        wildcards = dict(kv.split("=", 1) for kv in match.group(1).split(", ")) if match else {}
        jobs.append((rule, wildcards))
    return jobs


def dry_run(workdir: Path, configfile: Path, env: dict | None = None):
    return planned_jobs(snakemake(workdir, configfile, "-n", env=env))


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory):
    workdir = complete_local_run(tmp_path_factory)
    assert dry_run(workdir, TEST_CONFIG) == [], "a finished run must have nothing left to do"
    return tmp_path_factory.mktemp("reruns"), workdir


def _config_with(root: Path, name: str, edit) -> Path:
    config = yaml.safe_load(TEST_CONFIG.read_text())
    edit(config)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_one_networks_epochs_rerun_only_that_network(complete_run):
    root, workdir = complete_run
    config = yaml.safe_load(TEST_CONFIG.read_text())
    network = config["networks"]["names"][0]
    folds = config["data"]["folds"]

    def more_epochs(cfg):
        cfg["networks"].setdefault("overrides", {}).setdefault(network, {})
        cfg["networks"]["overrides"][network]["epochs"] = cfg["networks"]["defaults"]["epochs"] + 1

    jobs = dry_run(workdir, _config_with(root, "epochs", more_epochs))
    rules = {rule for rule, _ in jobs}
    trained = sorted((w["model"], int(w["fold"])) for r, w in jobs if r == "train")
    assert trained == [(network, k) for k in range(1, folds + 1)]
    assert {"train", "evaluate", "select_positives", "attribute", "normalize"} <= rules
    for rule, wildcards in jobs:
        if rule in PER_NETWORK:
            assert wildcards.get("model") == network, (rule, wildcards)
    assert not rules & DATA, f"upstream data rules rerun: {rules & DATA}"
    assert rules - PER_NETWORK <= DOWNSTREAM | {"aggregate_by_expression"}


def test_comparison_threshold_reruns_only_comparison_and_report(complete_run):
    root, workdir = complete_run

    def fixed_threshold(cfg):
        cfg.setdefault("comparison", {})["threshold"] = "fixed:128"

    rules = {rule for rule, _ in dry_run(workdir, _config_with(root, "threshold", fixed_threshold))}
    assert "compare" in rules
    assert rules <= DOWNSTREAM, f"not downstream of the threshold: {rules - DOWNSTREAM}"


def test_editing_a_stage_reruns_that_stage_and_what_follows(complete_run):
    root, workdir = complete_run
    # a checkout's layout (src/ beside workflow/: ferxai reads workflow/schemas from it)
    checkout = root / "checkout"
    for part in ("src", "workflow"):
        shutil.copytree(REPO / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    source_copy = checkout / "src"
    module = source_copy / "ferxai" / "aggregate.py"
    module.write_text(module.read_text() + "\n# an edit: the stage's code version changes\n")
    env = {
        **os.environ,
        "PYTHONPATH": f"{source_copy}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }

    rules = {rule for rule, _ in dry_run(workdir, TEST_CONFIG, env=env)}
    aggregation = {rule for rule in rules if rule.startswith("aggregate_")}
    assert {"aggregate_by_network", "aggregate_by_expression"} <= aggregation
    upstream = DATA | {"train", "evaluate", "select_positives", "attribute", "normalize"}
    assert not rules & upstream, f"stages upstream of aggregation rerun: {rules & upstream}"
    assert rules - aggregation <= DOWNSTREAM, rules - aggregation - DOWNSTREAM
