"""Tests of akp.datasets.safezip: extracting zip uploads safely, leaving nothing behind."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest
from dataset_fakes import (
    make_zip,
    png_bytes,
    set_encrypted_flag,
    tree,
)

from akp.datasets import DatasetError
from akp.datasets.images import load_image_folder
from akp.datasets.safezip import _extract_plan, _plan_zip, import_zip


def good_zip_entries() -> list[tuple[str, bytes]]:
    entries = [("upload/", b""), ("__MACOSX/upload/._x", b"junk")]
    for cls, value in (("normal", 60), ("tumor", 180)):
        for i in range(4):
            entries.append((f"upload/{cls}/p{i}.png", png_bytes(value)))
    return entries


@pytest.mark.parametrize("as_bytes", [False, True])
def test_import_zip_then_load(tmp_path, as_bytes):
    source = make_zip(good_zip_entries(), None if as_bytes else tmp_path / "up.zip")
    dest = tmp_path / "imports" / "mydata"
    out = import_zip(source, dest)
    assert out == dest and dest.is_dir()
    assert "__MACOSX" not in tree(dest)
    assert [p.name for p in (tmp_path / "imports").iterdir()] == ["mydata"]  # no temp left
    ds = load_image_folder(dest, size=16)
    assert ds.class_names == ("normal", "tumor") and ds.x_train.shape == (6, 1, 16, 16)
    with pytest.raises(DatasetError, match="destination already exists"):
        import_zip(make_zip(good_zip_entries()), dest)


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("upload/normal/evil.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


BAD_ZIPS = {
    "dotdot": ([("upload/../../escape.png", png_bytes(1))], {}, "points outside the folder"),
    "dotdot-backslash": ([("upload\\..\\escape.png", png_bytes(1))], {}, "points outside"),
    "absolute": ([("/etc/cron.d/x.png", png_bytes(1))], {}, "absolute path"),
    "drive": ([("C:/x.png", png_bytes(1))], {}, "absolute path"),
    "symlink": ([(_symlink_entry(), b"/etc/passwd")], {}, "is a symbolic link"),
    "encrypted": ([("upload/normal/secret.png", png_bytes(3))], {}, "is encrypted"),
    "duplicate": ([("upload/a/x.png", png_bytes(1))] * 2, {}, "appears twice"),
    "too-many-files": ([], {"max_files": 5}, "more than 5 files"),
    "too-large": (
        [("upload/normal/zeros.png", bytes(200_000))], {"max_total_bytes": 100_000},
        "more than 100000 bytes uncompressed",
    ),
    "too-many-pixels": (
        [("upload/normal/big.png", png_bytes(0, (3000, 3000)))], {"max_image_pixels": 10**6},
        "9000000 pixels exceeds the limit of 1000000",
    ),
    "bad-image": ([("upload/normal/x.png", b"garbage")], {}, "not a readable image"),
}


@pytest.mark.parametrize("case", sorted(BAD_ZIPS))
def test_import_zip_refuses_and_leaves_nothing(tmp_path, case):
    extra, kwargs, message = BAD_ZIPS[case]
    archive = make_zip(good_zip_entries() + extra)
    if case == "encrypted":
        archive = set_encrypted_flag(archive, "upload/normal/secret.png")
    before = tree(tmp_path)
    dest = tmp_path / "new" / "deeper" / "mydata"  # parents created, then removed
    with pytest.raises(DatasetError, match=message):
        import_zip(archive, dest, **kwargs)
    assert tree(tmp_path) == before


def test_import_zip_not_a_zip_and_lying_sizes(tmp_path):
    with pytest.raises(DatasetError, match="not a zip archive"):
        import_zip(io.BytesIO(b"PK\x03\x04 not really"), tmp_path / "d")
    assert tree(tmp_path) == set()
    # A member whose real size exceeds its declared size: counted while extracting.
    # (zipfile itself stops at the declared size and fails the CRC check.)
    buf = make_zip([("a/x.png", png_bytes(1)), ("b/y.png", bytes(5000))])
    with zipfile.ZipFile(buf) as zf:
        plan = _plan_zip(zf, "forged", 10**9, 10)
        plan[1][1].file_size = 10  # what a forged header would claim
        tmp = tmp_path / "x"
        tmp.mkdir()
        with pytest.raises(DatasetError, match="forged: member 'b/y.png' (inflates|is corrupt)"):
            _extract_plan(zf, plan, tmp, "forged", 10**9)
