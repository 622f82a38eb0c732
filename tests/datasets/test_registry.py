"""Tests of akp.datasets.registry: registration by content, cards, ids, resolving any source."""
from __future__ import annotations

import json

import numpy as np
import pytest
from dataset_fakes import (
    make_folder,
    medmnist,
)
from PIL import Image

from akp.datasets import DatasetError, load_dataset
from akp.datasets.images import load_image_folder
from akp.datasets.registry import (
    dataset_card,
    is_dataset_id,
    list_datasets,
    load_registered,
    register_dataset,
    resolve_dataset,
)


def test_register_twice_same_id_card_samples_and_roundtrip(tmp_path):
    root = make_folder(tmp_path / "cells", {"normal": 6, "tumor": 5})
    home = tmp_path / "home"
    ds_id = register_dataset(root, home=home, size=16)
    assert is_dataset_id(ds_id)
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
    assert register_dataset(root, home=home, size=16) == ds_id
    assert register_dataset(copy, home=home, size=16) == ds_id
    assert [p.name for p in (home / "datasets").iterdir()] == [ds_id]
    assert (stored / "card.json").read_text() == card_before
    # Other options give another id.
    assert register_dataset(root, home=home, size=8) != ds_id
    assert register_dataset(root, home=home, size=16, positive_classes="tumor") != ds_id

    card = dataset_card(ds_id, home=home)
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

    loaded = load_registered(ds_id, home=home)
    direct = load_image_folder(root, size=16)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(direct, key))
    assert loaded.class_names == direct.class_names and loaded.source == ds_id
    assert [c["id"] for c in list_datasets(home)].count(ds_id) == 1
    assert len(list_datasets(home)) == 3
    # The stored arrays load without pickle.
    with np.load(stored / "data.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["x_test", "x_train", "y_test", "y_train"]


def test_register_npz_keeps_val_and_resolve_accepts_all_sources(tmp_path):
    path = medmnist(tmp_path / "breast.npz")
    home = tmp_path / "home"
    ds_id = register_dataset(path, home=home, size=None, positive_classes=[0])
    card = dataset_card(ds_id, home=home)
    assert card["class_names"] == ["non-cancer", "cancer"]
    assert card["counts"]["val"] == {"non-cancer": 3, "cancer": 3}
    assert card["n_images"] == {"train": 20, "test": 10, "val": 6}
    by_id = resolve_dataset(ds_id, home=home)
    assert by_id.x_val.shape == (6, 1, 28, 28)
    by_path = resolve_dataset(str(path), home=home, size=None, positive_classes=[0])
    np.testing.assert_array_equal(by_id.x_val, by_path.x_val)
    np.testing.assert_array_equal(by_id.y_train, by_path.y_train)
    folder = make_folder(tmp_path / "f", {"a": 3, "b": 3})
    assert resolve_dataset(folder, home=home, size=8, channels=1).x_train.shape == (4, 1, 8, 8)
    with pytest.raises(DatasetError, match="nothing.csv: no such folder or file; expected"):
        resolve_dataset(tmp_path / "nothing.csv", home=home)
    (tmp_path / "table.csv").write_text("a,b")
    with pytest.raises(DatasetError, match="table.csv: not a dataset; expected"):
        resolve_dataset(tmp_path / "table.csv", home=home)
    with pytest.raises(DatasetError, match="max_images applies to image folders only"):
        resolve_dataset(path, home=home, max_images=10)
    with pytest.raises(DatasetError, match="crop applies to image folders only"):
        resolve_dataset(path, home=home, crop=10)
    with pytest.raises(DatasetError, match="must be integer labels"):
        resolve_dataset(path, home=home, positive_classes=["tumor"])


def test_load_dataset_dispatches_real_data(tmp_path):
    folder = make_folder(tmp_path / "f", {"a": 3, "b": 3})
    ds = load_dataset(str(folder), {"size": 8, "channels": 3}, home=tmp_path / "home")
    assert ds.x_train.shape == (4, 3, 8, 8)
    ds_id = register_dataset(folder, home=tmp_path / "home", size=8)
    ds2 = load_dataset(ds_id, home=tmp_path / "home")
    np.testing.assert_array_equal(ds2.x_test, load_image_folder(folder, size=8).x_test)


@pytest.mark.parametrize(
    "bad_id", ["../etc", "ds-../../x", "ds-0123", "ds-0123456789ABCDEF", "ds-0123456789abcdef/..",
               "ds-0123456789abcdeg", "", "ds-0123456789abcdef\n"],
)
def test_dataset_ids_are_validated(tmp_path, bad_id):
    with pytest.raises(DatasetError, match="dataset id must look like"):
        load_registered(bad_id, home=tmp_path)
    with pytest.raises(DatasetError, match="dataset id must look like"):
        dataset_card(bad_id, home=tmp_path)


def test_unknown_and_damaged_registered_datasets(tmp_path):
    with pytest.raises(DatasetError, match="is not registered"):
        load_registered("ds-0123456789abcdef", home=tmp_path)
    with pytest.raises(DatasetError, match="is not registered"):
        resolve_dataset("ds-0123456789abcdef", home=tmp_path)
    root = make_folder(tmp_path / "cells", {"a": 3, "b": 3})
    ds_id = register_dataset(root, home=tmp_path / "h", size=8)
    data = tmp_path / "h" / "datasets" / ds_id / "data.npz"
    with np.load(data) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"] = arrays["x_train"][:, :, :4]
    np.savez(data, **arrays)
    with pytest.raises(DatasetError, match="does not match its card"):
        load_registered(ds_id, home=tmp_path / "h")
    (tmp_path / "h" / "datasets" / ds_id / "card.json").write_text("{broken")
    assert list_datasets(tmp_path / "h") == []
    assert list_datasets(tmp_path / "no-home") == []


def test_card_is_json_with_counts_per_split(tmp_path):
    root = make_folder(tmp_path / "cells", {"a": 5, "b": 5}, mode="L")
    ds_id = register_dataset(root, home=tmp_path, size=8)
    raw = json.loads((tmp_path / "datasets" / ds_id / "card.json").read_text())
    assert raw["channels"] == 1 and raw["n_images"] == {"train": 8, "test": 2}
    assert not list((tmp_path / "datasets").glob(".tmp-*"))
