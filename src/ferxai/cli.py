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
from ferxai.core.code_version import closure, code_version
from ferxai.core.errors import FerxaiError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("ferxai.data.synth", "render the synthetic FACS face dataset"),
    "prepare": ("ferxai.data.dataset", "validate a dataset (manifest or folder per class)"),
    "folds": ("ferxai.data.folds", "stratified (subject-grouped) k-fold table"),
    "import-dataset": ("ferxai.data.import_dataset", "a common FER dataset (native) to a manifest"),
    "fetch-weights": (
        "ferxai.networks.pretrained",
        "download a network's pre-trained weights (login node)",
    ),
    "train": ("ferxai.networks.training", "train one network on one fold (Lightning)"),
    "evaluate": ("ferxai.networks.evaluate", "evaluate a trained network on its test fold"),
    "train-evaluate": (
        "ferxai.networks.train_evaluate",
        "train, then evaluate, one network on one fold in one process",
    ),
    "positives": ("ferxai.networks.evaluate", "select the images to explain per expression"),
    "accuracy": ("ferxai.networks.accuracy", "accuracy table and figure of every network and fold"),
    "attribute": (
        "ferxai.attribution.attribute",
        "explain positives (LIME, SHAP, ...) into an HDF5 stack",
    ),
    "landmarks": ("ferxai.normalization.landmarks", "68-point landmarks of every image (given or dlib)"),
    "landmarks-qa": (
        "ferxai.normalization.landmarks_qa",
        "landmark QA figure: sampled faces with their points and on the canonical face",
    ),
    "make-template": ("ferxai.normalization.make_template", "regenerate the canonical landmark template from dlib"),
    "normalize": ("ferxai.normalization.normalize", "warp a stack of maps onto the canonical face"),
    "aggregate": ("ferxai.heatmaps.aggregate", "pool normalized maps into a global heatmap"),
    "groundtruth": (
        "ferxai.comparison.references",
        "draw the Ekman/FACS ground-truth masks and the action-unit atlas",
    ),
    "compare": ("ferxai.comparison.compare", "IoU, F1, precision, recall of a folder of heatmaps"),
    "cluster": ("ferxai.comparison.cluster", "dendrograms and similarity matrices of heatmaps"),
    "extended-metrics": (
        "ferxai.comparison.extended_metrics",
        "threshold-free metrics and bootstrap CIs",
    ),
    "au-coverage": (
        "ferxai.comparison.au_coverage",
        "share of every heatmap's mass in each action unit's region, with localisation scores",
    ),
    "per-face": (
        "ferxai.comparison.per_face",
        "each explained image against its own AUs' regions and its expression's prototype",
    ),
    "sanity": ("ferxai.sanity.check", "model-randomization sanity check (Adebayo et al.)"),
    "quality": (
        "ferxai.quality.job",
        "faithfulness and randomisation of one network's explanations (Quantus's metrics)",
    ),
    "trust": ("ferxai.quality.trust", "the trust table: every method's quality with bootstrap CIs"),
    "figures": ("ferxai.report.figures", "figures for the report"),
    "tables": ("ferxai.comparison.tables", "paper-style metric tables (CSV, Markdown, LaTeX)"),
    "provenance": ("ferxai.core.provenance", "print where an artifact came from"),
    "install-profile": (
        "ferxai.core.profiles",
        "install a Snakemake profile (slurm) for bare --profile",
    ),
}


# Provenance: after a successful run every output gets a record (ferxai version, git commit, hash
# of the settings, sha256 of the inputs). Each command declares which of its flags name inputs and
# outputs, in its ``cli_<name>_args``: ``parser.set_defaults(provenance_inputs=(dest, ...),
# provenance_outputs=(dest or callable(args) -> paths, ...))``; every other flag is a setting.
NOT_SETTINGS = {"command", "func", "verbose", "threads", "provenance_inputs", "provenance_outputs"}


def _paths(value) -> list[str]:
    """Paths named by a flag's value: a path, a list of them, or inline JSON holding paths."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [p for v in value for p in _paths(v)]
    text = str(value)
    if text.lstrip()[:1] in "[{":
        import json

        def leaves(node):
            if isinstance(node, dict):
                return [p for v in node.values() for p in leaves(v)]
            if isinstance(node, list):
                return [p for v in node for p in leaves(v)]
            return [node] if isinstance(node, str) else []

        try:
            return leaves(json.loads(text))
        except json.JSONDecodeError:
            return []
    return [text]


def _declared(args: argparse.Namespace, declared) -> list[list[str]]:
    return [_paths(d(args) if callable(d) else getattr(args, d, None)) for d in declared]


def record_provenance(args: argparse.Namespace) -> None:
    """Write ``<output>.prov.json`` beside every output of the command that just succeeded.

    Inputs given as lists of the same length as an output list (``--stack A B --out X Y``) are
    paired element-wise, so each output names only the input it was made from.
    """
    import json
    from pathlib import Path

    from ferxai.core import provenance

    input_flags = getattr(args, "provenance_inputs", ())
    output_flags = getattr(args, "provenance_outputs", ())
    skip = NOT_SETTINGS | {d for d in (*input_flags, *output_flags) if isinstance(d, str)}
    settings = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    for key in ("settings", "eval_settings", "plan", "attrs"):
        if isinstance(settings.get(key), str) and settings[key].lstrip()[:1] in "[{":
            settings[key] = json.loads(settings[key])
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
    inputs = [paths for paths in _declared(args, input_flags) if paths]
    for outputs in _declared(args, output_flags):
        for i, output in enumerate(outputs):
            if not Path(output).exists():
                continue
            sources = []
            for paths in inputs:
                paired = len(outputs) > 1 and len(paths) == len(outputs)
                sources += [paths[i]] if paired else paths
            sources = [p for p in sources if Path(p).exists()]
            record = provenance.build(sources, settings, {"command": args.command})
            provenance.write_sidecar(output, record)


# The code version of a rule is that of the command it runs (ferxai.core.code_version).
def command_modules(command: str) -> list[str]:
    """Every module ``ferxai COMMAND`` runs: the CLI and the command's module, with their imports."""
    return closure(__name__, COMMANDS[command][0])


def command_code_version(command: str) -> str:
    """Code version of a rule that runs ``ferxai COMMAND``."""
    return code_version(__name__, COMMANDS[command][0])


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
