"""The loaders on real data sets (outside the repository; skipped where absent unless CI=true)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from dataset_fakes import (
    need_real,
)

from akp.datasets.images import load_image_folder
from akp.datasets.npz import load_medmnist_npz


def test_real_pcam_folder_loads_fast():
    path = need_real("pcam-test")
    start = time.perf_counter()
    ds = load_image_folder(path, size=32)
    elapsed = time.perf_counter() - start
    print(f"\nPCam: 3000 JPEGs 96x96 -> 32x32 in {elapsed:.2f} s")
    assert ds.class_names == ("normal", "tumor")
    assert ds.x_train.shape == (2400, 3, 32, 32) and ds.x_test.shape == (600, 3, 32, 32)
    assert np.bincount(ds.y_train).tolist() == [1200, 1200]
    assert np.bincount(ds.y_test).tolist() == [300, 300]
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert 0.2 < ds.x_train.mean() < 0.9  # H&E patches, not blank
    assert elapsed < 15.0, f"loading PCam took {elapsed:.1f} s"
    native = load_image_folder(path, size=96, max_images=200)
    assert native.x_train.shape[1:] == (3, 96, 96) and len(native.y_train) == 160


def test_real_breastmnist_npz():
    path = need_real("breastmnist.npz")
    ds = load_medmnist_npz(path)
    assert ds.x_train.shape == (546, 1, 28, 28)
    assert ds.x_val.shape == (78, 1, 28, 28) and ds.x_test.shape == (156, 1, 28, 28)
    assert ds.class_names == ("0", "1")
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(np.unique(y).tolist()) == {0, 1}
    binary = load_medmnist_npz(path, positive_labels=[0], size=32)  # 0 = malignant
    assert binary.class_names == ("non-cancer", "cancer")
    assert binary.x_train.shape == (546, 1, 32, 32)
    np.testing.assert_array_equal(binary.y_train, (ds.y_train == 0).astype(np.int64))


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])
def test_absent_real_data_skips_except_under_ci(monkeypatch, tmp_path, ci, outcome):
    import tests.realdata

    monkeypatch.setattr(tests.realdata, "SHARED_DATA", tmp_path)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="is absent|is missing, and CI must run"):
        need_real("pcam-test")
