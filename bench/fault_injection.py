"""Kill -9 the workflow (or a single job) at each stage of the `.test` run, rerun, and compare.

For every stage and fault the script starts the `.test` workflow in a fresh folder, waits until a
job of that stage is running (for `train`, until its first epoch checkpoint exists, so that resuming
is exercised), kills it with SIGKILL — the whole Snakemake process group ("workflow") or only the
stage's process ("job") — then reruns (`--unlock`, then `--rerun-incomplete`) and compares every
final artifact with an uninterrupted reference run, byte for byte.

    .venv/bin/python bench/fault_injection.py                      # all stages, both faults
    .venv/bin/python bench/fault_injection.py --stages train attribute --faults workflow

Prints a Markdown table: stage, fault, outcome, resumed, identical, files lost, partial files left.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

# stage -> the ferxai subcommand its jobs run
STAGES = {
    "synth": "synth",
    "prepare_dataset": "prepare",
    "landmarks": "landmarks",
    "train": "train",
    "evaluate": "evaluate",
    "attribute": "attribute",
    "normalize": "normalize",
    "aggregate": "aggregate",
    "compare": "compare",
    "cluster": "cluster",
}
# Final artifacts compared with the reference run.
ARTIFACTS = (
    "data/*.csv",
    "models/*/*/model.pt",
    "eval/*/*/predictions.csv",
    "attributions/**/*.h5",
    "normalized/**/*.h5",
    "heatmaps/**/*.png",
    "heatmaps/**/*.h5",
    "comparison/**/*.csv",
    "clustering/**/*.csv",
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
            str(workdir), "--configfile", str(configfile), *args]  # fmt: skip


def run_workflow(
    workdir: Path, *args: str, configfile: Path, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        workflow_command(workdir, configfile, *args), capture_output=True, text=True, cwd=workdir,
        env=env,
    )  # fmt: skip


def stage_processes(workdir: Path, subcommand: str) -> list[int]:
    """PIDs of `ferxai <subcommand>` processes whose working directory is `workdir`."""
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
            and (subcommand in words[1:3])
        ):
            pids.append(int(proc.name))
    return pids


def ready_to_kill(workdir: Path, stage: str) -> bool:
    if stage != "train":
        return True
    return any((workdir / "results" / "models").glob("*/*/checkpoints/last.ckpt"))


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
    subcommand, killed, start = STAGES[stage], False, time.monotonic()
    while proc.poll() is None and time.monotonic() - start < timeout:
        pids = stage_processes(workdir, subcommand)
        if pids and ready_to_kill(workdir, stage):
            time.sleep(0.5)  # let it write something
            if fault == "workflow":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.1)
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
    resumed = "-"
    if stage == "train":
        logs = "".join(p.read_text() for p in (workdir / "results" / "logs" / "train").glob("*"))
        resumed = "yes" if "resum" in logs.lower() else "no"
    identical, lost = compare(reference / "results", workdir / "results")
    partial = len(list((workdir / "results").rglob(".*.partial*")))
    return Outcome(stage, fault, "completed", resumed, "yes" if identical else "NO", lost, partial)


def compare(reference: Path, candidate: Path) -> tuple[bool, int]:
    identical, lost = True, 0
    for pattern in ARTIFACTS:
        for path in reference.glob(pattern):
            twin = candidate / path.relative_to(reference)
            if not twin.exists():
                lost += 1
            elif not filecmp.cmp(path, twin, shallow=False):
                identical = False
    return identical, lost


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / ".test" / "config.yaml")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument(
        "--faults", nargs="+", default=["workflow", "job"], choices=["workflow", "job"]
    )
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="ferxai-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    reference = root / "reference"
    reference.mkdir(exist_ok=True)
    print(f"reference run in {reference} ...", file=sys.stderr)
    ref = run_workflow(reference, "--cores", "2", configfile=args.config.resolve())
    if ref.returncode != 0:
        print(ref.stdout[-3000:], ref.stderr[-3000:], file=sys.stderr)
        return 1
    outcomes = []
    for stage in args.stages:
        for fault in args.faults:
            print(f"{stage}: kill -9 {fault} ...", file=sys.stderr)
            outcomes.append(inject(stage, fault, reference, root, args.config.resolve()))
            print(markdown(outcomes[-1:]).splitlines()[-1], file=sys.stderr)
    print(markdown(outcomes))
    bad = [o for o in outcomes if o.outcome != "completed" or o.identical != "yes" or o.lost]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
