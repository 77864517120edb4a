import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

from ferxai.attribution.settings import job_settings
from ferxai.config import network_settings, settings_json, validate_config
from ferxai.constants import EXPRESSIONS
from ferxai.errors import ConfigError

# ------------------------------------------------------------------ configuration
try:
    config = validate_config(config, source="config (--configfile / --config)")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

R = config["results"]
NETWORKS = config["networks"]["names"]
FOLDS = list(range(1, config["data"]["folds"] + 1))
METHODS = config["attribution"]["methods"]
SANITY_FOLDS = config["sanity"]["folds"] if config["sanity"]["enabled"] else []

# Jobs find `ferxai` beside the Python running Snakemake: no need to activate the venv (SLURM too).
os.environ["PATH"] = (
    f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)


# ------------------------------------------------------------------ code versions
def code_version(*modules):
    """Hash of the source of the modules behind a stage, so that editing a stage reruns it alone."""
    digest = hashlib.sha256()
    for module in modules:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise WorkflowError(
                f"cannot find module {module}; is ferxai installed (pip install -e .)?"
            )
        paths = [Path(spec.origin)]
        if spec.submodule_search_locations:
            paths = sorted(Path(spec.origin).parent.glob("*.py"))
        for path in paths:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------ settings per job
def training_settings(wildcards):
    return settings_json(network_settings(config, wildcards.model))


def input_size(model):
    return network_settings(config, model)["input_size"] or 0


def method_settings(method):
    return settings_json(
        job_settings(method, config["attribution"][method], config["precision"])
    )


# ------------------------------------------------------------------ input functions
def get_manifest(wildcards=None):
    data = config["data"]
    if data["source"] == "synthetic":
        return f"{R}/data/synth/manifest.csv"
    if data["source"] == "manifest":
        return data["manifest"]
    return []


def get_prepare_source_flags(wildcards, input):
    data = config["data"]
    if data["source"] == "folder":
        flags = f"--folder {data['folder']}"
    else:
        flags = f"--manifest {input.manifest}"
    if data["root"]:
        flags += f" --root {data['root']}"
    return flags


def get_landmark_source():
    source = config["landmarks"]["source"]
    if source == "auto":
        return "given" if config["data"]["source"] == "synthetic" else "dlib"
    return source


def stacks_json(stage, method, folds):
    """JSON object 'Network/Expression' → the stacks of ``stage`` over ``folds``."""
    return settings_json(
        {
            f"{m}/{e}": get_stacks(stage, method, m, folds, e)
            for m in NETWORKS
            for e in EXPRESSIONS
        }
    )


def get_stacks(stage, method, model=None, folds=None, expression=None):
    """Paths of normalized (or attribution) stacks for the given selection."""
    models = [model] if model else NETWORKS
    expressions = [expression] if expression else EXPRESSIONS
    return [
        f"{R}/{stage}/{method}/{m}/fold{k}/{e}.h5"
        for m in models
        for k in (folds or FOLDS)
        for e in expressions
    ]


def heatmap_dir(method):
    return f"{R}/heatmaps/{method}"


def by_network_heatmaps(method, suffix=".png"):
    return [
        f"{heatmap_dir(method)}/{m}_{e}_heatmap{suffix}"
        for m in NETWORKS
        for e in EXPRESSIONS
    ]


def by_fold_heatmaps(method, suffix=".png"):
    return [
        f"{heatmap_dir(method)}/{m}_CV{k}_{e}_heatmap{suffix}"
        for m in NETWORKS
        for k in FOLDS
        for e in EXPRESSIONS
    ]


def total_heatmaps(method, suffix=".png"):
    return [f"{heatmap_dir(method)}/total/{e}_heatmap{suffix}" for e in EXPRESSIONS]


def randomized_heatmaps(method, suffix=".png"):
    return [
        f"{R}/sanity/heatmaps/{method}/{m}_{e}_heatmap{suffix}"
        for m in NETWORKS
        for e in EXPRESSIONS
    ]


def get_reference_dir():
    return (
        f"{R}/data/synth/cues"
        if config["data"]["source"] == "synthetic"
        else f"{R}/groundtruth"
    )


def get_final_outputs():
    outputs = [
        f"{R}/eval/accuracy.csv",
        f"{R}/run_config.yaml",
        f"{R}/figures/groundtruth.png",
    ]
    for method in METHODS:
        outputs += by_network_heatmaps(method) + by_network_heatmaps(method, ".h5")
        outputs += by_fold_heatmaps(method) + total_heatmaps(method)
        outputs += [
            f"{R}/comparison/{method}/metrics.csv",
            f"{R}/comparison/{method}/extended_metrics.csv",
            f"{R}/comparison/{method}/tables/metrics_iou_by_network.md",
            f"{R}/figures/{method}/heatmap_grid.png",
            f"{R}/figures/{method}/iou_bars.png",
        ]
        outputs.append(f"{R}/clustering/{method}")
        if SANITY_FOLDS:
            outputs += [
                f"{R}/sanity/{method}/sanity.csv",
                f"{R}/sanity/{method}/sanity.png",
            ]
    if len(METHODS) > 1:
        outputs.append(f"{R}/figures/methods_comparison.png")
    return outputs


# ------------------------------------------------------------------ attribution jobs
PER_EXPRESSION = config["attribution"]["job_per_expression"]
ATTRIBUTE_JOB = (
    "{method}_{model}_fold{fold}_{expression}"
    if PER_EXPRESSION
    else "{method}_{model}_fold{fold}"
)


def attribution_outputs(root):
    """Output stacks of one attribution job: one expression, or all six."""
    pattern = f"{root}/{{method}}/{{model}}/fold{{fold}}/{{expression}}.h5"
    if PER_EXPRESSION:
        return [pattern]
    return [pattern.replace("{expression}", e) for e in EXPRESSIONS]


def job_expressions(wildcards):
    return [wildcards.expression] if PER_EXPRESSION else list(EXPRESSIONS)


def get_positives(wildcards):
    return [
        f"{R}/positives/{wildcards.model}/fold{wildcards.fold}/{e}.csv"
        for e in job_expressions(wildcards)
    ]


# The sanity check compares with the planted cues of synthetic faces, else with the Ekman masks.
REFERENCE_SUFFIX = "cue" if config["data"]["source"] == "synthetic" else "gt"


# ------------------------------------------------------------------ aggregation plans
def heatmap_files(stem):
    return [f"{stem}.png", f"{stem}.h5", f"{stem}_jet.png"]


def model_heatmap_outputs(root):
    out = []
    for e in EXPRESSIONS:
        out += heatmap_files(f"{root}/{{model}}_{e}_heatmap")
        for k in FOLDS:
            out += heatmap_files(f"{root}/{{model}}_CV{k}_{e}_heatmap")
    return out


def aggregation_plan(stage_root, out_root, folds, by_fold=True):
    """Plan of one model's aggregations: which stacks pool into which heatmap (JSON for the CLI)."""

    def plan(wildcards):
        jobs = []
        for e in EXPRESSIONS:
            attrs = {
                "network": wildcards.model,
                "expression": e,
                "method": wildcards.method,
            }
            stacks = get_stacks(stage_root, wildcards.method, wildcards.model, folds, e)
            stem = f"{out_root.format(method=wildcards.method)}/{wildcards.model}_{e}_heatmap"
            jobs.append(
                {"stacks": stacks, "stem": stem, "attrs": {**attrs, "fold": "all"}}
            )
            for k in folds if by_fold else []:
                stem = f"{out_root.format(method=wildcards.method)}/{wildcards.model}_CV{k}_{e}_heatmap"
                jobs.append(
                    {
                        "stacks": get_stacks(
                            stage_root, wildcards.method, wildcards.model, [k], e
                        ),
                        "stem": stem,
                        "attrs": {**attrs, "fold": k},
                    }
                )
        return settings_json(jobs)

    return plan


def comparison_heatmaps(wildcards):
    return by_network_heatmaps(wildcards.method) + by_fold_heatmaps(wildcards.method)


def clustering_heatmaps(wildcards):
    return comparison_heatmaps(wildcards) + total_heatmaps(wildcards.method)
