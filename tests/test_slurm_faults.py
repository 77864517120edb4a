"""Cluster faults on the real single-node SLURM (tests/slurm/start_slurm.sh), and damaged files.

- A training that needs about three times its job's time limit finishes through Snakemake's retries,
  resuming from its checkpoint each time, with the weights of an uninterrupted training.
- An attribution job cancelled half way (`scancel`) is retried and continues after the images
  already explained; its stacks equal the uninterrupted run's.
- A flipped byte in a stack and a truncated heatmap PNG stop the job reading them with a message
  naming the file and the fix; after deleting the file the rerun completes with identical results.

Jobs are slowed down with sleeps (tests/slurm/slow/sitecustomize.py), not with more work, so the
CPU cost stays that of the tiny `.test` networks. The workdirs start from copies of the session's
shared local `.test` run (`test_run`), so only the jobs under test run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ferxai.core.constants import EXPRESSIONS
from tests.conftest import local_env, snakemake
from tests.test_slurm import (
    REPO,
    SNAKEMAKE,
    TEST_CONFIG,
    _skip_reason,
    deep_merge,
    failed_job_logs,
    install_test_profile,
)

SLOW = REPO / "tests" / "slurm" / "slow"
EPOCHS = 14  # two batches per epoch on `.test`, sleeping 6 s each: ~13 s an epoch
BATCH_SECONDS = 6


def needs_slurm(test):
    """Marks of a test on the real SLURM (root, the daemons, snakemake)."""
    reason = _skip_reason()
    marks = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]
    if reason:
        marks.append(pytest.mark.skip(reason=reason))
    for mark in marks:
        test = mark(test)
    return test


def copy_results(run: Path, dest: Path, drop: tuple[str, ...] = ()) -> Path:
    """A copy of a finished run's results/ (times kept, so Snakemake sees them up to date), without
    its .snakemake metadata and without the files matching ``drop``."""
    shutil.copytree(run / "results", dest / "results", copy_function=shutil.copy2)
    for pattern in drop:
        for path in (dest / "results").glob(pattern):
            if path.is_file():
                path.unlink()
    return dest


def slurm_profile(root: Path, overlay: dict) -> dict:
    """The real profile with the test node's overlay and ``overlay``; the environment to use it."""
    xdg = root / "xdg"
    target = install_test_profile(xdg)
    merged = deep_merge(yaml.safe_load(target.read_text()), overlay)
    target.write_text(yaml.safe_dump(merged, sort_keys=False))
    # sleeps in the jobs (tests/slurm/slow), status checks at least every 5 s
    return {**os.environ, "XDG_CONFIG_HOME": str(xdg), "PYTHONPATH": str(SLOW),
            "FERXAI_TEST_STATUS_POLL_S": "5"}


def start_workflow(workdir: Path, targets: list[str], env: dict, log: Path,
                   configfile: Path = TEST_CONFIG) -> subprocess.Popen:
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "workflow" / "Snakefile"), "--configfile",
           str(configfile), "--directory", str(workdir), "--profile", "slurm", *targets]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, workdir: Path, log: Path, timeout: float = 900) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        kill_leftovers(workdir)
    text = log.read_text()
    assert proc.returncode == 0, f"the SLURM run failed:\n{text[-6000:]}{failed_job_logs(workdir)}"
    return text


def kill_leftovers(workdir: Path) -> None:
    """SIGKILL processes still running in ``workdir`` once the run is over: the test node's
    proctrack/linuxproc can miss a job's Snakemake when the job is killed at its time limit (a
    real cluster's cgroups do not), and it would linger after the test."""
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd").removesuffix(" (deleted)")
        except OSError:
            continue
        if cwd == str(workdir) or cwd.startswith(f"{workdir}/"):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_jobs(uuid: str) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of every job of the run (finished ones stay listed: MinJobAge)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "--name", uuid, "-o", "%i|%T|%k"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    jobs = [tuple(line.split("|", 2)) for line in out.splitlines() if line.strip()]
    return sorted(jobs, key=lambda job: int(job[0]))


def run_uuid(log: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"SLURM run ID: (\S+)", log.read_text())
        if match:
            return match.group(1)
        time.sleep(0.5)
    raise AssertionError(f"no 'SLURM run ID' in {log}:\n{log.read_text()[-3000:]}")


def without_seconds(history: Path) -> list[list[str]]:
    return [line.split(",")[:-1] for line in history.read_text().splitlines()]


@needs_slurm
def test_training_longer_than_its_time_limit_finishes_over_several_jobs(test_run, tmp_path):
    target = "results/models/WeiNet/fold1/model.pt"
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["networks"]["defaults"]["epochs"] = EPOCHS
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    # A 1-minute limit (SLURM's smallest): SLURM checks limits every 30 s, so a job gets SIGTERM
    # 60-90 s after it started, trains 45-75 s of it and finishes its epoch: at most ~90 s of the
    # ~180 s needed, so it takes at least 3 jobs (more on a loaded machine: sleeps dominate the
    # epochs to limit that). No warning signal here: SLURM sends it up to warning + 30 s early,
    # which at this runtime could come before the training has even started.
    env = slurm_profile(tmp_path, {
        "retries": 8,
        "set-resources": {"train": {"runtime": 1, "slurm_extra": ""}},
    })
    env["FERXAI_TEST_SLOW_BATCH_S"] = str(BATCH_SECONDS)
    slurm_dir = copy_results(test_run, tmp_path / "slurm", drop=("models/**/*",))
    log = tmp_path / "slurm.log"
    proc = start_workflow(slurm_dir, [target], env, log, configfile)
    # the uninterrupted training, locally and at full speed, while the SLURM jobs sleep
    local_dir = copy_results(test_run, tmp_path / "local", drop=("models/**/*",))
    snakemake(local_dir, "--cores", "2", target, configfile=configfile, env=local_env())
    finish(proc, slurm_dir, log)

    out = slurm_dir / "results" / "models" / "WeiNet" / "fold1"
    reference = local_dir / "results" / "models" / "WeiNet" / "fold1"
    assert (out / "model.pt").read_bytes() == (reference / "model.pt").read_bytes()
    assert without_seconds(out / "history.csv") == without_seconds(reference / "history.csv")
    assert len(without_seconds(out / "history.csv")) == EPOCHS + 1

    train_log = (slurm_dir / "results" / "logs" / "train" / "WeiNet_fold1.log").read_text()
    resumed = re.search(r"trained in (\d+) jobs, resumed (\d+) time\(s\), after ([\d, ]+) epochs",
                        train_log)
    assert resumed, train_log[-3000:]
    assert int(resumed.group(2)) >= 2, resumed.group(0)
    done = [int(e) for e in resumed.group(3).split(",")]
    assert done == sorted(done) and 0 < done[0] < EPOCHS, done  # progress in every attempt
    jobs = [j for j in run_jobs(run_uuid(log)) if j[2].startswith("rule_train")]
    states = [state for _, state, _ in jobs]
    assert len(jobs) >= 3 and states[-1] == "COMPLETED", jobs
    assert set(states[:-1]) <= {"FAILED", "TIMEOUT", "CANCELLED"}, jobs


@needs_slurm
def test_cancelled_attribution_resumes_after_the_images_done(test_run, tmp_path):
    from ferxai.core.io import read_stack

    job_dir = "results/attributions/lime/WeiNet/fold1"
    stacks = [f"{job_dir}/{e}.h5" for e in EXPRESSIONS]
    explained = [e for e in EXPRESSIONS if len(read_stack(test_run / job_dir / f"{e}.h5")) >= 2]
    assert explained, "no expression with two positives in the .test run"
    drop = tuple(s.removeprefix("results/") for s in stacks)
    # one image per chunk: the unit of resuming (the reference is explained the same way)
    chunking = {"FERXAI_IMAGES_PER_CHUNK": "1"}
    env = {**slurm_profile(tmp_path, {"retries": 2}), **chunking}
    env["FERXAI_TEST_SLOW_CHUNK_S"] = "6"
    workdir = copy_results(test_run, tmp_path / "slurm", drop=drop)
    log = tmp_path / "slurm.log"
    proc = start_workflow(workdir, stacks, env, log)
    uuid = run_uuid(log)
    resume = workdir / job_dir / f".{explained[0]}.resume.h5"
    deadline = time.monotonic() + 300
    while not resume.exists():  # the first image of the first explained expression is done
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    running = [i for i, state, _ in run_jobs(uuid) if state == "RUNNING"]
    assert len(running) == 1, run_jobs(uuid)
    subprocess.run(["scancel", running[0]], check=True, timeout=60)
    # the uninterrupted job, locally, while the retry waits for its sleeps
    local_dir = copy_results(test_run, tmp_path / "local", drop=drop)
    snakemake(local_dir, "--cores", "2", *stacks, env=local_env({**os.environ, **chunking}))
    text = finish(proc, workdir, log)

    jobs = run_jobs(uuid)
    assert [state for _, state, _ in jobs] == ["CANCELLED", "COMPLETED"], (jobs, text[-3000:])
    job_log = (workdir / "results" / "logs" / "attribute" / "lime_WeiNet_fold1.log").read_text()
    assert re.search(rf"{explained[0]}: resuming from \S+{resume.name}: 1 of \d+ images already "
                     r"explained, \d+ to go", job_log), job_log[-3000:]
    for stack in stacks:
        assert (workdir / stack).read_bytes() == (local_dir / stack).read_bytes(), stack
    assert not list((workdir / job_dir).glob(".*")), "resume or partial files left behind"


# ------------------------------------------------------------------------------ damaged files


def all_logs(workdir: Path) -> str:
    return "".join(p.read_text() for p in (workdir / "results" / "logs").rglob("*") if p.is_file())


def flip_byte_in_maps(path: Path) -> None:
    import h5py

    with h5py.File(path, "r") as h5:
        info = h5["maps"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x10]))


@pytest.mark.e2e
@pytest.mark.slow
def test_flipped_byte_in_a_stack_stops_the_reader_naming_file_and_fix(test_run, tmp_path):
    workdir = copy_results(test_run, tmp_path)
    stack = "results/attributions/lime/WeiNet/fold1/Sadness.h5"  # the one with positives
    flip_byte_in_maps(workdir / stack)
    normalized = [f"results/normalized/lime/WeiNet/fold1/{e}.h5" for e in EXPRESSIONS]
    # the damaged stack is newer than its normalized maps: the normalize job reruns and reads it
    failed = snakemake(workdir, "--cores", "2", *normalized, check=False)
    assert failed.returncode != 0
    message = all_logs(workdir)  # the normalize job's log
    assert f"{stack}: dataset 'maps'" in message and "checksum" in message, message[-3000:]
    assert "Delete it and rerun the workflow" in message and "Traceback" not in message

    (workdir / stack).unlink()  # the fix the message gives
    snakemake(workdir, "--cores", "2", *normalized)
    for path in [*normalized, *(f"results/attributions/lime/WeiNet/fold1/{e}.h5"
                                for e in EXPRESSIONS)]:
        assert (workdir / path).read_bytes() == (test_run / path).read_bytes(), path


@pytest.mark.e2e
@pytest.mark.slow
def test_truncated_heatmap_png_stops_the_reader_naming_file_and_fix(test_run, tmp_path):
    workdir = copy_results(test_run, tmp_path)
    png = "results/heatmaps/lime/WeiNet_Anger_heatmap.png"
    data = (workdir / png).read_bytes()
    (workdir / png).write_bytes(data[: len(data) * 2 // 3])
    metrics = "results/comparison/lime/metrics.csv"
    failed = snakemake(workdir, "--cores", "2", metrics, check=False)
    assert failed.returncode != 0
    logs = all_logs(workdir)  # the compare job's log
    assert f"{png}: truncated PNG" in logs and "Delete it and rerun the workflow" in logs, (
        logs[-3000:] + failed.stderr[-3000:]
    )

    (workdir / png).unlink()
    snakemake(workdir, "--cores", "2", metrics)
    assert (workdir / png).read_bytes() == data
    assert (workdir / metrics).read_bytes() == (test_run / metrics).read_bytes()
