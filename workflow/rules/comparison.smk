# The action units of the AU atlas (config groundtruth.atlas or the shipped one): one region each.
try:
    ATLAS_AUS = list(load_atlas(config["groundtruth"]["atlas"])["action_units"])
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


rule groundtruth:
    output:
        masks=expand(f"{R}/groundtruth/{{expression}}_gt.png", expression=EXPRESSIONS),
        figure=report(
            f"{R}/figures/groundtruth.png",
            caption="../report/groundtruth.rst",
            category="4. Ground truth",
            labels={"figure": "Ekman/FACS masks"},
        ),
        au_masks=expand(f"{R}/groundtruth/au/AU{{au}}.png", au=ATLAS_AUS),
        au_figure=report(
            f"{R}/figures/au_atlas.png",
            caption="../report/au_atlas.rst",
            category="4. Ground truth",
            labels={"figure": "FACS action-unit atlas"},
        ),
    log:
        f"{R}/logs/groundtruth.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        spec=(
            f"--spec {config['groundtruth']['spec']}"
            if config["groundtruth"]["spec"]
            else ""
        ),
        atlas=(
            f"--atlas {config['groundtruth']['atlas']}"
            if config["groundtruth"]["atlas"]
            else ""
        ),
        code=code_version("groundtruth"),
    shell:
        "ferxai groundtruth --out-dir $(dirname {output.masks[0]}) {params.spec} "
        "--figure {output.figure} {params.atlas} --au-dir $(dirname {output.au_masks[0]}) "
        "--au-figure {output.au_figure} > {log} 2>&1"


rule compare:
    input:
        heatmaps=comparison_heatmaps,
        masks=rules.groundtruth.output.masks,
    output:
        metrics=report(
            f"{R}/comparison/{{method}}/metrics.csv",
            caption="../report/metrics.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={"method": "{method}", "table": "IoU, F1, precision, recall"},
        ),
        thresholds=f"{R}/comparison/{{method}}/thresholds.csv",
        # the permutation test of the from-scratch / pre-trained split, when both are run
        group_test=(
            [
                report(
                    f"{R}/comparison/{{method}}/group_test.csv",
                    caption="../report/group_test.rst",
                    category="6. Clustering",
                    subcategory="{method}",
                    labels={"method": "{method}", "table": "group test (permutation)"},
                )
            ]
            if GROUPS
            else []
        ),
    log:
        f"{R}/logs/compare/{{method}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        heatmaps=lambda wildcards: heatmap_dir(wildcards.method),
        threshold=config["comparison"]["threshold"],
        groups=groups_flag(absent="--no-group-test"),
        seed=config["seed"],
        code=code_version("compare"),
    shell:
        "ferxai compare --heatmaps {params.heatmaps} --gt $(dirname {input.masks[0]}) "
        "--threshold {params.threshold} {params.groups} --seed {params.seed} "
        "--out $(dirname {output.metrics}) > {log} 2>&1"


rule tables:
    input:
        metrics=rules.compare.output.metrics,
    output:
        by_network=report(
            f"{R}/comparison/{{method}}/tables/metrics_iou_by_network.md",
            caption="../report/tables.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={"method": "{method}", "table": "IoU by network (paper layout)"},
        ),
        other=[
            str(path)
            for path in table_paths(f"{R}/comparison/{{method}}/tables/metrics")
            if path.name != "metrics_iou_by_network.md"
        ],
    log:
        f"{R}/logs/tables/{{method}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        prefix=lambda wildcards, output: os.path.join(
            os.path.dirname(output.by_network), "metrics"
        ),
        code=code_version("tables"),
    shell:
        "ferxai tables --metrics {input.metrics} --out-prefix {params.prefix} > {log} 2>&1"


rule extended_metrics:
    input:
        heatmaps=lambda wildcards: by_network_heatmaps(wildcards.method, ".h5"),
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method),
        masks=rules.groundtruth.output.masks,
    output:
        metrics=report(
            f"{R}/comparison/{{method}}/extended_metrics.csv",
            caption="../report/extended_metrics.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={"method": "{method}", "table": "AUC, mass, NSS, CC, IoU 95 % CI"},
        ),
        differences=report(
            f"{R}/comparison/{{method}}/iou_differences.csv",
            caption="../report/iou_differences.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={"method": "{method}", "table": "IoU differences, paired 95 % CI"},
        ),
        differences_figure=report(
            f"{R}/comparison/{{method}}/iou_differences.png",
            caption="../report/iou_differences.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={"method": "{method}", "figure": "IoU differences, paired 95 % CI"},
        ),
    log:
        f"{R}/logs/extended_metrics/{{method}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        heatmaps=lambda wildcards: heatmap_dir(wildcards.method),
        stacks=lambda wildcards: stacks_json("normalized", wildcards.method, FOLDS),
        bootstrap=config["comparison"]["bootstrap"],
        threshold=config["comparison"]["threshold"],
        seed=config["seed"],
        groups=groups_flag(),
        top_k=config["quality"]["top_k"],
        code=code_version("extended-metrics"),
    shell:
        "ferxai extended-metrics --heatmaps {params.heatmaps} --stacks-json '{params.stacks}' "
        "--gt $(dirname {input.masks[0]}) --bootstrap {params.bootstrap} --seed {params.seed} "
        "--top-k {params.top_k} --out {output.metrics} --differences {output.differences} "
        "--differences-figure {output.differences_figure} {params.groups} > {log} 2>&1"


rule au_coverage:
    input:
        heatmaps=lambda wildcards: by_network_heatmaps(wildcards.method, ".h5")
        + by_fold_heatmaps(wildcards.method, ".h5"),
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method),
        au_masks=rules.groundtruth.output.au_masks,
    output:
        coverage=report(
            f"{R}/comparison/{{method}}/au_coverage.csv",
            caption="../report/au_coverage.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={"method": "{method}", "table": "per-AU coverage and localisation"},
        ),
        figures=[
            report(
                f"{R}/comparison/{{method}}/au_coverage/{expression}.png",
                caption="../report/au_coverage.rst",
                category="5. Comparison",
                subcategory="{method}",
                labels={
                    "method": "{method}",
                    "figure": f"per-AU coverage, {expression}",
                },
            )
            for expression in EXPRESSIONS
        ],
    log:
        f"{R}/logs/au_coverage/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/au_coverage/{{method}}.tsv"
    conda:
        "../envs/ferxai.yaml"
    params:
        heatmaps=lambda wildcards: heatmap_dir(wildcards.method),
        stacks=lambda wildcards: stacks_json("normalized", wildcards.method, FOLDS),
        spec=(
            f"--spec {config['groundtruth']['spec']}"
            if config["groundtruth"]["spec"]
            else ""
        ),
        bootstrap=config["comparison"]["bootstrap"],
        seed=config["seed"],
        code=code_version("au-coverage"),
    shell:
        "ferxai au-coverage --heatmaps {params.heatmaps} --stacks-json '{params.stacks}' "
        "--au-dir $(dirname {input.au_masks[0]}) {params.spec} --bootstrap {params.bootstrap} "
        "--seed {params.seed} --out {output.coverage} "
        "--figure-dir $(dirname {output.figures[0]}) > {log} 2>&1"


rule per_face:
    input:
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method),
        dataset=f"{R}/data/dataset.csv",
        au_masks=rules.groundtruth.output.au_masks,
    output:
        faces=f"{R}/comparison/{{method}}/per_face.csv",
        summary=report(
            f"{R}/comparison/{{method}}/per_face_summary.csv",
            caption="../report/per_face.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={
                "method": "{method}",
                "table": "own AUs vs prototype, paired 95 % CI",
            },
        ),
        figure=report(
            f"{R}/comparison/{{method}}/per_face.png",
            caption="../report/per_face.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={
                "method": "{method}",
                "figure": "own AUs vs prototype, paired 95 % CI",
            },
        ),
    log:
        f"{R}/logs/per_face/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/per_face/{{method}}.tsv"
    conda:
        "../envs/ferxai.yaml"
    params:
        stacks=lambda wildcards: stacks_json("normalized", wildcards.method, FOLDS),
        spec=(
            f"--spec {config['groundtruth']['spec']}"
            if config["groundtruth"]["spec"]
            else ""
        ),
        threshold=config["comparison"]["threshold"],
        bootstrap=config["comparison"]["bootstrap"],
        seed=config["seed"],
        code=code_version("per-face"),
    shell:
        "ferxai per-face --stacks-json '{params.stacks}' --dataset {input.dataset} "
        "--au-dir $(dirname {input.au_masks[0]}) {params.spec} --threshold {params.threshold} "
        "--bootstrap {params.bootstrap} --seed {params.seed} --out {output.faces} "
        "--summary {output.summary} --figure {output.figure} > {log} 2>&1"


rule cluster:
    input:
        heatmaps=clustering_heatmaps,
        stacks=lambda wildcards: get_stacks("normalized", wildcards.method),
    output:
        clustering=report(
            directory(f"{R}/clustering/{{method}}"),
            patterns=["dendrogram_{kind}.png"],
            caption="../report/dendrograms.rst",
            category="6. Clustering",
            subcategory="{method}",
            labels={"method": "{method}", "dendrogram": "{kind}"},
        ),
    log:
        f"{R}/logs/cluster/{{method}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        heatmaps=lambda wildcards: heatmap_dir(wildcards.method),
        threshold=config["comparison"]["threshold"],
        stacks=lambda wildcards: stacks_json("normalized", wildcards.method, FOLDS),
        bootstrap=config["comparison"]["bootstrap"],
        seed=config["seed"],
        code=code_version("cluster"),
    shell:
        "ferxai cluster --heatmaps {params.heatmaps} --threshold {params.threshold} "
        "--stacks-json '{params.stacks}' --bootstrap {params.bootstrap} --seed {params.seed} "
        "--out {output.clustering} > {log} 2>&1"
