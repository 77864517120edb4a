"""Shared fixtures: the repository, the paper's published material, and one run of `.test`."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# snakemake-executor-plugin-slurm runs `scontrol show config` whenever Snakemake starts, local runs
# included; where SLURM's client is installed but no controller answers, that waits ~10 s. Local
# test runs get an `scontrol` that fails at once; the SLURM tests keep the real PATH.
_NO_SLURM_BIN = Path(tempfile.mkdtemp(prefix="ferxai-local-bin-"))
(_NO_SLURM_BIN / "scontrol").write_text("#!/bin/sh\nexit 1\n")
(_NO_SLURM_BIN / "scontrol").chmod(0o755)
atexit.register(shutil.rmtree, _NO_SLURM_BIN, True)  # one per session, not left in /tmp


def local_env(base: dict | None = None) -> dict:
    """Environment of a local (non-SLURM) Snakemake run in the tests."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{_NO_SLURM_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def reference_dir() -> Path:
    """The paper's published material: ../shared/reference/gaya-morey-2024 (or FERXAI_REFERENCE_DIR)."""
    env = os.environ.get("FERXAI_REFERENCE_DIR")
    return Path(env) if env else REPO.parent / "shared" / "reference" / "gaya-morey-2024"


@pytest.fixture(scope="session")
def reference() -> Path:
    path = reference_dir()
    if not path.is_dir():
        pytest.skip(f"published reference material not found at {path} (set FERXAI_REFERENCE_DIR)")
    return path


def snakemake(
    workdir: Path,
    *args: str,
    configfile: Path | None = None,
    check: bool = True,
    timeout: int = 1800,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run the workflow with `workdir` as working directory (results land in workdir/results)."""
    cmd = [
        str(VENV_BIN / "snakemake"),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile or REPO / ".test" / "config.yaml"),
        *args,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=env or local_env()
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def complete_local_run(tmp_path_factory) -> Path:
    """One finished local run of the `.test` workflow per pytest session, shared by the end-to-end,
    rerun, fault-injection and SLURM tests (which compare against it).

    FERXAI_TEST_RUN_DIR names an existing finished run to reuse instead (saves minutes while
    iterating; tests that need it complete check so by a dry run)."""
    reuse = os.environ.get("FERXAI_TEST_RUN_DIR")
    if reuse:
        return Path(reuse)
    workdir = tmp_path_factory.getbasetemp() / "local_test_run"
    done = tmp_path_factory.getbasetemp() / "local_test_run.complete"
    if not done.exists():
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
        # a test session inside a SLURM allocation must not leak it into the local run
        env = local_env({k: v for k, v in os.environ.items() if not k.startswith("SLURM_")})
        snakemake(workdir, "--cores", "2", env=env)
        done.touch()
    return workdir


@pytest.fixture(scope="session")
def test_run(tmp_path_factory) -> Path:
    return complete_local_run(tmp_path_factory)


SLURM_SCRIPTS = REPO / "tests" / "slurm"


def _start_slurm(base: str) -> None:
    env = {**os.environ, "FERXAI_SLURM_BASE": base}
    started = subprocess.run(
        ["bash", str(SLURM_SCRIPTS / "start_slurm.sh")], env=env, capture_output=True, text=True,
        timeout=600,
    )
    if started.returncode != 0:
        pytest.fail(f"start_slurm.sh failed:\n{started.stderr[-4000:]}")


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM (tests/slurm/start_slurm.sh), up until the session ends."""
    base = os.environ.get("FERXAI_SLURM_BASE", "/tmp/ferxai-slurm")
    _start_slurm(base)
    yield base
    if os.environ.get("FERXAI_SLURM_KEEP") != "1":
        subprocess.run(
            ["bash", str(SLURM_SCRIPTS / "stop_slurm.sh")],
            env={**os.environ, "FERXAI_SLURM_BASE": base}, capture_output=True, timeout=300,
        )
