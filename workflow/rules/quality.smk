# Which explanation can be trusted (issue 23, docs/quality.md). One job per (method, network, fold)
# measures the faithfulness (deletion/insertion, PixelFlipping, RegionPerturbation) and the
# randomisation (cascading MPRT, RandomLogit) of the explanations the attribution stage wrote, with
# the trained network loaded once; rule trust joins them with the localisation scores of the
# normalized maps into the trust table.


rule quality:
    input:
        weights=get_weights,
        stacks=lambda wildcards: get_stacks(
            "attributions", wildcards.method, wildcards.model, [int(wildcards.fold)]
        ),
        dataset=rules.prepare_dataset.output.dataset,
    output:
        curves=f"{R}/quality/{{method}}/{{model}}/fold{{fold}}/curves.h5",
        scores=f"{R}/quality/{{method}}/{{model}}/fold{{fold}}/scores.csv",
    log:
        f"{R}/logs/quality/{{method}}_{{model}}_fold{{fold}}.log",
    benchmark:
        f"{R}/benchmarks/quality/{{method}}_{{model}}_fold{{fold}}.tsv"
    conda:
        "../envs/ferxai.yaml"
    threads: JOB_THREADS
    params:
        settings=lambda wildcards: method_settings(wildcards.method),
        quality=QUALITY_JOB_SETTINGS,
        input_size=lambda wildcards: input_size(wildcards.model),
        expressions=EXPRESSIONS,
        seed=config["seed"],
        device=config["device"],
        model_flags=model_flags,
        code=code_version("quality"),
    # exec: a SIGTERM reaches ferxai itself; finished expressions stay in .curves.*.resume.h5.
    shell:
        "FERXAI_THREADS={threads} exec ferxai quality --model {wildcards.model} "
        "{params.model_flags} --weights {input.weights} --input-size {params.input_size} "
        "--dataset {input.dataset} --stacks {input.stacks} --expression {params.expressions} "
        "--fold {wildcards.fold} --method {wildcards.method} --settings '{params.settings}' "
        "--quality '{params.quality}' --seed {params.seed} --device {params.device} "
        "--curves {output.curves} --scores {output.scores} > {log} 2>&1"


rule trust:
    input:
        scores=[f for m in QUALITY_METHODS for f in quality_job_outputs(m, "scores")],
        curves=[f for m in QUALITY_METHODS for f in quality_job_outputs(m, "curves")],
        normalized=[
            f
            for m in QUALITY_METHODS
            for n in QUALITY_NETWORKS
            for f in get_stacks("normalized", m, n, QUALITY_FOLDS)
        ],
        masks=rules.groundtruth.output.masks,
    output:
        method_scores=[f"{R}/quality/{m}/scores.csv" for m in QUALITY_METHODS],
        table=report(
            f"{R}/quality/trust.csv",
            caption="../report/trust.rst",
            category="8. Trust",
            labels={"table": "trust table: every score per method × network, 95 % CI"},
        ),
        ranking=report(
            f"{R}/quality/ranking.csv",
            caption="../report/trust_ranking.rst",
            category="8. Trust",
            labels={"table": "methods ranked"},
        ),
        figure=report(
            f"{R}/quality/curves.png",
            caption="../report/trust_curves.rst",
            category="8. Trust",
            labels={"figure": "mean deletion and insertion curves"},
        ),
    log:
        f"{R}/logs/trust.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        methods=QUALITY_METHODS,
        order=QUALITY["order"],
        top_k=QUALITY["top_k"],
        bootstrap=QUALITY["bootstrap"],
        seed=config["seed"],
        code=code_version("trust"),
    shell:
        "ferxai trust --scores {input.scores} --curves {input.curves} "
        "--normalized {input.normalized} --gt $(dirname {input.masks[0]}) "
        "--methods {params.methods} --method-scores {output.method_scores} "
        "--table {output.table} --ranking {output.ranking} --figure {output.figure} "
        "--order {params.order} --top-k {params.top_k} --bootstrap {params.bootstrap} "
        "--seed {params.seed} > {log} 2>&1"
