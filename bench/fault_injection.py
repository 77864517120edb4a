"""Kill -9 the workflow (or a single job) at each stage of the `.test` run, rerun, and compare.

A kill waits until a job of the stage is running (for `train`, until its first epoch checkpoint
exists, so that resuming is exercised) and sends SIGKILL to the whole Snakemake process group
("workflow") or only to the stage's process ("job"); the rerun is `--unlock`, then
`--rerun-incomplete`. Every final artifact is then compared byte for byte with an uninterrupted
reference run.

Two modes:
- `chain` (default): one run per fault, killed at every stage in turn: each rerun resumes what the
  previous attempt left and is itself killed at the next stage, the last one completes. About three
  `.test` runs in all (reference + one chain per fault).
- `independent`: a fresh run per (stage, fault), killed once and rerun (what `tests/test_faults.py`
  does for two stages); about 2 × stages × faults `.test` runs.

    .venv/bin/python bench/fault_injection.py                      # all stages, both faults
    .venv/bin/python bench/fault_injection.py --mode independent --stages train attribute

Prints a Markdown table: stage, fault, outcome, resumed, identical, files lost, partial files left
(identical and lost count the artifacts that stage writes).
"""

from __future__ import annotations

import argparse
import atexit
import filecmp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

# stage -> the ferxai subcommand(s) its jobs run (train-evaluate: rule train with
# evaluation.in_training_job, the default; evaluation then has no job of its own, so the
# evaluate stage is not reached)
STAGES = {
    "synth": "synth",
    "prepare_dataset": "prepare",
    "landmarks": "landmarks",
    "train": ("train", "train-evaluate"),
    "evaluate": "evaluate",
    "attribute": "attribute",
    "normalize": "normalize",
    "aggregate": "aggregate",
    "compare": "compare",
    "cluster": "cluster",
}
# The rule that starts each stage (forced to rerun when an earlier attempt already finished it).
STAGE_RULES = {
    "synth": "synth",
    "prepare_dataset": "prepare_dataset",
    "landmarks": "landmarks",
    "train": "train",
    "evaluate": "evaluate",
    "attribute": "attribute",
    "normalize": "normalize",
    "aggregate": "aggregate_by_network",
    "compare": "compare",
    "cluster": "cluster",
}
# Final artifacts of each stage, compared with the reference run.
STAGE_ARTIFACTS = {
    "synth": ("data/synth/manifest.csv", "data/synth/images/*.png", "data/synth/cues/*.png"),
    "prepare_dataset": ("data/dataset.csv", "data/skipped.csv", "data/folds.csv"),
    "landmarks": ("landmarks/*.h5", "landmarks/*.csv"),
    "train": ("models/*/*/model.pt", "models/*/*/history.csv"),
    "evaluate": ("eval/*/*/predictions.csv", "eval/*/*/metrics.json"),
    "attribute": ("attributions/**/*.h5",),
    "normalize": ("normalized/**/*.h5",),
    "aggregate": ("heatmaps/**/*.png", "heatmaps/**/*.h5", "sanity/heatmaps/**/*.h5"),
    "compare": ("comparison/**/*.csv",),
    "cluster": ("clustering/**/*.csv",),
}
ARTIFACTS = tuple(p for patterns in STAGE_ARTIFACTS.values() for p in patterns) + (
    "sanity/**/*.csv",
)


@dataclass
class Outcome:
    stage: str
    fault: str
    outcome: str
    resumed: str
    identical: str
    lost: int
    partial_left: int


def workflow_command(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory",
            str(workdir), "--configfile", str(configfile), *args]


def run_workflow(
    workdir: Path, *args: str, configfile: Path, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        workflow_command(workdir, configfile, *args), capture_output=True, text=True, cwd=workdir,
        env=env,
    )


def stage_processes(workdir: Path, subcommand: str | tuple[str, ...]) -> list[int]:
    """PIDs of `ferxai <subcommand>` processes whose working directory is `workdir`."""
    subcommands = (subcommand,) if isinstance(subcommand, str) else subcommand
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if (
            cwd == str(workdir)
            and any(w.endswith("ferxai") for w in words[:2])
            and any(s in words[1:3] for s in subcommands)
        ):
            pids.append(int(proc.name))
    return pids


def ready_to_kill(workdir: Path, stage: str, since: float) -> bool:
    """Any stage at once; `train` only once a job of this attempt has saved an epoch checkpoint
    (a checkpoint of a training that finished earlier would not exercise resuming)."""
    if stage != "train":
        return True
    checkpoints = (workdir / "results" / "models").glob("*/*/checkpoints/last.ckpt")
    return any(c.stat().st_mtime > since for c in checkpoints)


def kill_at_stage(
    proc: subprocess.Popen, workdir: Path, stage: str, fault: str, timeout: float
) -> bool:
    """Wait for a job of `stage` in the run `proc`, then SIGKILL the run or that job."""
    subcommand, start, since = STAGES[stage], time.monotonic(), time.time()
    while proc.poll() is None and time.monotonic() - start < timeout:
        pids = stage_processes(workdir, subcommand)
        if pids and ready_to_kill(workdir, stage, since):
            time.sleep(0.2)  # let it write something
            if fault == "workflow":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:  # it finished in the meantime
                        pass
            return True
        time.sleep(0.05)
    return False


def inject(
    stage: str,
    fault: str,
    reference: Path,
    root: Path,
    configfile: Path,
    timeout: float = 1200,
    env: dict | None = None,
) -> Outcome:
    workdir = root / f"{stage}_{fault}"
    workdir.mkdir(parents=True)
    cmd = workflow_command(workdir, configfile, "--cores", "2")
    log = open(workdir / "first_attempt.log", "w")
    proc = subprocess.Popen(
        cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    killed = kill_at_stage(proc, workdir, stage, fault, timeout)
    proc.wait()
    log.close()
    if not killed:
        return Outcome(stage, fault, "stage never ran (not killed)", "-", "-", 0, 0)
    run_workflow(workdir, "--unlock", configfile=configfile, env=env)
    rerun = run_workflow(
        workdir, "--cores", "2", "--rerun-incomplete", configfile=configfile, env=env
    )
    (workdir / "rerun.log").write_text(rerun.stdout + rerun.stderr)
    if rerun.returncode != 0:
        return Outcome(stage, fault, f"rerun FAILED ({rerun.returncode})", "-", "-", 0, 0)
    return completed_outcome(stage, fault, reference, workdir, ARTIFACTS)


def completed_outcome(
    stage: str, fault: str, reference: Path, workdir: Path, patterns: tuple[str, ...]
) -> Outcome:
    """The row of a rerun that completed: did training resume, are `patterns` identical?"""
    resumed = "-"
    if stage in ("train", "attribute"):  # both resume: from a checkpoint, from explained images
        folder = workdir / "results" / "logs" / stage
        logs = "".join(p.read_text() for p in folder.glob("*"))
        resumed = "yes" if "resuming from" in logs else "no"
    identical, lost = compare(reference / "results", workdir / "results", patterns)
    return Outcome(stage, fault, "completed", resumed, "yes" if identical else "NO", lost,
                   partial_files(workdir))


def partial_files(workdir: Path) -> int:
    """Temporary files left behind: atomic writes' `.*.partial*`, attribution's `.*.resume.h5`."""
    results = workdir / "results"
    return len(list(results.rglob(".*.partial*"))) + len(list(results.rglob(".*.resume.h5")))


def chain(
    fault: str,
    stages: list[str],
    reference: Path,
    root: Path,
    configfile: Path,
    timeout: float = 1200,
    env: dict | None = None,
) -> list[Outcome]:
    """One run killed at every stage in turn (each attempt resumes the last), then completed."""
    workdir = root / f"chain_{fault}"
    workdir.mkdir(parents=True)
    reached, finished = {}, False
    for attempt, stage in enumerate(stages):
        if attempt:
            run_workflow(workdir, "--unlock", configfile=configfile, env=env)
        # A stage that ran between two polls lets an attempt finish the whole run; the next
        # stage is then forced to rerun (with everything downstream) so that it can be killed.
        force = ("--forcerun", STAGE_RULES[stage]) if finished else ()
        cmd = workflow_command(workdir, configfile, "--cores", "2", "--rerun-incomplete", *force)
        with open(workdir / f"attempt{attempt}_{stage}.log", "w") as log:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env)
            reached[stage] = kill_at_stage(proc, workdir, stage, fault, timeout)
            proc.wait()
        finished = proc.returncode == 0
        note = " (after --forcerun)" if force else ""
        print(f"  {stage}: {'killed' if reached[stage] else 'not reached'}{note}", file=sys.stderr,
              flush=True)
    run_workflow(workdir, "--unlock", configfile=configfile, env=env)
    final = run_workflow(workdir, "--cores", "2", "--rerun-incomplete", configfile=configfile,
                         env=env)
    (workdir / "final.log").write_text(final.stdout + final.stderr)
    outcomes = []
    for stage in stages:
        if not reached[stage]:
            outcome = Outcome(stage, fault, "stage done before a kill landed", "-", "-", 0, 0)
        elif final.returncode != 0:
            outcome = Outcome(stage, fault, f"rerun FAILED ({final.returncode})", "-", "-", 0,
                              partial_files(workdir))
        else:
            outcome = completed_outcome(stage, fault, reference, workdir, STAGE_ARTIFACTS[stage])
        outcomes.append(outcome)
    whole_identical, whole_lost = compare(reference / "results", workdir / "results")
    print(f"  all final artifacts: identical={whole_identical} lost={whole_lost}", file=sys.stderr)
    return outcomes


def compare(
    reference: Path, candidate: Path, patterns: tuple[str, ...] = ARTIFACTS
) -> tuple[bool, int]:
    identical, lost = True, 0
    for pattern in patterns:
        for path in reference.glob(pattern):
            twin = candidate / path.relative_to(reference)
            if not twin.exists():
                lost += 1
            elif not same_content(path, twin):
                identical = False
    return identical, lost


def same_content(a: Path, b: Path) -> bool:
    """Byte equality; training histories are compared without their wall-clock column."""
    if a.name == "history.csv":
        strip = lambda p: [line.rsplit(",", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
        return strip(a) == strip(b)
    return filecmp.cmp(a, b, shallow=False)


def markdown(outcomes: list[Outcome]) -> str:
    lines = [
        "| stage | fault | outcome | resumed | identical | files lost | partial files left |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.stage} | kill -9 {o.fault} | {o.outcome} | {o.resumed} | "
            f"{o.identical} | {o.lost} | {o.partial_left} |"
        )
    return "\n".join(lines)


def local_env() -> dict:
    """This environment with an `scontrol` that fails at once: the SLURM executor plugin calls it
    at every Snakemake start, which waits ~10 s where no controller answers (see tests/conftest)."""
    stub = Path(tempfile.mkdtemp(prefix="ferxai-local-bin-"))
    (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    atexit.register(shutil.rmtree, stub, True)
    return {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / ".test" / "config.yaml")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument(
        "--faults", nargs="+", default=["workflow", "job"], choices=["workflow", "job"]
    )
    parser.add_argument("--mode", choices=["chain", "independent"], default="chain")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="ferxai-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    reference = root / "reference"
    reference.mkdir(exist_ok=True)
    print(f"reference run in {reference} ...", file=sys.stderr)
    env = local_env()
    ref = run_workflow(reference, "--cores", "2", configfile=args.config.resolve(), env=env)
    if ref.returncode != 0:
        print(ref.stdout[-3000:], ref.stderr[-3000:], file=sys.stderr)
        return 1
    outcomes = []
    if args.mode == "chain":
        for fault in args.faults:
            print(f"chain: kill -9 {fault} at {', '.join(args.stages)} ...", file=sys.stderr)
            outcomes += chain(fault, args.stages, reference, root, args.config.resolve(), env=env)
    else:
        for stage in args.stages:
            for fault in args.faults:
                print(f"{stage}: kill -9 {fault} ...", file=sys.stderr)
                outcomes.append(
                    inject(stage, fault, reference, root, args.config.resolve(), env=env)
                )
                print(markdown(outcomes[-1:]).splitlines()[-1], file=sys.stderr)
    print(markdown(outcomes))
    bad = [o for o in outcomes if o.outcome != "completed" or o.identical != "yes" or o.lost]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
