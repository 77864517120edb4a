# Heatmaps are named as the paper published them, so `ferxai compare` reads the folder directly:
#   {Network}_{Expression}_heatmap.png        pooled over all folds (by network)
#   {Network}_CV{k}_{Expression}_heatmap.png  one fold
#   total/{Expression}_heatmap.png            pooled over every network and fold
# Each PNG has its float arrays in a sibling .h5 and a JET-coloured _jet.png for figures.


rule aggregate_by_network:
    input:
        stacks=lambda wildcards: get_stacks(
            "normalized", wildcards.method, wildcards.model
        ),
    output:
        model_heatmap_outputs(f"{R}/heatmaps/{{method}}"),
    log:
        f"{R}/logs/aggregate/{{method}}_{{model}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        plan=aggregation_plan("normalized", f"{R}/heatmaps/{{method}}", FOLDS),
        code=code_version("ferxai.aggregate"),
    shell:
        "ferxai aggregate --plan '{params.plan}' > {log} 2>&1"


rule aggregate_by_expression:
    input:
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method),
    output:
        [
            f
            for e in EXPRESSIONS
            for f in heatmap_files(f"{R}/heatmaps/{{method}}/total/{e}_heatmap")
        ],
    log:
        f"{R}/logs/aggregate/{{method}}_total.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        plan=lambda wildcards: settings_json(
            [
                {
                    "stacks": get_stacks("normalized", wildcards.method, expression=e),
                    "stem": f"{R}/heatmaps/{wildcards.method}/total/{e}_heatmap",
                    "attrs": {
                        "network": "all",
                        "fold": "all",
                        "expression": e,
                        "method": wildcards.method,
                    },
                }
                for e in EXPRESSIONS
            ]
        ),
        code=code_version("ferxai.aggregate"),
    shell:
        "ferxai aggregate --plan '{params.plan}' > {log} 2>&1"


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
            for f in heatmap_files(
                f"{R}/sanity/heatmaps/{{method}}/trained/{{model}}_{e}_heatmap"
            )
        ],
        randomized=[
            f
            for e in EXPRESSIONS
            for f in heatmap_files(
                f"{R}/sanity/heatmaps/{{method}}/randomized/{{model}}_{e}_heatmap"
            )
        ],
    log:
        f"{R}/logs/aggregate_randomized/{{method}}_{{model}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        trained=aggregation_plan(
            "normalized",
            f"{R}/sanity/heatmaps/{{method}}/trained",
            SANITY_FOLDS,
            by_fold=False,
        ),
        randomized=aggregation_plan(
            "sanity/normalized",
            f"{R}/sanity/heatmaps/{{method}}/randomized",
            SANITY_FOLDS,
            by_fold=False,
        ),
        code=code_version("ferxai.aggregate"),
    shell:
        "ferxai aggregate --plan '{params.trained}' --plan '{params.randomized}' > {log} 2>&1"
