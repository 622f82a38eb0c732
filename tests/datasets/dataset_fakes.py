"""Dataset fixtures made on the fly, in tmp_path, with Pillow and numpy: no data is committed.

The real data sets live outside the repository (../shared/data).
"""
from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.realdata import shared_data


def uniform_image(value: int, mode: str = "RGB", wh: tuple[int, int] = (40, 30)) -> Image.Image:
    """A uniform image of one grey/colour level (distinct per class in tests)."""
    if mode == "RGB":
        return Image.new("RGB", wh, (value, value // 2, 255 - value))
    if mode == "I;16":
        return Image.fromarray(np.full(wh[::-1], value, dtype=np.uint16))
    return Image.new(mode, wh, value)


def make_folder(
    root: Path,
    classes: dict[str, int],
    *,
    fmt: str = "PNG",
    mode: str = "RGB",
    modes: dict[str, str] | None = None,
    wh: tuple[int, int] = (40, 30),
) -> Path:
    """root/<class>/img<i>.<ext>: ``classes`` maps class name -> image count."""
    ext = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif", "BMP": "bmp"}[fmt]
    for k, (name, n) in enumerate(classes.items()):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        m = (modes or {}).get(name, mode)
        for i in range(n):
            value = 40 + 80 * k if m != "I;16" else 20000 + 20000 * k
            uniform_image(value, m, wh).save(d / f"img{i:03d}.{ext}", format=fmt)
    return root


def tree(path: Path) -> set[str]:
    """Every path under ``path`` (relative), to assert nothing was left behind."""
    if not path.exists():
        return set()
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def medmnist(
    path: Path,
    *,
    n: tuple[int, int, int] = (20, 6, 10),
    classes: int = 2,
    rgb: bool = False,
    labels_2d: bool = True,
    val: bool = True,
) -> Path:
    """A MedMNIST-like .npz; image value encodes the label (for checks)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, m in zip(("train", "val", "test"), n, strict=True):
        if split == "val" and not val:
            continue
        y = np.arange(m) % classes
        shape = (m, 28, 28, 3) if rgb else (m, 28, 28)
        x = np.broadcast_to((y * 50 + 10).reshape((m,) + (1,) * (len(shape) - 1)), shape)
        x = (x + rng.integers(0, 5, shape)).astype(np.uint8)
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y.reshape(m, 1).astype(np.uint8) if labels_2d else y
    return write_npz(path, **arrays)


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], path: Path | None = None):
    buf = io.BytesIO() if path is None else path
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are a test case
        for name, data in entries:
            zf.writestr(name, data)
    if path is None:
        buf.seek(0)
    return buf


def set_encrypted_flag(buf: io.BytesIO, member: str) -> io.BytesIO:
    """Set the 'encrypted' bit of one member in the central directory.

    zipfile cannot write encrypted members, so the flag is patched in place.
    """
    data = bytearray(buf.getvalue())
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = int.from_bytes(data[pos + 28 : pos + 30], "little")
        if data[pos + 46 : pos + 46 + name_len] == member.encode():
            data[pos + 8] |= 0x1
        pos = data.find(b"PK\x01\x02", pos + 4)
    return io.BytesIO(bytes(data))


def png_bytes(value: int, wh: tuple[int, int] = (16, 16), mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.new(mode, wh, value).save(out, format="PNG")
    return out.getvalue()


# Real data path; skipped where absent, except under CI=true (then it must exist).
need_real = shared_data
