"""Reading image files with their real bit depth, label PNGs as stored, and fingerprints of their content."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError

# Pillow modes of one 16-bit channel; PNG's 16-bit grey also opens as "I" (32-bit int)
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _to_rgb8(img: Image.Image, path: Path, file_format: str | None) -> np.ndarray:
    """np.ndarray[H, W, 3] uint8 of an opened image; 16-bit grey is scaled, not clipped."""
    if img.mode in _SIXTEEN_BIT or (img.mode == "I" and file_format == "PNG"):
        grey = np.asarray(img, dtype=np.float64)  # 0..65535
        if grey.min() < 0 or grey.max() > 65535:
            raise InputError(f"cannot read image {path}: mode {img.mode} holds values outside 0..65535")
        grey8 = np.round(grey / 257.0).astype(np.uint8)
        return np.repeat(grey8[..., None], 3, axis=2)
    if img.mode in ("I", "F") or img.mode.startswith(("I;", "F;")):
        kind = "32-bit integer" if img.mode.startswith("I") else "float"
        raise InputError(f"cannot read image {path}: {img.mode!r} ({kind} pixels) has no known 0..255 scale; "
                         "convert it to 8-bit RGB")
    return np.array(img.convert("RGB"))


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as Tensor[3, H, W] uint8 RGB.

    The pixels are turned as the file's EXIF orientation says, as mmcv's loaders (those of
    the written training configs) and PIL's ``ImageOps.exif_transpose`` turn them, so labels
    made from them match what training sees.

    8-bit images of any mode (grey, palette, alpha, CMYK) are converted to RGB; 16-bit
    grey is scaled to 8 bits (Pillow reads 16-bit RGB as 8-bit RGB itself); 32-bit
    integer and float images are refused.

    Raises:
        InputError: the file is missing, not an image, truncated or of an unusable mode.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            array = _to_rgb8(ImageOps.exif_transpose(img), path, img.format)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def read_label(path: str | Path) -> np.ndarray:
    """A label PNG (a class per pixel, 255 = ignore) as np.ndarray[H, W], its values as stored:
    no conversion, so that a label of another mode or depth shows in its dtype.

    Raises:
        InputError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as png:
            return np.array(png)
    except (OSError, ValueError) as err:  # UnidentifiedImageError is an OSError
        raise InputError(f"cannot read label {path}: {err}") from err
