rule landmarks:
    input:
        dataset=rules.prepare_dataset.output.dataset,
    output:
        landmarks=f"{R}/landmarks/landmarks.h5",
        failures=report(
            f"{R}/landmarks/failures.csv",
            caption="../report/landmark_failures.rst",
            category="1. Data",
            labels={"table": "landmark failures"},
        ),
    log:
        f"{R}/logs/landmarks.log",
    benchmark:
        f"{R}/benchmarks/landmarks.tsv"
    conda:
        "../envs/ferxai.yaml"
    threads: 2
    params:
        source=get_landmark_source(),
        max_fail=config["landmarks"]["max_failure_fraction"],
        max_residual=config["landmarks"]["max_residual"],
        code=code_version("landmarks"),
    shell:
        "FERXAI_THREADS={threads} ferxai landmarks --dataset {input.dataset} "
        "--source {params.source} --max-failure-fraction {params.max_fail} "
        "--max-residual {params.max_residual} "
        "--out {output.landmarks} --failures {output.failures} > {log} 2>&1"


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


rule landmarks_qa:
    input:
        dataset=rules.prepare_dataset.output.dataset,
        landmarks=rules.landmarks.output.landmarks,
    output:
        figure=report(
            f"{R}/figures/landmarks_qa.png",
            caption="../report/landmarks_qa.rst",
            category="1. Data",
            labels={"figure": "landmark QA"},
        ),
    log:
        f"{R}/logs/landmarks_qa.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        faces=config["landmarks"]["qa_faces"],
        seed=config["seed"],
        code=code_version("landmarks-qa"),
    shell:
        "ferxai landmarks-qa --dataset {input.dataset} --landmarks {input.landmarks} "
        "--per-expression {params.faces} --seed {params.seed} --out {output.figure} "
        "> {log} 2>&1"
