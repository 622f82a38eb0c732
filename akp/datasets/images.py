"""Image folders: one subfolder per class of PNG, JPEG, TIFF or BMP files, loaded and validated.

Decisions (documented here because the loader applies them silently)
--------------------------------------------------------------------
- **Split.** A folder has no official split, so each class is split on its own
  (stratified): its files are ordered by ``sha256(f"{split_seed}:{relative
  path}")`` and the first ``round(test_fraction * n)`` (at least one) go to the
  test split, the rest to train. The split depends only on file names, never
  on the order the file system lists them, and does not change when images are
  re-encoded.
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
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from akp.constraints import Constraint
from akp.datasets.base import BINARY_CLASS_NAMES, DATASET_FIELD, Dataset, DatasetError, OptionSchema, option_field
from akp.datasets.pixels import (
    CHANNELS,
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    POSITIVE_CLASSES,
    SIZE,
    check_channels,
    check_size,
    decode_image,
    is_ignored,
    to_luminance,
)

__all__ = ["MAX_IMAGES", "OPTIONS", "load_image_folder"]

#: Most images one folder may hold (memory guard: ~12 KiB each at 32x32x3).
MAX_IMAGES = 100_000
#: Options of :func:`load_image_folder` a spec may set (``spec.dataset_options``; None: the loader decides).
OPTIONS: OptionSchema = {
    "size": SIZE,
    "channels": CHANNELS,
    "positive_classes": POSITIVE_CLASSES,
    "max_images": Constraint(option_field("max_images"), "Most images", int, 4,
                             help="Subsample big folders, proportionally per class."),
    "crop": Constraint(option_field("crop"), "Centre crop (px)", int, 1,
                       help="Cut the central crop x crop pixels before resizing."),
}
def _bad_file(message: str) -> DatasetError:
    return DatasetError(message, field=DATASET_FIELD)


# --------------------------------------------------------------------------- #
# Finding the classes and their files
# --------------------------------------------------------------------------- #
def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not is_ignored(p.name))


def _find_root(path: Path) -> Path:
    """Descend through single wrapper folders (``upload.zip -> mydata/ -> classes``)."""
    root = path
    for _ in range(8):
        dirs = _visible_dirs(root)
        files = [p for p in root.iterdir() if p.is_file() and not is_ignored(p.name)]
        has_images = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in files)
        if len(dirs) == 1 and not has_images and _visible_dirs(dirs[0]):
            root = dirs[0]
            continue
        return root
    return root


def _class_dirs(folder: Path) -> tuple[Path, list[Path]]:
    """The folder holding the classes, and the class folders (at least two, no symlinks)."""
    if not folder.is_dir():
        raise _bad_file(f"{folder}: not a folder")
    root = _find_root(folder.resolve())
    class_dirs = _visible_dirs(root)
    if not class_dirs:
        raise _bad_file(f"{root}: no class subfolders (expected one folder per class)")
    if len(class_dirs) == 1:
        raise _bad_file(f"{root}: only one class ({class_dirs[0].name!r}); at least two class folders are needed")
    for d in class_dirs:
        if d.is_symlink():
            raise _bad_file(f"{d}: symbolic links are not allowed")
    return root, class_dirs


def _class_files(class_dir: Path) -> list[Path]:
    """Every image file under a class folder, in a deterministic order; anything else is refused."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=False):
        # Sorted in place so the walk, and every message, is deterministic.
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(d))
        for d in dirnames:
            if (Path(dirpath) / d).is_symlink():
                raise _bad_file(f"{Path(dirpath) / d}: symbolic links are not allowed")
        for name in sorted(filenames):
            if is_ignored(name):
                continue
            p = Path(dirpath) / name
            if p.is_symlink():
                raise _bad_file(f"{p}: symbolic links are not allowed")
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise _bad_file(f"{p}: not an image file (allowed extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
            files.append(p)
    return files


def _split_key(seed: int, relpath: str) -> bytes:
    return hashlib.sha256(f"{seed}:{relpath}".encode()).digest()


def _n_test(n: int, test_fraction: float) -> int:
    # Every class keeps at least one image on each side of the split.
    return min(max(1, round(test_fraction * n)), n - 1)


def _split_plan(
    root: Path, class_dirs: Sequence[Path], *, split_seed: int, test_fraction: float, max_images: int | None
) -> list[tuple[Path, int, bool]]:
    """(file, label, is_test) of every image kept: per class, files in split-hash order, test first."""
    per_class: list[list[tuple[bytes, Path]]] = []
    total = 0
    for d in class_dirs:
        files = _class_files(d)
        if not files:
            raise _bad_file(f"{d}: empty class folder (no images)")
        if len(files) < 2:
            raise _bad_file(f"{d}: class has {len(files)} image; at least 2 are needed (one for train, one for test)")
        keyed = sorted((_split_key(split_seed, f.relative_to(d).as_posix()), f) for f in files)
        per_class.append(keyed)
        total += len(keyed)
        if total > MAX_IMAGES:
            raise _bad_file(f"{root}: more than {MAX_IMAGES} images")
    if max_images is not None and total > int(max_images):
        # Proportional per class, at least 2 each, chosen by hash order.
        scale = int(max_images) / total
        per_class = [k[: max(2, round(scale * len(k)))] for k in per_class]
    items: list[tuple[Path, int, bool]] = []
    for label, keyed in enumerate(per_class):
        n_test = _n_test(len(keyed), float(test_fraction))
        items.extend((f, label, i < n_test) for i, (_, f) in enumerate(keyed))
    return items


# --------------------------------------------------------------------------- #
# Channels and labels
# --------------------------------------------------------------------------- #
def _choose_channels(gray: np.ndarray, labels: np.ndarray, class_names: Sequence[str], where: str) -> int:
    """1 if every image is grayscale, 3 otherwise; refused when the mode follows the class."""
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
            "convert every image.", field=CHANNELS.field,
        )
    return 3


def _stack(decoded: Sequence[tuple[np.ndarray, bool]], channels: int, size: int) -> np.ndarray:
    """Decoded images as one float32 (N, channels, size, size) array."""
    x = np.empty((len(decoded), channels, size, size), dtype=np.float32)
    for i, (arr, _) in enumerate(decoded):
        if arr.shape[0] == channels:
            x[i] = arr
        elif channels == 3:
            x[i] = np.repeat(arr, 3, axis=0)
        else:
            x[i] = to_luminance(arr[None])[0]
    return x


def _binary_labels(labels: np.ndarray, class_names: Sequence[str], positive: Iterable[str], where: str) -> np.ndarray:
    """Labels 1 (cancer) for the classes named in ``positive``, 0 for the others."""
    pos = list(positive)
    unknown = [p for p in pos if p not in class_names]
    if not pos or unknown:
        raise DatasetError(f"{where}: positive_classes must name classes among {list(class_names)}, got {pos!r}",
                           field=POSITIVE_CLASSES.field)
    if len(set(pos)) == len(class_names):
        raise DatasetError(f"{where}: positive_classes {pos!r} name every class; leave at least one non-cancer class",
                           field=POSITIVE_CLASSES.field)
    is_pos = np.array([c in set(pos) for c in class_names])
    return is_pos[labels].astype(np.int64)


def _check_folder_args(size: int, channels: int | None, test_fraction: float, max_images: int | None,
                       crop: int | None) -> None:
    check_size(size, allow_none=False)
    check_channels(channels)
    if not 0.0 < float(test_fraction) < 1.0:
        raise DatasetError(f"test_fraction must lie in (0, 1), got {test_fraction!r}", field="test_fraction")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 4):
        raise DatasetError(f"max_images must be an integer >= 4 or None, got {max_images!r}",
                           field=option_field("max_images"))
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 1):
        raise DatasetError(f"crop must be a positive integer or None, got {crop!r}", field=option_field("crop"))


def _decode_all(paths: Sequence[Path], size: int, max_image_pixels: int, crop: int | None,
                workers: int) -> list[tuple[np.ndarray, bool]]:
    n_workers = max(1, int(workers))
    if n_workers > 1 and len(paths) > 64:
        with concurrent.futures.ThreadPoolExecutor(n_workers) as pool:
            return list(pool.map(lambda p: decode_image(p, size, max_image_pixels, crop), paths))
    return [decode_image(p, size, max_image_pixels, crop) for p in paths]


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
    _check_folder_args(size, channels, test_fraction, max_images, crop)
    folder = Path(path)
    root, class_dirs = _class_dirs(folder)
    class_names = tuple(d.name for d in class_dirs)
    items = _split_plan(root, class_dirs, split_seed=split_seed, test_fraction=test_fraction, max_images=max_images)
    decoded = _decode_all([f for f, _, _ in items], size, max_image_pixels, crop, workers)
    labels = np.array([lab for _, lab, _ in items], dtype=np.int64)
    is_test = np.array([t for _, _, t in items], dtype=bool)
    gray = np.array([g for _, g in decoded], dtype=bool)
    x = _stack(decoded, channels or _choose_channels(gray, labels, class_names, str(root)), size)
    names: tuple[str, ...] = class_names
    if positive_classes is not None:
        positive = [positive_classes] if isinstance(positive_classes, str) else positive_classes
        labels, names = _binary_labels(labels, class_names, positive, str(root)), BINARY_CLASS_NAMES
    return Dataset(name=folder.resolve().name, x_train=x[~is_test], y_train=labels[~is_test], x_test=x[is_test],
                   y_test=labels[is_test], class_names=tuple(names), source=f"folder:{folder.resolve()}")
