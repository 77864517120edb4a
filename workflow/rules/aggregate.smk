# Heatmaps are named as the paper published them, so `ferxai compare` reads the folder directly:
#   {Network}_{Expression}_heatmap.png        pooled over all folds (by network)
#   {Network}_CV{k}_{Expression}_heatmap.png  one fold
#   total/{Expression}_heatmap.png            pooled over every network and fold
# Each PNG has its float arrays in a sibling .h5 and a JET-coloured _jet.png for figures.


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
            attrs = {"network": wildcards.model, "expression": e, "method": wildcards.method}
            stacks = get_stacks(stage_root, wildcards.method, wildcards.model, folds, e)
            stem = f"{out_root.format(method=wildcards.method)}/{wildcards.model}_{e}_heatmap"
            jobs.append({"stacks": stacks, "stem": stem, "attrs": {**attrs, "fold": "all"}})
            for k in folds if by_fold else []:
                stem = f"{out_root.format(method=wildcards.method)}/{wildcards.model}_CV{k}_{e}_heatmap"
                jobs.append(
                    {
                        "stacks": get_stacks(stage_root, wildcards.method, wildcards.model, [k], e),
                        "stem": stem,
                        "attrs": {**attrs, "fold": k},
                    }
                )
        return settings_json(jobs)

    return plan


rule aggregate_by_network:
    input:
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method, wildcards.model),
    output:
        model_heatmap_outputs(f"{R}/heatmaps/{{method}}"),
    params:
        plan=aggregation_plan("normalized", f"{R}/heatmaps/{{method}}", FOLDS),
        code=code_version("ferxai.aggregate"),
    log:
        f"{R}/logs/aggregate/{{method}}_{{model}}.log",
    shell:
        "{FERXAI} aggregate --plan '{params.plan}' > {log} 2>&1"


rule aggregate_by_expression:
    input:
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method),
    output:
        [f for e in EXPRESSIONS for f in heatmap_files(f"{R}/heatmaps/{{method}}/total/{e}_heatmap")],
    params:
        plan=lambda wildcards: settings_json(
            [
                {
                    "stacks": get_stacks("normalized", wildcards.method, expression=e),
                    "stem": f"{R}/heatmaps/{wildcards.method}/total/{e}_heatmap",
                    "attrs": {"network": "all", "fold": "all", "expression": e, "method": wildcards.method},
                }
                for e in EXPRESSIONS
            ]
        ),
        code=code_version("ferxai.aggregate"),
    log:
        f"{R}/logs/aggregate/{{method}}_total.log",
    shell:
        "{FERXAI} aggregate --plan '{params.plan}' > {log} 2>&1"


rule aggregate_randomized:
    input:
        trained=lambda wildcards: get_stacks(
            "normalized", wildcards.method, wildcards.model, SANITY_FOLDS
        ),
        randomized=lambda wildcards: get_stacks(
            "sanity/normalized", wildcards.method, wildcards.model, SANITY_FOLDS
        ),
    output:
        trained=[
            f
            for e in EXPRESSIONS
            for f in heatmap_files(f"{R}/sanity/heatmaps/{{method}}/trained/{{model}}_{e}_heatmap")
        ],
        randomized=[
            f
            for e in EXPRESSIONS
            for f in heatmap_files(f"{R}/sanity/heatmaps/{{method}}/randomized/{{model}}_{e}_heatmap")
        ],
    params:
        trained=aggregation_plan(
            "normalized", f"{R}/sanity/heatmaps/{{method}}/trained", SANITY_FOLDS, by_fold=False
        ),
        randomized=aggregation_plan(
            "sanity/normalized",
            f"{R}/sanity/heatmaps/{{method}}/randomized",
            SANITY_FOLDS,
            by_fold=False,
        ),
        code=code_version("ferxai.aggregate"),
    log:
        f"{R}/logs/aggregate_randomized/{{method}}_{{model}}.log",
    shell:
        "{FERXAI} aggregate --plan '{params.trained}' --plan '{params.randomized}' > {log} 2>&1"
