"""The ``ferxai`` command: one subcommand per stage.

Each subcommand lives in its stage's module as two functions, ``cli_<name>_args(parser)`` (adds
flags) and ``cli_<name>(args)`` (runs). Only the chosen subcommand's module is imported, so
``ferxai --help`` and the light stages start without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ferxai import __version__
from ferxai.errors import FerxaiError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("ferxai.data.synth", "render the synthetic FACS face dataset"),
    "prepare": ("ferxai.data.dataset", "validate a dataset (manifest or folder per class)"),
    "folds": ("ferxai.data.folds", "stratified (subject-grouped) k-fold table"),
    "train": ("ferxai.training", "train one network on one fold (Lightning)"),
    "evaluate": ("ferxai.evaluation", "evaluate a trained network on its test fold"),
    "positives": ("ferxai.evaluation", "select the images to explain per expression"),
    "accuracy": ("ferxai.summary", "accuracy table and figure of every network and fold"),
    "attribute": (
        "ferxai.attribution.cli",
        "explain positives (LIME, SHAP, ...) into an HDF5 stack",
    ),
    "landmarks": ("ferxai.landmarks", "68-point landmarks of every image (given or dlib)"),
    "make-template": ("ferxai.normalize", "regenerate the canonical landmark template from dlib"),
    "normalize": ("ferxai.normalize", "warp a stack of maps onto the canonical face"),
    "aggregate": ("ferxai.aggregate", "pool normalized maps into a global heatmap"),
    "groundtruth": ("ferxai.groundtruth", "draw the Ekman/FACS ground-truth masks"),
    "compare": ("ferxai.compare", "metrics and dendrograms for a folder of heatmaps"),
    "cluster": ("ferxai.cluster", "dendrograms and similarity matrices of heatmaps"),
    "extended-metrics": ("ferxai.compare", "threshold-free metrics and bootstrap CIs"),
    "sanity": ("ferxai.compare", "model-randomization sanity check (Adebayo et al.)"),
    "figures": ("ferxai.figures", "figures for the report"),
    "tables": ("ferxai.tables", "paper-style metric tables (CSV, Markdown, LaTeX)"),
    "provenance": ("ferxai.provenance", "print where an artifact came from"),
    "install-profile": (
        "ferxai.profiles",
        "install a Snakemake profile (slurm) for bare --profile",
    ),
}


# Flags naming what a command reads and what it writes: after a successful run every output gets a
# provenance record (ferxai version, git commit, hash of the settings, sha256 of the inputs).
INPUT_FLAGS = (
    "dataset", "folds", "weights", "positives", "predictions", "stack", "stacks", "landmarks",
    "metrics", "counts", "manifest", "folder", "heatmaps", "gt", "trained", "randomized",
    "reference", "extended", "spec",
)  # fmt: skip
OUTPUT_FLAGS = (
    "out", "out_h5", "out_png", "out_jet", "out_dir", "skipped", "failures", "figure",
    "positives_out", "methods_out",
)  # fmt: skip
NOT_SETTINGS = {"command", "func", "verbose", "threads", *INPUT_FLAGS, *OUTPUT_FLAGS}


def _as_list(value) -> list:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def record_provenance(args: argparse.Namespace) -> None:
    """Write ``<output>.prov.json`` beside every output of the command that just succeeded.

    Inputs given as lists of the same length as an output list (``--stack A B --out X Y``) are
    paired element-wise, so each output names only the input it was made from.
    """
    import json
    from pathlib import Path

    from ferxai import provenance

    values = vars(args)
    settings = {k: v for k, v in values.items() if k not in NOT_SETTINGS and v is not None}
    for key in ("settings", "plan", "attrs"):
        if isinstance(settings.get(key), str) and settings[key].lstrip()[:1] in "[{":
            settings[key] = json.loads(settings[key])
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
    inputs = {k: _as_list(values.get(k)) for k in INPUT_FLAGS if values.get(k) is not None}
    if args.command == "aggregate" and values.get("plan"):
        return  # plan mode records each heatmap itself, with its own stacks
    for out_key in OUTPUT_FLAGS:
        outputs = _as_list(values.get(out_key))
        for i, output in enumerate(outputs):
            if not Path(output).exists():
                continue
            sources = []
            for paths in inputs.values():
                paired = len(outputs) > 1 and len(paths) == len(outputs)
                sources += [paths[i]] if paired else paths
            sources = [p for p in sources if Path(p).exists()]
            record = provenance.build(sources, settings, {"command": args.command})
            provenance.write_sidecar(output, record)


def _entry(name: str):
    module = importlib.import_module(COMMANDS[name][0])
    attr = name.replace("-", "_")
    return getattr(module, f"cli_{attr}_args"), getattr(module, f"cli_{attr}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferxai",
        description="How human-like are FER networks? Stages of the Gaya-Morey et al. (2024) study.",
    )
    parser.add_argument("--version", action="version", version=f"ferxai {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            add_args, run = _entry(name)
            add_args(sp)
            sp.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
        if args.command != "provenance":
            record_provenance(args)
    except FerxaiError as exc:
        print(f"ferxai {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ferxai {args.command}: interrupted; nothing partial was kept.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
