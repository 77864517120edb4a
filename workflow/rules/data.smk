rule synth:
    output:
        manifest=f"{R}/data/synth/manifest.csv",
        cues=expand(
            f"{R}/data/synth/cues/{{expression}}_cue.png", expression=EXPRESSIONS
        ),
        images=directory(f"{R}/data/synth/images"),
        landmarks=directory(f"{R}/data/synth/landmarks"),
    log:
        f"{R}/logs/synth.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        synthetic=config["data"]["synthetic"],
        neutral="--neutral" if config["data"]["synthetic"]["neutral"] else "",
        seed=config["seed"],
        code=code_version("synth"),
    shell:
        "ferxai synth --out-dir $(dirname {output.manifest}) "
        "--subjects {params.synthetic[subjects]} --size {params.synthetic[size]} "
        "--images-per-expression {params.synthetic[images_per_expression]} "
        "--expressiveness {params.synthetic[expressiveness]} "
        "--seed {params.seed} {params.neutral} > {log} 2>&1"


rule import_dataset:
    input:
        source=config["data"]["path"] or [],
    output:
        manifest=f"{R}/data/import/manifest.csv",
        skipped=f"{R}/data/import/skipped.csv",
    log:
        f"{R}/logs/import_dataset.log",
    benchmark:
        f"{R}/benchmarks/import_dataset.tsv"
    conda:
        "../envs/ferxai.yaml"
    threads: 2
    params:
        format=config["data"]["source"],
        settings=settings_json(
            config["data"]["import"].get(config["data"]["source"], {})
        ),
        code=code_version("import-dataset"),
    shell:
        "FERXAI_THREADS={threads} ferxai import-dataset --format {params.format} "
        "--source {input.source:q} --settings '{params.settings}' "
        "--out-dir $(dirname {output.manifest}) > {log} 2>&1"


rule prepare_dataset:
    input:
        manifest=get_manifest(),
    output:
        **get_crop_outputs(),
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
        crop=get_crop_flags,
        code=code_version("prepare"),
    shell:
        "ferxai prepare {params.source} --aliases '{params.aliases}' "
        "--min-size {params.min_size} --duplicates {params.duplicates} {params.crop} "
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
        code=code_version("folds"),
    shell:
        "ferxai folds --dataset {input.dataset} --k {params.k} --seed {params.seed} "
        "--out {output.folds} > {log} 2>&1"
