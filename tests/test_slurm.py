"""The `.test` workflow through a real single-node SLURM (tests/slurm/start_slurm.sh).

One SLURM run and one local run of the same config (the local run is shared with
tests/test_reruns.py); the SLURM run uses the profile installed by
`ferxai install-profile slurm` under its bare name, with tests/slurm/profile/config.yaml merged in
(partition, CPUs and timings of the test node). Proves that the heavy jobs went through sbatch
(squeue lists them under the run's UUID), that the GPU rules asked for `--gpus=1` and the CPU rules
did not, that no localrule reached the queue, and that both runs made identical results.

Needs root (daemons, packages). Set FERXAI_SLURM_KEEP=1 to leave the cluster running afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ferxai.core import profiles
from tests.conftest import complete_local_run  # one local run per session, shared

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "tests" / "slurm"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TEST_CONFIG = REPO / ".test" / "config.yaml"
GPU_RULES = {"train", "evaluate", "attribute", "attribute_randomized", "quality"}
QUEUE_CPU_RULES = {
    "synth",
    "prepare_dataset",
    "folds",
    "landmarks",
    "normalize",
    "select_positives",
}
LOCAL_RULES = {
    "all",
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
}
RUN_TIMEOUT_S = 1800
# what must be identical between the two runs: the metric tables and the heatmap images
COMPARED = ("**/comparison/**/*.csv", "**/heatmaps/**/*.png")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start SLURM daemons (tests/slurm/start_slurm.sh)"
    if not shutil.which("sbatch") and not shutil.which("apt-get"):
        return "no sbatch and no apt-get to install Debian's SLURM packages"
    if not SNAKEMAKE.exists():
        return f"snakemake not installed beside {sys.executable}"
    if not (REPO / "workflow" / "Snakefile").is_file() or not TEST_CONFIG.is_file():
        return "workflow/Snakefile or .test/config.yaml missing"
    return None


if _skip_reason():
    pytestmark.append(pytest.mark.skip(reason=_skip_reason()))


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` into ``base``, mapping by mapping (Snakemake's own profile merge is per key)."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def install_test_profile(xdg: Path) -> Path:
    """The real profile, installed under its bare name, with the test node's overlay merged in."""
    target = profiles.install_profile("slurm", xdg / "snakemake" / "slurm", partition="debug")
    overlay = yaml.safe_load((HERE / "profile" / "config.yaml").read_text())
    merged = deep_merge(yaml.safe_load(target.read_text()), overlay)
    target.write_text(yaml.safe_dump(merged, sort_keys=False))
    return target


def make_sbatch_shim(bin_dir: Path, calls_dir: Path) -> None:
    """An `sbatch` first on PATH that records its argv (one NUL-separated file per call, so
    arguments with spaces or newlines survive) and then runs the real one."""
    real = shutil.which("sbatch")
    assert real, "sbatch missing after start_slurm.sh"
    bin_dir.mkdir(parents=True)
    calls_dir.mkdir(parents=True)
    shim = bin_dir / "sbatch"
    shim.write_text(
        "#!/bin/bash\n"
        f'printf \'%s\\0\' "$@" > "$(mktemp {shlex.quote(str(calls_dir))}/call.XXXXXX)"\n'
        f'exec {shlex.quote(real)} "$@"\n'
    )
    shim.chmod(0o755)


def run_workflow(workdir: Path, extra: list[str], env: dict, log: Path) -> str:
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--configfile",
        str(TEST_CONFIG),
        "--directory",
        str(workdir),
        *extra,
    ]
    with open(log, "w") as fh:
        result = subprocess.run(
            cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S
        )
    text = log.read_text()
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{text[-6000:]}{failed_job_logs(workdir)}"
    )
    return text


def failed_job_logs(workdir: Path, count: int = 2) -> str:
    """Tails of the newest SLURM job logs (the plugin keeps those of failed jobs)."""
    logs = sorted(
        (workdir / ".snakemake" / "slurm_logs").glob("**/*.log"), key=lambda p: p.stat().st_mtime
    )
    return "".join(f"\n---- {p}\n{p.read_text()[-3000:]}" for p in logs[-count:])


def submitted_rules(calls_dir: Path) -> list[tuple[str, list[str]]]:
    """(rule, argv) of each sbatch call, the rule read from the plugin's `--comment rule_<name>...`."""
    calls = []
    for call in sorted(calls_dir.iterdir()):
        argv = call.read_bytes().decode().split("\0")[:-1]
        comment = argv[argv.index("--comment") + 1]
        match = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", comment)
        assert match, f"unexpected sbatch comment {comment!r}"
        calls.append((match.group(1), argv))
    return calls


def compared_files(workdir: Path) -> dict[str, bytes]:
    files = {}
    for pattern in COMPARED:
        for path in workdir.glob(pattern):
            if ".snakemake" not in path.parts:
                files[str(path.relative_to(workdir))] = path.read_bytes()
    return files


def test_gpu_job_sees_its_gpu_and_sizes_threads_from_its_cpus(slurm_cluster):
    """A `--gpus=1 --cpus-per-gpu=2` job: SLURM exposes the (fake) GPU through
    CUDA_VISIBLE_DEVICES, ferxai counts the job's 2 CPUs, and with no usable CUDA device
    `device: auto` falls back to the CPU instead of failing."""
    probe = (
        "import os; from ferxai.core.device import job_cpus, select_device; "
        "print(os.environ.get('CUDA_VISIBLE_DEVICES'), job_cpus(), select_device('auto').type)"
    )
    env = {k: v for k, v in os.environ.items() if k != "FERXAI_THREADS"}
    result = subprocess.run(
        ["srun", "--gpus=1", "--cpus-per-gpu=2", "-t", "5", sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    visible, cpus, device = result.stdout.split()
    assert visible in {"0", "1"}
    assert int(cpus) == 2
    assert device == "cpu"


@pytest.fixture(scope="module")
def runs(slurm_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm_vs_local")
    xdg = root / "xdg"
    install_test_profile(xdg)
    sbatch_calls = root / "sbatch_calls"
    make_sbatch_shim(root / "bin", sbatch_calls)
    slurm_env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(xdg),
        "PATH": f"{root / 'bin'}:{os.environ['PATH']}",
    }
    slurm_log = run_workflow(
        root / "slurm_run", ["--profile", "slurm"], slurm_env, root / "slurm_run.log"
    )
    uuid = re.search(r"SLURM run ID: (\S+)", slurm_log)
    assert uuid, f"no 'SLURM run ID' in the log: was the slurm executor used?\n{slurm_log[-3000:]}"
    # right after the run: finished jobs stay listed for MinJobAge (300 s) without accounting
    queue = subprocess.run(
        ["squeue", "-h", "-t", "all", "--name", uuid.group(1), "-o", "%i|%j|%T"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {
        "slurm_run": root / "slurm_run",
        "local_run": complete_local_run(tmp_path_factory),
        "uuid": uuid.group(1),
        "squeue": queue,
        "calls": submitted_rules(sbatch_calls),
        "slurm_log": slurm_log,
    }


def test_heavy_jobs_went_through_sbatch_under_the_run_uuid(runs):
    queue = runs["squeue"]
    assert queue.returncode == 0, queue.stderr
    listed = [line.split("|") for line in queue.stdout.splitlines() if line.strip()]
    assert len(listed) == len(runs["calls"]) > 0
    assert {name for _, name, _ in listed} == {runs["uuid"]}
    assert {state for *_, state in listed} <= {"COMPLETED", "COMPLETING"}


def test_gpu_rules_asked_for_one_gpu_and_cpu_rules_for_none(runs):
    rules = {rule for rule, _ in runs["calls"]}
    # evaluation.in_training_job (default true): rule train evaluates too, no evaluate job
    config = yaml.safe_load(TEST_CONFIG.read_text())
    merged = (config.get("evaluation") or {}).get("in_training_job", True)
    expected = GPU_RULES - {"evaluate"} if merged else GPU_RULES
    assert expected <= rules, f"GPU rules not submitted: {expected - rules}"
    assert QUEUE_CPU_RULES <= rules, f"CPU rules not submitted: {QUEUE_CPU_RULES - rules}"
    assert not rules & LOCAL_RULES, f"localrules reached the queue: {rules & LOCAL_RULES}"
    for rule, argv in runs["calls"]:
        gpu_flags = [a for a in argv if a.startswith("--gpus") or a.startswith("--gres")]
        if rule in GPU_RULES:
            assert gpu_flags == ["--gpus=1"], (rule, argv)
            assert "--cpus-per-gpu=1" in argv, (rule, argv)  # the overlay's, = threads
        else:
            assert gpu_flags == [], (rule, argv)
        assert argv[argv.index("-p") + 1] == "debug", (rule, argv)


def test_outputs_equal_a_local_run(runs):
    slurm = compared_files(runs["slurm_run"])
    local = compared_files(runs["local_run"])
    assert any(p.endswith(".csv") for p in local) and any(p.endswith(".png") for p in local)
    assert sorted(slurm) == sorted(local)
    differing = [p for p in local if slurm[p] != local[p]]
    assert not differing, (
        f"{len(differing)} files differ between SLURM and local runs: {differing[:5]}"
    )
