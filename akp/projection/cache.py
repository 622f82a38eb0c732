"""The disk cache of embeddings: one ``.npy`` file per content hash of the input and parameters.

A view that asks again for an embedding it has seen gets it back in
milliseconds. Files are written atomically (:func:`akp.paths.atomic_save_npy`)
and read with ``allow_pickle=False``; a file that cannot be read, or holds the
wrong shape or dtype, is ignored and rebuilt. A failed write only costs the
cache, never the caller's result.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from akp.paths import atomic_save_npy, default_home

__all__ = ["CACHE_VERSION", "cached", "default_cache_dir", "hash_key", "umap_version"]

log = logging.getLogger(__name__)

# Bump when the algorithm or the cache layout changes: old files then miss.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$AKP_HOME/cache/umap``, or ``./akp-data/cache/umap`` without AKP_HOME.

    Returns
    -------
    Path
        The directory (not created here).
    """
    return default_home() / "cache" / "umap"


def umap_version() -> str:
    """The installed umap-learn version, part of every key (a new umap may lay points out differently).

    Read from the package metadata: cheap, and does not import umap.
    """
    try:
        return metadata.version("umap-learn")
    except metadata.PackageNotFoundError:  # pragma: no cover - required dependency
        return "unknown"


def hash_key(kind: str, arrays: Sequence[np.ndarray], params: dict[str, Any]) -> str:
    """SHA-256 of ``kind``, the cache and umap versions, ``params`` and the arrays' dtype, shape and bytes."""
    h = hashlib.sha256()
    header = {"kind": kind, "version": CACHE_VERSION, "umap": umap_version(), **params}
    h.update(json.dumps(header, sort_keys=True).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"|{a.dtype.str}|{a.shape}|".encode())
        # Hash the buffer in place: no copy of a large representation.
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _load(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None when absent, unreadable or not as expected."""
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any broken file is a miss, never a crash
        log.warning("ignoring unreadable UMAP cache file %s: %s", path, exc)
        return None
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float32:
        log.warning("ignoring UMAP cache file %s with unexpected shape or dtype", path)
        return None
    return arr


def _save(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` atomically; a failure only costs the cache."""
    try:
        atomic_save_npy(path, arr)
    except OSError as exc:
        log.warning("could not write UMAP cache file %s: %s", path, exc)


# One lock per cache key, so two threads asking for the same embedding (the
# job manager at run end and a page view) fit it once.
_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _KEY_LOCKS_GUARD:
        lock = _KEY_LOCKS.get(key)
        if lock is None:
            lock = _KEY_LOCKS[key] = threading.Lock()
        return lock


def cached(
    kind: str,
    arrays: Sequence[np.ndarray],
    params: dict[str, Any],
    shape: tuple[int, ...],
    compute: Callable[[], np.ndarray],
    cache_dir: str | os.PathLike[str] | None,
    use_cache: bool,
) -> np.ndarray:
    """The cached result of ``compute()`` for this input, computing and saving it on a miss.

    Parameters
    ----------
    kind : str
        Names the file (``KIND-HASH.npy``) and enters the key.
    arrays, params
        The input: the key is :func:`hash_key` of them.
    shape : tuple of int
        Expected shape of the float32 result; a cached file of another shape is a miss.
    compute : callable
        Returns the result (float32 of ``shape``).
    cache_dir : path-like or None
        None: :func:`default_cache_dir`.
    use_cache : bool
        False: just ``compute()``, no read or write.

    Returns
    -------
    ndarray
    """
    if not use_cache:
        return compute()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hash_key(kind, arrays, params)
    path = directory / f"{kind}-{key}.npy"
    hit = _load(path, shape)
    if hit is not None:
        return hit
    with _key_lock(key):
        hit = _load(path, shape)  # another thread may have just written it
        if hit is not None:
            return hit
        result = compute()
        _save(path, result)
        return result
