"""Datasets: the built-in synthetic cells and the user's own images, loaded, validated and registered.

Rooms
-----
- :mod:`~akp.datasets.base`: :class:`Dataset`, :class:`DatasetError`, option schemas, probe sets.
- :mod:`~akp.datasets.synthetic`: the synthetic cell generator and its options.
- :mod:`~akp.datasets.pixels`: formats, pixel limits and decoding shared by the real-data loaders.
- :mod:`~akp.datasets.images`: image folders (one subfolder per class).
- :mod:`~akp.datasets.npz`: MedMNIST ``.npz`` files.
- :mod:`~akp.datasets.sources`: a folder or an ``.npz``, whichever a path is; real-data options.
- :mod:`~akp.datasets.safezip`: safe extraction of zip uploads.
- :mod:`~akp.datasets.registry`: registered datasets ``ds-<16 hex>``, stored by content hash, with a card.
- :mod:`~akp.datasets.cards`: a card ready to display.
- :mod:`~akp.datasets.uploads`: the Design page's uploads and server-side paths.

A dataset is named by a string: ``"synthetic-cells"``, an image folder, an
``.npz`` file or a registered id. :func:`validate_options` checks its options
without reading a file (``ExperimentSpec.validate`` calls it);
:func:`load_dataset` loads it.
"""
from __future__ import annotations

import os
from typing import Any

from akp.datasets.base import (
    BINARY_CLASS_NAMES,
    CLASS_NAMES,
    Dataset,
    DatasetError,
    OptionSchema,
    probe_indices,
)
from akp.datasets.cards import card_samples, card_summary, card_table, dataset_label
from akp.datasets.images import MAX_IMAGES, load_image_folder
from akp.datasets.npz import MAX_NPZ_TOTAL_BYTES, load_medmnist_npz
from akp.datasets.pixels import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS
from akp.datasets.registry import (
    dataset_card,
    is_dataset_id,
    list_datasets,
    load_registered,
    register_dataset,
    resolve_dataset,
)
from akp.datasets.safezip import MAX_ZIP_FILES, MAX_ZIP_TOTAL_BYTES, import_zip
from akp.datasets.sources import RESOLVE_OPTIONS, validate_real_options
from akp.datasets.synthetic import (
    DEFAULT_DIFFICULTY,
    SYNTHETIC,
    make_synthetic_cells,
    synthetic_dataset,
    validate_synthetic_options,
)
from akp.datasets.synthetic import OPTIONS as SYNTHETIC_OPTIONS
from akp.paths import default_home

__all__ = [
    "BINARY_CLASS_NAMES",
    "CLASS_NAMES",
    "DEFAULT_DIFFICULTY",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGES",
    "MAX_IMAGE_PIXELS",
    "MAX_NPZ_TOTAL_BYTES",
    "MAX_ZIP_FILES",
    "MAX_ZIP_TOTAL_BYTES",
    "RESOLVE_OPTIONS",
    "SYNTHETIC",
    "SYNTHETIC_OPTIONS",
    "Dataset",
    "DatasetError",
    "OptionSchema",
    "card_samples",
    "card_summary",
    "card_table",
    "dataset_card",
    "dataset_label",
    "import_zip",
    "is_dataset_id",
    "list_datasets",
    "load_dataset",
    "load_image_folder",
    "load_medmnist_npz",
    "load_registered",
    "make_synthetic_cells",
    "probe_indices",
    "register_dataset",
    "resolve_dataset",
    "synthetic_dataset",
    "validate_options",
]


def validate_options(name: str, options: dict[str, Any]) -> None:
    """Check a dataset's options without reading any file.

    Parameters
    ----------
    name : str
        ``"synthetic-cells"``, an image folder, an ``.npz`` file or a registered id.
    options : dict
        Its options (``spec.dataset_options``). Synthetic cells are checked
        against their whole schema (:data:`SYNTHETIC_OPTIONS`: types and
        bounds); real data against the options of its loaders
        (:data:`RESOLVE_OPTIONS`; None lets the loader decide).

    Raises
    ------
    DatasetError
        With ``field="dataset_options.<key>"`` for the first unknown key or
        bad value (wrong type, out of bounds, NaN), or ``field="dataset_options"``
        when ``options`` is not a dict.
    """
    if not isinstance(options, dict):
        raise DatasetError.at("dataset_options", "must be an object")
    if name == SYNTHETIC:
        validate_synthetic_options(options)
    else:
        validate_real_options(options)


def load_dataset(
    name: str, options: dict[str, Any] | None = None, *, home: str | os.PathLike[str] | None = None
) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        ``"synthetic-cells"``, an image folder, a MedMNIST ``.npz`` file, or
        a registered dataset id ``ds-<16 hex>``.
    options : dict, optional
        The loader's options (a spec's ``dataset_options``); checked with
        :func:`validate_options` first.
    home : path-like, optional
        The run store's home, where registered datasets live (default
        :func:`akp.paths.default_home`).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Bad options, or a dataset that cannot be found or read.

    Examples
    --------
    >>> data = load_dataset("synthetic-cells", {"n_train": 40, "n_test": 20, "size": 16})
    >>> data.x_train.shape
    (40, 1, 16, 16)
    """
    opts: dict[str, Any] = dict(options or {})
    validate_options(name, opts)
    if name == SYNTHETIC:
        return synthetic_dataset(**opts)
    return resolve_dataset(name, home=default_home() if home is None else home, **opts)
