"""Datasets from the Design page: uploads and server-side paths, registered safely.

The logic behind the "My data" part of the Design page, kept free of Streamlit
so it can be tested. Uploads are untrusted (a shared server): they are size
capped, zip archives are extracted with :func:`akp.datasets.safezip.import_zip`
(paths, entry types, counts, sizes and pixel counts checked), ``.npz`` files
are read without pickle, and a failure raises :class:`DatasetError` naming the
uploaded file and the problem while leaving nothing behind under the home.

- :func:`register_upload`: the bytes of a ``.zip`` (image folder, one
  subfolder per class) or ``.npz`` (MedMNIST layout) upload to a registered
  dataset id ``ds-<16 hex>``.
- :func:`register_path`: a server-side folder, ``.npz`` file or id to an id.
- :func:`check_server_path`: the app's gate on server-side paths: accepted
  only inside the folders of ``$AKP_DATA_ROOTS`` (:func:`data_roots`); with
  none set, server paths are off. The library and CLI do not use it.
- :func:`parse_positive_classes`: ``"malignant, 2"`` -> ``["malignant", "2"]``.

Temporary files live under ``home/uploads/`` (the same file system as
``home/datasets/``) and are removed when registration ends, whether it
succeeds or fails.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from akp.datasets.base import DATASET_FIELD, DatasetError
from akp.datasets.registry import dataset_card, is_dataset_id, register_dataset
from akp.datasets.safezip import import_zip, make_dirs_tracked, remove_created_dirs

__all__ = [
    "DATA_ROOTS_ENV",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_MB",
    "SERVER_PATHS_OFF",
    "UPLOAD_TYPES",
    "check_server_path",
    "data_roots",
    "parse_positive_classes",
    "register_path",
    "register_upload",
    "uploads_dir",
]

#: File types the dataset uploader accepts (extensions without the dot).
UPLOAD_TYPES: tuple[str, ...] = ("zip", "npz")
#: Largest upload in megabytes (Streamlit's ``max_upload_size`` on the uploader).
MAX_UPLOAD_MB = 200
#: Largest upload in bytes, checked again here (the server's cap can be raised by config).
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
_COPY_CHUNK = 1 << 20
#: Environment variable listing the server folders (``os.pathsep``-separated) the app may read datasets from.
DATA_ROOTS_ENV = "AKP_DATA_ROOTS"
#: Why a server path is refused when :data:`DATA_ROOTS_ENV` is unset or empty.
SERVER_PATHS_OFF = ("server paths are off on this instance; upload a .zip or .npz, or ask the admin to set "
                    f"{DATA_ROOTS_ENV}")


def uploads_dir(home: str | os.PathLike[str]) -> Path:
    """Folder of the temporary files of uploads: ``home/uploads``."""
    return Path(home) / "uploads"


def _safe_name(filename: str) -> str:
    """A file name safe to create: the base name only, odd characters replaced."""
    base = re.split(r"[\\/]", str(filename))[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:60] or "upload"
    return f"{stem}.{ext.lower()}" if ext else stem


def _copy_capped(file: bytes | IO[bytes], target: Path, filename: str, max_bytes: int) -> None:
    if isinstance(file, (bytes, bytearray, memoryview)):
        if len(file) > max_bytes:
            raise DatasetError(f"{filename}: file is {len(file)} bytes; at most {max_bytes} bytes allowed",
                               field=DATASET_FIELD)
        target.write_bytes(bytes(file))
        return
    n = 0
    with open(target, "xb") as dst:
        while chunk := file.read(_COPY_CHUNK):
            n += len(chunk)
            if n > max_bytes:
                raise DatasetError(f"{filename}: file is larger than the limit of {max_bytes} bytes",
                                   field=DATASET_FIELD)
            dst.write(chunk)


def _naming_the_upload(exc: DatasetError, display: str, work: Path, archive: Path) -> DatasetError:
    """The same error, naming the user's file instead of our temporary paths."""
    message = str(exc).replace(str(work / "extracted"), display).replace(str(archive), display)
    message = re.sub(r"/\.akp-zip-[^/\s']+", "", message.replace(str(work), display))
    if not message.startswith(display):
        message = f"{display}: {message}"
    return DatasetError(message, field=exc.field or DATASET_FIELD)


def register_upload(
    file: bytes | IO[bytes],
    filename: str,
    *,
    home: str | os.PathLike[str],
    size: int | None = 32,
    channels: int | None = None,
    positive_classes: Sequence[str | int] | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> str:
    """Register an uploaded ``.zip`` image folder or ``.npz`` file; return its id.

    Parameters
    ----------
    file : bytes or binary file-like
        The upload's contents (a Streamlit ``UploadedFile`` works).
    filename : str
        The name the user gave the file; its extension picks the loader and it
        names the file in every error message and on the dataset card.
    home : path-like
        AKP home: the dataset goes to ``home/datasets/<id>/``; temporary files
        to ``home/uploads/`` and are removed before returning.
    size : int or None, default=32
        Image side after resizing (None keeps an ``.npz`` file's own size).
    channels : {1, 3} or None, default=None
        Channels of the stored images; None decides from the data.
    positive_classes : sequence, optional
        Class folder names (zip) or integer labels (npz) that count as cancer.
    max_bytes : int, default=MAX_UPLOAD_BYTES
        Largest upload accepted. The uncompressed caps of
        :mod:`akp.datasets` (``MAX_ZIP_TOTAL_BYTES``, ``MAX_ZIP_FILES``,
        ``MAX_NPZ_TOTAL_BYTES``, ``MAX_IMAGE_PIXELS``) apply as well.

    Returns
    -------
    str
        The registered dataset id. The same data with the same options gives
        the same id (registration is by content).

    Raises
    ------
    DatasetError
        Another file type, too large, unsafe or corrupt archive, unreadable
        images or arrays: the message starts with ``filename``. Nothing is
        registered and no temporary file is left.
    """
    display = re.split(r"[\\/]", str(filename))[-1] or "upload"
    safe = _safe_name(display)
    ext = safe.rpartition(".")[2] if "." in safe else ""
    if ext not in UPLOAD_TYPES:
        raise DatasetError(
            f"{display}: not a dataset upload; give a .zip of an image folder (one subfolder per "
            "class) or a MedMNIST-style .npz file", field=DATASET_FIELD)
    home = Path(home)
    for attempt in range(3):  # another upload may remove an empty uploads/ between the two calls
        created = make_dirs_tracked(uploads_dir(home))
        try:
            work = Path(tempfile.mkdtemp(prefix="tmp-", dir=uploads_dir(home)))
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    try:
        archive = work / safe
        _copy_capped(file, archive, display, max_bytes)
        options: dict[str, Any] = {"size": size, "channels": channels, "positive_classes": positive_classes,
                                   "home": home, "name": safe.rpartition(".")[0]}
        try:
            if ext == "npz":
                return register_dataset(archive, **options)
            folder = import_zip(archive, work / "extracted")
            return register_dataset(folder, **options)
        except DatasetError as exc:
            raise _naming_the_upload(exc, display, work, archive) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        remove_created_dirs(created)


def register_path(
    path: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str],
    size: int | None = 32,
    channels: int | None = None,
    positive_classes: Sequence[str | int] | None = None,
) -> str:
    """Register a server-side image folder or ``.npz`` file; an id is checked and returned as is.

    Parameters
    ----------
    path : str or path-like
        Image folder, ``.npz`` file, or a registered id ``ds-<16 hex>``.
    home : path-like
        AKP home.
    size, channels, positive_classes
        As in :func:`register_upload` (ignored for an id: it was processed
        when registered).

    Returns
    -------
    str
        The registered dataset id.

    Raises
    ------
    DatasetError
        Empty input, an id that is not registered under ``home``, or whatever
        the loaders raise (the message names the path). Nothing is registered.
    """
    text = os.fspath(path).strip() if isinstance(path, (str, os.PathLike)) else ""
    if not text:
        raise DatasetError.at(DATASET_FIELD, "give an image folder, an .npz file or a registered dataset id")
    if is_dataset_id(text):
        dataset_card(text, home=home)  # raises if it is not registered
        return text
    return register_dataset(text, home=home, size=size, channels=channels, positive_classes=positive_classes)


def data_roots(value: str | None = None) -> list[Path]:
    """The folders the app may read server-side datasets from, resolved (symlinks followed).

    Parameters
    ----------
    value : str, optional
        ``os.pathsep``-separated folders; default ``$AKP_DATA_ROOTS``. Blank
        entries are ignored.

    Returns
    -------
    list of Path
        Empty when none are set: server paths are off.
    """
    raw = os.environ.get(DATA_ROOTS_ENV, "") if value is None else value
    roots = []
    for part in str(raw).split(os.pathsep):
        if part.strip():
            roots.append(Path(part.strip()).expanduser().resolve())
    return list(dict.fromkeys(roots))


def check_server_path(
    path: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]] | None = None,
) -> Path:
    """The app's gate on a server-side dataset path: the resolved path if it lies inside a data root.

    On a shared instance a user must not read arbitrary folders or files of
    the server, nor learn which exist. The path is resolved (``..`` removed,
    symlinks followed, relative to the working directory) and accepted only
    inside one of ``roots``. Refusals never depend on whether the path exists,
    and do not echo it.

    Parameters
    ----------
    path : str or path-like
        What the user typed or a spec named.
    roots : sequence of path-like, optional
        Allowed folders; default :func:`data_roots` (``$AKP_DATA_ROOTS``).
        None set (or all blank): every server path is refused.

    Returns
    -------
    Path
        The resolved path (it may not exist; the loaders say so, naming it,
        since it is inside a root).

    Raises
    ------
    DatasetError
        Empty input, server paths off, or the path outside every root.
    """
    text = os.fspath(path).strip() if isinstance(path, (str, os.PathLike)) else ""
    if not text:
        raise DatasetError.at(DATASET_FIELD, "give an image folder, an .npz file or a registered dataset id")
    allowed = data_roots() if roots is None else [
        Path(os.fspath(r).strip()).expanduser().resolve() for r in roots if os.fspath(r).strip()]
    if not allowed:
        raise DatasetError.at(DATASET_FIELD, SERVER_PATHS_OFF)
    outside = DatasetError.at(
        DATASET_FIELD, "that path is outside the data folders this instance may read ("
        + ", ".join(str(r) for r in allowed) + "); upload a .zip or .npz, or use a path under one of them")
    try:
        # ".." is removed lexically first, so nothing outside a root is looked up on the way; then
        # symlinks are followed. Callers read the returned path, which is the one checked.
        resolved = Path(os.path.normpath(os.path.join(os.getcwd(), text))).resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loop, NUL byte...: same answer as outside
        raise outside from None
    if not any(resolved == r or resolved.is_relative_to(r) for r in allowed):
        raise outside
    return resolved


def parse_positive_classes(text: str | None) -> list[str] | None:
    """Comma-separated class names (or npz labels) that count as cancer; None when blank.

    Parameters
    ----------
    text : str or None
        E.g. ``"malignant, atypical"`` or ``"1, 2"``.

    Returns
    -------
    list of str or None
        Names in the given order, blanks and duplicates dropped.
    """
    if not text:
        return None
    names = list(dict.fromkeys(p.strip() for p in str(text).split(",") if p.strip()))
    return names or None
