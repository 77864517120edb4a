# Pre-trained weights: downloaded once, on the submit host (login nodes have network on most
# clusters), into the weight cache that the training jobs then read offline.
rule fetch_weights:
    output:
        weights=f"{WEIGHTS_CACHE}/{{arch}}.safetensors",
    log:
        f"{R}/logs/fetch_weights/{{arch}}.log",
    wildcard_constraints:
        arch=FETCH_ARCHS,
    conda:
        "../envs/ferxai.yaml"
    params:
        code=code_version("fetch-weights"),
    shell:
        "ferxai fetch-weights --model {wildcards.arch} --out {output.weights} > {log} 2>&1"


# evaluation.in_training_job (the default): the training job evaluates its model too, in the
# same process (ferxai train-evaluate), saving one interpreter start-up with its torch/timm imports
# per network and fold. The price: its params hold the evaluation settings and code version, so
# changing those reruns the training; false keeps two jobs. Either way rule evaluate evaluates the
# models trained elsewhere, which have no train job. One log and benchmark: the train ones.
if EVAL_IN_TRAINING:

    rule train:
        input:
            dataset=rules.prepare_dataset.output.dataset,
            folds=rules.folds.output.folds,
            pretrained=get_fetched_weights,
        output:
            **evaluation_outputs(),
            weights=f"{R}/models/{{model}}/fold{{fold}}/model.pt",
            history=f"{R}/models/{{model}}/fold{{fold}}/history.csv",
        log:
            f"{R}/logs/train/{{model}}_fold{{fold}}.log",
        benchmark:
            f"{R}/benchmarks/train/{{model}}_fold{{fold}}.tsv"
        wildcard_constraints:
            model=TRAINED_HERE,
        conda:
            "../envs/ferxai.yaml"
        threads: JOB_THREADS
        params:
            settings=training_settings,
            eval_settings=evaluation_settings,
            code=code_version("train-evaluate"),
        # exec, as in the separate rule below: signals reach ferxai (docs/hpc.md). A failed job
        # loses model.pt with the other outputs; its checkpoints stay, and the retry resumes.
        shell:
            "FERXAI_THREADS={threads} exec ferxai train-evaluate --model {wildcards.model} "
            "--fold {wildcards.fold} --dataset {input.dataset} --folds {input.folds} "
            "--settings '{params.settings}' --out-dir $(dirname {output.weights}) "
            "--eval-settings '{params.eval_settings}' "
            "--eval-out-dir $(dirname {output.predictions}) > {log} 2>&1"

else:

    rule train:
        input:
            dataset=rules.prepare_dataset.output.dataset,
            folds=rules.folds.output.folds,
            pretrained=get_fetched_weights,
        output:
            weights=f"{R}/models/{{model}}/fold{{fold}}/model.pt",
            history=f"{R}/models/{{model}}/fold{{fold}}/history.csv",
        log:
            f"{R}/logs/train/{{model}}_fold{{fold}}.log",
        benchmark:
            f"{R}/benchmarks/train/{{model}}_fold{{fold}}.tsv"
        conda:
            "../envs/ferxai.yaml"
        threads: JOB_THREADS
        params:
            settings=training_settings,
            code=code_version("train"),
        # exec: ferxai replaces the shell, so a SIGTERM (SLURM time limit, preemption, scancel)
        # reaches it with no shell dying first; it finishes or stops its epoch, checkpoints and
        # exits 143, and Snakemake's retry resumes it (docs/hpc.md).
        shell:
            "FERXAI_THREADS={threads} exec ferxai train --model {wildcards.model} --fold {wildcards.fold} "
            "--dataset {input.dataset} --folds {input.folds} --settings '{params.settings}' "
            "--out-dir $(dirname {output.weights}) > {log} 2>&1"


rule evaluate:
    input:
        weights=get_weights,
        dataset=rules.prepare_dataset.output.dataset,
        folds=rules.folds.output.folds,
    output:
        **evaluation_outputs(),
    log:
        f"{R}/logs/evaluate/{{model}}_fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{model}}_fold{{fold}}.tsv"
    wildcard_constraints:
        model=EVALUATED_ALONE,
    conda:
        "../envs/ferxai.yaml"
    threads: JOB_THREADS
    params:
        settings=evaluation_settings,
        model_flags=model_flags,
        code=code_version("evaluate"),
    shell:
        "FERXAI_THREADS={threads} ferxai evaluate --model {wildcards.model} {params.model_flags} "
        "--weights {input.weights} --fold {wildcards.fold} --dataset {input.dataset} "
        "--folds {input.folds} --settings '{params.settings}' "
        "--out-dir $(dirname {output.predictions}) > {log} 2>&1"


rule select_positives:
    input:
        predictions=f"{R}/eval/{{model}}/fold{{fold}}/predictions.csv",
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
        code=code_version("positives"),
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
        code=code_version("accuracy"),
    shell:
        "ferxai accuracy --metrics {input.metrics} --counts {input.counts} "
        "--out {output.accuracy} --positives-out {output.positives} "
        "--figure {output.figure} > {log} 2>&1"
