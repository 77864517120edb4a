"""The `.test` workflow, really run through Snakemake: counts, shapes and value ranges of the final
artifacts, nothing left to do afterwards, and bit-identical results for the same seed."""

from __future__ import annotations

import csv
import filecmp
import math
import time

import numpy as np
import pytest
import yaml

from ferxai.core.constants import EXPRESSIONS
from ferxai.core.io import read_csv, read_png_gray, read_stack
from tests.conftest import REPO, snakemake

pytestmark = pytest.mark.e2e

CONFIG = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
NETS = CONFIG["networks"]["names"]
K = CONFIG["data"]["folds"]


def test_heatmaps_exist_with_canvas_shape(test_run):
    heatmaps = test_run / "results" / "heatmaps" / "lime"
    for net in NETS:
        for e in EXPRESSIONS:
            png = read_png_gray(heatmaps / f"{net}_{e}_heatmap.png")
            assert png.shape == (275, 224) and png.dtype == np.uint8
            for k in range(1, K + 1):
                assert (heatmaps / f"{net}_CV{k}_{e}_heatmap.png").is_file()
    for e in EXPRESSIONS:
        assert (heatmaps / "total" / f"{e}_heatmap.png").is_file()


def test_attribution_and_normalized_stacks(test_run):
    stack = read_stack(
        test_run / "results" / "attributions" / "lime" / NETS[0] / "fold1" / "Happiness.h5"
    )
    size = CONFIG["networks"]["defaults"]["input_size"]
    assert stack.maps.shape[1:] == (size, size)
    assert stack.attrs["method"] == "lime"
    assert (stack.maps >= 0).all()  # the paper's map keeps positive weights only
    norm = read_stack(
        test_run / "results" / "normalized" / "lime" / NETS[0] / "fold1" / "Happiness.h5"
    )
    assert norm.maps.shape[1:] == (275, 224)
    assert norm.image_id == stack.image_id


@pytest.mark.parametrize("method", [m for m in CONFIG["attribution"]["methods"] if m != "lime"])
def test_other_methods_run_end_to_end(test_run, method):
    """Each family beside LIME (captum gradient, pytorch-grad-cam CAM, RISE) reaches the report's
    inputs: stacks with the method's settings, maps of the input size, heatmaps and metrics."""
    results = test_run / "results"
    size = CONFIG["networks"]["defaults"]["input_size"]
    explained = []
    for e in EXPRESSIONS:
        stack = read_stack(results / "attributions" / method / NETS[0] / "fold1" / f"{e}.h5")
        assert stack.attrs["method"] == method
        for key, value in (CONFIG["attribution"].get(method) or {}).items():
            assert stack.attrs["settings"][key] == value, key
        assert stack.maps.shape[1:] == (size, size)
        assert np.isfinite(stack.maps).all() and (stack.maps >= 0).all()
        if method == "gradcam_plusplus":  # the library's maps: min-max scaled to [0, 1]
            assert stack.maps.max(initial=0) <= 1 + 1e-5
        explained += list(stack.maps)
    assert explained and max(m.max() for m in explained) > 0
    for e in EXPRESSIONS:
        assert (results / "heatmaps" / method / "total" / f"{e}_heatmap.png").is_file()
    rows = read_csv(results / "comparison" / method / "metrics.csv")
    assert len(rows) == len(NETS) * len(EXPRESSIONS) * (K + 1)


def test_metrics_table(test_run):
    with open(test_run / "results" / "comparison" / "lime" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["network", "fold", "expression", "iou", "f1", "precision", "recall"]
    assert len(rows) == len(NETS) * len(EXPRESSIONS) * (K + 1)
    for row in rows:
        for key in ("iou", "f1", "precision", "recall"):
            value = float(row[key])
            assert math.isnan(value) or 0.0 <= value <= 1.0


def test_dendrograms_and_report_inputs(test_run):
    clustering = test_run / "results" / "clustering" / "lime"
    assert len(list(clustering.glob("dendrogram_by_network_*.png"))) == 6
    # issue 15: cluster support, the group test (WeiNet, SongNet vs MobileNetV3Large), differences
    for path in clustering.glob("support_*.csv"):
        assert all(r["n_boot"] in ("20", "0") for r in read_csv(path)), path.name
    comparison = test_run / "results" / "comparison" / "lime"
    tested = read_csv(comparison / "group_test.csv")
    assert tested[-1]["expression"] == "all" and {r["permutations"] for r in tested} <= {"3", "0"}
    differences = read_csv(comparison / "iou_differences.csv")
    assert differences and {r["resolved"] for r in differences} <= {"True", "False"}
    assert (comparison / "iou_differences.png").is_file()
    assert (test_run / "results" / "eval" / "accuracy.csv").is_file()
    assert (test_run / "results" / "sanity" / "lime" / "sanity.csv").is_file()
    per_image = read_csv(test_run / "results" / "sanity" / "lime" / "sanity_per_image.csv")
    summary = read_csv(test_run / "results" / "sanity" / "lime" / "sanity_summary.csv")
    assert per_image and int(summary[-1]["images"]) == len(per_image)


def test_report_renders(test_run):
    snakemake(test_run, "--cores", "2", "--report", "results/report.html")
    html = (test_run / "results" / "report.html").read_text(errors="replace")
    assert len(html) > 10_000
    for name in ("group_test.csv", "iou_differences.csv", "iou_differences.png"):
        assert name in html, name


def test_nothing_to_do_afterwards(test_run):
    start = time.perf_counter()
    proc = snakemake(test_run, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert time.perf_counter() - start < 10


@pytest.mark.slow
def test_same_seed_bit_identical(test_run, tmp_path):
    snakemake(tmp_path, "--cores", "2")
    first, second = test_run / "results", tmp_path / "results"
    compared = 0
    for pattern in (
        "heatmaps/**/*.png",
        "heatmaps/**/*.h5",
        "comparison/**/*.csv",
        "attributions/**/*.h5",
        "normalized/**/*.h5",
        "models/*/*/model.pt",
        "eval/*/*/predictions.csv",
        "quality/**/*.csv",
        "quality/**/*.h5",
    ):
        for path in sorted(first.glob(pattern)):
            twin = second / path.relative_to(first)
            assert filecmp.cmp(path, twin, shallow=False), f"{path.relative_to(first)} differs"
            compared += 1
    assert compared > 50


def test_expression_never_predicted_gives_explicit_empty_results(test_run):
    """A network that never predicts an expression: empty heatmap with its reason, NaN metrics
    with a note, left out of the dendrogram with a note — no crash, no fake numbers."""
    import h5py

    results = test_run / "results"
    with open(results / "eval" / "positives_counts.csv") as fh:
        counts = list(csv.DictReader(fh))
    totals = {}
    for row in counts:
        key = (row["network"], row["expression"])
        totals[key] = totals.get(key, 0) + int(row["selected"])
    empty = [key for key, n in totals.items() if n == 0]
    if not empty:
        pytest.skip("every network predicted every expression in this run")
    network, expression = empty[0]
    with h5py.File(results / "heatmaps" / "lime" / f"{network}_{expression}_heatmap.h5") as h5:
        assert bool(h5.attrs["empty"]) and "no explained images" in h5.attrs["reason"]
    key = (network, "all", expression)
    rows = {}
    for name in ("metrics", "thresholds"):
        with open(results / "comparison" / "lime" / f"{name}.csv") as fh:
            rows[name] = next(
                r for r in csv.DictReader(fh) if (r["network"], r["fold"], r["expression"]) == key
            )
    assert math.isnan(float(rows["metrics"]["iou"]))
    assert "empty heatmap" in rows["thresholds"]["note"]
    with open(results / "clustering" / "lime" / "excluded.csv") as fh:
        left_out = {(r["clustering"], r["leaf"]) for r in csv.DictReader(fh)}
    assert (f"by_network_{expression}", network) in left_out


def test_provenance_chain_from_heatmap_to_checkpoint(test_run):
    from ferxai.core.provenance import read

    results = test_run / "results"
    heatmap = results / "heatmaps" / "lime" / f"{NETS[0]}_Sadness_heatmap.h5"
    record = read(heatmap)
    assert record["config_hash"] and record["ferxai_version"]
    stacks = [i["path"] for i in record["inputs"]]
    assert any("normalized/lime" in p for p in stacks)
    normalized = read(results / "normalized" / "lime" / NETS[0] / "fold1" / "Sadness.h5")
    assert any("attributions/lime" in i["path"] for i in normalized["inputs"])
    attribution = read(results / "attributions" / "lime" / NETS[0] / "fold1" / "Sadness.h5")
    assert any(i["path"].endswith("model.pt") for i in attribution["inputs"])


def test_every_declared_output_of_the_comparison_stages_has_provenance(test_run):
    """Commands declare which flags are outputs: `tables --out-prefix` and the sanity command's
    outputs get a record like every other (they once had none)."""
    from ferxai.core.provenance import read

    results = test_run / "results"
    outputs = [
        results / "comparison" / "lime" / "tables" / "metrics_iou_fold_mean.tex",
        results / "comparison" / "lime" / "thresholds.csv",
        results / "sanity" / "lime" / "sanity_summary.csv",
        results / "sanity" / "lime" / "sanity_per_image.csv",
        results / "sanity" / "lime" / "sanity_heatmaps.png",
    ]
    for output in outputs:
        record = read(output)
        assert record["inputs"], output


def test_every_file_a_job_writes_is_a_declared_output(test_run):
    """Snakemake owns every output path: each file under results/ is a declared output of some
    job (or inside a declared folder), except logs, benchmarks, provenance records and the
    resumable state that must outlive a failed job (training checkpoints, partial files)."""
    from tests.conftest import snakemake

    summary = snakemake(test_run, "--summary", "--cores", "1").stdout.splitlines()
    declared = {line.split("\t")[0] for line in summary[1:] if line.strip()}
    folders = [d.rstrip("/") + "/" for d in declared if (test_run / d).is_dir()]
    undeclared = []
    for path in sorted((test_run / "results").rglob("*")):
        relative = str(path.relative_to(test_run))
        if path.is_dir() or relative.endswith(".prov.json") or "/checkpoints/" in relative:
            continue
        if "/logs/" in relative or relative.startswith("results/benchmarks/"):
            continue  # the rules' logs (and Lightning's own, beside a model's history.csv)
        if ".partial" in relative or relative == "results/report.html":  # `snakemake --report`
            continue
        if relative not in declared and not relative.startswith(tuple(folders)):
            undeclared.append(relative)
    assert not undeclared, f"written but declared by no rule: {undeclared[:20]}"
