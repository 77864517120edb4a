rule normalize:
    input:
        stacks=lambda wildcards: get_stacks(
            "attributions", wildcards.method, wildcards.model, [wildcards.fold]
        ),
        landmarks=rules.landmarks.output.landmarks,
        dataset=rules.prepare_dataset.output.dataset,
    output:
        stacks=expand(
            f"{R}/normalized/{{{{method}}}}/{{{{model}}}}/fold{{{{fold}}}}/{{expression}}.h5",
            expression=EXPRESSIONS,
        ),
    log:
        f"{R}/logs/normalize/{{method}}_{{model}}_fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/normalize/{{method}}_{{model}}_fold{{fold}}.tsv"
    conda:
        "../envs/ferxai.yaml"
    params:
        order=config["normalization"]["order"],
        triangulation=config["normalization"]["triangulation"],
        code=code_version("normalize"),
    shell:
        "ferxai normalize --stack {input.stacks} --landmarks {input.landmarks} "
        "--dataset {input.dataset} --order {params.order} "
        "--triangulation {params.triangulation} --out {output.stacks} > {log} 2>&1"


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
