"""ferxai.data.images: every stored mode becomes RGB uint8; broken files raise DataError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from ferxai.core.errors import DataError
from ferxai.data.images import load_batch, load_rgb, to_network_input


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_rgb_png_round_trip_is_exact(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_is_replicated_to_three_channels(tmp_path, rgb):
    gray = rgb[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = load_rgb(tmp_path / "g.png")
    assert out.shape == (20, 30, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_bilevel_image_is_black_and_white(tmp_path):
    Image.fromarray(np.eye(8, dtype=bool)).save(tmp_path / "b.png")
    out = load_rgb(tmp_path / "b.png")
    assert set(np.unique(out)) == {0, 255}
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [0, 0, 0]


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = [200, 100, 50]
    rgba[..., 3] = [[0, 255, 128], [0, 255, 128]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [200, 100, 50]
    np.testing.assert_allclose(out[0, 2], [100, 50, 25], atol=1)


def test_gray_alpha_is_composited_on_black(tmp_path):
    la = np.stack([np.full((2, 2), 200, np.uint8), np.array([[0, 255], [255, 0]], np.uint8)], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = load_rgb(tmp_path / "la.png")
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [200, 200, 200]


def test_palette_images_are_expanded(tmp_path, rgb):
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(
        tmp_path / "p.png"
    )
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    np.testing.assert_array_equal(load_rgb(tmp_path / "p.png"), expected)
    gif = tmp_path / "p.gif"
    Image.fromarray(rgb).convert("P").save(gif, transparency=0)
    assert load_rgb(gif).shape == (20, 30, 3)


def test_16_bit_grayscale_uses_the_full_range(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), values)
    out = load_rgb(tmp_path / "g16.png")
    assert out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]


def test_16_bit_rgb_is_scaled_to_8_bit(tmp_path):
    bgr16 = np.zeros((2, 2, 3), np.uint16)
    bgr16[..., 2] = 65535  # red in OpenCV's BGR order
    bgr16[..., 1] = 32768
    cv2.imwrite(str(tmp_path / "c16.png"), bgr16)
    out = load_rgb(tmp_path / "c16.png")
    assert out[0, 0].tolist() == [255, 128, 0]


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_raise_data_error(tmp_path, rgb, suffix):
    whole = tmp_path / f"whole{suffix}"
    cv2.imwrite(str(whole), cv2.resize(rgb, (64, 64)))
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.(png|jpg): cannot read this image.*fix:"):
        load_rgb(cut)


def test_not_an_image_and_missing_file_raise_data_error(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(DataError, match="notes.png: cannot read this image: not an image"):
        load_rgb(text)
    with pytest.raises(DataError, match="absent.png: cannot read this image: the file does not"):
        load_rgb(tmp_path / "absent.png")


def test_network_input_shape_range_and_interpolation(rgb):
    small = to_network_input(rgb, 10)
    assert small.shape == (3, 10, 10) and small.dtype == np.float32
    assert 0.0 <= small.min() and small.max() <= 1.0
    area = cv2.resize(rgb, (10, 10), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(small, area, atol=1e-6)
    large = to_network_input(rgb, 64)
    linear = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(large, linear, atol=1e-6)
    square = rgb[:20, :20]
    np.testing.assert_allclose(to_network_input(square, 20), square.transpose(2, 0, 1) / 255.0)


def test_network_input_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB"):
        to_network_input(np.zeros((4, 4), np.uint8), 4)


def test_load_batch_stacks_images(tmp_path, rgb):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.roll(rgb, i, axis=1)).save(paths[-1])
    batch = load_batch(paths, 16)
    assert batch.shape == (3, 3, 16, 16) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[1], to_network_input(load_rgb(paths[1]), 16))
    assert not np.allclose(batch[0], batch[1])
