import os
import re
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

from ferxai.attribution.settings import job_settings
from ferxai.core.code_version import code_version as module_code_version
from ferxai.cli import command_code_version
from ferxai.core.config import (
    fetched_weights,
    network_settings,
    settings_json,
    trained_networks,
    validate_config,
    weights_cache,
)
from ferxai.core.constants import EXPRESSIONS
from ferxai.core.errors import ConfigError
from ferxai.comparison.group_test import default_groups
from ferxai.heatmaps.heatmap import heatmap_paths, heatmap_stem
from ferxai.networks.registry import resolve_input_size
from ferxai.heatmaps.pooling import expression_plan, network_plan, network_stems
from ferxai.comparison.tables import table_paths
from ferxai.quality.job import DEFAULTS as QUALITY_JOB_DEFAULTS
from ferxai.networks.model_card import CARD_KEYS, is_whole_model
from ferxai.networks.model_check import check_trained_model, trained_input_size
from ferxai.comparison.au_atlas import load_atlas

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
SANITY_METHODS = config["sanity"]["methods"] or METHODS
# Threads of the per-network jobs (train, evaluate, attribute) on a local run: one, so that `--cores
# N` runs N of them side by side. Their start-up (imports) is single-threaded and their batches are
# small: on the demo's 2 cores two 1-thread jobs keep both cores busy, where one 2-thread job used
# ~1.5 (docs/benchmarks.md). Clusters set their own (profiles/slurm: set-threads); a long local job
# on big data can take more with --set-threads train=8.
JOB_THREADS = 1

# Models trained elsewhere (networks.overrides.NAME.trained_weights): no train job; every fold
# evaluates and explains the same weights on its own test images.
TRAINED_ELSEWHERE = trained_networks(config)
# Each is loaded and probed once before any job (its file, its card, the methods it must serve);
# not again in the jobs' own Snakemake processes on a cluster.
if workflow.is_main_process:
    for _name, _path in TRAINED_ELSEWHERE.items():
        try:
            check_trained_model(_path, network_settings(config, _name), METHODS, _name)
        except ConfigError as exc:
            raise WorkflowError(str(exc)) from None
# evaluation.in_training_job: the train jobs evaluate too, in the same process (ferxai
# train-evaluate), one interpreter start-up per network and fold instead of two; the evaluate jobs
# then evaluate only the models trained elsewhere. Each rule's {model} is limited to its networks
# ("(?!)" matches none).
EVAL_IN_TRAINING = config["evaluation"]["in_training_job"]
TRAINED_HERE = "|".join(re.escape(m) for m in NETWORKS if m not in TRAINED_ELSEWHERE)
EVALUATED_ALONE = "|".join(
    re.escape(m) for m in NETWORKS if m in TRAINED_ELSEWHERE or not EVAL_IN_TRAINING
)
TRAINED_HERE, EVALUATED_ALONE = TRAINED_HERE or "(?!)", EVALUATED_ALONE or "(?!)"
# Pre-trained weights the local rule fetch_weights downloads once into the weight cache.
WEIGHTS_CACHE = weights_cache(config)
FETCHED = {
    m: fetched_weights(config, m) for m in NETWORKS if fetched_weights(config, m)
}
# fetch_weights' {arch}: the timm names of those files ("(?!)" matches nothing).
FETCH_ARCHS = "|".join(re.escape(Path(p).stem) for p in sorted(set(FETCHED.values())))
FETCH_ARCHS = FETCH_ARCHS or "(?!)"

# Jobs find `ferxai` beside the Python running Snakemake: no need to activate the venv (SLURM too).
os.environ["PATH"] = (
    f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)


# ------------------------------------------------------------------ code versions
def code_version(command):
    """Hash of every ferxai module that `ferxai COMMAND` imports, transitively: editing a module
    reruns exactly the rules whose commands use it (ferxai.core.code_version)."""
    try:
        return command_code_version(command)
    except ValueError as exc:
        raise WorkflowError(str(exc)) from None


# ------------------------------------------------------------------ settings per job
def training_settings(wildcards):
    return settings_json(network_settings(config, wildcards.model))


def input_size(model):
    """The network's input side in pixels (null in the config → its native size)."""
    settings = network_settings(config, model)
    try:
        if model in TRAINED_ELSEWHERE and is_whole_model(TRAINED_ELSEWHERE[model]):
            return trained_input_size(TRAINED_ELSEWHERE[model], settings, model)
        return resolve_input_size(settings.get("arch") or model, settings["input_size"])
    except ConfigError as exc:
        raise WorkflowError(f"networks.overrides.{model}: {exc}") from None


def evaluation_settings(wildcards):
    return settings_json(
        {
            "input_size": input_size(wildcards.model),
            "device": config["device"],
            "precision": config["precision"],
            "batch_size": config["evaluation"]["batch_size"],
            "cpu_forward": config["cpu_forward"],
        }
    )


def evaluation_outputs():
    """The files an evaluation writes (rule evaluate, or rule train with evaluation in it)."""
    folder = f"{R}/eval/{{model}}/fold{{fold}}"
    return {
        "predictions": f"{folder}/predictions.csv",
        "metrics": f"{folder}/metrics.json",
        "confusion": f"{folder}/confusion.csv",
        "confusion_png": report(
            f"{folder}/confusion.png",
            caption="../report/confusion.rst",
            category="2. Networks",
            subcategory="Confusion matrices",
            labels={"network": "{model}", "fold": "{fold}"},
        ),
    }


def get_weights(wildcards):
    """The weights a job evaluates or explains: model.pt of the train job, or the file of a
    model trained elsewhere (its absolute path, so Snakemake tracks it)."""
    if wildcards.model in TRAINED_ELSEWHERE:
        return TRAINED_ELSEWHERE[wildcards.model]
    return f"{R}/models/{wildcards.model}/fold{wildcards.fold}/model.pt"


def model_flags(wildcards):
    """--arch/--class-order of a model trained elsewhere, --card for a whole model's input and
    output card (channels, layout, ...); nothing for the others."""
    import shlex

    if wildcards.model not in TRAINED_ELSEWHERE:
        return ""
    settings = network_settings(config, wildcards.model)
    if is_whole_model(TRAINED_ELSEWHERE[wildcards.model]):
        card = {k: settings[k] for k in CARD_KEYS if settings.get(k) is not None}
        flags = f"--card {shlex.quote(settings_json(card))}"
    else:
        flags = f"--arch {shlex.quote(settings.get('arch') or wildcards.model)}"
    if settings.get("class_order"):
        flags += " --class-order " + " ".join(map(shlex.quote, settings["class_order"]))
    return flags


def randomized_weights_flag(wildcards, input):
    """The randomized twin's weights: none (re-initialized from the architecture), or, for a
    whole model, its own file with the weights redrawn from the seed."""
    model = TRAINED_ELSEWHERE.get(wildcards.model)
    if model and is_whole_model(model):
        return f"--weights {input.weights} --randomize"
    return "--weights none --randomize"


def get_fetched_weights(wildcards):
    """The weight-cache file a pre-trained network starts from (fetch_weights fills it)."""
    return FETCHED.get(wildcards.model, [])


def method_settings(method):
    return settings_json(
        job_settings(
            method,
            config["attribution"][method],
            config["precision"],
            config["cpu_forward"],
        )
    )


# ------------------------------------------------------------------ input functions
def get_manifest(wildcards=None):
    from ferxai.data.importers import FORMATS

    data = config["data"]
    if data["source"] == "synthetic":
        return f"{R}/data/synth/manifest.csv"
    if data["source"] == "manifest":
        return data["manifest"]
    if data["source"] in FORMATS:
        return f"{R}/data/import/manifest.csv"  # rule import_dataset
    return []


def get_prepare_source_flags(wildcards, input):
    from ferxai.data.import_dataset import prepare_root
    from ferxai.data.importers import FORMATS

    data = config["data"]
    if data["source"] == "folder":
        flags = f"--folder {data['folder']}"
    else:
        flags = f"--manifest {input.manifest}"
    root = data["root"]
    if not root and data["source"] in FORMATS:
        # imported images stay in data.path: the root must hold them (and the landmark files)
        root = prepare_root(
            data["source"], data["path"], os.path.dirname(input.manifest)
        )
    if root:
        flags += f" --root {root}"
    return flags


def get_landmark_source():
    source = config["landmarks"]["source"]
    if source == "auto":
        given = config["data"]["source"] == "synthetic" or CROP == "landmarks"
        return "given" if given else "dlib"
    return source


# Cropping to the face happens in prepare_dataset (its dataset.csv lists the crops), so every later
# stage sees the same crops; without it the rule and its command are as before.
CROP = config["data"]["crop"]


def get_crop_outputs():
    return {} if CROP == "none" else {"crops": directory(f"{R}/data/crops")}


def get_crop_flags(wildcards, output):
    if CROP == "none":
        return ""
    margin = config["data"]["crop_margin"]
    return f"--crop {CROP} --crop-margin {margin} --crop-dir {output.crops}"


# The registry's from-scratch / pre-trained split of the networks (None without both groups):
# compare tests it (group_test.csv), extended_metrics compares the groups' mean IoU. Known when the
# workflow is parsed, so the rules declare exactly the files their commands write.
GROUPS = default_groups(NETWORKS)


def groups_flag(absent=""):
    """--groups NAME=net,... of GROUPS for the command line, ``absent`` without groups."""
    if not GROUPS:
        return absent
    return "--groups " + " ".join(f"{g}={','.join(nets)}" for g, nets in GROUPS.items())


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
        heatmap_stem(heatmap_dir(method), e, m) + suffix
        for m in NETWORKS
        for e in EXPRESSIONS
    ]


def by_fold_heatmaps(method, suffix=".png"):
    return [
        heatmap_stem(heatmap_dir(method), e, m, k) + suffix
        for m in NETWORKS
        for k in FOLDS
        for e in EXPRESSIONS
    ]


def total_heatmaps(method, suffix=".png"):
    return [
        heatmap_stem(f"{heatmap_dir(method)}/total", e) + suffix for e in EXPRESSIONS
    ]


def sanity_heatmaps(method, kind):
    """The by-network heatmaps of the sanity check; kind: trained | randomized."""
    folder = f"{R}/sanity/heatmaps/{method}/{kind}"
    return [heatmap_stem(folder, e, m) + ".png" for m in NETWORKS for e in EXPRESSIONS]


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
        f"{R}/figures/au_atlas.png",
        f"{R}/figures/landmarks_qa.png",
    ]
    for method in METHODS:
        outputs += by_network_heatmaps(method) + by_network_heatmaps(method, ".h5")
        outputs += by_fold_heatmaps(method) + total_heatmaps(method)
        outputs += [
            f"{R}/comparison/{method}/metrics.csv",
            f"{R}/comparison/{method}/extended_metrics.csv",
            f"{R}/comparison/{method}/au_coverage.csv",
            f"{R}/comparison/{method}/per_face_summary.csv",
            f"{R}/comparison/{method}/tables/metrics_iou_by_network.md",
            f"{R}/figures/{method}/heatmap_grid.png",
            f"{R}/figures/{method}/iou_bars.png",
        ]
        outputs.append(f"{R}/clustering/{method}")
        if SANITY_FOLDS and method in SANITY_METHODS:
            outputs += [
                f"{R}/sanity/{method}/sanity.csv",
                f"{R}/sanity/{method}/sanity.png",
            ]
    if len(METHODS) > 1:
        outputs.append(f"{R}/figures/methods_comparison.png")
    return outputs + quality_outputs()


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
# Which stacks pool into which heatmap: built by ferxai.heatmaps.pooling, which also names the files.
def network_heatmap_outputs(folder, folds, by_fold=True):
    """Every file of one network's heatmaps ({model} left as a wildcard)."""
    return [
        path
        for stem, _, _ in network_stems(folder, "{model}", folds, by_fold)
        for path in heatmap_paths(stem)
    ]


def network_aggregation_plan(stage, folder, folds, by_fold=True):
    """Input function: the --plan of one network's heatmaps, as JSON."""

    def plan(wildcards):
        def stacks_for(plan_folds, expression):
            return get_stacks(
                stage, wildcards.method, wildcards.model, plan_folds, expression
            )

        return settings_json(
            network_plan(
                folder.format(method=wildcards.method),
                wildcards.model,
                wildcards.method,
                folds,
                stacks_for,
                by_fold,
            )
        )

    return plan


def expression_heatmap_outputs(folder):
    return [
        path for e in EXPRESSIONS for path in heatmap_paths(heatmap_stem(folder, e))
    ]


def expression_aggregation_plan(wildcards):
    """The --plan of the by-expression heatmaps (every network and fold), as JSON."""

    def stacks_for(expression):
        return get_stacks("normalized", wildcards.method, expression=expression)

    folder = f"{heatmap_dir(wildcards.method)}/total"
    return settings_json(expression_plan(folder, wildcards.method, stacks_for))


def comparison_heatmaps(wildcards):
    return by_network_heatmaps(wildcards.method) + by_fold_heatmaps(wildcards.method)


def clustering_heatmaps(wildcards):
    return comparison_heatmaps(wildcards) + total_heatmaps(wildcards.method)


# ------------------------------------------------------------------ explanation quality (issue 23)

QUALITY = config["quality"]
QUALITY_METHODS = QUALITY["methods"] if QUALITY["enabled"] else []
QUALITY_FOLDS = QUALITY["folds"]
QUALITY_NETWORKS = QUALITY["networks"] or NETWORKS
# Only the settings the jobs use: the trust table's (top_k, bootstrap) rerun rule trust alone.
QUALITY_JOB_SETTINGS = settings_json({k: QUALITY[k] for k in QUALITY_JOB_DEFAULTS})


def quality_job_outputs(method, kind):
    name = "curves.h5" if kind == "curves" else "scores.csv"
    return [
        f"{R}/quality/{method}/{m}/fold{k}/{name}"
        for m in QUALITY_NETWORKS
        for k in QUALITY_FOLDS
    ]


def quality_outputs():
    if not QUALITY_METHODS:
        return []
    return [
        f"{R}/quality/trust.csv",
        f"{R}/quality/ranking.csv",
        f"{R}/quality/curves.png",
    ] + [f"{R}/quality/{m}/scores.csv" for m in QUALITY_METHODS]
