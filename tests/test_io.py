import numpy as np
import pytest

from ferxai.core.errors import DataError
from ferxai.core.io import (
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

    from ferxai.core.errors import FerxaiError

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(FerxaiError, match="no space left"):
        write_png(tmp_path / "x.png", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------- damage


def flip_byte_in_chunk(path, dataset: str, chunk: int = 0) -> None:
    """Flip one byte in the middle of a dataset's stored chunk (as a bad disk or network would)."""
    import h5py

    with h5py.File(path, "r") as h5:
        info = h5[dataset].id.get_chunk_info(chunk)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_stacks_are_written_with_checksums(tmp_path):
    import h5py

    write_stack(tmp_path / "s.h5", make_stack())
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        for name in ("maps", "image_id", "true_label", "predicted", "probabilities", "segments"):
            assert h5[name].fletcher32, name


@pytest.mark.parametrize("dataset", ["maps", "probabilities", "segments"])
def test_flipped_byte_in_a_stack_names_the_file_and_the_fix(tmp_path, dataset):
    """Compressed (maps, segments) or not (probabilities): the checksum catches it, and the
    message names the file, the dataset and the fix instead of h5py's bare OSError."""
    path = tmp_path / "s.h5"
    write_stack(path, make_stack())
    flip_byte_in_chunk(path, dataset)
    with pytest.raises(DataError) as caught:
        read_stack(path)
    message = str(caught.value)
    assert str(path) in message and repr(dataset) in message
    assert "checksum" in message and "Delete it and rerun" in message
    if dataset == "maps":
        with pytest.raises(DataError, match="checksum"):
            list(iter_stack_maps(path))
        read_stack(path, load_maps=False)  # the rest of the file is intact


def test_h5_helpers_round_trip_and_refuse_damage(tmp_path):
    from ferxai.core.io import read_h5, write_h5

    mean = np.linspace(0, 1, 12).reshape(3, 4)
    write_h5(tmp_path / "h.h5", {"mean": mean, "uint8": (mean * 255).astype(np.uint8)},
             {"count": 3, "empty": False, "settings": {"a": 1}})
    arrays, attrs = read_h5(tmp_path / "h.h5", ["mean"])
    np.testing.assert_array_equal(arrays["mean"], mean)
    assert attrs["count"] == 3 and attrs["settings"] == {"a": 1}
    flip_byte_in_chunk(tmp_path / "h.h5", "mean")
    with pytest.raises(DataError, match=r"h\.h5.*'mean'.*checksum.*Delete it"):
        read_h5(tmp_path / "h.h5")
    with pytest.raises(DataError, match="no dataset"):
        read_h5(tmp_path / "h.h5", ["stretched"])


def test_png_truncated_or_damaged_names_the_file(tmp_path):
    from ferxai.core.io import read_png_gray

    image = (np.arange(64 * 48) % 251).astype(np.uint8).reshape(64, 48)
    path = tmp_path / "heatmap.png"
    write_png(path, image)
    np.testing.assert_array_equal(read_png_gray(path), image)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 20):
        path.write_bytes(data[:cut])
        with pytest.raises(DataError, match=r"heatmap\.png: truncated PNG.*Delete it and rerun"):
            read_png_gray(path)
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=r"heatmap\.png: damaged PNG \(CRC mismatch"):
        read_png_gray(path)
    path.write_bytes(b"not a png")
    with pytest.raises(DataError, match="not a PNG"):
        read_png_gray(path)


def test_truncated_csv_names_the_file(tmp_path):
    path = tmp_path / "metrics.csv"
    write_csv(path, [{"a": 1.5, "b": "x"}, {"a": 2.5, "b": "y"}], ["a", "b"])
    text = path.read_text()
    path.write_text(text[: text.rindex(",")])  # cut inside the last row
    with pytest.raises(DataError, match=r"metrics\.csv: truncated CSV.*Delete it and rerun"):
        read_csv(path)
    path.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="not a UTF-8 CSV"):
        read_csv(path)
    path.write_text("path,expression,subject\na.png,happy\n")  # a short row in a manifest: kept
    assert read_csv(path) == [{"path": "a.png", "expression": "happy", "subject": None}]


def test_string_datasets_are_checksummed_utf8(tmp_path):
    import h5py

    from ferxai.core.io import create_dataset

    with h5py.File(tmp_path / "s.h5", "w") as h5:
        create_dataset(h5, "names", np.array(["Zoë", "a", ""], dtype=object))
        create_dataset(h5, "none", np.array([], dtype=object))
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        assert h5["names"].fletcher32
        assert [v.decode() for v in h5["names"][...]] == ["Zoë", "a", ""]
        assert h5["none"].shape == (0,)
