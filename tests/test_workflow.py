"""The workflow itself: lint, formatting, the DAG, and configuration errors before any job."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from tests.conftest import REPO, VENV_BIN, local_env, snakemake

RULES = {
    "synth",
    "prepare_dataset",
    "folds",
    "landmarks",
    "landmarks_qa",
    "train",
    "evaluate",
    "select_positives",
    "accuracy_table",
    "attribute",
    "attribute_randomized",
    "normalize",
    "normalize_randomized",
    "aggregate_by_network",
    "aggregate_by_expression",
    "aggregate_randomized",
    "groundtruth",
    "compare",
    "tables",
    "extended_metrics",
    "au_coverage",
    "per_face",
    "cluster",
    "sanity",
    "figures",
    "run_config",
    "quality",
    "trust",
    "all",
}


def test_snakemake_lint_is_clean():
    proc = subprocess.run(
        [str(VENV_BIN / "snakemake"), "--lint"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=local_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_snakefmt_clean():
    proc = subprocess.run(
        [str(VENV_BIN / "snakefmt"), "--check", "workflow"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_clean():
    proc = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "src", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("in_training_job", [True, False])
def test_default_dry_run_lists_every_rule(tmp_path, in_training_job):
    """evaluation.in_training_job (default): train also evaluates, no evaluate job; else both."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.setdefault("evaluation", {})["in_training_job"] = in_training_job
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", configfile=path)
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    expected = RULES - {"all"} - ({"evaluate"} if in_training_job else set())
    missing = expected - listed
    assert not missing, f"rules missing from the dry run: {missing}\n{proc.stdout}"
    assert ("evaluate" in listed) != in_training_job, proc.stdout


def test_default_dag_fans_out_over_networks_folds_expressions(tmp_path):
    proc = snakemake(tmp_path, "-n", configfile=REPO / "config" / "config.yaml")
    text = proc.stdout
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    n_nets, k = len(config["networks"]["names"]), config["data"]["folds"]
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] in RULES:
            counts[parts[0]] = int(parts[1])
    assert counts["train"] == n_nets * k
    assert counts["aggregate_by_network"] == n_nets
    assert counts["normalize"] == n_nets * k


def test_attribute_jobs_pass_settings_every_method_accepts(tmp_path):
    """The workflow adds the run's precision to the settings; only methods that take it get it."""
    import json
    import re

    from ferxai.attribution.settings import METHODS, resolve_settings

    path = tmp_path / "methods.yaml"
    path.write_text(yaml.safe_dump({"networks": {"names": ["WeiNet"]},
                                    "attribution": {"methods": list(METHODS)}}))
    proc = snakemake(tmp_path, "-n", "--printshellcmds", configfile=path)
    text = proc.stdout + proc.stderr
    jobs = re.findall(r"ferxai attribute .*?--method (\S+) --settings '([^']*)'", text)
    assert {method for method, _ in jobs} == set(METHODS)
    for method, settings in jobs:
        resolve_settings(method, json.loads(settings))  # raises ConfigError on a foreign key


def test_rulegraph_renders(tmp_path):
    proc = snakemake(tmp_path, "--rulegraph")
    assert proc.stdout.lstrip().startswith("digraph")
    assert "attribute" in proc.stdout


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"networks": {"names": ["WeiNet", "VGG17"]}}, "VGG17"),
        ({"networks": {"defaults": {"epoch": 3}}}, "epoch"),
        ({"positives": {"per_clas": 3}}, "per_clas"),
    ],
)
def test_bad_config_fails_fast_naming_the_key(tmp_path, config, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    proc = snakemake(tmp_path, "-n", configfile=path, check=False)
    elapsed = time.perf_counter() - start
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert elapsed < 10, f"took {elapsed:.1f} s"
