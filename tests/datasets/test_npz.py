"""Tests of akp.datasets.npz: MedMNIST .npz files, their splits and the refusals of bad arrays."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dataset_fakes import (
    medmnist,
    tree,
)

from akp.datasets import DatasetError
from akp.datasets.npz import load_medmnist_npz
from akp.datasets.registry import (
    list_datasets,
    register_dataset,
)


@pytest.mark.parametrize("labels_2d", [True, False])
def test_npz_gray_keeps_official_splits(tmp_path, labels_2d):
    path = medmnist(tmp_path / "breast.npz", labels_2d=labels_2d)
    ds = load_medmnist_npz(path)
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
    ds = load_medmnist_npz(path, size=32)
    assert ds.x_train.shape == (40, 3, 32, 32) and ds.x_val is None
    assert ds.class_names == ("0", "1", "2", "3")
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    gray = load_medmnist_npz(path, channels=1)
    assert gray.x_test.shape == (16, 1, 28, 28)
    binary = load_medmnist_npz(path, positive_labels=[2, 3])
    assert binary.class_names == ("non-cancer", "cancer")
    np.testing.assert_array_equal(binary.y_train, (np.arange(40) % 4 >= 2).astype(np.int64))
    named = load_medmnist_npz(path, class_names=["a", "b", "c", "d"])
    assert named.class_names == ("a", "b", "c", "d")
    with pytest.raises(DatasetError, match="proper subset of 0..3"):
        load_medmnist_npz(path, positive_labels=[0, 1, 2, 3])
    with pytest.raises(DatasetError, match="proper subset of 0..3"):
        load_medmnist_npz(path, positive_labels=[7])


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
        load_medmnist_npz(path, **kwargs)
    assert str(path) in str(err.value)
    if not kwargs:
        home = tmp_path / "home"
        with pytest.raises(DatasetError, match=message):
            register_dataset(path, home=home, size=None)
        assert list_datasets(home) == [] and tree(home / "datasets") == set()
