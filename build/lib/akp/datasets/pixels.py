"""What the real-data loaders share: accepted formats, pixel limits, channel conversion, option checks.

Pillow parses untrusted bytes here, so only a few well-known formats are
allowed and an image's pixel count is checked from its header before anything
is decoded (the decompression-bomb guard).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from akp.constraints import Constraint
from akp.datasets.base import DATASET_FIELD, DatasetError, option_field

__all__ = [
    "IGNORED_NAMES",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "PIL_FORMATS",
    "SIZE",
    "CHANNELS",
    "POSITIVE_CLASSES",
    "check_channels",
    "check_class_list",
    "check_pixels",
    "check_size",
    "decode_image",
    "convert_channels",
    "is_ignored",
    "to_luminance",
]

#: File name extensions read as images (lower case), mapped to Pillow formats.
IMAGE_EXTENSIONS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
#: Pillow formats allowed to parse untrusted bytes (no exotic decoders).
PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
#: Largest image accepted, in pixels (width x height), checked from the header
#: before anything is decoded: the decompression-bomb guard.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Names that are OS litter, not data (hidden files are skipped too).
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})

#: Options every real-data loader shares (None: the loader decides).
SIZE = Constraint(option_field("size"), "Image size (px)", int, 4, 512,
                  help="Side of the square images after resizing.")
CHANNELS = Constraint(option_field("channels"), "Channels", int, choices=(1, 3),
                      help="1 (grayscale) or 3 (RGB); empty: decided from the images.")
POSITIVE_CLASSES = Constraint(option_field("positive_classes"), "Cancer classes", str,
                              help="Class folder names (or .npz labels) that count as cancer; the others do not.")


def _bad(message: str) -> DatasetError:
    return DatasetError(message, field=DATASET_FIELD)


def is_ignored(name: str) -> bool:
    """Whether a file or folder name is skipped: hidden files (.DS_Store, ._forks) and OS litter."""
    return name.startswith(".") or name in IGNORED_NAMES


def to_luminance(x: np.ndarray) -> np.ndarray:
    """(N,3,H,W) -> (N,1,H,W) with Pillow's "L" weights (ITU-R 601-2)."""
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
    return (x * w).sum(axis=1, keepdims=True, dtype=np.float32)


def convert_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    """(N,C,H,W) with C in {1, 3} -> ``channels`` channels (None keeps them)."""
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=1)
    return to_luminance(x)


def check_channels(channels: int | None) -> None:
    """Reject a ``channels`` option other than 1, 3 or None."""
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise DatasetError(f"channels must be 1, 3 or None (auto), got {channels!r}", field=CHANNELS.field)


def check_size(size: int | None, *, allow_none: bool) -> None:
    """Reject a ``size`` option that is not an integer from 4 to 512 (or None, where allowed)."""
    if size is None and allow_none:
        return
    if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 512:
        allowed = "an integer from 4 to 512" + (" or None" if allow_none else "")
        raise DatasetError(f"size must be {allowed}, got {size!r}", field=SIZE.field)


def check_class_list(value: Any, field: str) -> None:
    """Check a ``positive_classes`` option's type: a class name or label, or a non-empty list of them.

    Whether the classes exist is the loader's check: it needs the data.
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or any(isinstance(v, bool) or not isinstance(v, (str, int)) for v in items):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise DatasetError.at(field, f"must be a class name or label, or a list of them, got {shown}")


def check_pixels(path: Path, where: str, max_image_pixels: int) -> None:
    """Read an image's header and refuse it if it is unreadable or over ``max_image_pixels``.

    Raises
    ------
    DatasetError
        With ``field="dataset"``; the message starts with ``where``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PIL_FORMATS) as im:
                w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"{where}: decompression bomb refused ({exc})", field=DATASET_FIELD) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{where}: not a readable image ({exc})", field=DATASET_FIELD) from None
    if w * h > max_image_pixels:
        raise DatasetError(
            f"{where}: image of {w}x{h} = {w * h} pixels exceeds the limit of "
            f"{max_image_pixels} pixels (decompression-bomb guard)", field=DATASET_FIELD,
        )


# --------------------------------------------------------------------------- #
# Decoding one image (into float32 (C, size, size) in [0, 1])
# --------------------------------------------------------------------------- #
def decode_image(
    path: Path, size: int, max_image_pixels: int, crop: int | None = None
) -> tuple[np.ndarray, bool]:
    """Decode, check and resize one image.

    Returns
    -------
    image : ndarray of float32, shape (C, size, size), C in {1, 3}, values in [0, 1]
    gray : bool, whether the file is grayscale.
    """
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning becomes an error; our cap is lower anyway.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PIL_FORMATS) as im:
                w, h = im.size
                if w < 1 or h < 1:
                    raise _bad(f"{path}: empty image ({w}x{h} pixels)")
                if w * h > max_image_pixels:
                    raise _bad(
                        f"{path}: image of {w}x{h} = {w * h} pixels exceeds the "
                        f"limit of {max_image_pixels} pixels"
                    )
                im.load()
                if crop is not None:
                    if crop > min(w, h):
                        raise DatasetError(f"{path}: image of {w}x{h} pixels is smaller than crop={crop}",
                                           field=option_field("crop"))
                    left, top = (w - crop) // 2, (h - crop) // 2
                    im = im.crop((left, top, left + crop, top + crop))
                return _image_to_array(im, path, size)
    except DatasetError:
        raise
    except UnidentifiedImageError:
        raise _bad(f"{path}: not a readable image (allowed formats: {', '.join(PIL_FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bad(f"{path}: decompression bomb refused ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _bad(f"{path}: corrupt image ({exc})") from None


def _high_depth_to_array(im: Image.Image, path: Path, size: int) -> np.ndarray:
    """A 32-bit integer or float image, scaled to [0, 1] and resized in float ("F" mode).

    Pillow's convert("L") would clip 16-bit values, not scale them.
    """
    mode = im.mode
    arr = np.asarray(im)
    if arr.ndim != 2:
        raise _bad(f"{path}: unsupported image mode {mode!r}")
    arr = arr.astype(np.float64)
    if mode == "F":
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise _bad(
                f"{path}: float image values must lie in [0, 1], got "
                f"[{np.nanmin(arr):.4g}, {np.nanmax(arr):.4g}]"
            )
    else:
        if arr.min() < 0 or arr.max() > 65535:
            raise _bad(
                f"{path}: integer image values must lie in [0, 65535], got "
                f"[{arr.min():.0f}, {arr.max():.0f}]"
            )
        # 16-bit containers (I;16*) and 32-bit ones holding 16-bit data.
        arr = arr / (255.0 if mode == "I" and arr.max() <= 255 else 65535.0)
    fim = Image.fromarray(arr.astype(np.float32), mode="F")
    out = np.asarray(fim.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)[None]


def _image_to_array(im: Image.Image, path: Path, size: int) -> tuple[np.ndarray, bool]:
    """A decoded image as float32 (C, size, size) in [0, 1], and whether it is grayscale."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_array(im, path, size), True
    gray = mode in _GRAY_MODES
    im = im.convert("L" if gray else "RGB")
    arr = np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    if gray:
        return arr[None], True
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), False
