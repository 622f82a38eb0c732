"""Tests of akp.datasets and akp.datasets.base: validate_options, load_dataset, probe sets, the package's imports."""
from __future__ import annotations

import grimp
import numpy as np
import pytest

import akp
from akp.datasets import (
    RESOLVE_OPTIONS,
    SYNTHETIC,
    Dataset,
    DatasetError,
    load_dataset,
    probe_indices,
    synthetic_dataset,
    validate_options,
)
from akp.datasets.synthetic import DEFAULTS
from akp.errors import AKPError


@pytest.mark.parametrize("options, field, message", [
    ({"size": 8}, "dataset_options.size", "must be an integer from 16 to 128, got 8"),
    ({"size": 8, "difficulty": 3.0}, "dataset_options.size", "must be an integer from 16 to 128"),
    ({"difficulty": 3.0}, "dataset_options.difficulty", "must be a number from 0 to 1, got 3.0"),
    ({"difficulty": float("nan")}, "dataset_options.difficulty", "must be a number from 0 to 1, got nan"),
    ({"size": 33.0}, "dataset_options.size", "must be an integer"),
    ({"colour": 1}, "dataset_options.colour", "unknown option for synthetic-cells; allowed: n_train"),
    ({"seed": -1}, "dataset_options.seed", "must be an integer from 0 to 2147483647, got -1"),
    ({"n_train": 10}, "dataset_options.n_train", "must be an integer from 20 to 200000"),
    ({"n_test": 100_001}, "dataset_options.n_test", "must be an integer from 20 to 100000"),
    ({"size": True}, "dataset_options.size", "must be an integer"),
])
def test_bad_synthetic_options_name_their_field(options, field, message):
    with pytest.raises(DatasetError) as info:
        validate_options(SYNTHETIC, options)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ") and message in str(info.value)


def test_the_defaults_and_no_options_are_valid():
    # validate_options returns None when the options are valid (it raises DatasetError otherwise).
    for options in (dict(DEFAULTS), {}, {"difficulty": 1}):  # an int where a float is expected
        assert validate_options(SYNTHETIC, options) is None
    with pytest.raises(DatasetError):  # and it does refuse: the same call fails past a bound
        validate_options(SYNTHETIC, {"difficulty": 1.5})


def test_options_that_are_not_a_dict_are_refused():
    with pytest.raises(DatasetError) as info:
        validate_options(SYNTHETIC, [("size", 32)])
    assert info.value.field == "dataset_options"


@pytest.mark.parametrize("options, field", [
    ({"colour": 1}, "dataset_options.colour"),
    ({"size": "32"}, "dataset_options.size"),
    ({"size": 2}, "dataset_options.size"),
    ({"channels": 2}, "dataset_options.channels"),
    ({"max_images": 2.5}, "dataset_options.max_images"),
    ({"crop": 0}, "dataset_options.crop"),
    ({"positive_classes": [1.5]}, "dataset_options.positive_classes"),
    ({"positive_classes": []}, "dataset_options.positive_classes"),
])
def test_bad_real_data_options_name_their_field(tmp_path, options, field):
    with pytest.raises(DatasetError) as info:
        validate_options(str(tmp_path / "no-such-folder"), options)  # no file is read
    assert info.value.field == field


def test_real_data_options_accept_none_names_and_labels():
    validate_options("ds-0123456789abcdef", {key: None for key in RESOLVE_OPTIONS})
    validate_options("cells/", {"size": 64, "channels": 3, "positive_classes": ["tumor", 2], "crop": 32})
    validate_options("cells.npz", {"positive_classes": 1})
    assert RESOLVE_OPTIONS == ("size", "channels", "positive_classes", "max_images", "crop")


def test_load_dataset_needs_no_spec():
    data = load_dataset(SYNTHETIC, {"n_train": 40, "n_test": 20, "size": 16, "seed": 3})
    expected = synthetic_dataset(40, 20, size=16, seed=3)
    assert isinstance(data, Dataset) and data.source == SYNTHETIC
    np.testing.assert_array_equal(data.x_train, expected.x_train)
    np.testing.assert_array_equal(data.y_test, expected.y_test)
    assert load_dataset(SYNTHETIC, {"n_train": 20, "n_test": 20}).x_train.shape == (20, 1, 32, 32)


def test_load_dataset_checks_the_options_first():
    with pytest.raises(DatasetError) as info:
        load_dataset(SYNTHETIC, {"n_train": 40, "size": 8})
    assert info.value.field == "dataset_options.size"


def test_load_dataset_names_a_missing_source(tmp_path):
    with pytest.raises(DatasetError, match="no such folder or file") as info:
        load_dataset(str(tmp_path / "nothing"), home=tmp_path)
    assert info.value.field == "dataset"


def test_errors_are_akp_errors_and_reexported():
    assert issubclass(DatasetError, AKPError) and issubclass(DatasetError, ValueError)
    assert akp.DatasetError is DatasetError and akp.Dataset is Dataset and akp.load_dataset is load_dataset
    err = DatasetError.at("dataset_options.size", "bad")
    assert err.field == "dataset_options.size" and str(err) == "dataset_options.size: bad"


def test_probe_is_class_balanced_fixed_and_within_range():
    labels = np.array([0] * 70 + [1] * 30)
    idx = probe_indices(labels, 40, seed=0)
    assert len(idx) == 40 and len(set(idx)) == 40
    assert np.bincount(labels[idx]).tolist() == [20, 20]
    assert np.array_equal(idx, probe_indices(labels, 40, seed=0))
    small = probe_indices(labels, 80, seed=0)  # class 1 has only 30: fill from class 0
    assert len(small) == 80 and (labels[small] == 1).sum() == 30


def test_the_datasets_package_imports_only_leaves():
    graph = grimp.build_graph("akp")
    allowed = {"akp.constraints", "akp.errors", "akp.paths"}
    outside = {
        (module, imported)
        for module in graph.find_descendants("akp.datasets") | {"akp.datasets"}
        for imported in graph.find_modules_directly_imported_by(module)
        if not (imported == "akp.datasets" or imported.startswith("akp.datasets.") or imported in allowed)
    }
    assert outside == set()
    inside = {(m, i) for m in graph.find_descendants("akp.datasets")
              for i in graph.find_modules_directly_imported_by(m) if i == "akp.datasets"}
    assert inside == set()  # submodules import their siblings, never the package (no cycle through __init__)
