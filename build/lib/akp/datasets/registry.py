"""Registered datasets: processed once, stored by content hash under ``home/datasets/<id>/`` with a card.

A registered dataset ``ds-<16 hex>`` holds ``data.npz`` (the arrays),
``card.json`` (name, source, classes, counts, samples) and ``samples/*.png``.
Its id is the hash of the processed arrays and the options that shaped them,
so registering the same data twice stores it once.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from akp.datasets.base import DATASET_FIELD, Dataset, DatasetError
from akp.datasets.sources import load_source

__all__ = [
    "dataset_card",
    "datasets_dir",
    "is_dataset_id",
    "list_datasets",
    "load_registered",
    "register_dataset",
    "resolve_dataset",
]

_DATASET_ID_RE = re.compile(r"^ds-[0-9a-f]{16}$")
_CARD_VERSION = 1
_SAMPLES_PER_CLASS = 4


def is_dataset_id(value: str) -> bool:
    """Whether ``value`` has the form of a registered dataset id ``ds-<16 hex>``."""
    return isinstance(value, str) and bool(_DATASET_ID_RE.fullmatch(value))


def _check_id(dataset_id: str) -> None:
    if not is_dataset_id(dataset_id):
        raise DatasetError(
            f"dataset id must look like 'ds-' followed by 16 lowercase hex digits, got {dataset_id!r}",
            field=DATASET_FIELD,
        )


def datasets_dir(home: str | os.PathLike[str]) -> Path:
    """Folder of the registered datasets: ``home/datasets``."""
    return Path(home) / "datasets"


def _arrays(ds: Dataset) -> dict[str, np.ndarray]:
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


def _shaping_options(ds: Dataset, arrays: dict[str, np.ndarray],
                     positive_classes: Sequence[str | int] | str | int | None) -> dict[str, Any]:
    """The options that shaped the stored arrays: hashed into the id, and written on the card."""
    c, h, w = arrays["x_train"].shape[1:]
    if positive_classes is not None and isinstance(positive_classes, (str, int)):
        positive_classes = [positive_classes]
    return {
        "class_names": list(ds.class_names),
        "image_size": [int(h), int(w)],
        "channels": int(c),
        "positive_classes": None if positive_classes is None else sorted(str(v) for v in positive_classes),
    }


def _new_card(dataset_id: str, ds: Dataset, arrays: dict[str, np.ndarray], options: dict[str, Any], *,
              name: str, source: str) -> dict[str, Any]:
    """The card of a dataset being registered (its ``samples`` are filled when they are written)."""
    splits = {"train": arrays["y_train"], "test": arrays["y_test"]}
    if "y_val" in arrays:
        splits["val"] = arrays["y_val"]
    return {
        "id": dataset_id,
        "format_version": _CARD_VERSION,
        "name": name,
        "source": source,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **options,
        "counts": {s: _counts(y, ds.class_names) for s, y in splits.items()},
        "n_images": {s: len(y) for s, y in splits.items()},
        "samples": {},
    }


def _write_card_folder(tmp: Path, ds: Dataset, arrays: dict[str, np.ndarray], card: dict[str, Any]) -> None:
    """Write ``data.npz``, ``samples/*.png`` and ``card.json`` into ``tmp`` (renamed into place afterwards)."""
    np.savez(tmp / "data.npz", **arrays)
    (tmp / "samples").mkdir()
    x_tr, y_tr = arrays["x_train"], arrays["y_train"]
    for k, cname in enumerate(ds.class_names):
        files = []
        for j, i in enumerate(np.flatnonzero(y_tr == k)[:_SAMPLES_PER_CLASS]):
            fname = f"class{k}_{j}.png"
            _to_png(x_tr[i]).save(tmp / "samples" / fname)
            files.append(f"samples/{fname}")
        card["samples"][cname] = files
    (tmp / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True))


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
        As in :func:`~akp.datasets.images.load_image_folder` and
        :func:`~akp.datasets.npz.load_medmnist_npz`.
    positive_classes : sequence, optional
        Folder class names, or integer labels of an npz file, that count as cancer.
    max_images, crop : int, optional
        Subsample / centre-crop an image folder.
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
    ds = load_source(source, size=size, channels=channels, positive_classes=positive_classes,
                     max_images=max_images, crop=crop)
    arrays = _arrays(ds)
    options = _shaping_options(ds, arrays, positive_classes)
    dataset_id = _content_hash(arrays, options)
    root = datasets_dir(home)
    final = root / dataset_id
    if (final / "card.json").is_file():
        return dataset_id
    root.mkdir(parents=True, exist_ok=True)
    card = _new_card(dataset_id, ds, arrays, options, name=name or ds.name, source=str(ds.source or source))
    # The whole folder is written under a temporary name and renamed: it appears complete or not at all.
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dataset_id}-", dir=root))
    try:
        _write_card_folder(tmp, ds, arrays, card)
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
    path = datasets_dir(home) / dataset_id / "card.json"
    if not path.is_file():
        raise DatasetError(f"dataset {dataset_id!r} is not registered under {Path(home)}", field=DATASET_FIELD)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable card ({exc})", field=DATASET_FIELD) from None


def _check_arrays(arrays: dict[str, np.ndarray], card: dict[str, Any], path: Path) -> None:
    """Stored arrays must have the card's keys, dtypes and image shape."""
    need = {"x_train", "y_train", "x_test", "y_test"}
    if not need <= set(arrays) or ("x_val" in arrays) != ("y_val" in arrays):
        raise DatasetError(f"{path}: keys {sorted(arrays)} do not match {sorted(need)}", field=DATASET_FIELD)
    shape = (card["channels"], *card["image_size"])
    for s in ("train", "val", "test"):
        if f"x_{s}" not in arrays:
            continue
        x, y = arrays[f"x_{s}"], arrays[f"y_{s}"]
        if x.dtype != np.float32 or y.dtype != np.int64 or x.shape[1:] != tuple(shape) \
                or y.shape != (x.shape[0],):
            raise DatasetError(f"{path}: split {s!r} does not match its card", field=DATASET_FIELD)


def load_registered(dataset_id: str, *, home: str | os.PathLike[str]) -> Dataset:
    """Load a registered dataset.

    Raises
    ------
    DatasetError
        Malformed id, no such dataset, or stored arrays that do not match
        their card.
    """
    card = dataset_card(dataset_id, home=home)
    path = datasets_dir(home) / dataset_id / "data.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: unreadable arrays ({exc})", field=DATASET_FIELD) from None
    _check_arrays(arrays, card, path)
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
    root = datasets_dir(home)
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
    :func:`akp.datasets.load_dataset` calls this with a spec's
    ``dataset_options`` as keyword arguments.

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
    return load_source(s, size=size, channels=channels, positive_classes=positive_classes,
                       max_images=max_images, crop=crop)
