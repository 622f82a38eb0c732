"""Tests of akp.real_data: image folders, MedMNIST files, zip uploads, the registry.

Every fixture is generated here, in tmp_path, with Pillow and numpy; no data is
committed. The real data sets live outside the repository (../shared/data).
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import time
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import shared_data
from PIL import Image

from akp import real_data as rd
from akp.data import Dataset, DatasetError, load_dataset


# --------------------------------------------------------------------------- #
# Fixture helpers
# --------------------------------------------------------------------------- #
def _image(value: int, mode: str = "RGB", wh: tuple[int, int] = (40, 30)) -> Image.Image:
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
            _image(value, m, wh).save(d / f"img{i:03d}.{ext}", format=fmt)
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


# --------------------------------------------------------------------------- #
# Image folders
# --------------------------------------------------------------------------- #
def test_folder_two_classes_shapes_split_and_values(tmp_path):
    root = make_folder(tmp_path / "cells", {"benign": 10, "malignant": 7})
    ds = rd.load_image_folder(root)
    assert isinstance(ds, Dataset)
    assert ds.class_names == ("benign", "malignant")
    assert ds.name == "cells" and ds.source == f"folder:{root.resolve()}"
    # Stratified 80/20: round(0.2 * 10) = 2 and round(0.2 * 7) = 1 go to test.
    assert np.bincount(ds.y_train).tolist() == [8, 6]
    assert np.bincount(ds.y_test).tolist() == [2, 1]
    assert ds.x_train.shape == (14, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_val is None and ds.y_val is None
    # Uniform images keep their colour through resizing: class 1 is (120, 60, 135).
    img = ds.x_train[ds.y_train == 1][0]
    np.testing.assert_allclose(img[:, 5, 5], np.array([120, 60, 135]) / 255, atol=1e-6)
    # Deterministic: the same folder gives the same arrays.
    again = rd.load_image_folder(root)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    np.testing.assert_array_equal(again.y_test, ds.y_test)


def test_folder_split_depends_on_names_not_listing_order(tmp_path):
    a = make_folder(tmp_path / "a", {"x": 12, "y": 12})
    # Same files written in the reverse order: the file system may list them differently.
    b = tmp_path / "b"
    for cls in ("y", "x"):
        (b / cls).mkdir(parents=True)
        for f in sorted((a / cls).iterdir(), reverse=True):
            (b / cls / f.name).write_bytes(f.read_bytes())
    da, db = rd.load_image_folder(a), rd.load_image_folder(b)
    np.testing.assert_array_equal(da.x_test, db.x_test)
    np.testing.assert_array_equal(da.y_train, db.y_train)
    # Another seed gives another split, with the same counts.
    other = rd.load_image_folder(a, split_seed=1, test_fraction=0.25)
    assert np.bincount(other.y_test).tolist() == [3, 3]


@pytest.mark.parametrize("seed", [0, 7])
def test_folder_split_follows_the_documented_hash_rule(tmp_path, seed):
    # Each file has its own grey level, so the test images can be identified.
    for cls in ("x", "y"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (8, 8), 10 + 20 * i).save(tmp_path / "d" / cls / f"c{i}.png")
    ds = rd.load_image_folder(tmp_path / "d", size=8, split_seed=seed)
    names = sorted(f"c{i}.png" for i in range(10))
    by_hash = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).digest())
    expect = sorted(10 + 20 * int(n[1]) for n in by_hash[:2])  # round(0.2 * 10) = 2
    for k in (0, 1):
        got = sorted(np.round(ds.x_test[ds.y_test == k].mean(axis=(1, 2, 3)) * 255).astype(int))
        assert got == expect


def test_folder_center_crop(tmp_path):
    for cls, centre in (("a", 200), ("b", 50)):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i in range(3):
            im = Image.new("L", (96, 96), 0)
            im.paste(centre, (32, 32, 64, 64))  # the label lives in the centre
            im.save(tmp_path / "d" / cls / f"{i}.png")
    ds = rd.load_image_folder(tmp_path / "d", crop=32, size=32)
    np.testing.assert_allclose(ds.x_train[ds.y_train == 0], 200 / 255, atol=1e-6)
    with pytest.raises(DatasetError, match="smaller than crop=100"):
        rd.load_image_folder(tmp_path / "d", crop=100)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_folder_formats_and_auto_channels(tmp_path, fmt, mode):
    root = make_folder(tmp_path / "d", {"n": 5, "t": 5}, fmt=fmt, mode=mode, wh=(20, 24))
    ds = rd.load_image_folder(root, size=16)
    c = 1 if mode == "L" else 3
    assert ds.x_train.shape == (8, c, 16, 16)
    level = ds.x_train[ds.y_train == 1].mean()
    expect = 120 / 255 if mode == "L" else (120 + 60 + 135) / 3 / 255
    assert abs(level - expect) < (0.02 if fmt == "JPEG" else 1e-6)


def test_folder_16bit_tiff_is_scaled_not_clipped(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3}, fmt="TIFF", mode="I;16")
    ds = rd.load_image_folder(root, size=8)
    assert ds.x_train.shape[1] == 1
    np.testing.assert_allclose(ds.x_train[ds.y_train == 0].mean(), 20000 / 65535, rtol=1e-5)
    np.testing.assert_allclose(ds.x_train[ds.y_train == 1].mean(), 40000 / 65535, rtol=1e-5)


def test_folder_forced_channels(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3}, mode="RGB")
    gray = rd.load_image_folder(root, channels=1, size=8)
    # Pillow's "L" weights (ITU-R 601-2) of (40, 20, 215).
    lum = (0.299 * 40 + 0.587 * 20 + 0.114 * 215) / 255
    np.testing.assert_allclose(gray.x_train[gray.y_train == 0], lum, atol=1e-6)
    root2 = make_folder(tmp_path / "g", {"a": 3, "b": 3}, mode="L")
    rgb = rd.load_image_folder(root2, channels=3, size=8)
    assert rgb.x_train.shape[1] == 3
    np.testing.assert_array_equal(rgb.x_train[:, 0], rgb.x_train[:, 2])


def test_folder_modes_that_follow_the_class_are_refused(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 4, "b": 4}, modes={"a": "L", "b": "RGB"})
    with pytest.raises(DatasetError, match="image modes differ between classes.*channels"):
        rd.load_image_folder(root)
    # Forcing the channels accepts it (the user decided).
    assert rd.load_image_folder(root, channels=3).x_train.shape[1] == 3
    # A mix found in every class alike is converted to RGB.
    mixed = make_folder(tmp_path / "m", {"a": 2, "b": 2}, mode="L")
    make_folder(tmp_path / "m2", {"a": 2, "b": 2}, mode="RGB")
    for cls in ("a", "b"):
        for f in (tmp_path / "m2" / cls).iterdir():
            f.rename(mixed / cls / f"rgb_{f.name}")
    assert rd.load_image_folder(mixed).x_train.shape[1] == 3


def test_folder_positive_classes_make_a_binary_task(tmp_path):
    root = make_folder(tmp_path / "d", {"lymphocyte": 5, "carcinoma": 10, "stroma": 5})
    ds = rd.load_image_folder(root, positive_classes=["carcinoma"])
    assert ds.class_names == ("non-cancer", "cancer")
    # carcinoma: 8 train + 2 test; the others: 4 + 1 each.
    assert np.bincount(ds.y_train).tolist() == [8, 8]
    assert np.bincount(ds.y_test).tolist() == [2, 2]
    plain = rd.load_image_folder(root)
    assert plain.class_names == ("carcinoma", "lymphocyte", "stroma")
    assert sorted(set(plain.y_train.tolist())) == [0, 1, 2]
    assert rd.load_image_folder(root, positive_classes="stroma").y_train.sum() == 4
    with pytest.raises(DatasetError, match="positive_classes must name classes among"):
        rd.load_image_folder(root, positive_classes=["tumour"])
    with pytest.raises(DatasetError, match="name every class"):
        rd.load_image_folder(root, positive_classes=["lymphocyte", "carcinoma", "stroma"])


def test_folder_wrapper_hidden_files_and_max_images(tmp_path):
    root = make_folder(tmp_path / "up" / "wrap", {"a": 20, "b": 10})
    (tmp_path / "up" / "__MACOSX").mkdir()
    (root / "a" / ".DS_Store").write_bytes(b"\x00junk")
    (root / "README.txt").write_text("top-level files are not classes")
    ds = rd.load_image_folder(tmp_path / "up")
    assert ds.class_names == ("a", "b") and len(ds.y_train) + len(ds.y_test) == 30
    small = rd.load_image_folder(tmp_path / "up", max_images=12)
    counts = np.bincount(np.concatenate([small.y_train, small.y_test])).tolist()
    assert counts == [8, 4]  # proportional per class


def _bad_folder(tmp_path: Path, case: str) -> tuple[Path, str]:
    root = make_folder(tmp_path / "bad", {"a": 3, "b": 3})
    if case == "corrupt":
        (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
        return root, "broken.png"
    if case == "truncated":
        full = io.BytesIO()
        Image.effect_noise((64, 64), 50).convert("RGB").save(full, format="JPEG")
        (root / "a" / "cut.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
        return root, "cut.jpg"
    if case == "non-image":
        (root / "a" / "notes.txt").write_text("hello")
        return root, "notes.txt.*not an image file"
    if case == "disguised":
        (root / "a" / "doc.png").write_bytes(b"%PDF-1.4 not an image")
        return root, "doc.png.*not a readable image"
    if case == "empty-class":
        (root / "c").mkdir()
        return root, "c: empty class folder"
    if case == "one-image-class":
        (root / "c").mkdir()
        _image(9).save(root / "c" / "only.png")
        return root, "class has 1 image"
    if case == "single-class":
        single = make_folder(tmp_path / "single", {"only": 4})
        return single, "only one class"
    if case == "no-classes":
        flat = tmp_path / "flat"
        flat.mkdir()
        _image(9).save(flat / "x.png")
        return flat, "no class subfolders"
    if case == "symlink":
        (root / "a" / "link.png").symlink_to(root / "b" / "img000.png")
        return root, "link.png: symbolic links are not allowed"
    if case == "too-many-pixels":
        Image.new("L", (5000, 4000)).save(root / "a" / "huge.png")
        return root, "huge.png: image of 5000x4000"
    if case == "missing":
        return tmp_path / "nowhere", "nowhere: (not a folder|no such folder or file)"
    raise AssertionError(case)


BAD_FOLDERS = [
    "corrupt", "truncated", "non-image", "disguised", "empty-class", "one-image-class",
    "single-class", "no-classes", "symlink", "too-many-pixels", "missing",
]


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_folder_bad_input_names_the_file_and_registers_nothing(tmp_path, case):
    root, message = _bad_folder(tmp_path, case)
    with pytest.raises(DatasetError, match=message):
        rd.load_image_folder(root)
    home = tmp_path / "home"
    with pytest.raises(DatasetError, match=message):
        rd.register_dataset(root, home=home)
    assert rd.list_datasets(home) == []
    assert not [p for p in home.rglob("*") if p.is_file()]


def test_folder_bad_options(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    for kwargs, message in [
        ({"size": 2}, "size must be"),
        ({"size": "32"}, "size must be"),
        ({"channels": 2}, "channels must be 1, 3 or None"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"max_images": 1}, "max_images"),
        ({"crop": 0}, "crop must be a positive integer"),
    ]:
        with pytest.raises(DatasetError, match=message):
            rd.load_image_folder(root, **kwargs)


def test_folder_pixel_cap_is_a_parameter(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2}, wh=(20, 20))
    with pytest.raises(DatasetError, match="400 pixels exceeds the limit of 100"):
        rd.load_image_folder(root, max_image_pixels=100)


# --------------------------------------------------------------------------- #
# MedMNIST .npz
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("labels_2d", [True, False])
def test_npz_gray_keeps_official_splits(tmp_path, labels_2d):
    path = medmnist(tmp_path / "breast.npz", labels_2d=labels_2d)
    ds = rd.load_medmnist_npz(path)
    assert ds.name == "breast" and ds.source == f"npz:{path.resolve()}"
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_val.shape == (6, 1, 28, 28)
    assert ds.x_test.shape == (10, 1, 28, 28)
    assert ds.y_train.shape == (20,) and ds.y_train.dtype == np.int64
    assert ds.class_names == ("0", "1")
    np.testing.assert_array_equal(ds.y_test, np.arange(10) % 2)
    # Image values follow the label (10 + 50 y + noise < 5), scaled by 1/255.
    assert ds.x_train[ds.y_train == 1].max() <= 64 / 255 and ds.x_train.min() >= 10 / 255


def test_npz_rgb_resize_channels_and_positive_labels(tmp_path):
    path = medmnist(tmp_path / "path.npz", classes=4, rgb=True, n=(40, 8, 16), val=False)
    ds = rd.load_medmnist_npz(path, size=32)
    assert ds.x_train.shape == (40, 3, 32, 32) and ds.x_val is None
    assert ds.class_names == ("0", "1", "2", "3")
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    gray = rd.load_medmnist_npz(path, channels=1)
    assert gray.x_test.shape == (16, 1, 28, 28)
    binary = rd.load_medmnist_npz(path, positive_labels=[2, 3])
    assert binary.class_names == ("non-cancer", "cancer")
    np.testing.assert_array_equal(binary.y_train, (np.arange(40) % 4 >= 2).astype(np.int64))
    named = rd.load_medmnist_npz(path, class_names=["a", "b", "c", "d"])
    assert named.class_names == ("a", "b", "c", "d")
    with pytest.raises(DatasetError, match="proper subset of 0..3"):
        rd.load_medmnist_npz(path, positive_labels=[0, 1, 2, 3])
    with pytest.raises(DatasetError, match="proper subset of 0..3"):
        rd.load_medmnist_npz(path, positive_labels=[7])


def _bad_npz(tmp_path: Path, case: str) -> tuple[Path, str, dict]:
    good = medmnist(tmp_path / "good.npz")
    with np.load(good) as z:
        a = {k: z[k] for k in z.files}
    p = tmp_path / f"{case}.npz"
    if case == "missing-key":
        del a["test_labels"]
    elif case == "unexpected-key":
        a["extra"] = np.zeros(3)
    elif case == "val-without-labels":
        del a["val_labels"]
    elif case == "count-mismatch":
        a["train_labels"] = a["train_labels"][:-1]
    elif case == "negative-label":
        a["train_labels"] = a["train_labels"].astype(np.int64) - 1
    elif case == "label-out-of-range":
        a["test_labels"] = a["test_labels"].copy()
        a["test_labels"][0] = 5
    elif case == "empty-class":
        a["train_labels"] = a["train_labels"] * 2  # labels 0 and 2: class 1 has no image
    elif case == "single-class":
        a["train_labels"] = np.zeros_like(a["train_labels"])
    elif case == "multi-label":
        a["train_labels"] = np.zeros((20, 3), dtype=np.uint8)
    elif case == "volume":
        a["train_images"] = np.zeros((20, 8, 8, 8), dtype=np.uint8)
    elif case == "split-shapes":
        a["test_images"] = np.zeros((10, 32, 32), dtype=np.uint8)
    elif case == "float-range":
        a["train_images"] = a["train_images"].astype(np.float32)
    elif case == "float-labels":
        a["train_labels"] = a["train_labels"] + 0.5
    elif case == "object-array":
        a["train_labels"] = np.array([object()] * 20, dtype=object)
        np.savez(p, **a)  # needs pickle to read back: refused
        return p, "train_labels holds Python objects", {}
    elif case == "not-zip":
        np.save(tmp_path / "plain.npy", a["train_images"])
        p = tmp_path / "plain.npz"
        (tmp_path / "plain.npy").rename(p)
        return p, "not an .npz file", {}
    elif case == "forged-shape":
        # A .npy header claiming 10**12 elements over a few bytes of data.
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6)})
        with zipfile.ZipFile(p, "w") as zf:
            for k, v in a.items():
                if k != "train_images":
                    zf.writestr(f"{k}.npy", _npy_bytes(v))
            zf.writestr("train_images.npy", buf.getvalue() + b"\x00" * 64)
        return p, r"shapes declare more than .* bytes \(train_images: shape", {}
    elif case == "bomb":
        np.savez_compressed(p, **a)
        return p, "bytes uncompressed, over the limit of 1000 bytes", {"max_total_bytes": 1000}
    else:
        raise AssertionError(case)
    np.savez(p, **a)
    messages = {
        "missing-key": r"missing \['test_labels'\]",
        "unexpected-key": r"unexpected \['extra'\]",
        "val-without-labels": "val_images and val_labels must come together",
        "count-mismatch": "train_labels has 19 labels but the images number 20",
        "negative-label": "negative label",
        "label-out-of-range": "test_labels hold label 5, out of range",
        "empty-class": r"classes \[1\] have no training image",
        "single-class": "single class",
        "multi-label": "multi-label sets are not supported",
        "volume": "3-D volumes are not supported",
        "split-shapes": "image shapes .* differ between splits",
        "float-range": r"float with values outside \[0, 1\]",
        "float-labels": "expected integers",
    }
    return p, messages[case], {}


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


BAD_NPZ = [
    "missing-key", "unexpected-key", "val-without-labels", "count-mismatch", "negative-label",
    "label-out-of-range", "empty-class", "single-class", "multi-label", "volume",
    "split-shapes", "float-range", "float-labels", "object-array", "not-zip", "bomb",
    "forged-shape",
]


@pytest.mark.parametrize("case", BAD_NPZ)
def test_npz_bad_input_names_the_file_and_registers_nothing(tmp_path, case):
    path, message, kwargs = _bad_npz(tmp_path, case)
    with pytest.raises(DatasetError, match=message) as err:
        rd.load_medmnist_npz(path, **kwargs)
    assert str(path) in str(err.value)
    if not kwargs:
        home = tmp_path / "home"
        with pytest.raises(DatasetError, match=message):
            rd.register_dataset(path, home=home, size=None)
        assert rd.list_datasets(home) == [] and tree(home / "datasets") == set()


# --------------------------------------------------------------------------- #
# Zip uploads
# --------------------------------------------------------------------------- #
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
    out = rd.import_zip(source, dest)
    assert out == dest and dest.is_dir()
    assert "__MACOSX" not in tree(dest)
    assert [p.name for p in (tmp_path / "imports").iterdir()] == ["mydata"]  # no temp left
    ds = rd.load_image_folder(dest, size=16)
    assert ds.class_names == ("normal", "tumor") and ds.x_train.shape == (6, 1, 16, 16)
    with pytest.raises(DatasetError, match="destination already exists"):
        rd.import_zip(make_zip(good_zip_entries()), dest)


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
        rd.import_zip(archive, dest, **kwargs)
    assert tree(tmp_path) == before


def test_import_zip_not_a_zip_and_lying_sizes(tmp_path):
    with pytest.raises(DatasetError, match="not a zip archive"):
        rd.import_zip(io.BytesIO(b"PK\x03\x04 not really"), tmp_path / "d")
    assert tree(tmp_path) == set()
    # A member whose real size exceeds its declared size: counted while extracting.
    # (zipfile itself stops at the declared size and fails the CRC check.)
    buf = make_zip([("a/x.png", png_bytes(1)), ("b/y.png", bytes(5000))])
    with zipfile.ZipFile(buf) as zf:
        plan = rd._plan_zip(zf, "forged", 10**9, 10)
        plan[1][1].file_size = 10  # what a forged header would claim
        tmp = tmp_path / "x"
        tmp.mkdir()
        with pytest.raises(DatasetError, match="forged: member 'b/y.png' (inflates|is corrupt)"):
            rd._extract_plan(zf, plan, tmp, "forged", 10**9)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
def test_register_twice_same_id_card_samples_and_roundtrip(tmp_path):
    root = make_folder(tmp_path / "cells", {"normal": 6, "tumor": 5})
    home = tmp_path / "home"
    ds_id = rd.register_dataset(root, home=home, size=16)
    assert rd.is_dataset_id(ds_id)
    stored = home / "datasets" / ds_id
    assert {"data.npz", "card.json"} <= {p.name for p in stored.iterdir()}
    card_before = (stored / "card.json").read_text()
    # Same content again, even from a copy elsewhere: same id, nothing duplicated.
    copy = tmp_path / "copy"
    copy.mkdir()
    for cls in ("normal", "tumor"):
        (copy / cls).mkdir()
        for f in (root / cls).iterdir():
            (copy / cls / f.name).write_bytes(f.read_bytes())
    assert rd.register_dataset(root, home=home, size=16) == ds_id
    assert rd.register_dataset(copy, home=home, size=16) == ds_id
    assert [p.name for p in (home / "datasets").iterdir()] == [ds_id]
    assert (stored / "card.json").read_text() == card_before
    # Other options give another id.
    assert rd.register_dataset(root, home=home, size=8) != ds_id
    assert rd.register_dataset(root, home=home, size=16, positive_classes="tumor") != ds_id

    card = rd.dataset_card(ds_id, home=home)
    assert card["id"] == ds_id and card["name"] == "cells"
    assert card["source"] == f"folder:{root.resolve()}"
    assert card["counts"] == {"train": {"normal": 5, "tumor": 4}, "test": {"normal": 1, "tumor": 1}}
    assert card["image_size"] == [16, 16] and card["channels"] == 3
    assert card["class_names"] == ["normal", "tumor"] and card["created"]
    for cls, files in card["samples"].items():
        assert len(files) == 4, cls
        for f in files:
            with Image.open(stored / f) as im:
                assert im.size == (16, 16) and im.mode == "RGB"

    loaded = rd.load_registered(ds_id, home=home)
    direct = rd.load_image_folder(root, size=16)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(direct, key))
    assert loaded.class_names == direct.class_names and loaded.source == ds_id
    assert [c["id"] for c in rd.list_datasets(home)].count(ds_id) == 1
    assert len(rd.list_datasets(home)) == 3
    # The stored arrays load without pickle.
    with np.load(stored / "data.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["x_test", "x_train", "y_test", "y_train"]


def test_register_npz_keeps_val_and_resolve_accepts_all_sources(tmp_path):
    path = medmnist(tmp_path / "breast.npz")
    home = tmp_path / "home"
    ds_id = rd.register_dataset(path, home=home, size=None, positive_classes=[0])
    card = rd.dataset_card(ds_id, home=home)
    assert card["class_names"] == ["non-cancer", "cancer"]
    assert card["counts"]["val"] == {"non-cancer": 3, "cancer": 3}
    assert card["n_images"] == {"train": 20, "test": 10, "val": 6}
    by_id = rd.resolve_dataset(ds_id, home=home)
    assert by_id.x_val.shape == (6, 1, 28, 28)
    by_path = rd.resolve_dataset(str(path), home=home, size=None, positive_classes=[0])
    np.testing.assert_array_equal(by_id.x_val, by_path.x_val)
    np.testing.assert_array_equal(by_id.y_train, by_path.y_train)
    folder = make_folder(tmp_path / "f", {"a": 3, "b": 3})
    assert rd.resolve_dataset(folder, home=home, size=8, channels=1).x_train.shape == (4, 1, 8, 8)
    with pytest.raises(DatasetError, match="nothing.csv: no such folder or file; expected"):
        rd.resolve_dataset(tmp_path / "nothing.csv", home=home)
    (tmp_path / "table.csv").write_text("a,b")
    with pytest.raises(DatasetError, match="table.csv: not a dataset; expected"):
        rd.resolve_dataset(tmp_path / "table.csv", home=home)
    with pytest.raises(DatasetError, match="max_images applies to image folders only"):
        rd.resolve_dataset(path, home=home, max_images=10)
    with pytest.raises(DatasetError, match="crop applies to image folders only"):
        rd.resolve_dataset(path, home=home, crop=10)
    with pytest.raises(DatasetError, match="must be integer labels"):
        rd.resolve_dataset(path, home=home, positive_classes=["tumor"])


def test_load_dataset_dispatches_real_data(tmp_path):
    folder = make_folder(tmp_path / "f", {"a": 3, "b": 3})
    spec = SimpleNamespace(dataset=str(folder), dataset_options={"size": 8, "channels": 3})
    ds = load_dataset(spec, tmp_path / "home")
    assert ds.x_train.shape == (4, 3, 8, 8)
    ds_id = rd.register_dataset(folder, home=tmp_path / "home", size=8)
    ds2 = load_dataset(SimpleNamespace(dataset=ds_id, dataset_options={}), tmp_path / "home")
    np.testing.assert_array_equal(ds2.x_test, rd.load_image_folder(folder, size=8).x_test)


@pytest.mark.parametrize(
    "bad_id", ["../etc", "ds-../../x", "ds-0123", "ds-0123456789ABCDEF", "ds-0123456789abcdef/..",
               "ds-0123456789abcdeg", "", "ds-0123456789abcdef\n"],
)
def test_dataset_ids_are_validated(tmp_path, bad_id):
    with pytest.raises(DatasetError, match="dataset id must look like"):
        rd.load_registered(bad_id, home=tmp_path)
    with pytest.raises(DatasetError, match="dataset id must look like"):
        rd.dataset_card(bad_id, home=tmp_path)


def test_unknown_and_damaged_registered_datasets(tmp_path):
    with pytest.raises(DatasetError, match="is not registered"):
        rd.load_registered("ds-0123456789abcdef", home=tmp_path)
    with pytest.raises(DatasetError, match="is not registered"):
        rd.resolve_dataset("ds-0123456789abcdef", home=tmp_path)
    root = make_folder(tmp_path / "cells", {"a": 3, "b": 3})
    ds_id = rd.register_dataset(root, home=tmp_path / "h", size=8)
    data = tmp_path / "h" / "datasets" / ds_id / "data.npz"
    with np.load(data) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"] = arrays["x_train"][:, :, :4]
    np.savez(data, **arrays)
    with pytest.raises(DatasetError, match="does not match its card"):
        rd.load_registered(ds_id, home=tmp_path / "h")
    (tmp_path / "h" / "datasets" / ds_id / "card.json").write_text("{broken")
    assert rd.list_datasets(tmp_path / "h") == []
    assert rd.list_datasets(tmp_path / "no-home") == []


def test_card_is_json_with_counts_per_split(tmp_path):
    root = make_folder(tmp_path / "cells", {"a": 5, "b": 5}, mode="L")
    ds_id = rd.register_dataset(root, home=tmp_path, size=8)
    raw = json.loads((tmp_path / "datasets" / ds_id / "card.json").read_text())
    assert raw["channels"] == 1 and raw["n_images"] == {"train": 8, "test": 2}
    assert not list((tmp_path / "datasets").glob(".tmp-*"))


# --------------------------------------------------------------------------- #
# Real data (outside the repository; skipped where absent unless CI=true)
# --------------------------------------------------------------------------- #
def test_real_pcam_folder_loads_fast():
    path = need_real("pcam-test")
    start = time.perf_counter()
    ds = rd.load_image_folder(path, size=32)
    elapsed = time.perf_counter() - start
    print(f"\nPCam: 3000 JPEGs 96x96 -> 32x32 in {elapsed:.2f} s")
    assert ds.class_names == ("normal", "tumor")
    assert ds.x_train.shape == (2400, 3, 32, 32) and ds.x_test.shape == (600, 3, 32, 32)
    assert np.bincount(ds.y_train).tolist() == [1200, 1200]
    assert np.bincount(ds.y_test).tolist() == [300, 300]
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert 0.2 < ds.x_train.mean() < 0.9  # H&E patches, not blank
    assert elapsed < 15.0, f"loading PCam took {elapsed:.1f} s"
    native = rd.load_image_folder(path, size=96, max_images=200)
    assert native.x_train.shape[1:] == (3, 96, 96) and len(native.y_train) == 160


def test_real_breastmnist_npz():
    path = need_real("breastmnist.npz")
    ds = rd.load_medmnist_npz(path)
    assert ds.x_train.shape == (546, 1, 28, 28)
    assert ds.x_val.shape == (78, 1, 28, 28) and ds.x_test.shape == (156, 1, 28, 28)
    assert ds.class_names == ("0", "1")
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(np.unique(y).tolist()) == {0, 1}
    binary = rd.load_medmnist_npz(path, positive_labels=[0], size=32)  # 0 = malignant
    assert binary.class_names == ("non-cancer", "cancer")
    assert binary.x_train.shape == (546, 1, 32, 32)
    np.testing.assert_array_equal(binary.y_train, (ds.y_train == 0).astype(np.int64))


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])
def test_absent_real_data_skips_except_under_ci(monkeypatch, tmp_path, ci, outcome):
    import conftest

    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="is absent|is missing, and CI must run"):
        need_real("pcam-test")
