"""Real data: the user's own cell images, loaded and validated.

Data reaches a shared server as untrusted uploads, so every loader here checks
what it reads and fails with :class:`DatasetError` (a ``ValueError``) naming the
file and the problem; a failure leaves nothing behind.

Sources
-------
- an **image folder**: one subfolder per class holding PNG, JPEG, TIFF or BMP
  files (:func:`load_image_folder`);
- a **MedMNIST file** (``.npz`` with ``train_images``/``train_labels``,
  optional ``val_*``, ``test_*``; :func:`load_medmnist_npz`);
- a **zip upload** of an image folder, extracted safely (:func:`import_zip`);
- a **registered dataset** ``ds-<16 hex>``, stored processed under
  ``home/datasets/<id>/`` (:func:`register_dataset`, :func:`load_registered`).

Decisions (documented here because the loaders apply them silently)
-------------------------------------------------------------------
- **Split of a folder.** A folder has no official split, so each class is split
  on its own (stratified): its files are ordered by
  ``sha256(f"{split_seed}:{relative path}")`` and the first
  ``round(test_fraction * n)`` (at least one) go to the test split, the rest to
  train. The split depends only on file names, never on the order the file
  system lists them, and does not change when images are re-encoded.
- **Resizing.** Every image is resized to ``size x size`` with Pillow's bilinear
  filter (antialiased when shrinking); the aspect ratio is not kept.
- **Channels.** ``channels=1`` converts colour images to luminance
  (ITU-R 601-2, as Pillow's ``"L"``); ``channels=3`` repeats grayscale into
  RGB. With ``channels=None`` the loader decides: all grayscale gives 1, all
  colour gives 3, and a mix gives 3 unless the image mode follows the class
  (the share of grayscale images differs by more than 0.5 between two classes,
  e.g. one class all grayscale and another all RGB). That case is refused,
  because a model could learn the mode instead of the cells; pass ``channels``
  explicitly to accept it.
- **Bit depth.** 8-bit images are scaled by 1/255; 16-bit images (TIFF
  ``I;16``) by 1/65535; 32-bit integer images must hold values up to 65535;
  float images must already lie in [0, 1].
- **Binary tasks.** ``positive_classes`` turns a multi-class set into
  cancer (1) vs non-cancer (0) with class names ``("non-cancer", "cancer")``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

# akp.data imports this module lazily (inside load_dataset), so this is no cycle.
# DatasetError is akp.data's own, so callers catch one class for every source.
from akp.data import Dataset, DatasetError

__all__ = [
    "BINARY_CLASS_NAMES",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGES",
    "MAX_IMAGE_PIXELS",
    "MAX_NPZ_TOTAL_BYTES",
    "MAX_ZIP_FILES",
    "MAX_ZIP_TOTAL_BYTES",
    "RESOLVE_OPTIONS",
    "DatasetError",
    "dataset_card",
    "import_zip",
    "is_dataset_id",
    "list_datasets",
    "load_image_folder",
    "load_medmnist_npz",
    "load_registered",
    "register_dataset",
    "resolve_dataset",
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
_PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
#: Largest image accepted, in pixels (width x height), checked from the header
#: before anything is decoded: the decompression-bomb guard.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Most images one folder may hold (memory guard: ~12 KiB each at 32x32x3).
MAX_IMAGES = 100_000
#: Most files one zip upload may hold.
MAX_ZIP_FILES = 100_000
#: Largest total uncompressed size of a zip upload, in bytes.
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3
#: Largest total uncompressed size of the arrays in an .npz file, in bytes.
MAX_NPZ_TOTAL_BYTES = 4 * 1024**3
#: Keyword options :func:`resolve_dataset` accepts (``spec.dataset_options`` of real data).
RESOLVE_OPTIONS: tuple[str, ...] = ("size", "channels", "positive_classes", "max_images", "crop")
#: Class names of a binary task made with ``positive_classes``.
BINARY_CLASS_NAMES: tuple[str, str] = ("non-cancer", "cancer")

_DATASET_ID_RE = re.compile(r"^ds-[0-9a-f]{16}$")
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})
_IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
_CARD_VERSION = 1
_SAMPLES_PER_CLASS = 4
_COPY_CHUNK = 1 << 20


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #
def _is_ignored(name: str) -> bool:
    # Hidden files (.DS_Store, ._resource forks) and OS litter are not data.
    return name.startswith(".") or name in _IGNORED_NAMES


def _split_key(seed: int, relpath: str) -> bytes:
    return hashlib.sha256(f"{seed}:{relpath}".encode()).digest()


def _n_test(n: int, test_fraction: float) -> int:
    # Every class keeps at least one image on each side of the split.
    return min(max(1, round(test_fraction * n)), n - 1)


def _to_luminance(x: np.ndarray) -> np.ndarray:
    """(N,3,H,W) -> (N,1,H,W) with Pillow's "L" weights (ITU-R 601-2)."""
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
    return (x * w).sum(axis=1, keepdims=True, dtype=np.float32)


def _convert_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=1)
    return _to_luminance(x)


def _check_channels(channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1, 3 or None (auto), got {channels!r}")


def _check_size(size: int | None, *, allow_none: bool) -> None:
    if size is None and allow_none:
        return
    if isinstance(size, bool) or not isinstance(size, int) or not 4 <= size <= 512:
        allowed = "an integer from 4 to 512" + (" or None" if allow_none else "")
        raise DatasetError(f"size must be {allowed}, got {size!r}")


# --------------------------------------------------------------------------- #
# Image decoding
# --------------------------------------------------------------------------- #
def _decode_image(
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
            with Image.open(path, formats=_PIL_FORMATS) as im:
                w, h = im.size
                if w < 1 or h < 1:
                    raise DatasetError(f"{path}: empty image ({w}x{h} pixels)")
                if w * h > max_image_pixels:
                    raise DatasetError(
                        f"{path}: image of {w}x{h} = {w * h} pixels exceeds the "
                        f"limit of {max_image_pixels} pixels"
                    )
                im.load()
                if crop is not None:
                    if crop > min(w, h):
                        raise DatasetError(
                            f"{path}: image of {w}x{h} pixels is smaller than crop={crop}"
                        )
                    left, top = (w - crop) // 2, (h - crop) // 2
                    im = im.crop((left, top, left + crop, top + crop))
                return _image_to_array(im, path, size)
    except DatasetError:
        raise
    except UnidentifiedImageError:
        raise DatasetError(
            f"{path}: not a readable image (allowed formats: {', '.join(_PIL_FORMATS)})"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"{path}: decompression bomb refused ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: corrupt image ({exc})") from None


def _image_to_array(im: Image.Image, path: Path, size: int) -> tuple[np.ndarray, bool]:
    mode = im.mode
    resample = Image.Resampling.BILINEAR
    if mode.startswith("I") or mode == "F":
        # High bit depth: scale to [0, 1] in float, resize in float ("F" mode),
        # because Pillow's convert("L") would clip 16-bit values, not scale them.
        arr = np.asarray(im)
        if arr.ndim != 2:
            raise DatasetError(f"{path}: unsupported image mode {mode!r}")
        arr = arr.astype(np.float64)
        if mode == "F":
            if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
                raise DatasetError(
                    f"{path}: float image values must lie in [0, 1], got "
                    f"[{np.nanmin(arr):.4g}, {np.nanmax(arr):.4g}]"
                )
        else:
            if arr.min() < 0 or arr.max() > 65535:
                raise DatasetError(
                    f"{path}: integer image values must lie in [0, 65535], got "
                    f"[{arr.min():.0f}, {arr.max():.0f}]"
                )
            # 16-bit containers (I;16*) and 32-bit ones holding 16-bit data.
            arr = arr / (255.0 if mode == "I" and arr.max() <= 255 else 65535.0)
        fim = Image.fromarray(arr.astype(np.float32), mode="F")
        out = np.asarray(fim.resize((size, size), resample), dtype=np.float32)
        return np.clip(out, 0.0, 1.0)[None], True
    gray = mode in _GRAY_MODES
    im = im.convert("L" if gray else "RGB")
    arr = np.asarray(im.resize((size, size), resample), dtype=np.float32) / 255.0
    if gray:
        return arr[None], True
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), False


# --------------------------------------------------------------------------- #
# Image folders
# --------------------------------------------------------------------------- #
def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not _is_ignored(p.name))


def _find_root(path: Path) -> Path:
    """Descend through single wrapper folders (``upload.zip -> mydata/ -> classes``)."""
    root = path
    for _ in range(8):
        dirs = _visible_dirs(root)
        files = [p for p in root.iterdir() if p.is_file() and not _is_ignored(p.name)]
        has_images = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in files)
        if len(dirs) == 1 and not has_images and _visible_dirs(dirs[0]):
            root = dirs[0]
            continue
        return root
    return root


def _class_files(class_dir: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
        # Sorted in place so the walk, and every message, is deterministic.
        dirnames[:] = sorted(d for d in dirnames if not _is_ignored(d))
        for d in dirnames:
            if (Path(dirpath) / d).is_symlink():
                raise DatasetError(f"{Path(dirpath) / d}: symbolic links are not allowed")
        for name in sorted(filenames):
            if _is_ignored(name):
                continue
            p = Path(dirpath) / name
            if p.is_symlink():
                raise DatasetError(f"{p}: symbolic links are not allowed")
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DatasetError(
                    f"{p}: not an image file (allowed extensions: "
                    f"{', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            files.append(p)
    return files


def _choose_channels(
    gray: np.ndarray, labels: np.ndarray, class_names: Sequence[str], where: str
) -> int:
    if gray.all():
        return 1
    if not gray.any():
        return 3
    shares = {c: float(gray[labels == k].mean()) for k, c in enumerate(class_names)}
    if max(shares.values()) - min(shares.values()) > 0.5:
        detail = ", ".join(f"{c}: {100 * s:.0f}% grayscale" for c, s in shares.items())
        raise DatasetError(
            f"{where}: image modes differ between classes ({detail}); a model could "
            "learn the mode instead of the cells. Pass channels=1 or channels=3 to "
            "convert every image."
        )
    return 3


def _binary_labels(
    labels: np.ndarray,
    class_names: Sequence[str],
    positive: Iterable[str],
    where: str,
) -> np.ndarray:
    pos = list(positive)
    unknown = [p for p in pos if p not in class_names]
    if not pos or unknown:
        raise DatasetError(
            f"{where}: positive_classes must name classes among {list(class_names)}, "
            f"got {pos!r}"
        )
    if len(set(pos)) == len(class_names):
        raise DatasetError(
            f"{where}: positive_classes {pos!r} name every class; leave at least "
            "one non-cancer class"
        )
    is_pos = np.array([c in set(pos) for c in class_names])
    return is_pos[labels].astype(np.int64)


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    size: int = 32,
    channels: int | None = None,
    positive_classes: Sequence[str] | str | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    max_images: int | None = None,
    crop: int | None = None,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    workers: int = 1,
) -> Dataset:
    """Load an image folder with one subfolder per class.

    Parameters
    ----------
    path : path-like
        Folder whose subfolders are the classes (sorted by name; label k is the
        k-th). Subfolders of a class are searched too; hidden files are
        skipped. A single wrapper folder around the class folders is entered.
    size : int, default=32
        Side of the square images returned.
    channels : {1, 3} or None, default=None
        Channels of the images returned; None decides from the files (see the
        module docstring: a mode that follows the class is refused).
    positive_classes : sequence of str or str, optional
        Class folders that count as cancer; the others are non-cancer and the
        class names become ``("non-cancer", "cancer")``.
    test_fraction : float, default=0.2
        Share of each class put in the test split (deterministic, by hash of
        the file's path relative to its class folder).
    split_seed : int, default=0
        Salt of the split hash; another seed gives another split.
    max_images : int, optional
        Keep about this many images (proportionally per class, at least two
        each), chosen by the same hash, before decoding (for quick runs on
        big folders).
    crop : int, optional
        Cut the central ``crop x crop`` pixels before resizing (PCam labels,
        for instance, describe only the centre 32 x 32 of a 96 x 96 patch).
    max_image_pixels : int, default=MAX_IMAGE_PIXELS
        Largest width x height accepted (decompression-bomb guard).
    workers : int, default=1
        Decoding threads. One is the default because threads were slower on a
        2-core machine (Pillow's JPEG decode of small patches is GIL-bound).

    Returns
    -------
    Dataset
        Images float32 (N, C, size, size) in [0, 1], labels int64; no
        validation split; ``source`` is ``"folder:<absolute path>"``.

    Raises
    ------
    DatasetError
        Missing folder, fewer than two classes, a class with fewer than two
        images, a non-image or corrupt file, a symbolic link, an image over
        ``max_image_pixels``, modes that follow the class, bad options.
    """
    _check_size(size, allow_none=False)
    _check_channels(channels)
    if not 0.0 < float(test_fraction) < 1.0:
        raise DatasetError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 4
    ):
        raise DatasetError(f"max_images must be an integer >= 4 or None, got {max_images!r}")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 1):
        raise DatasetError(f"crop must be a positive integer or None, got {crop!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    root = _find_root(folder.resolve())
    class_dirs = _visible_dirs(root)
    if not class_dirs:
        raise DatasetError(f"{root}: no class subfolders (expected one folder per class)")
    if len(class_dirs) == 1:
        raise DatasetError(
            f"{root}: only one class ({class_dirs[0].name!r}); at least two class "
            "folders are needed"
        )
    for d in class_dirs:
        if d.is_symlink():
            raise DatasetError(f"{d}: symbolic links are not allowed")
    class_names = tuple(d.name for d in class_dirs)
    if isinstance(positive_classes, str):
        positive_classes = [positive_classes]

    # Per class: files ordered by split hash -> test first, then train.
    per_class: list[list[tuple[bytes, Path]]] = []
    total = 0
    for d in class_dirs:
        files = _class_files(d)
        if not files:
            raise DatasetError(f"{d}: empty class folder (no images)")
        if len(files) < 2:
            raise DatasetError(
                f"{d}: class has {len(files)} image; at least 2 are needed "
                "(one for train, one for test)"
            )
        keyed = sorted(
            (_split_key(split_seed, f.relative_to(d).as_posix()), f) for f in files
        )
        per_class.append(keyed)
        total += len(keyed)
        if total > MAX_IMAGES:
            raise DatasetError(f"{root}: more than {MAX_IMAGES} images")

    if max_images is not None and total > int(max_images):
        # Proportional per class, at least 2 each, chosen by hash order.
        scale = int(max_images) / total
        per_class = [k[: max(2, round(scale * len(k)))] for k in per_class]

    items: list[tuple[Path, int, bool]] = []  # (file, label, is_test)
    for label, keyed in enumerate(per_class):
        n_test = _n_test(len(keyed), float(test_fraction))
        for i, (_, f) in enumerate(keyed):
            items.append((f, label, i < n_test))

    n_workers = max(1, int(workers))
    paths = [f for f, _, _ in items]
    if n_workers > 1 and len(paths) > 64:
        with concurrent.futures.ThreadPoolExecutor(n_workers) as pool:
            decoded = list(
                pool.map(lambda p: _decode_image(p, size, max_image_pixels, crop), paths)
            )
    else:
        decoded = [_decode_image(p, size, max_image_pixels, crop) for p in paths]

    labels = np.array([lab for _, lab, _ in items], dtype=np.int64)
    is_test = np.array([t for _, _, t in items], dtype=bool)
    gray = np.array([g for _, g in decoded], dtype=bool)
    target = channels or _choose_channels(gray, labels, class_names, str(root))
    x = np.empty((len(items), target, size, size), dtype=np.float32)
    for i, (arr, _) in enumerate(decoded):
        if arr.shape[0] == target:
            x[i] = arr
        elif target == 3:
            x[i] = np.repeat(arr, 3, axis=0)
        else:
            x[i] = _to_luminance(arr[None])[0]

    names: tuple[str, ...] = class_names
    if positive_classes is not None:
        labels = _binary_labels(labels, class_names, positive_classes, str(root))
        names = BINARY_CLASS_NAMES
    return Dataset(
        name=folder.resolve().name,
        x_train=x[~is_test],
        y_train=labels[~is_test],
        x_test=x[is_test],
        y_test=labels[is_test],
        class_names=tuple(names),
        source=f"folder:{folder.resolve()}",
    )


# --------------------------------------------------------------------------- #
# MedMNIST .npz
# --------------------------------------------------------------------------- #
_NPZ_SPLITS = ("train", "val", "test")
_NPZ_KEYS = frozenset(f"{s}_{k}" for s in _NPZ_SPLITS for k in ("images", "labels"))


def _npz_images(arr: np.ndarray, key: str, where: str) -> np.ndarray:
    """(N,H,W) | (N,H,W,1|3) of uint8/uint16/float in [0,1] -> float32 (N,C,H,W)."""
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise DatasetError(
            f"{where}: {key} has shape {arr.shape}; expected (N, H, W) or "
            "(N, H, W, 1|3) (2-D MedMNIST sets; 3-D volumes are not supported)"
        )
    if arr.shape[0] == 0 or arr.shape[1] < 2 or arr.shape[2] < 2:
        raise DatasetError(f"{where}: {key} has shape {arr.shape}; no images")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / np.float32(255)
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / np.float32(65535)
    elif arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)) or out.min() < 0 or out.max() > 1:
            raise DatasetError(f"{where}: {key} is float with values outside [0, 1]")
    else:
        raise DatasetError(
            f"{where}: {key} has dtype {arr.dtype}; expected uint8, uint16 or float in [0, 1]"
        )
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _npz_labels(arr: np.ndarray, key: str, n: int, where: str) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DatasetError(
            f"{where}: {key} has shape {arr.shape}; expected (N,) or (N, 1) "
            "(multi-label sets are not supported)"
        )
    if arr.shape[0] != n:
        raise DatasetError(
            f"{where}: {key} has {arr.shape[0]} labels but the images number {n}"
        )
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            pass  # integral floats are accepted
        else:
            raise DatasetError(f"{where}: {key} has dtype {arr.dtype}; expected integers")
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise DatasetError(f"{where}: {key} holds a negative label ({out.min()})")
    return out


def _check_npy_headers(zf: zipfile.ZipFile, where: str, max_total_bytes: int) -> None:
    """Read each member's .npy header: no object arrays, no oversized shapes.

    numpy allocates the array its header declares before reading the data, so
    a forged shape is refused here, before ``np.load``.
    """
    total = 0
    for info in zf.infolist():
        key = info.filename.removesuffix(".npy")
        try:
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{where}: {key} is not a numpy array ({exc})") from None
        if dtype.hasobject:
            raise DatasetError(
                f"{where}: {key} holds Python objects (dtype {dtype}); only numeric "
                "arrays are read (no pickle)"
            )
        total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if total > max_total_bytes:
            raise DatasetError(
                f"{where}: array shapes declare more than {max_total_bytes} bytes "
                f"({key}: shape {shape}, dtype {dtype})"
            )


def _resize_stack(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[2] == size and x.shape[3] == size:
        return x
    out = np.empty((x.shape[0], x.shape[1], size, size), dtype=np.float32)
    r = Image.Resampling.BILINEAR
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            im = Image.fromarray(x[i, c], mode="F")
            out[i, c] = np.asarray(im.resize((size, size), r), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def load_medmnist_npz(
    path: str | os.PathLike[str],
    *,
    positive_labels: Sequence[int] | None = None,
    size: int | None = None,
    channels: int | None = None,
    class_names: Sequence[str] | None = None,
    max_total_bytes: int = MAX_NPZ_TOTAL_BYTES,
) -> Dataset:
    """Load a 2-D MedMNIST ``.npz`` file, keeping its official splits.

    Parameters
    ----------
    path : path-like
        ``.npz`` with ``train_images``, ``train_labels``, ``test_images``,
        ``test_labels`` and optionally ``val_images``, ``val_labels``. Images
        (N, H, W) or (N, H, W, 1|3), uint8 / uint16 / float in [0, 1]; labels
        (N,) or (N, 1) integers from 0. Loaded with ``allow_pickle=False``.
    positive_labels : sequence of int, optional
        Labels that count as cancer; the class names become
        ``("non-cancer", "cancer")``.
    size : int, optional
        Resize every image to ``size x size`` (bilinear); None keeps the size.
    channels : {1, 3} or None, default=None
        Convert to 1 (luminance) or 3 (repeated) channels; None keeps them.
    class_names : sequence of str, optional
        Names of the labels 0..K-1 (default ``"0"``, ``"1"``, ...); ignored
        with ``positive_labels``.
    max_total_bytes : int, default=MAX_NPZ_TOTAL_BYTES
        Largest total uncompressed size of the arrays (zip-bomb guard).

    Returns
    -------
    Dataset
        With ``x_val``/``y_val`` when the file has a validation split;
        ``source`` is ``"npz:<absolute path>"``.

    Raises
    ------
    DatasetError
        Not an npz file, missing or unexpected keys, object arrays, bad shapes
        or dtypes, label counts that do not match, labels out of range, a
        class absent from train, fewer than two classes, bad options.
    """
    _check_size(size, allow_none=True)
    _check_channels(channels)
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise DatasetError(f"{where}: no such file")
    # An .npz is a zip: check the declared sizes before numpy inflates anything.
    try:
        with zipfile.ZipFile(p) as zf:
            declared = sum(i.file_size for i in zf.infolist())
            names = [i.filename for i in zf.infolist()]
            if declared > max_total_bytes:
                raise DatasetError(
                    f"{where}: arrays take {declared} bytes uncompressed, over the "
                    f"limit of {max_total_bytes} bytes"
                )
            _check_npy_headers(zf, where, max_total_bytes)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{where}: not an .npz file ({exc})") from None
    keys = {n.removesuffix(".npy") for n in names}
    unexpected = sorted(keys - _NPZ_KEYS)
    missing = sorted({"train_images", "train_labels", "test_images", "test_labels"} - keys)
    if unexpected or missing:
        raise DatasetError(
            f"{where}: keys {sorted(keys)} do not match the MedMNIST layout"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {unexpected}" if unexpected else "")
            + f" (allowed: {sorted(_NPZ_KEYS)})"
        )
    if ("val_images" in keys) != ("val_labels" in keys):
        raise DatasetError(f"{where}: val_images and val_labels must come together")

    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with np.load(p, allow_pickle=False) as npz:
            for s in _NPZ_SPLITS:
                if f"{s}_images" not in keys:
                    continue
                x = _npz_images(npz[f"{s}_images"], f"{s}_images", where)
                y = _npz_labels(npz[f"{s}_labels"], f"{s}_labels", x.shape[0], where)
                splits[s] = (x, y)
    except DatasetError:
        raise
    except ValueError as exc:  # object arrays need pickle: refused
        raise DatasetError(f"{where}: unreadable array ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{where}: corrupt .npz file ({exc})") from None

    shapes = {s: v[0].shape[1:] for s, v in splits.items()}
    if len(set(shapes.values())) != 1:
        raise DatasetError(f"{where}: image shapes (C, H, W) differ between splits: {shapes}")
    y_train = splits["train"][1]
    n_classes = int(y_train.max()) + 1
    absent = sorted(set(range(n_classes)) - set(y_train.tolist()))
    if n_classes < 2:
        raise DatasetError(f"{where}: train_labels hold a single class; need at least two")
    if absent:
        raise DatasetError(f"{where}: classes {absent} have no training image (empty class)")
    for s, (_, y) in splits.items():
        if y.max() >= n_classes:
            raise DatasetError(
                f"{where}: {s}_labels hold label {int(y.max())}, out of range: "
                f"train_labels use 0..{n_classes - 1}"
            )

    names: tuple[str, ...]
    if positive_labels is not None:
        try:
            pos = sorted({int(v) for v in positive_labels})
        except (TypeError, ValueError):
            raise DatasetError(
                f"{where}: positive_labels must be integers in 0..{n_classes - 1}, "
                f"got {positive_labels!r}"
            ) from None
        if not pos or any(not 0 <= v < n_classes for v in pos) or len(pos) == n_classes:
            raise DatasetError(
                f"{where}: positive_labels must be a non-empty proper subset of "
                f"0..{n_classes - 1}, got {list(positive_labels)!r}"
            )
        is_pos = np.isin(np.arange(n_classes), pos)
        splits = {s: (x, is_pos[y].astype(np.int64)) for s, (x, y) in splits.items()}
        names = BINARY_CLASS_NAMES
    elif class_names is not None:
        names = tuple(str(c) for c in class_names)
        if len(names) != n_classes or len(set(names)) != n_classes:
            raise DatasetError(
                f"{where}: class_names must be {n_classes} distinct names, got {list(names)!r}"
            )
    else:
        names = tuple(str(k) for k in range(n_classes))

    def prep(x: np.ndarray) -> np.ndarray:
        if size is not None:
            x = _resize_stack(x, size)
        return _convert_channels(x, channels)

    val = splits.get("val")
    return Dataset(
        name=p.stem,
        x_train=prep(splits["train"][0]),
        y_train=splits["train"][1],
        x_test=prep(splits["test"][0]),
        y_test=splits["test"][1],
        class_names=names,
        x_val=None if val is None else prep(val[0]),
        y_val=None if val is None else val[1],
        source=f"npz:{p.resolve()}",
    )


# --------------------------------------------------------------------------- #
# Zip uploads
# --------------------------------------------------------------------------- #
def _safe_member_path(name: str, where: str) -> PurePosixPath | None:
    """Validated relative path of a zip member; None for litter to skip."""
    if "\x00" in name:
        raise DatasetError(f"{where}: member {name!r} has a NUL byte in its name")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise DatasetError(f"{where}: member {name!r} has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise DatasetError(f"{where}: member {name!r} points outside the folder ('..')")
    if not parts or any(_is_ignored(p) for p in parts):
        return None
    return PurePosixPath(*parts)


def make_dirs_tracked(path: Path) -> list[Path]:
    """``mkdir -p path``; return the folders it created, outermost first (for :func:`remove_created_dirs`)."""
    created = []
    for d in [*reversed(path.parents), path]:
        if not d.exists():
            d.mkdir()
            created.append(d)
    return created


def remove_created_dirs(created: Sequence[Path]) -> None:
    """Undo :func:`make_dirs_tracked`: remove those folders, innermost first, while they are empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            break


def import_zip(
    file: str | os.PathLike[str] | IO[bytes],
    dest: str | os.PathLike[str],
    *,
    max_total_bytes: int = MAX_ZIP_TOTAL_BYTES,
    max_files: int = MAX_ZIP_FILES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
) -> Path:
    """Extract a zip upload of an image folder safely.

    The archive is checked before extraction (paths, entry types, counts,
    declared sizes), extracted into a temporary folder next to ``dest`` while
    the real byte count is checked again, every image header is checked for
    its pixel count, and the folder is then renamed to ``dest``. On any
    failure the temporary folder (and any parent folder this call created) is
    removed, so nothing is left behind.

    Parameters
    ----------
    file : path-like or binary file-like
        The zip archive (a Streamlit upload works: it is file-like).
    dest : path-like
        Folder to create; it must not exist yet.
    max_total_bytes : int, default=MAX_ZIP_TOTAL_BYTES
        Largest total uncompressed size.
    max_files : int, default=MAX_ZIP_FILES
        Most files (directories not counted).
    max_image_pixels : int, default=MAX_IMAGE_PIXELS
        Largest width x height of any image in the archive.

    Returns
    -------
    Path
        ``dest``; load it with :func:`load_image_folder`.

    Raises
    ------
    DatasetError
        Not a zip, ``dest`` exists, an absolute or ``..`` path, a symbolic
        link or other special entry, an encrypted entry, duplicate names, too
        many files, too many bytes, an image over the pixel cap.
    """
    dest = Path(dest)
    where = str(file) if isinstance(file, (str, os.PathLike)) else "zip upload"
    if dest.exists() or dest.is_symlink():
        raise DatasetError(f"{dest}: destination already exists")
    created = make_dirs_tracked(dest.parent)
    tmp: Path | None = None
    try:
        try:
            zf = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DatasetError(f"{where}: not a zip archive ({exc})") from None
        with zf:
            plan = _plan_zip(zf, where, max_total_bytes, max_files)
            tmp = Path(tempfile.mkdtemp(prefix=".akp-zip-", dir=dest.parent))
            _extract_plan(zf, plan, tmp, where, max_total_bytes)
        for rel, _ in plan:
            if rel.suffix.lower() in IMAGE_EXTENSIONS:
                _check_pixels(tmp / rel, f"{where}: {rel}", max_image_pixels)
        os.rename(tmp, dest)
        return dest
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_created_dirs(created)
        raise


def _plan_zip(
    zf: zipfile.ZipFile, where: str, max_total_bytes: int, max_files: int
) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    plan: list[tuple[PurePosixPath, zipfile.ZipInfo]] = []
    seen: set[str] = set()
    total = 0
    for info in zf.infolist():
        rel = _safe_member_path(info.filename, where)
        mode = info.external_attr >> 16
        ftype = stat.S_IFMT(mode)
        if ftype == stat.S_IFLNK:
            raise DatasetError(f"{where}: member {info.filename!r} is a symbolic link")
        if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise DatasetError(
                f"{where}: member {info.filename!r} is not a regular file or folder"
            )
        if rel is None or info.is_dir() or ftype == stat.S_IFDIR:
            continue
        if info.flag_bits & 0x1:
            raise DatasetError(f"{where}: member {info.filename!r} is encrypted")
        key = rel.as_posix()
        if key in seen:
            raise DatasetError(f"{where}: member {info.filename!r} appears twice")
        seen.add(key)
        plan.append((rel, info))
        if len(plan) > max_files:
            raise DatasetError(f"{where}: more than {max_files} files (limit max_files)")
        total += info.file_size
        if total > max_total_bytes:
            raise DatasetError(
                f"{where}: more than {max_total_bytes} bytes uncompressed "
                "(limit max_total_bytes)"
            )
    # A file and a folder of the same name would collide on extraction.
    for rel, info in plan:
        for parent in rel.parents:
            if parent.as_posix() in seen:
                raise DatasetError(
                    f"{where}: member {info.filename!r} lies under a file of the same name"
                )
    if not plan:
        raise DatasetError(f"{where}: the archive holds no files")
    return plan


def _extract_plan(
    zf: zipfile.ZipFile,
    plan: list[tuple[PurePosixPath, zipfile.ZipInfo]],
    tmp: Path,
    where: str,
    max_total_bytes: int,
) -> None:
    written = 0
    for rel, info in plan:
        target = tmp.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        try:
            with zf.open(info) as src, open(target, "xb") as dst:
                while chunk := src.read(_COPY_CHUNK):
                    n += len(chunk)
                    written += len(chunk)
                    # Declared sizes can lie; count what really comes out.
                    if n > info.file_size or written > max_total_bytes:
                        raise DatasetError(
                            f"{where}: member {info.filename!r} inflates beyond its "
                            f"declared size or the limit of {max_total_bytes} bytes"
                        )
                    dst.write(chunk)
        except DatasetError:
            raise
        except FileExistsError:
            # Names that differ only in case, on a case-insensitive file system.
            raise DatasetError(
                f"{where}: member {info.filename!r} collides with another member's name"
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            raise DatasetError(f"{where}: member {info.filename!r} is corrupt ({exc})") from None


def _check_pixels(path: Path, where: str, max_image_pixels: int) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_PIL_FORMATS) as im:
                w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"{where}: decompression bomb refused ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{where}: not a readable image ({exc})") from None
    if w * h > max_image_pixels:
        raise DatasetError(
            f"{where}: image of {w}x{h} = {w * h} pixels exceeds the limit of "
            f"{max_image_pixels} pixels (decompression-bomb guard)"
        )


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
def is_dataset_id(value: str) -> bool:
    """Whether ``value`` has the form of a registered dataset id ``ds-<16 hex>``."""
    return isinstance(value, str) and bool(_DATASET_ID_RE.fullmatch(value))


def _check_id(dataset_id: str) -> None:
    if not is_dataset_id(dataset_id):
        raise DatasetError(
            f"dataset id must look like 'ds-' followed by 16 lowercase hex digits, "
            f"got {dataset_id!r}"
        )


def _datasets_dir(home: str | os.PathLike[str]) -> Path:
    return Path(home) / "datasets"


def _load_source(
    source: str | os.PathLike[str],
    *,
    size: int | None,
    channels: int | None,
    positive_classes: Sequence[str | int] | str | int | None,
    max_images: int | None,
    crop: int | None = None,
) -> Dataset:
    p = Path(source)
    if isinstance(positive_classes, (str, int)):
        positive_classes = [positive_classes]
    if p.is_dir():
        return load_image_folder(
            p,
            size=32 if size is None else size,
            channels=channels,
            positive_classes=None
            if positive_classes is None
            else [str(c) for c in positive_classes],
            max_images=max_images,
            crop=crop,
        )
    if p.suffix.lower() == ".npz" and p.is_file():
        for opt, value in (("max_images", max_images), ("crop", crop)):
            if value is not None:
                raise DatasetError(f"{p}: {opt} applies to image folders only")
        pos = None
        if positive_classes is not None:
            try:
                pos = [int(c) for c in positive_classes]
            except (TypeError, ValueError):
                raise DatasetError(
                    f"{p}: positive_classes of an .npz file must be integer labels, "
                    f"got {positive_classes!r}"
                ) from None
        return load_medmnist_npz(p, positive_labels=pos, size=size, channels=channels)
    problem = "not a dataset" if p.exists() else "no such folder or file"
    raise DatasetError(
        f"{source}: {problem}; expected an image folder, an .npz file or a "
        "registered id 'ds-<16 hex>'"
    )


def _arrays(ds: Any) -> dict[str, np.ndarray]:
    out = {
        "x_train": np.ascontiguousarray(ds.x_train, dtype=np.float32),
        "y_train": np.ascontiguousarray(ds.y_train, dtype=np.int64),
        "x_test": np.ascontiguousarray(ds.x_test, dtype=np.float32),
        "y_test": np.ascontiguousarray(ds.y_test, dtype=np.int64),
    }
    if ds.x_val is not None:
        out["x_val"] = np.ascontiguousarray(ds.x_val, dtype=np.float32)
        out["y_val"] = np.ascontiguousarray(ds.y_val, dtype=np.int64)
    return out


def _content_hash(arrays: dict[str, np.ndarray], options: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(options, sort_keys=True).encode())
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return "ds-" + h.hexdigest()[:16]


def _counts(y: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    return {c: int(np.sum(y == k)) for k, c in enumerate(names)}


def _to_png(img: np.ndarray) -> Image.Image:
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if u8.shape[0] == 1:
        return Image.fromarray(u8[0], mode="L")
    return Image.fromarray(np.ascontiguousarray(u8.transpose(1, 2, 0)), mode="RGB")


def register_dataset(
    source: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str],
    size: int | None = 32,
    channels: int | None = None,
    positive_classes: Sequence[str | int] | str | int | None = None,
    max_images: int | None = None,
    crop: int | None = None,
    name: str | None = None,
) -> str:
    """Load, validate and store a dataset; return its content id.

    Parameters
    ----------
    source : path-like
        An image folder or a MedMNIST ``.npz`` file.
    home : path-like
        AKP home; the dataset goes to ``home/datasets/<id>/`` as ``data.npz``
        (arrays), ``card.json`` (description) and ``samples/*.png``.
    size : int or None, default=32
        Image side (None keeps an npz file's own size; folders need a size).
    channels : {1, 3} or None, default=None
        As in :func:`load_image_folder` / :func:`load_medmnist_npz`.
    positive_classes : sequence, optional
        Folder class names, or integer labels of an npz file, that count as
        cancer.
    max_images, crop : int, optional
        Subsample / centre-crop an image folder (see :func:`load_image_folder`).
    name : str, optional
        Display name for the card (default: the folder or file name).

    Returns
    -------
    str
        ``"ds-"`` + the first 16 hex digits of the sha256 of the processed
        arrays and the options that shaped them. Registering the same data
        with the same options again returns the same id and writes nothing.

    Raises
    ------
    DatasetError
        Whatever the loaders raise; nothing is registered then.
    """
    ds = _load_source(
        source, size=size, channels=channels, positive_classes=positive_classes,
        max_images=max_images, crop=crop,
    )
    arrays = _arrays(ds)
    c, h, w = arrays["x_train"].shape[1:]
    options = {
        "class_names": list(ds.class_names),
        "image_size": [int(h), int(w)],
        "channels": int(c),
        "positive_classes": None
        if positive_classes is None
        else sorted(str(v) for v in (
            [positive_classes] if isinstance(positive_classes, (str, int)) else positive_classes
        )),
    }
    dataset_id = _content_hash(arrays, options)
    root = _datasets_dir(home)
    final = root / dataset_id
    if (final / "card.json").is_file():
        return dataset_id
    root.mkdir(parents=True, exist_ok=True)

    names = list(ds.class_names)
    splits = {"train": arrays["y_train"], "test": arrays["y_test"]}
    if "y_val" in arrays:
        splits["val"] = arrays["y_val"]
    card: dict[str, Any] = {
        "id": dataset_id,
        "format_version": _CARD_VERSION,
        "name": name or ds.name,
        "source": str(ds.source or source),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **options,
        "counts": {s: _counts(y, names) for s, y in splits.items()},
        "n_images": {s: len(y) for s, y in splits.items()},
        "samples": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dataset_id}-", dir=root))
    try:
        np.savez(tmp / "data.npz", **arrays)
        (tmp / "samples").mkdir()
        x_tr, y_tr = arrays["x_train"], arrays["y_train"]
        for k, cname in enumerate(names):
            files = []
            for j, i in enumerate(np.flatnonzero(y_tr == k)[:_SAMPLES_PER_CLASS]):
                fname = f"class{k}_{j}.png"
                _to_png(x_tr[i]).save(tmp / "samples" / fname)
                files.append(f"samples/{fname}")
            card["samples"][cname] = files
        (tmp / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True))
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process registered the same content meanwhile: keep theirs.
            if not (final / "card.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataset_id


def dataset_card(dataset_id: str, *, home: str | os.PathLike[str]) -> dict[str, Any]:
    """Card of a registered dataset (see :func:`register_dataset`).

    Raises
    ------
    DatasetError
        Malformed id, or no such dataset under ``home``.
    """
    _check_id(dataset_id)
    path = _datasets_dir(home) / dataset_id / "card.json"
    if not path.is_file():
        raise DatasetError(f"dataset {dataset_id!r} is not registered under {Path(home)}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable card ({exc})") from None


def load_registered(dataset_id: str, *, home: str | os.PathLike[str]) -> Dataset:
    """Load a registered dataset.

    Raises
    ------
    DatasetError
        Malformed id, no such dataset, or stored arrays that do not match
        their card.
    """
    card = dataset_card(dataset_id, home=home)
    path = _datasets_dir(home) / dataset_id / "data.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: unreadable arrays ({exc})") from None
    need = {"x_train", "y_train", "x_test", "y_test"}
    if not need <= set(arrays) or ("x_val" in arrays) != ("y_val" in arrays):
        raise DatasetError(f"{path}: keys {sorted(arrays)} do not match {sorted(need)}")
    shape = (card["channels"], *card["image_size"])
    for s in ("train", "val", "test"):
        if f"x_{s}" not in arrays:
            continue
        x, y = arrays[f"x_{s}"], arrays[f"y_{s}"]
        if x.dtype != np.float32 or y.dtype != np.int64 or x.shape[1:] != tuple(shape) \
                or y.shape != (x.shape[0],):
            raise DatasetError(f"{path}: split {s!r} does not match its card")
    return Dataset(
        name=card["name"],
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=tuple(card["class_names"]),
        x_val=arrays.get("x_val"),
        y_val=arrays.get("y_val"),
        source=dataset_id,
    )


def list_datasets(home: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Cards of every registered dataset under ``home``, oldest first."""
    root = _datasets_dir(home)
    if not root.is_dir():
        return []
    cards = []
    for d in sorted(root.iterdir()):
        if is_dataset_id(d.name) and (d / "card.json").is_file():
            try:
                cards.append(json.loads((d / "card.json").read_text()))
            except (OSError, ValueError):
                continue  # a damaged card is skipped, not fatal to the listing
    return sorted(cards, key=lambda c: (c.get("created", ""), c.get("id", "")))


def resolve_dataset(
    source: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str],
    size: int | None = 32,
    channels: int | None = None,
    positive_classes: Sequence[str | int] | str | int | None = None,
    max_images: int | None = None,
    crop: int | None = None,
) -> Dataset:
    """Dataset named by a folder path, an ``.npz`` path or a registered id.

    A registered id ``ds-<16 hex>`` is loaded as stored: it was processed when
    registered, so the other options are ignored. Nothing is written.
    ``akp.data.load_dataset`` calls this with ``spec.dataset_options`` as
    keyword arguments.

    Parameters
    ----------
    source : str or path-like
        Image folder, ``.npz`` file, or registered dataset id.
    home : path-like
        AKP home holding ``datasets/``.
    size, channels, positive_classes, max_images, crop
        As in :func:`register_dataset`.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Unknown source, or whatever the loaders raise.
    """
    s = os.fspath(source)
    if is_dataset_id(s):
        return load_registered(s, home=home)
    if s.startswith("ds-") and not Path(s).exists():
        _check_id(s)  # a malformed id: say what an id looks like
    return _load_source(
        s, size=size, channels=channels, positive_classes=positive_classes,
        max_images=max_images, crop=crop,
    )

