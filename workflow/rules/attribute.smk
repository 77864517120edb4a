# One job explains the positives of one (method, network, fold) for every expression, writing one
# HDF5 stack per expression: the model is loaded once and the CPU pays one interpreter start-up
# instead of six. attribution.job_per_expression splits it into one job per stack (GPU clusters).


rule attribute:
    input:
        weights=get_weights,
        positives=get_positives,
        dataset=rules.prepare_dataset.output.dataset,
    output:
        stacks=attribution_outputs(f"{R}/attributions"),
    log:
        f"{R}/logs/attribute/{ATTRIBUTE_JOB}.log",
    benchmark:
        f"{R}/benchmarks/attribute/{ATTRIBUTE_JOB}.tsv"
    conda:
        "../envs/ferxai.yaml"
    threads: JOB_THREADS
    params:
        settings=lambda wildcards: method_settings(wildcards.method),
        input_size=lambda wildcards: input_size(wildcards.model),
        expressions=job_expressions,
        seed=config["seed"],
        device=config["device"],
        weights_flag=lambda wildcards, input: f"--weights {input.weights}",
        model_flags=model_flags,
        code=code_version("attribute"),
    # exec: a SIGTERM reaches ferxai itself; the images explained so far stay in
    # .{stack}.resume.h5 and the retry continues after them (docs/hpc.md).
    shell:
        "FERXAI_THREADS={threads} exec ferxai attribute --model {wildcards.model} "
        "{params.model_flags} {params.weights_flag} --input-size {params.input_size} --dataset {input.dataset} "
        "--positives {input.positives} --expression {params.expressions} "
        "--fold {wildcards.fold} --method {wildcards.method} --settings '{params.settings}' "
        "--seed {params.seed} --device {params.device} --out {output.stacks} > {log} 2>&1"


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
