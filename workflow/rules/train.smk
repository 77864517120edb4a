rule train:
    input:
        dataset=rules.prepare_dataset.output.dataset,
        folds=rules.folds.output.folds,
    output:
        weights=f"{R}/models/{{model}}/fold{{fold}}/model.pt",
        history=f"{R}/models/{{model}}/fold{{fold}}/history.csv",
    log:
        f"{R}/logs/train/{{model}}_fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{model}}_fold{{fold}}.tsv"
    conda:
        "../envs/ferxai.yaml"
    threads: 2
    params:
        settings=training_settings,
        code=code_version("ferxai.training", "ferxai.models"),
    shell:
        "FERXAI_THREADS={threads} ferxai train --model {wildcards.model} --fold {wildcards.fold} "
        "--dataset {input.dataset} --folds {input.folds} --settings '{params.settings}' "
        "--out-dir $(dirname {output.weights}) > {log} 2>&1"


rule evaluate:
    input:
        weights=rules.train.output.weights,
        dataset=rules.prepare_dataset.output.dataset,
        folds=rules.folds.output.folds,
    output:
        predictions=f"{R}/eval/{{model}}/fold{{fold}}/predictions.csv",
        metrics=f"{R}/eval/{{model}}/fold{{fold}}/metrics.json",
        confusion=f"{R}/eval/{{model}}/fold{{fold}}/confusion.csv",
        confusion_png=report(
            f"{R}/eval/{{model}}/fold{{fold}}/confusion.png",
            caption="../report/confusion.rst",
            category="2. Networks",
            subcategory="Confusion matrices",
            labels={"network": "{model}", "fold": "{fold}"},
        ),
    log:
        f"{R}/logs/evaluate/{{model}}_fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{model}}_fold{{fold}}.tsv"
    conda:
        "../envs/ferxai.yaml"
    threads: 2
    params:
        settings=lambda wildcards: settings_json(
            {
                "input_size": input_size(wildcards.model),
                "device": config["device"],
                "precision": config["precision"],
                "batch_size": config["evaluation"]["batch_size"],
            }
        ),
        code=code_version("ferxai.evaluation", "ferxai.models"),
    shell:
        "FERXAI_THREADS={threads} ferxai evaluate --model {wildcards.model} "
        "--weights {input.weights} --fold {wildcards.fold} --dataset {input.dataset} "
        "--folds {input.folds} --settings '{params.settings}' "
        "--out-dir $(dirname {output.predictions}) > {log} 2>&1"


rule select_positives:
    input:
        predictions=rules.evaluate.output.predictions,
    output:
        positives=expand(
            f"{R}/positives/{{{{model}}}}/fold{{{{fold}}}}/{{expression}}.csv",
            expression=EXPRESSIONS,
        ),
        counts=f"{R}/positives/{{model}}/fold{{fold}}/counts.csv",
    log:
        f"{R}/logs/positives/{{model}}_fold{{fold}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        n=config["positives"]["per_class"],
        seed=config["seed"],
        only_correct="--only-correct" if config["positives"]["only_correct"] else "",
        code=code_version("ferxai.evaluation"),
    shell:
        "ferxai positives --predictions {input.predictions} --n {params.n} "
        "--seed {params.seed} {params.only_correct} "
        "--out-dir $(dirname {output.counts}) > {log} 2>&1"


rule accuracy_table:
    input:
        metrics=expand(
            f"{R}/eval/{{model}}/fold{{fold}}/metrics.json", model=NETWORKS, fold=FOLDS
        ),
        counts=expand(
            f"{R}/positives/{{model}}/fold{{fold}}/counts.csv",
            model=NETWORKS,
            fold=FOLDS,
        ),
    output:
        accuracy=report(
            f"{R}/eval/accuracy.csv",
            caption="../report/accuracy.rst",
            category="2. Networks",
            labels={"table": "accuracy per network and fold"},
        ),
        positives=report(
            f"{R}/eval/positives_counts.csv",
            caption="../report/positives.rst",
            category="2. Networks",
            labels={"table": "explained images per network, fold and expression"},
        ),
        figure=report(
            f"{R}/figures/accuracy.png",
            caption="../report/accuracy.rst",
            category="2. Networks",
            labels={"figure": "accuracy per network"},
        ),
    log:
        f"{R}/logs/accuracy_table.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        code=code_version("ferxai.summary"),
    shell:
        "ferxai accuracy --metrics {input.metrics} --counts {input.counts} "
        "--out {output.accuracy} --positives-out {output.positives} "
        "--figure {output.figure} > {log} 2>&1"
