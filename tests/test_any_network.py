"""Any timm architecture, a model trained elsewhere, and pre-trained weights fetched once.

The workflow runs a tiny timm architecture outside the paper's twelve (``test_resnet``, one timm
ships for its own tests; random init, no download) beside a model given by ``trained_weights``
(a ``test_efficientnet`` head with seven classes in another order, saved here as timm's state dict).
``fetch_weights`` is run against a local Hugging Face cache with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, local_env, snakemake

HEAD_ORDER = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry"]
EXPRESSIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")


def write_config(tmp_path: Path, sanity: bool = True, **networks) -> Path:
    """A `.test`-sized configuration: test_resnet trained here, MyNet trained elsewhere."""
    import timm
    import torch

    torch.manual_seed(0)
    theirs = timm.create_model("test_efficientnet", num_classes=len(HEAD_ORDER))
    torch.save(theirs.state_dict(), tmp_path / "mynet.pth")
    config = {
        "seed": 7,
        "device": "cpu",
        "precision": "fp32",
        "data": {
            "source": "synthetic",
            "synthetic": {"subjects": 6, "size": 64, "images_per_expression": 1},
            "folds": 2,
        },
        "networks": {
            "names": ["test_resnet", "MyNet"],
            "defaults": {"epochs": 1, "batch_size": 16, "input_size": 32},
            "overrides": {
                "MyNet": {
                    "trained_weights": "mynet.pth",
                    "arch": "test_efficientnet",
                    "class_order": HEAD_ORDER,
                }
            },
            **networks,
        },
        "positives": {"per_class": 1},
        "attribution": {"methods": ["lime"], "lime": {"num_samples": 20, "batch_size": 20}},
        "comparison": {"bootstrap": 5},
        "sanity": {"enabled": sanity, "folds": [1]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def job_counts(text: str) -> dict[str, int]:
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_dry_run_trains_the_timm_net_and_not_the_model_trained_elsewhere(tmp_path):
    proc = snakemake(tmp_path, "-n", "--printshellcmds", configfile=write_config(tmp_path))
    text = proc.stdout + proc.stderr
    counts = job_counts(text)
    assert counts["train"] == 2, text[-3000:]  # test_resnet x 2 folds; none for MyNet
    # evaluation.in_training_job (default): test_resnet is evaluated inside its train jobs, MyNet
    # (no train job) by rule evaluate in every fold
    assert counts["evaluate"] == 2 and counts["attribute"] == 4
    assert not re.search(r"ferxai train(-evaluate)? --model MyNet", text)
    assert "ferxai train-evaluate --model test_resnet --fold 1" in text
    weights = re.escape(str(tmp_path / "mynet.pth"))
    order = " ".join(HEAD_ORDER)
    flags = f"--arch test_efficientnet --class-order {order}"
    for command in ("evaluate", "attribute"):
        for fold in (1, 2):
            pattern = rf"ferxai {command} --model MyNet {flags} --weights {weights} .*--fold {fold}"
            assert re.search(pattern, text), f"no {command} of MyNet fold {fold}:\n{text[-3000:]}"
    # the randomized twin has MyNet's architecture and head too
    assert re.search(rf"attribute --model MyNet {flags} --weights none --randomize", text)


@pytest.mark.e2e
@pytest.mark.slow
def test_real_run_evaluates_and_explains_both(tmp_path):
    config = write_config(tmp_path, sanity=False)
    targets = ["results/eval/accuracy.csv", "results/comparison/lime/metrics.csv"]
    start = time.perf_counter()
    snakemake(tmp_path, "--cores", "2", *targets, configfile=config, timeout=1800)
    elapsed = time.perf_counter() - start
    results = tmp_path / "results"
    assert not (results / "models" / "MyNet").exists()
    assert (results / "models" / "test_resnet" / "fold2" / "model.pt").is_file()
    with open(results / "eval" / "accuracy.csv") as fh:
        rows = list(csv.DictReader(fh))
    folds = {(r["network"], r["fold"]) for r in rows}
    for network in ("test_resnet", "MyNet"):
        assert {(network, "1"), (network, "2"), (network, "mean")} <= folds
    n = {r["fold"]: int(r["n"]) for r in rows if r["network"] == "MyNet"}
    assert n["1"] + n["2"] == n["mean"] == 6 * 6  # every image is one of its test images
    with open(results / "comparison" / "lime" / "metrics.csv") as fh:
        metrics = list(csv.DictReader(fh))
    networks = {r.get("network") for r in metrics}
    assert {"test_resnet", "MyNet"} <= networks, networks
    for network in ("test_resnet", "MyNet"):
        for expression in EXPRESSIONS:
            stem = results / "heatmaps" / "lime" / f"{network}_{expression}_heatmap"
            assert stem.with_suffix(".png").is_file() and stem.with_suffix(".h5").is_file()
    print(f"real run of {len(targets)} targets: {elapsed:.0f} s")


def _local_hub(tmp_path: Path, arch: str) -> tuple[Path, dict]:
    """A Hugging Face hub cache holding timm's weights of ``arch`` (made here from a random init),
    in huggingface_hub's layout: what a login node's download leaves there."""
    import timm
    import torch
    from safetensors.torch import save_file

    hub = tmp_path / "hf" / "hub"
    repo = hub / f"models--timm--{arch}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    torch.manual_seed(11)
    state = {k: v.contiguous() for k, v in timm.create_model(arch).state_dict().items()}
    save_file(state, str(snapshot / "model.safetensors"))
    return hub, state


def test_fetch_weights_fills_the_cache_the_training_jobs_read_offline(tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    arch = "test_resnet.r160_in1k"
    hub, source = _local_hub(tmp_path, arch)
    env = local_env()
    # offline, and any attempt to reach a server fails at once
    env.update(HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1", HTTPS_PROXY="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9")
    config = write_config(tmp_path, names=[arch], overrides={}, weights_cache="cache",
                          defaults={"epochs": 1, "batch_size": 16, "input_size": 32,
                                    "pretrained": True})
    cached = tmp_path / "cache" / f"{arch}.safetensors"
    proc = snakemake(tmp_path, "-n", configfile=config, env=env)
    assert job_counts(proc.stdout)["fetch_weights"] == 1  # once, for both folds' train jobs
    snakefile = (REPO / "workflow" / "Snakefile").read_text()
    local = re.search(r"^localrules:\n((?:    \w+,\n)+)", snakefile, flags=re.M).group(1)
    assert "fetch_weights," in local.split()  # a local rule: it runs on the login node

    snakemake(tmp_path, "--cores", "1", f"cache/{arch}.safetensors", configfile=config, env=env)
    fetched = load_file(str(cached))
    assert fetched.keys() == source.keys()
    assert all(torch.equal(fetched[k], source[k]) for k in source)

    shutil.rmtree(hub)  # the compute job can only read the weight cache now
    model = f"results/models/{arch}/fold1/model.pt"
    snakemake(tmp_path, "--cores", "2", model, configfile=config, env=env)
    log = (tmp_path / "results" / "logs" / "train" / f"{arch}_fold1.log").read_text()
    assert f"loaded {len(source) - 2} tensors from cache/{arch}.safetensors" in log, log[-2000:]
    assert "ImageNet weights" in log
