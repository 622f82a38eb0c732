"""MedMNIST ``.npz`` files: the official splits of a 2-D MedMNIST set, read without pickle.

An ``.npz`` is a zip of ``.npy`` files, so its declared sizes and every array
header are checked before numpy inflates or allocates anything.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from akp.datasets.base import BINARY_CLASS_NAMES, DATASET_FIELD, Dataset, DatasetError, OptionSchema
from akp.datasets.pixels import CHANNELS, POSITIVE_CLASSES, SIZE, check_channels, check_size, convert_channels

__all__ = ["MAX_NPZ_TOTAL_BYTES", "OPTIONS", "load_medmnist_npz"]

#: Largest total uncompressed size of the arrays in an .npz file, in bytes.
MAX_NPZ_TOTAL_BYTES = 4 * 1024**3
#: Options of an ``.npz`` dataset a spec may set (``spec.dataset_options``; None keeps the file's own).
OPTIONS: OptionSchema = {"size": SIZE, "channels": CHANNELS, "positive_classes": POSITIVE_CLASSES}

_NPZ_SPLITS = ("train", "val", "test")
_NPZ_KEYS = frozenset(f"{s}_{k}" for s in _NPZ_SPLITS for k in ("images", "labels"))
_REQUIRED_KEYS = frozenset({"train_images", "train_labels", "test_images", "test_labels"})


def _bad(message: str) -> DatasetError:
    return DatasetError(message, field=DATASET_FIELD)


def _npz_images(arr: np.ndarray, key: str, where: str) -> np.ndarray:
    """(N,H,W) | (N,H,W,1|3) of uint8/uint16/float in [0,1] -> float32 (N,C,H,W)."""
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise _bad(
            f"{where}: {key} has shape {arr.shape}; expected (N, H, W) or "
            "(N, H, W, 1|3) (2-D MedMNIST sets; 3-D volumes are not supported)"
        )
    if arr.shape[0] == 0 or arr.shape[1] < 2 or arr.shape[2] < 2:
        raise _bad(f"{where}: {key} has shape {arr.shape}; no images")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / np.float32(255)
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / np.float32(65535)
    elif arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)) or out.min() < 0 or out.max() > 1:
            raise _bad(f"{where}: {key} is float with values outside [0, 1]")
    else:
        raise _bad(f"{where}: {key} has dtype {arr.dtype}; expected uint8, uint16 or float in [0, 1]")
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _npz_labels(arr: np.ndarray, key: str, n: int, where: str) -> np.ndarray:
    """(N,) or (N, 1) non-negative integer labels (integral floats accepted) -> int64 (N,)."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise _bad(
            f"{where}: {key} has shape {arr.shape}; expected (N,) or (N, 1) "
            "(multi-label sets are not supported)"
        )
    if arr.shape[0] != n:
        raise _bad(f"{where}: {key} has {arr.shape[0]} labels but the images number {n}")
    if arr.dtype.kind not in "iu":
        integral = arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
        if not integral:
            raise _bad(f"{where}: {key} has dtype {arr.dtype}; expected integers")
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise _bad(f"{where}: {key} holds a negative label ({out.min()})")
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
            raise _bad(f"{where}: {key} is not a numpy array ({exc})") from None
        if dtype.hasobject:
            raise _bad(
                f"{where}: {key} holds Python objects (dtype {dtype}); only numeric "
                "arrays are read (no pickle)"
            )
        total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if total > max_total_bytes:
            raise _bad(
                f"{where}: array shapes declare more than {max_total_bytes} bytes "
                f"({key}: shape {shape}, dtype {dtype})"
            )


def _check_layout(p: Path, max_total_bytes: int) -> set[str]:
    """The array names of an .npz file, checked (sizes, headers, MedMNIST keys) before anything is loaded."""
    where = str(p)
    if not p.is_file():
        raise _bad(f"{where}: no such file")
    try:
        with zipfile.ZipFile(p) as zf:
            declared = sum(i.file_size for i in zf.infolist())
            names = [i.filename for i in zf.infolist()]
            if declared > max_total_bytes:
                raise _bad(
                    f"{where}: arrays take {declared} bytes uncompressed, over the "
                    f"limit of {max_total_bytes} bytes"
                )
            _check_npy_headers(zf, where, max_total_bytes)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _bad(f"{where}: not an .npz file ({exc})") from None
    keys = {n.removesuffix(".npy") for n in names}
    unexpected = sorted(keys - _NPZ_KEYS)
    missing = sorted(_REQUIRED_KEYS - keys)
    if unexpected or missing:
        raise _bad(
            f"{where}: keys {sorted(keys)} do not match the MedMNIST layout"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {unexpected}" if unexpected else "")
            + f" (allowed: {sorted(_NPZ_KEYS)})"
        )
    if ("val_images" in keys) != ("val_labels" in keys):
        raise _bad(f"{where}: val_images and val_labels must come together")
    return keys


def _read_splits(p: Path, keys: set[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images float32 (N,C,H,W) and labels int64 of each split present."""
    where = str(p)
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
        raise _bad(f"{where}: unreadable array ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _bad(f"{where}: corrupt .npz file ({exc})") from None
    return splits


def _count_classes(splits: dict[str, tuple[np.ndarray, np.ndarray]], where: str) -> int:
    """Number of classes (from train), checked: same image shapes, no empty class, labels in range."""
    shapes = {s: v[0].shape[1:] for s, v in splits.items()}
    if len(set(shapes.values())) != 1:
        raise _bad(f"{where}: image shapes (C, H, W) differ between splits: {shapes}")
    y_train = splits["train"][1]
    n_classes = int(y_train.max()) + 1
    absent = sorted(set(range(n_classes)) - set(y_train.tolist()))
    if n_classes < 2:
        raise _bad(f"{where}: train_labels hold a single class; need at least two")
    if absent:
        raise _bad(f"{where}: classes {absent} have no training image (empty class)")
    for s, (_, y) in splits.items():
        if y.max() >= n_classes:
            raise _bad(
                f"{where}: {s}_labels hold label {int(y.max())}, out of range: "
                f"train_labels use 0..{n_classes - 1}"
            )
    return n_classes


def _positive_mask(positive_labels: Sequence[int], n_classes: int, where: str) -> np.ndarray:
    """Boolean per label: whether it counts as cancer."""
    field = POSITIVE_CLASSES.field
    try:
        pos = sorted({int(v) for v in positive_labels})
    except (TypeError, ValueError):
        raise DatasetError(
            f"{where}: positive_labels must be integers in 0..{n_classes - 1}, got {positive_labels!r}", field=field,
        ) from None
    if not pos or any(not 0 <= v < n_classes for v in pos) or len(pos) == n_classes:
        raise DatasetError(
            f"{where}: positive_labels must be a non-empty proper subset of "
            f"0..{n_classes - 1}, got {list(positive_labels)!r}", field=field,
        )
    return np.isin(np.arange(n_classes), pos)


def _resize_stack(x: np.ndarray, size: int) -> np.ndarray:
    """Resize (N,C,H,W) float images to (N,C,size,size), bilinear, per channel."""
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
    check_size(size, allow_none=True)
    check_channels(channels)
    p = Path(path)
    where = str(p)
    splits = _read_splits(p, _check_layout(p, max_total_bytes))
    n_classes = _count_classes(splits, where)
    names: tuple[str, ...]
    if positive_labels is not None:
        is_pos = _positive_mask(positive_labels, n_classes, where)
        splits = {s: (x, is_pos[y].astype(np.int64)) for s, (x, y) in splits.items()}
        names = BINARY_CLASS_NAMES
    elif class_names is not None:
        names = tuple(str(c) for c in class_names)
        if len(names) != n_classes or len(set(names)) != n_classes:
            raise DatasetError(f"{where}: class_names must be {n_classes} distinct names, got {list(names)!r}",
                               field="class_names")
    else:
        names = tuple(str(k) for k in range(n_classes))

    def prep(x: np.ndarray) -> np.ndarray:
        return convert_channels(x if size is None else _resize_stack(x, size), channels)

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
