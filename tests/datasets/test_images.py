"""Tests of akp.datasets.images: image folders, their split, decoding, channels and refusals."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from dataset_fakes import (
    make_folder,
    uniform_image,
)
from PIL import Image

from akp.datasets import Dataset, DatasetError
from akp.datasets.images import load_image_folder
from akp.datasets.registry import (
    list_datasets,
    register_dataset,
)


def test_folder_two_classes_shapes_split_and_values(tmp_path):
    root = make_folder(tmp_path / "cells", {"benign": 10, "malignant": 7})
    ds = load_image_folder(root)
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
    again = load_image_folder(root)
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
    da, db = load_image_folder(a), load_image_folder(b)
    np.testing.assert_array_equal(da.x_test, db.x_test)
    np.testing.assert_array_equal(da.y_train, db.y_train)
    # Another seed gives another split, with the same counts.
    other = load_image_folder(a, split_seed=1, test_fraction=0.25)
    assert np.bincount(other.y_test).tolist() == [3, 3]


@pytest.mark.parametrize("seed", [0, 7])
def test_folder_split_follows_the_documented_hash_rule(tmp_path, seed):
    # Each file has its own grey level, so the test images can be identified.
    for cls in ("x", "y"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (8, 8), 10 + 20 * i).save(tmp_path / "d" / cls / f"c{i}.png")
    ds = load_image_folder(tmp_path / "d", size=8, split_seed=seed)
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
    ds = load_image_folder(tmp_path / "d", crop=32, size=32)
    np.testing.assert_allclose(ds.x_train[ds.y_train == 0], 200 / 255, atol=1e-6)
    with pytest.raises(DatasetError, match="smaller than crop=100"):
        load_image_folder(tmp_path / "d", crop=100)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_folder_formats_and_auto_channels(tmp_path, fmt, mode):
    root = make_folder(tmp_path / "d", {"n": 5, "t": 5}, fmt=fmt, mode=mode, wh=(20, 24))
    ds = load_image_folder(root, size=16)
    c = 1 if mode == "L" else 3
    assert ds.x_train.shape == (8, c, 16, 16)
    level = ds.x_train[ds.y_train == 1].mean()
    expect = 120 / 255 if mode == "L" else (120 + 60 + 135) / 3 / 255
    assert abs(level - expect) < (0.02 if fmt == "JPEG" else 1e-6)


def test_folder_16bit_tiff_is_scaled_not_clipped(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3}, fmt="TIFF", mode="I;16")
    ds = load_image_folder(root, size=8)
    assert ds.x_train.shape[1] == 1
    np.testing.assert_allclose(ds.x_train[ds.y_train == 0].mean(), 20000 / 65535, rtol=1e-5)
    np.testing.assert_allclose(ds.x_train[ds.y_train == 1].mean(), 40000 / 65535, rtol=1e-5)


def test_folder_forced_channels(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3}, mode="RGB")
    gray = load_image_folder(root, channels=1, size=8)
    # Pillow's "L" weights (ITU-R 601-2) of (40, 20, 215).
    lum = (0.299 * 40 + 0.587 * 20 + 0.114 * 215) / 255
    np.testing.assert_allclose(gray.x_train[gray.y_train == 0], lum, atol=1e-6)
    root2 = make_folder(tmp_path / "g", {"a": 3, "b": 3}, mode="L")
    rgb = load_image_folder(root2, channels=3, size=8)
    assert rgb.x_train.shape[1] == 3
    np.testing.assert_array_equal(rgb.x_train[:, 0], rgb.x_train[:, 2])


def test_folder_modes_that_follow_the_class_are_refused(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 4, "b": 4}, modes={"a": "L", "b": "RGB"})
    with pytest.raises(DatasetError, match="image modes differ between classes.*channels"):
        load_image_folder(root)
    # Forcing the channels accepts it (the user decided).
    assert load_image_folder(root, channels=3).x_train.shape[1] == 3
    # A mix found in every class alike is converted to RGB.
    mixed = make_folder(tmp_path / "m", {"a": 2, "b": 2}, mode="L")
    make_folder(tmp_path / "m2", {"a": 2, "b": 2}, mode="RGB")
    for cls in ("a", "b"):
        for f in (tmp_path / "m2" / cls).iterdir():
            f.rename(mixed / cls / f"rgb_{f.name}")
    assert load_image_folder(mixed).x_train.shape[1] == 3


def test_folder_positive_classes_make_a_binary_task(tmp_path):
    root = make_folder(tmp_path / "d", {"lymphocyte": 5, "carcinoma": 10, "stroma": 5})
    ds = load_image_folder(root, positive_classes=["carcinoma"])
    assert ds.class_names == ("non-cancer", "cancer")
    # carcinoma: 8 train + 2 test; the others: 4 + 1 each.
    assert np.bincount(ds.y_train).tolist() == [8, 8]
    assert np.bincount(ds.y_test).tolist() == [2, 2]
    plain = load_image_folder(root)
    assert plain.class_names == ("carcinoma", "lymphocyte", "stroma")
    assert sorted(set(plain.y_train.tolist())) == [0, 1, 2]
    assert load_image_folder(root, positive_classes="stroma").y_train.sum() == 4
    with pytest.raises(DatasetError, match="positive_classes must name classes among"):
        load_image_folder(root, positive_classes=["tumour"])
    with pytest.raises(DatasetError, match="name every class"):
        load_image_folder(root, positive_classes=["lymphocyte", "carcinoma", "stroma"])


def test_folder_wrapper_hidden_files_and_max_images(tmp_path):
    root = make_folder(tmp_path / "up" / "wrap", {"a": 20, "b": 10})
    (tmp_path / "up" / "__MACOSX").mkdir()
    (root / "a" / ".DS_Store").write_bytes(b"\x00junk")
    (root / "README.txt").write_text("top-level files are not classes")
    ds = load_image_folder(tmp_path / "up")
    assert ds.class_names == ("a", "b") and len(ds.y_train) + len(ds.y_test) == 30
    small = load_image_folder(tmp_path / "up", max_images=12)
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
        uniform_image(9).save(root / "c" / "only.png")
        return root, "class has 1 image"
    if case == "single-class":
        single = make_folder(tmp_path / "single", {"only": 4})
        return single, "only one class"
    if case == "no-classes":
        flat = tmp_path / "flat"
        flat.mkdir()
        uniform_image(9).save(flat / "x.png")
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
        load_image_folder(root)
    home = tmp_path / "home"
    with pytest.raises(DatasetError, match=message):
        register_dataset(root, home=home)
    assert list_datasets(home) == []
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
            load_image_folder(root, **kwargs)


def test_folder_pixel_cap_is_a_parameter(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2}, wh=(20, 20))
    with pytest.raises(DatasetError, match="400 pixels exceeds the limit of 100"):
        load_image_folder(root, max_image_pixels=100)
