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
        network_heatmap_outputs(f"{R}/heatmaps/{{method}}", FOLDS),
    log:
        f"{R}/logs/aggregate/{{method}}_{{model}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        plan=network_aggregation_plan("normalized", f"{R}/heatmaps/{{method}}", FOLDS),
        code=code_version("aggregate"),
    shell:
        "ferxai aggregate --plan '{params.plan}' > {log} 2>&1"


rule aggregate_by_expression:
    input:
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method),
    output:
        expression_heatmap_outputs(f"{R}/heatmaps/{{method}}/total"),
    log:
        f"{R}/logs/aggregate/{{method}}_total.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        plan=expression_aggregation_plan,
        code=code_version("aggregate"),
    shell:
        "ferxai aggregate --plan '{params.plan}' > {log} 2>&1"
