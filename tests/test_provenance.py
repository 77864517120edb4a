"""Provenance records: hashing, storage in HDF5/sidecars, and the `ferxai provenance` command."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest

from ferxai import __version__
from ferxai.cli import main
from ferxai.core import provenance
from ferxai.core.errors import DataError
from ferxai.core.io import Stack, write_stack


def _stack(n: int = 2, size: int = 4) -> Stack:
    rng = np.random.default_rng(0)
    return Stack(
        maps=rng.random((n, size, size), dtype=np.float32),
        image_id=[f"img{i}" for i in range(n)],
        true_label=np.zeros(n, dtype=np.int64),
        predicted=np.zeros(n, dtype=np.int64),
        probabilities=np.full((n, 6), 1 / 6, dtype=np.float32),
    )


@pytest.fixture
def chain(tmp_path, monkeypatch):
    """checkpoint -> attribution stack -> normalized stack -> heatmap, with workdir-relative paths."""
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "results/models/VGG16/fold1/model.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights" * 1000)
    history = tmp_path / "results/data/folds.csv"
    history.parent.mkdir(parents=True)
    history.write_text("image_id,fold\n")
    provenance.write_sidecar(ckpt, provenance.build([history], {"epochs": 3, "lr": 1e-3}))

    attributed = tmp_path / "results/attributions/lime/VGG16/fold1/Anger.h5"
    stack = _stack()
    stack.attrs["provenance"] = provenance.to_json(
        provenance.build([ckpt], {"num_samples": 1000}, {"network": "VGG16"})
    )
    write_stack(attributed, stack)

    normalized = tmp_path / "results/normalized/lime/VGG16/fold1/Anger.h5"
    stack = _stack()
    # write_stack turns a dict attribute into JSON itself: both spellings must read back
    stack.attrs["provenance"] = provenance.build([attributed], {"warp": "piecewise"})
    write_stack(normalized, stack)

    heatmap = tmp_path / "results/heatmaps/lime/by_network/VGG16_Anger_heatmap.h5"
    heatmap.parent.mkdir(parents=True)
    settings = {"stretch": "minmax", "blur_sigma": 0.0}
    with h5py.File(heatmap, "w") as h5:
        h5.create_dataset("mean", data=np.zeros((3, 3)))
        h5.attrs["provenance"] = provenance.to_json(provenance.build([normalized], settings))
    return {"ckpt": ckpt, "attributed": attributed, "normalized": normalized, "heatmap": heatmap}


def test_build_records_hashes_and_no_volatile_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "a.bin"
    data.write_bytes(b"x" * (3 << 20))  # several hashing chunks
    (tmp_path / "folder").mkdir()
    prov = provenance.build([data, "folder"], {"b": 1, "a": [1, 2]}, {"seed": 7})
    assert set(prov) == {
        "ferxai_version",
        "git_commit",
        "config_hash",
        "settings",
        "inputs",
        "extra",
    }
    assert prov["ferxai_version"] == __version__
    assert prov["inputs"][0] == {
        "path": "a.bin",
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    assert prov["inputs"][1] == {"path": "folder", "sha256": "directory"}
    assert prov["extra"] == {"seed": 7}
    # same inputs and settings -> identical record (no timestamps, no host names)
    assert provenance.to_json(prov) == provenance.to_json(
        provenance.build([data, "folder"], {"a": [1, 2], "b": 1}, {"seed": 7})
    )


def test_config_hash_is_order_free_and_value_sensitive():
    assert provenance.config_hash({"a": 1, "b": {"c": 2, "d": 3}}) == provenance.config_hash(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert provenance.config_hash({"a": 1}) != provenance.config_hash({"a": 2})
    canonical = json.dumps({"a": 1}, sort_keys=True, separators=(",", ":")).encode()
    assert provenance.config_hash({"a": 1}) == hashlib.sha256(canonical).hexdigest()
    assert provenance.config_hash(None) == provenance.config_hash({})


def test_git_commit_falls_back_to_env(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    provenance.git_commit.cache_clear()
    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    monkeypatch.setenv("FERXAI_GIT_COMMIT", "abc123")
    try:
        assert provenance.git_commit() == "abc123"
        monkeypatch.delenv("FERXAI_GIT_COMMIT")
        assert provenance.git_commit() == "abc123"  # cached for the process
        provenance.git_commit.cache_clear()
        assert provenance.git_commit() is None
    finally:
        provenance.git_commit.cache_clear()


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        provenance.build([tmp_path / "nope.h5"])


def test_sidecar_and_h5_round_trip(chain):
    assert provenance.sidecar_path(chain["ckpt"]).name == "model.pt.prov.json"
    assert provenance.read(chain["ckpt"])["settings"] == {"epochs": 3, "lr": 1e-3}
    assert provenance.read(chain["attributed"])["extra"] == {"network": "VGG16"}
    assert provenance.read(chain["normalized"])["settings"] == {"warp": "piecewise"}
    heat = provenance.read(chain["heatmap"])
    assert heat["inputs"][0]["path"] == "results/normalized/lime/VGG16/fold1/Anger.h5"
    assert heat["inputs"][0]["sha256"] == provenance.file_sha256(chain["normalized"])


def test_read_without_record_names_the_fix(tmp_path):
    plain = tmp_path / "table.csv"
    plain.write_text("a\n1\n")
    with pytest.raises(DataError, match="no provenance recorded"):
        provenance.read(plain)
    with pytest.raises(DataError, match="no such file"):
        provenance.read(tmp_path / "missing.csv")


def test_cli_prints_heatmap_chain_down_to_checkpoint(chain, capsys, monkeypatch, tmp_path):
    heat = provenance.read(chain["heatmap"])
    # called from elsewhere: inputs are found relative to the artifact's ancestors
    monkeypatch.chdir(tmp_path.parent)
    assert main(["provenance", str(chain["heatmap"]), "--recursive"]) == 0
    out = capsys.readouterr().out
    assert heat["config_hash"][:12] in out
    assert 'setting stretch = "minmax"' in out
    lines = out.splitlines()
    stack_line = next(i for i, s in enumerate(lines) if "stack" in s and "normalized" in s)
    ckpt_line = next(i for i, s in enumerate(lines) if s.strip().startswith("checkpoint"))
    assert stack_line < ckpt_line
    assert "results/models/VGG16/fold1/model.pt" in lines[ckpt_line]
    assert provenance.file_sha256(chain["ckpt"])[:12] in lines[ckpt_line]
    assert lines[ckpt_line].startswith("          ")  # indented under the attribution stack
    # the checkpoint's own record (training settings) is shown one level deeper
    assert any("setting epochs = 3" in s for s in lines)


def test_cli_flat_and_json(chain, capsys):
    assert main(["provenance", str(chain["heatmap"])]) == 0
    flat = capsys.readouterr().out
    assert "results/normalized/lime/VGG16/fold1/Anger.h5" in flat
    assert "model.pt" not in flat
    assert main(["provenance", str(chain["ckpt"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == provenance.read(chain["ckpt"])


def test_cli_error_without_traceback(tmp_path, capsys):
    assert main(["provenance", str(tmp_path / "none.h5")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
