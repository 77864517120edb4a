"""``ferxai attribute``: the stack it writes, its provenance, empty inputs, errors, killed jobs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ferxai.cli import main
from ferxai.core.errors import DataError
from ferxai.core.io import read_stack, write_csv, write_png

NETWORK = "WeiNet"
SIZE = 32
DATASET_COLUMNS = ("image_id", "path", "expression", "label", "subject", "width", "height")
DATASET_COLUMNS += ("landmarks", "sha1")
POSITIVE_COLUMNS = ("image_id", "true_label", "predicted", "probability")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def job_files(tmp_path_factory) -> dict[str, Path]:
    """Three real-image crops, their dataset table, WeiNet weights and the positives of 'Fear'."""
    from skimage.data import astronaut

    from ferxai.networks import create_model

    root = tmp_path_factory.mktemp("attribute")
    image = astronaut()
    rows = []
    for i, (y, x) in enumerate([(0, 0), (100, 150), (200, 250)]):
        path = root / f"img{i}.png"
        write_png(path, np.ascontiguousarray(image[y : y + 200, x : x + 200]))
        rows.append(
            dict(image_id=f"s{i}/img{i}", path=str(path), expression="Fear", label=2,
                 subject=f"s{i}", width=200, height=200, landmarks="", sha1="x")
        )
    write_csv(root / "dataset.csv", rows, DATASET_COLUMNS)
    positives = [
        dict(image_id=r["image_id"], true_label=2, predicted=2, probability=0.9) for r in rows
    ]
    write_csv(root / "positives.csv", positives, POSITIVE_COLUMNS)
    write_csv(root / "empty.csv", [], POSITIVE_COLUMNS)
    torch.manual_seed(0)
    torch.save(create_model(NETWORK, input_size=SIZE).state_dict(), root / "model.pt")
    return {
        "root": root,
        "dataset": root / "dataset.csv",
        "positives": root / "positives.csv",
        "empty": root / "empty.csv",
        "weights": root / "model.pt",
    }


def run(files, out: Path, *extra: str, positives: str = "positives", method="lime",
        settings='{"num_samples": 24}', weights: str | None = None) -> int:
    return main([
        "attribute", "--model", NETWORK, "--weights", weights or str(files["weights"]),
        "--input-size", str(SIZE), "--dataset", str(files["dataset"]),
        "--positives", str(files[positives]), "--expression", "Fear", "--fold", "2",
        "--method", method, "--settings", settings, "--seed", "5", "--out", str(out),
        "--device", "cpu", "--threads", "1", *extra,
    ])


def test_lime_stack_contents_and_provenance(job_files, tmp_path):
    out = tmp_path / "Fear.h5"
    assert run(job_files, out) == 0
    stack = read_stack(out)
    assert stack.maps.shape == (3, SIZE, SIZE) and stack.maps.dtype == np.float32
    assert stack.image_id == ["s0/img0", "s1/img1", "s2/img2"]
    assert stack.extras["segments"].dtype == np.int16
    assert stack.extras["segments"].shape == (3, SIZE, SIZE)
    assert (stack.maps >= 0).all() and stack.maps.any()
    np.testing.assert_array_equal(stack.true_label, [2, 2, 2])
    np.testing.assert_allclose(stack.probabilities.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(stack.predicted, stack.probabilities.argmax(axis=1))
    attrs = stack.attrs
    digest = hashlib.sha256(job_files["weights"].read_bytes()).hexdigest()
    assert attrs["checkpoint_sha256"] == digest
    assert (attrs["method"], attrs["network"], attrs["fold"], attrs["expression"]) == (
        "lime", NETWORK, 2, "Fear")
    assert attrs["settings"]["num_samples"] == 24 and attrs["settings"]["n_segments"] == 30
    assert attrs["settings"]["seed"] == 5 and attrs["seed"] == 5
    assert attrs["precision"] == "fp32" and attrs["device"] == "cpu"
    assert attrs["randomized"] is False or attrs["randomized"] == 0
    assert attrs["input_size"] == SIZE and attrs["ferxai_version"]


def test_equal_seeds_give_bit_identical_maps(job_files, tmp_path):
    assert run(job_files, tmp_path / "a.h5") == 0
    assert run(job_files, tmp_path / "b.h5") == 0
    first, second = read_stack(tmp_path / "a.h5"), read_stack(tmp_path / "b.h5")
    np.testing.assert_array_equal(first.maps, second.maps)
    np.testing.assert_array_equal(first.extras["segments"], second.extras["segments"])


def test_randomized_model_changes_the_maps(job_files, tmp_path):
    assert run(job_files, tmp_path / "trained.h5") == 0
    assert run(job_files, tmp_path / "random.h5", "--randomize") == 0
    trained, randomized = read_stack(tmp_path / "trained.h5"), read_stack(tmp_path / "random.h5")
    assert bool(randomized.attrs["randomized"]) is True
    assert not np.allclose(trained.maps, randomized.maps)
    assert not np.allclose(trained.probabilities, randomized.probabilities)


@pytest.mark.parametrize(
    ("method", "settings", "has_segments"),
    [("gradcam", '{"layer": null}', False), ("occlusion", '{"window": 8, "stride": 8}', False),
     ("kernel_shap", '{"num_samples": 16}', True)],
)
def test_other_methods_write_stacks(job_files, tmp_path, method, settings, has_segments):
    out = tmp_path / f"{method}.h5"
    assert run(job_files, out, method=method, settings=settings) == 0
    stack = read_stack(out)
    assert stack.maps.shape == (3, SIZE, SIZE)
    assert ("segments" in stack.extras) is has_segments
    assert stack.attrs["method"] == method


def test_empty_positives_write_a_valid_empty_stack(job_files, tmp_path):
    out = tmp_path / "empty.h5"
    assert run(job_files, out, positives="empty") == 0
    stack = read_stack(out)
    assert stack.maps.shape == (0, SIZE, SIZE) and len(stack) == 0
    assert bool(stack.attrs["empty"]) is True and stack.attrs["method"] == "lime"


def test_unknown_setting_fails_with_the_valid_keys(job_files, tmp_path, capsys):
    out = tmp_path / "bad.h5"
    assert run(job_files, out, settings='{"samples": 10}') == 2
    message = capsys.readouterr().err
    assert "samples" in message and "num_samples" in message and "traceback" not in message.lower()
    assert not out.exists()


def test_missing_weights_is_a_user_error(job_files, tmp_path, capsys):
    assert run(job_files, tmp_path / "x.h5", weights=str(tmp_path / "nope.pt")) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_job_killed_while_writing_leaves_no_stack(job_files, tmp_path, monkeypatch):
    """An interrupted write removes its temporary file and never creates the target."""
    import ferxai.core.io

    out = tmp_path / "killed.h5"
    real = ferxai.core.io._write_array

    def die_after_maps(h5, name, array):
        real(h5, name, array)
        raise KeyboardInterrupt  # what SIGINT/SIGTERM turn into inside a job

    monkeypatch.setattr(ferxai.core.io, "_write_array", die_after_maps)
    assert run(job_files, out) == 130
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_half_written_stack_is_refused(tmp_path):
    """A file without the completion mark (e.g. SIGKILL of a non-atomic writer) is never used."""
    import h5py

    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("maps", data=np.zeros((2, 4, 4), np.float32))
        h5.attrs["method"] = json.dumps("lime")
    with pytest.raises(DataError, match="incomplete"):
        read_stack(path)
