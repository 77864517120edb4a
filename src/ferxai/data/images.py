"""Reading face images of any common mode as RGB uint8, and turning them into network inputs.

Decoding goes through Pillow because it *raises* on truncated PNG and JPEG files (OpenCV returns
the partially decoded picture silently for a cut JPEG), and it exposes the stored mode, so every
conversion below is explicit:

* grayscale (``1``, ``L``) → replicated to three channels;
* alpha (``LA``, ``RGBA``, ``PA``, palette with transparency) → composited on **black**, the
  background of the canonical canvas, so transparent pixels never carry arbitrary stored colours;
* palette (``P``) → expanded through the palette;
* 16-bit (``I;16*``, ``I``) → scaled to 8 bits by rounding ``v * 255 / 65535`` (Pillow already
  keeps the high byte of 16-bit RGB files); float (``F``) → ``[0, 1]`` or ``[0, 255]`` clipped;
* CMYK, YCbCr, LAB... → Pillow's RGB conversion.

EXIF orientation is *not* applied: pixels are used as stored, which is what landmark files and
detectors (dlib) see too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ferxai.core.errors import DataError

_FIX = "fix: re-export it (e.g. as PNG) or remove it from the dataset"


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` fully and return it as uint8 ``(H, W, 3)`` RGB; unreadable → DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # full decode: raises on truncated or corrupt data
            return _to_rgb_array(image)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: cannot read this image: the file does not exist; {_FIX}") from exc
    except UnidentifiedImageError as exc:
        raise DataError(f"{path}: cannot read this image: not an image file; {_FIX}") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: cannot read this image: it is implausibly large; {_FIX}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncation/corruption as OSError ('image file is truncated'), bad
        # chunks as SyntaxError and broken headers as ValueError/EOFError.
        raise DataError(
            f"{path}: cannot read this image (truncated or corrupt: {exc}); {_FIX}"
        ) from exc


def _to_rgb_array(image) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode.startswith("I") or mode == "F":
        return _gray_to_rgb(_scale_high_depth(np.asarray(image), mode))
    if mode in ("1", "L"):
        return _gray_to_rgb(np.asarray(image.convert("L")))
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        return _composite_on_black(np.asarray(image.convert("RGBA")))
    if mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image), dtype=np.uint8)


def _scale_high_depth(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit / 32-bit integer or float grayscale → uint8, using the full range of the type."""
    values = values.astype(np.float64)
    if mode == "F":
        top = 1.0 if values.size and np.nanmax(values) <= 1.0 else 255.0
        scaled = values / top * 255.0
    else:  # 'I', 'I;16', 'I;16B', ...: 16-bit sample range (PNG/TIFF) stored in an int array
        scaled = values * (255.0 / 65535.0)
    return np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(gray, dtype=np.uint8)[:, :, None], 3, axis=2)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    return ((rgb * alpha + 127) // 255).astype(np.uint8)


def to_network_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` → float32 ``(3, size, size)`` in [0, 1]; area filter when shrinking."""
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    if (height, width) != (size, size):
        shrinking = size < height or size < width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        rgb = cv2.resize(rgb, (size, size), interpolation=interpolation)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def load_batch(paths: Sequence[str | os.PathLike], size: int) -> np.ndarray:
    """Load and resize several images into one float32 ``(N, 3, size, size)`` array."""
    batch = np.empty((len(paths), 3, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        batch[i] = to_network_input(load_rgb(Path(path)), size)
    return batch
