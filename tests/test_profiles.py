"""The Snakemake profiles and `ferxai install-profile` (no SLURM needed: dry runs only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ferxai.cli import main
from ferxai.core import profiles

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
DEFAULT_PROFILE = REPO / "profiles" / "default" / "config.yaml"
GPU_RULES = ("train", "evaluate", "attribute", "attribute_randomized", "quality")
LOCAL_RULES = (
    "aggregate_by_fold",
    "aggregate_by_network",
    "aggregate_by_expression",
    "groundtruth",
    "compare",
    "cluster",
    "extended_metrics",
    "au_coverage",
    "per_face",
    "sanity",
    "tables",
    "figures",
    "trust",
    "all",
)
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_slurm_profile_gives_gpu_rules_one_gpu_and_matching_threads():
    prof = _load(SLURM_PROFILE)
    assert prof["executor"] == "slurm"
    assert isinstance(prof["jobs"], int) and prof["jobs"] > 0
    for rule in GPU_RULES:
        res = prof["set-resources"][rule]
        assert res["gpu"] == 1, rule
        assert res["mem_mb"] >= 8000 and res["runtime"] >= 30, rule
        # the commands size their thread pools from `threads`: it must match the CPUs asked for
        assert prof["set-threads"][rule] == res["cpus_per_gpu"], rule
    # cpus_per_task would win over cpus_per_gpu in the plugin and starve the GPU jobs
    assert "cpus_per_task" not in prof["default-resources"]
    # small rules run on the submit host: giving them queue resources would be a mistake
    assert not set(prof["set-resources"]) & set(LOCAL_RULES)


def test_placeholders_are_marked_for_editing():
    text = SLURM_PROFILE.read_text(encoding="utf-8")
    for line in text.splitlines():
        if "EDIT_ME" in line:
            assert "# EDIT:" in line, line
    assert profiles.placeholders_left(text) == ["EDIT_ME_cpu_partition", "EDIT_ME_gpu_partition"]


def test_default_profile_never_overrides_the_slurm_profile():
    # Snakemake reads profiles/default last, on top of --profile slurm, key by key
    prof = _load(DEFAULT_PROFILE)
    clashing = {
        "executor",
        "jobs",
        "resources",
        "default-resources",
        "set-resources",
        "set-threads",
    }
    assert not clashing & set(prof)
    assert prof["cores"] == "all"


def test_packaged_copy_equals_the_checkout_profile():
    packaged = REPO / "src" / "ferxai" / "resources" / "profile_slurm.yaml"
    assert packaged.read_bytes() == SLURM_PROFILE.read_bytes(), (
        "copy profiles/slurm/config.yaml to src/ferxai/resources/profile_slurm.yaml"
    )


def test_install_fills_placeholders(xdg, capsys):
    assert main(["install-profile", "slurm", "--partition", "cpu", "--account", "proj_1"]) == 0
    target = xdg / "snakemake" / "slurm" / "config.yaml"
    assert str(target) in capsys.readouterr().out
    prof = _load(target)
    assert prof["default-resources"]["slurm_partition"] == "cpu"
    assert prof["default-resources"]["slurm_account"] == "proj_1"
    assert {prof["set-resources"][r]["slurm_partition"] for r in GPU_RULES} == {"cpu"}
    assert profiles.placeholders_left(target.read_text()) == []


def test_install_separate_gpu_partition_and_dest(tmp_path):
    target = profiles.install_profile("slurm", tmp_path / "p", partition="cpu", gpu_partition="gpu")
    prof = _load(target)
    assert prof["default-resources"]["slurm_partition"] == "cpu"
    assert prof["set-resources"]["train"]["slurm_partition"] == "gpu"
    assert "slurm_account" not in prof["default-resources"]  # stays commented out


def test_install_refuses_to_overwrite_edits_without_force(xdg, capsys):
    target = profiles.install_profile("slurm", partition="a")
    assert profiles.install_profile("slurm", partition="a") == target  # identical: fine
    target.write_text(target.read_text() + "# my edit\n")
    assert main(["install-profile", "slurm", "--partition", "a"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and str(target) in err
    assert target.read_text().endswith("# my edit\n")  # untouched
    assert main(["install-profile", "slurm", "--partition", "b", "--force"]) == 0
    assert _load(target)["default-resources"]["slurm_partition"] == "b"


def test_install_rejects_bad_names(xdg):
    with pytest.raises(profiles.ConfigError, match="--partition"):
        profiles.install_profile("slurm", partition="a b; rm -rf /")
    assert not (xdg / "snakemake").exists()


def test_default_location_without_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert profiles.snakemake_config_dir() == tmp_path / ".config" / "snakemake"


@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed beside python")
def test_bare_profile_name_resolves_after_install(xdg, tmp_path):
    """`snakemake --profile slurm` (a bare name) finds the installed profile: dry run of a tiny
    workflow with the real rule names shows the profile's resources on each job."""
    profiles.install_profile("slurm", partition="cpuq", gpu_partition="gpuq")
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (tmp_path / "Snakefile").write_text(
        "localrules: all\n"
        "rule all:\n    input: 'train.txt', 'synth.txt'\n"
        "rule train:\n    output: 'train.txt'\n    shell: 'touch {output}'\n"
        "rule synth:\n    output: 'synth.txt'\n    shell: 'touch {output}'\n"
    )
    result = subprocess.run(
        [str(SNAKEMAKE), "--profile", "slurm", "--snakefile", "../Snakefile", "-n"],
        cwd=workdir,
        env={**os.environ, "XDG_CONFIG_HOME": str(xdg)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    log = result.stdout + result.stderr
    blocks = {b.split(":", 1)[0].strip(): b for b in log.split("rule ")[1:]}
    assert "gpu=1" in blocks["train"] and "slurm_partition=gpuq" in blocks["train"]
    assert "cpus_per_gpu=8" in blocks["train"]
    assert "gpu=" not in blocks["synth"] and "slurm_partition=cpuq" in blocks["synth"]
