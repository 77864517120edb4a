rule figures:
    input:
        heatmaps=lambda wildcards: by_network_heatmaps(wildcards.method),
        masks=rules.groundtruth.output.masks,
        metrics=rules.compare.output.metrics,
        extended=rules.extended_metrics.output.metrics,
    output:
        grid=report(
            f"{R}/figures/{{method}}/heatmap_grid.png",
            caption="../report/heatmap_grid.rst",
            category="3. Heatmaps",
            labels={"method": "{method}", "figure": "networks × expressions"},
        ),
        bars=report(
            f"{R}/figures/{{method}}/iou_bars.png",
            caption="../report/bars.rst",
            category="5. Comparison",
            subcategory="{method}",
            labels={
                "method": "{method}",
                "figure": "IoU per network, sorted, 95 % CI",
            },
        ),
        other=[
            f"{R}/figures/{{method}}/{name}.png"
            for name in (
                "gt_masks",
                "iou_ci",
                "f1_bars",
                "precision_bars",
                "recall_bars",
            )
        ],
    log:
        f"{R}/logs/figures/{{method}}.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        heatmaps=lambda wildcards: heatmap_dir(wildcards.method),
        code=code_version("figures"),
    shell:
        "ferxai figures --heatmaps {params.heatmaps} --gt $(dirname {input.masks[0]}) "
        "--metrics {input.metrics} --extended {input.extended} "
        "--out-dir $(dirname {output.grid}) > {log} 2>&1"


rule methods_comparison:
    input:
        heatmaps=[f for m in METHODS for f in total_heatmaps(m)],
    output:
        figure=report(
            f"{R}/figures/methods_comparison.png",
            caption="../report/methods.rst",
            category="3. Heatmaps",
            labels={"figure": "methods side by side"},
        ),
    log:
        f"{R}/logs/figures/methods_comparison.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        dirs=[heatmap_dir(m) for m in METHODS],
        code=code_version("figures"),
    shell:
        "ferxai figures --methods {params.dirs} --methods-out {output.figure} > {log} 2>&1"


rule run_config:
    output:
        report(
            f"{R}/run_config.yaml",
            caption="../report/config.rst",
            category="0. Configuration",
            labels={"file": "validated configuration"},
        ),
    log:
        f"{R}/logs/run_config.log",
    conda:
        "../envs/ferxai.yaml"
    params:
        config=settings_json(config),
        code=module_code_version("ferxai.core.io"),
    run:
        import json
        import yaml
        from ferxai.core.io import write_text

        write_text(
            output[0], yaml.safe_dump(json.loads(params.config), sort_keys=False)
        )
