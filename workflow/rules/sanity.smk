# Model-randomization sanity check (Adebayo et al. 2018), end to end: the randomized twins of the
# trained networks explain the same positives (attribute_randomized), their maps are warped
# (normalize_randomized) and pooled (aggregate_randomized), and `ferxai sanity` compares both.
# Included after attribution.smk and normalization.smk, whose rules it reuses.


# Model-randomization sanity check (Adebayo et al. 2018): the same architecture with
# re-initialized weights explains the same positives; its heatmaps should not look like the
# trained network's.
use rule attribute as attribute_randomized with:
    output:
        stacks=attribution_outputs(f"{R}/sanity/attributions"),
    log:
        f"{R}/logs/attribute_randomized/{ATTRIBUTE_JOB}.log",
    benchmark:
        f"{R}/benchmarks/attribute_randomized/{ATTRIBUTE_JOB}.tsv"
    conda:
        "../envs/ferxai.yaml"
    params:
        settings=lambda wildcards: method_settings(wildcards.method),
        input_size=lambda wildcards: input_size(wildcards.model),
        expressions=job_expressions,
        seed=config["seed"],
        device=config["device"],
        weights_flag=randomized_weights_flag,
        model_flags=model_flags,
        code=code_version("attribute"),


use rule normalize as normalize_randomized with:
    input:
        stacks=lambda wildcards: get_stacks(
            "sanity/attributions", wildcards.method, wildcards.model, [wildcards.fold]
        ),
        landmarks=rules.landmarks.output.landmarks,
        dataset=rules.prepare_dataset.output.dataset,
    output:
        stacks=expand(
            f"{R}/sanity/normalized/{{{{method}}}}/{{{{model}}}}/fold{{{{fold}}}}/{{expression}}.h5",
            expression=EXPRESSIONS,
        ),
    log:
        f"{R}/logs/normalize_randomized/{{method}}_{{model}}_fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/normalize_randomized/{{method}}_{{model}}_fold{{fold}}.tsv"
    conda:
        "../envs/ferxai.yaml"


rule aggregate_randomized:
    input:
        trained=lambda wildcards: get_stacks(
            "normalized", wildcards.method, wildcards.model, SANITY_FOLDS
        ),
        randomized=lambda wildcards: get_stacks(
            "sanity/normalized", wildcards.method, wildcards.model, SANITY_FOLDS
        ),
    output:
        trained=network_heatmap_outputs(
            f"{R}/sanity/heatmaps/{{method}}/trained", SANITY_FOLDS, by_fold=False
        ),
        randomized=network_heatmap_outputs(
            f"{R}/sanity/heatmaps/{{method}}/randomized", SANITY_FOLDS, by_fold=False
        ),
    log:
        f"{R}/logs/aggregate_randomized/{{method}}_{{model}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        trained=network_aggregation_plan(
            "normalized",
            f"{R}/sanity/heatmaps/{{method}}/trained",
            SANITY_FOLDS,
            by_fold=False,
        ),
        randomized=network_aggregation_plan(
            "sanity/normalized",
            f"{R}/sanity/heatmaps/{{method}}/randomized",
            SANITY_FOLDS,
            by_fold=False,
        ),
        code=code_version("aggregate"),
    shell:
        "ferxai aggregate --plan '{params.trained}' --plan '{params.randomized}' > {log} 2>&1"


rule sanity:
    input:
        trained=lambda wildcards: sanity_heatmaps(wildcards.method, "trained"),
        randomized=lambda wildcards: sanity_heatmaps(wildcards.method, "randomized"),
        reference=lambda wildcards: expand(
            f"{get_reference_dir()}/{{expression}}_{REFERENCE_SUFFIX}.png",
            expression=EXPRESSIONS,
        ),
        trained_stacks=lambda wildcards: get_stacks(
            "normalized", wildcards.method, folds=SANITY_FOLDS
        ),
        randomized_stacks=lambda wildcards: get_stacks(
            "sanity/normalized", wildcards.method, folds=SANITY_FOLDS
        ),
    output:
        per_image=report(
            f"{R}/sanity/{{method}}/sanity_per_image.csv",
            caption="../report/sanity.rst",
            category="7. Sanity check",
            labels={"method": "{method}", "table": "per explained image"},
        ),
        table=report(
            f"{R}/sanity/{{method}}/sanity.csv",
            caption="../report/sanity.rst",
            category="7. Sanity check",
            labels={"method": "{method}", "table": "trained vs randomized"},
        ),
        summary=report(
            f"{R}/sanity/{{method}}/sanity_summary.csv",
            caption="../report/sanity.rst",
            category="7. Sanity check",
            labels={"method": "{method}", "table": "per-network summary"},
        ),
        figure=report(
            f"{R}/sanity/{{method}}/sanity.png",
            caption="../report/sanity.rst",
            category="7. Sanity check",
            labels={"method": "{method}", "figure": "trained vs randomized"},
        ),
        grid=report(
            f"{R}/sanity/{{method}}/sanity_heatmaps.png",
            caption="../report/sanity.rst",
            category="7. Sanity check",
            labels={
                "method": "{method}",
                "figure": "heatmaps, trained and randomized",
            },
        ),
    log:
        f"{R}/logs/sanity/{{method}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        trained=lambda wildcards: f"{R}/sanity/heatmaps/{wildcards.method}/trained",
        randomized=lambda wildcards: f"{R}/sanity/heatmaps/{wildcards.method}/randomized",
        pattern=lambda wildcards: f"{{Expression}}_{REFERENCE_SUFFIX}.png",
        trained_stacks=lambda wildcards: stacks_json(
            "normalized", wildcards.method, SANITY_FOLDS
        ),
        randomized_stacks=lambda wildcards: stacks_json(
            "sanity/normalized", wildcards.method, SANITY_FOLDS
        ),
        code=code_version("sanity"),
    shell:
        "ferxai sanity --trained {params.trained} --randomized {params.randomized} "
        "--reference $(dirname {input.reference[0]}) --pattern '{params.pattern}' "
        "--trained-stacks-json '{params.trained_stacks}' "
        "--randomized-stacks-json '{params.randomized_stacks}' "
        "--out {output.table} --summary {output.summary} --figure {output.figure} "
        "--grid {output.grid} --per-image {output.per_image} > {log} 2>&1"
