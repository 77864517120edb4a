rule synth:
    output:
        manifest=f"{R}/data/synth/manifest.csv",
        cues=expand(
            f"{R}/data/synth/cues/{{expression}}_cue.png", expression=EXPRESSIONS
        ),
    log:
        f"{R}/logs/synth.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        synthetic=config["data"]["synthetic"],
        neutral="--neutral" if config["data"]["synthetic"]["neutral"] else "",
        seed=config["seed"],
        code=code_version("ferxai.data.synth"),
    shell:
        "ferxai synth --out-dir $(dirname {output.manifest}) "
        "--subjects {params.synthetic[subjects]} --size {params.synthetic[size]} "
        "--images-per-expression {params.synthetic[images_per_expression]} "
        "--expressiveness {params.synthetic[expressiveness]} "
        "--seed {params.seed} {params.neutral} > {log} 2>&1"


rule prepare_dataset:
    input:
        manifest=get_manifest(),
    output:
        dataset=f"{R}/data/dataset.csv",
        skipped=report(
            f"{R}/data/skipped.csv",
            caption="../report/skipped.rst",
            category="1. Data",
            labels={"table": "skipped inputs"},
        ),
    log:
        f"{R}/logs/prepare_dataset.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        source=get_prepare_source_flags,
        aliases=settings_json(config["data"]["label_aliases"]),
        min_size=config["data"]["min_size"],
        duplicates=config["data"]["duplicates"],
        code=code_version("ferxai.data.dataset", "ferxai.data.images"),
    shell:
        "ferxai prepare {params.source} --aliases '{params.aliases}' "
        "--min-size {params.min_size} --duplicates {params.duplicates} "
        "--out {output.dataset} --skipped {output.skipped} > {log} 2>&1"


rule folds:
    input:
        dataset=rules.prepare_dataset.output.dataset,
    output:
        folds=f"{R}/data/folds.csv",
    log:
        f"{R}/logs/folds.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        k=config["data"]["folds"],
        seed=config["seed"],
        code=code_version("ferxai.data.folds"),
    shell:
        "ferxai folds --dataset {input.dataset} --k {params.k} --seed {params.seed} "
        "--out {output.folds} > {log} 2>&1"


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
        code=code_version("ferxai.landmarks"),
    shell:
        "FERXAI_THREADS={threads} ferxai landmarks --dataset {input.dataset} "
        "--source {params.source} --max-failure-fraction {params.max_fail} "
        "--out {output.landmarks} --failures {output.failures} > {log} 2>&1"
