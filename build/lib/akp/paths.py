"""Where akp keeps its files, and how it writes them so that a crash never leaves half a file.

Every writer goes through :func:`atomic_write_bytes` (or a wrapper of it): the
data goes to a hidden temp file beside the target, is flushed to disk, then
renamed over the target in one step.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

HOME_ENV = "AKP_HOME"
DEFAULT_HOME = "akp-data"
TMP_PREFIX = ".tmp-"


def default_home() -> Path:
    """The run store's default home: ``$AKP_HOME`` or ``./akp-data``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and an atomic rename.

    Parameters
    ----------
    path : path
        Target file; its folder is created if missing.
    data : bytes
        Content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save one array as ``.npy`` atomically (no pickled objects)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
