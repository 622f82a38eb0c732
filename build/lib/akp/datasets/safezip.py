"""Safe extraction of an untrusted zip upload of an image folder.

The archive is checked before extraction (paths, entry types, counts, declared
sizes), extracted into a temporary folder while the real byte count is checked
again, every image header is checked for its pixel count, and only then is the
folder renamed into place. A failure leaves nothing behind.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from akp.datasets.base import DATASET_FIELD, DatasetError
from akp.datasets.pixels import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, check_pixels, is_ignored

__all__ = ["MAX_ZIP_FILES", "MAX_ZIP_TOTAL_BYTES", "import_zip", "make_dirs_tracked", "remove_created_dirs"]

#: Most files one zip upload may hold.
MAX_ZIP_FILES = 100_000
#: Largest total uncompressed size of a zip upload, in bytes.
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3
_COPY_CHUNK = 1 << 20

Plan = list[tuple[PurePosixPath, zipfile.ZipInfo]]


def _bad(message: str) -> DatasetError:
    return DatasetError(message, field=DATASET_FIELD)


def _safe_member_path(name: str, where: str) -> PurePosixPath | None:
    """Validated relative path of a zip member; None for litter to skip."""
    if "\x00" in name:
        raise _bad(f"{where}: member {name!r} has a NUL byte in its name")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise _bad(f"{where}: member {name!r} has an absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _bad(f"{where}: member {name!r} points outside the folder ('..')")
    if not parts or any(is_ignored(p) for p in parts):
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
        ``dest``; load it with :func:`akp.datasets.images.load_image_folder`.

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
        raise _bad(f"{dest}: destination already exists")
    created = make_dirs_tracked(dest.parent)
    tmp: Path | None = None
    try:
        try:
            zf = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise _bad(f"{where}: not a zip archive ({exc})") from None
        with zf:
            plan = _plan_zip(zf, where, max_total_bytes, max_files)
            tmp = Path(tempfile.mkdtemp(prefix=".akp-zip-", dir=dest.parent))
            _extract_plan(zf, plan, tmp, where, max_total_bytes)
        for rel, _ in plan:
            if rel.suffix.lower() in IMAGE_EXTENSIONS:
                check_pixels(tmp / rel, f"{where}: {rel}", max_image_pixels)
        os.rename(tmp, dest)
        return dest
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_created_dirs(created)
        raise


def _check_entry_type(info: zipfile.ZipInfo, where: str) -> bool:
    """Refuse symbolic links and special entries; return whether the entry is a folder."""
    ftype = stat.S_IFMT(info.external_attr >> 16)
    if ftype == stat.S_IFLNK:
        raise _bad(f"{where}: member {info.filename!r} is a symbolic link")
    if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _bad(f"{where}: member {info.filename!r} is not a regular file or folder")
    return info.is_dir() or ftype == stat.S_IFDIR


def _plan_zip(zf: zipfile.ZipFile, where: str, max_total_bytes: int, max_files: int) -> Plan:
    """The files to extract with their safe relative paths, checked against the caps before any is read."""
    plan: Plan = []
    seen: set[str] = set()
    total = 0
    for info in zf.infolist():
        rel = _safe_member_path(info.filename, where)
        is_dir = _check_entry_type(info, where)
        if rel is None or is_dir:
            continue
        if info.flag_bits & 0x1:
            raise _bad(f"{where}: member {info.filename!r} is encrypted")
        key = rel.as_posix()
        if key in seen:
            raise _bad(f"{where}: member {info.filename!r} appears twice")
        seen.add(key)
        plan.append((rel, info))
        if len(plan) > max_files:
            raise _bad(f"{where}: more than {max_files} files (limit max_files)")
        total += info.file_size
        if total > max_total_bytes:
            raise _bad(f"{where}: more than {max_total_bytes} bytes uncompressed (limit max_total_bytes)")
    # A file and a folder of the same name would collide on extraction.
    for rel, info in plan:
        for parent in rel.parents:
            if parent.as_posix() in seen:
                raise _bad(f"{where}: member {info.filename!r} lies under a file of the same name")
    if not plan:
        raise _bad(f"{where}: the archive holds no files")
    return plan


def _extract_plan(zf: zipfile.ZipFile, plan: Plan, tmp: Path, where: str, max_total_bytes: int) -> None:
    """Extract the planned files under ``tmp``, counting the bytes that really come out."""
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
                        raise _bad(
                            f"{where}: member {info.filename!r} inflates beyond its "
                            f"declared size or the limit of {max_total_bytes} bytes"
                        )
                    dst.write(chunk)
        except DatasetError:
            raise
        except FileExistsError:
            # Names that differ only in case, on a case-insensitive file system.
            raise _bad(f"{where}: member {info.filename!r} collides with another member's name") from None
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            raise _bad(f"{where}: member {info.filename!r} is corrupt ({exc})") from None
