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
    "quality",
}
DATA = {"synth", "prepare_dataset", "folds", "landmarks", "groundtruth"}
# everything after the heatmaps: comparison, clustering, tables, figures, report
DOWNSTREAM = {
    "compare",
    "cluster",
    "extended_metrics",
    "au_coverage",
    "per_face",
    "sanity",
    "tables",
    "figures",
    "accuracy_table",
    "methods_comparison",
    "run_config",
    "trust",
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
    )
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
    # evaluation.in_training_job (default true): rule train evaluates too, no evaluate job
    merged = (config.get("evaluation") or {}).get("in_training_job", True)
    assert {"train", "select_positives", "attribute", "normalize"} <= rules
    assert ("evaluate" in rules) != merged, sorted(rules)
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


def rule_commands() -> dict[str, set[str]]:
    """rule → the ferxai commands it runs, read from workflow/rules/*.smk: each rule's code version
    must be its own command's (``code=code_version("cmd")`` beside ``ferxai cmd``). A rule defined
    in both branches of an ``if`` (rule train, by evaluation.in_training_job) has one per branch."""
    commands: dict[str, set[str]] = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"^(?=[ \t]*(?:rule |use rule ))", text, flags=re.M)[1:]:
            indent = block[: len(block) - len(block.lstrip(" "))]
            lines = block.splitlines()
            # the rule's own lines: a line indented less than its body ends it (else:, a comment)
            body = [lines[0][len(indent) :]]
            for line in lines[1:]:
                if line.strip() and not line.startswith(indent + " "):
                    break
                body.append(line[len(indent) :])
            block = "\n".join(body)
            if block.startswith("use rule "):
                parent, name = re.match(r"use rule (\w+) as (\w+)", block).groups()
                commands.setdefault(name, set()).update(commands[parent])
                continue
            name = re.match(r"rule (\w+):", block).group(1)
            version = re.search(r'code=code_version\("([\w-]+)"\)', block)
            shell_part = block.split("\n    shell:", 1)[1] if "\n    shell:" in block else ""
            shell = re.findall(r"ferxai ([\w-]+)", shell_part)
            if version:
                assert shell and set(shell) == {version.group(1)}, (smk.name, name, shell)
                commands.setdefault(name, set()).add(version.group(1))
            elif shell:
                raise AssertionError(f"{smk.name}: rule {name} runs ferxai without code_version")
    return commands


def _run_commands(workdir: Path, env: dict) -> dict[str, set[str]]:
    """rule → the ferxai commands its jobs ran in the finished run (``--detailed-summary``'s
    shellcmd column): which definition of a rule defined twice was used."""
    summary = snakemake(workdir, TEST_CONFIG, "--detailed-summary", env=env).splitlines()
    commands: dict[str, set[str]] = {}
    for row in (line.split("\t") for line in summary[1:] if line.count("\t") >= 6):
        commands.setdefault(row[2], set()).update(re.findall(r"ferxai ([\w-]+)", row[5]))
    return commands


def test_every_rule_versions_the_command_it_runs():
    from ferxai.cli import COMMANDS

    commands = rule_commands()
    assert set().union(*commands.values()) <= set(COMMANDS)
    assert commands["train"] == {"train", "train-evaluate"}  # by evaluation.in_training_job
    assert {"train", "attribute_randomized", "compare", "figures"} <= set(commands)


def _changed_rules(workdir: Path, env: dict) -> set[str]:
    """Rules with an output whose params (the code version among them) changed, from
    ``--summary``'s status column (a dry run's reasons name only the first cause of a rerun:
    "input files updated" hides the changed code of every job downstream of another)."""
    summary = snakemake(workdir, TEST_CONFIG, "--summary", env=env).splitlines()
    rows = [line.split("\t") for line in summary[1:] if line.count("\t") >= 4]
    return {row[2] for row in rows if row[4] == "params changed"}


def test_editing_any_module_reruns_exactly_the_rules_that_import_it(complete_run):
    """For every module of src/ferxai: a comment appended to it changes the code version (params)
    of exactly the rules whose commands import it, directly or not, so Snakemake reruns those."""
    from ferxai.cli import command_modules
    from ferxai.core.code_version import all_modules, closure

    root, workdir = complete_run
    # a checkout's layout (src/ beside workflow/: ferxai reads workflow/schemas from it)
    checkout = root / "checkout"
    for part in ("src", "workflow"):
        shutil.copytree(REPO / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
    source_copy = checkout / "src"
    env = {
        **local_env(),
        "PYTHONPATH": f"{source_copy}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    summary = snakemake(workdir, TEST_CONFIG, "--summary", env=env).splitlines()
    in_run = {line.split("\t")[2] for line in summary[1:] if line.count("\t") >= 4}
    ran = _run_commands(workdir, env)
    uses = {}
    for rule, commands in rule_commands().items():
        if rule in in_run:
            (command,) = commands if len(commands) == 1 else commands & ran[rule]
            uses[rule] = set(command_modules(command))
    uses["run_config"] = set(closure("ferxai.core.io"))  # its run: block writes with ferxai.core.io
    assert not _changed_rules(workdir, env), "the copy must change nothing by itself"
    mismatches = []
    for module in all_modules():
        path = source_copy / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        original = path.read_text()
        path.write_text(original + "\n# an edit: the code version of every rule using it changes\n")
        try:
            changed = _changed_rules(workdir, env)
        finally:
            path.write_text(original)
        expected = {rule for rule, modules in uses.items() if module in modules}
        if changed != expected:
            mismatches.append(f"{module}: reran {sorted(changed)}, expected {sorted(expected)}")
    assert not mismatches, "\n".join(mismatches)
