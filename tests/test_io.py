import numpy as np
import pytest

from ferxai.errors import DataError
from ferxai.io import (
    Stack,
    atomic_path,
    iter_stack_maps,
    read_csv,
    read_stack,
    write_csv,
    write_png,
    write_stack,
)


def make_stack(n=3, size=8):
    rng = np.random.default_rng(0)
    return Stack(
        maps=rng.random((n, size, size), dtype=np.float32),
        image_id=[f"img{i}" for i in range(n)],
        true_label=np.arange(n),
        predicted=np.arange(n),
        probabilities=rng.random((n, 6)),
        attrs={"method": "lime", "settings": {"num_samples": 10}},
        extras={"segments": np.zeros((n, size, size), np.int16)},
    )


def test_stack_round_trip(tmp_path):
    stack = make_stack()
    write_stack(tmp_path / "s.h5", stack)
    back = read_stack(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.maps, stack.maps)
    assert back.image_id == stack.image_id
    assert back.attrs["settings"] == {"num_samples": 10}
    assert back.extras["segments"].dtype == np.int16
    chunks = list(iter_stack_maps(tmp_path / "s.h5", chunk=2))
    assert [len(c) for c in chunks] == [2, 1]


def test_empty_stack_round_trip(tmp_path):
    stack = make_stack(n=0)
    write_stack(tmp_path / "e.h5", stack)
    assert len(read_stack(tmp_path / "e.h5")) == 0


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_incomplete_stack_is_refused(tmp_path):
    import h5py

    path = tmp_path / "half.h5"
    with h5py.File(path, "w") as h5:  # a stack written without the completion mark
        h5.create_dataset("maps", data=np.zeros((1, 2, 2)))
    with pytest.raises(DataError, match="incomplete"):
        read_stack(path)
    path.write_bytes(b"\x89HDF garbage")
    with pytest.raises(DataError, match="not a readable HDF5"):
        read_stack(path)


def test_csv_floats_round_trip_exactly(tmp_path):
    value = 0.1 + 0.2
    write_csv(tmp_path / "t.csv", [{"a": value, "b": float("nan")}], ["a", "b"])
    row = read_csv(tmp_path / "t.csv")[0]
    assert float(row["a"]) == value and row["b"] == "nan"


def test_full_disk_gives_clear_error(tmp_path, monkeypatch):
    import errno
    import os

    from ferxai.errors import FerxaiError

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(FerxaiError, match="no space left"):
        write_png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []
