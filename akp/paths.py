"""Where akp keeps its files, and how it writes them so that a crash never leaves half a file.

Every writer goes through :func:`atomic_write_bytes` (or a wrapper of it): the
data goes to a hidden temp file beside the target, is flushed to disk, then
renamed over the target in one step.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

HOME_ENV = "AKP_HOME"
DEFAULT_HOME = "akp-data"
TMP_PREFIX = ".tmp-"
# A temp file is named ``.tmp-<writer pid>-<random><suffix>``, so a sweep can tell a dead writer's leftovers.
_TMP_NAME = re.compile(r"^\.tmp-(\d+)-")
# Temp files without a readable pid (older versions) are removed once they are this old.
STALE_SECONDS = 3600.0


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=path.suffix)
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


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_temp_files(folder: str | os.PathLike, *, recursive: bool = True) -> int:
    """Remove temp files left by writers that died mid-write (SIGKILL, power loss); never a live writer's.

    Parameters
    ----------
    folder : path
        Where to look (with its subfolders when ``recursive``).

    Returns
    -------
    int
        Number of files removed.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.rglob(f"{TMP_PREFIX}*") if recursive else root.glob(f"{TMP_PREFIX}*"):
        m = _TMP_NAME.match(path.name)
        try:
            if m is not None:
                stale = not _alive(int(m.group(1)))
            else:
                stale = time.time() - path.stat().st_mtime > STALE_SECONDS
            if stale and path.is_file():
                path.unlink()
                removed += 1
        except OSError:  # gone already, or not ours to remove
            continue
    return removed
