"""What every dataset shares: the :class:`Dataset` container, :class:`DatasetError`, option schemas, probe sets."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from akp.constraints import Constraint
from akp.errors import AKPError

__all__ = [
    "BINARY_CLASS_NAMES",
    "CLASS_NAMES",
    "DATASET_FIELD",
    "Dataset",
    "DatasetError",
    "OptionSchema",
    "check_options",
    "option_field",
    "probe_indices",
]

#: Class names of the binary task: label 0 is non-cancer, label 1 is cancer.
CLASS_NAMES: tuple[str, str] = ("non-cancer", "cancer")
#: Class names of a binary task made from a multi-class set with ``positive_classes``.
BINARY_CLASS_NAMES: tuple[str, str] = CLASS_NAMES
#: The spec field that names the dataset: the ``field`` of errors about its files and contents.
DATASET_FIELD = "dataset"

#: A loader's option schema: option name -> its :class:`~akp.constraints.Constraint`.
OptionSchema = dict[str, Constraint]


class DatasetError(AKPError):
    """A dataset, one of its files or one of its options is invalid.

    The message names the file or option and the problem; ``field`` is
    ``"dataset"`` for a file or its contents, ``"dataset_options.<key>"`` for
    an option.
    """


def option_field(key: str) -> str:
    """The spec field of a dataset option: ``"dataset_options.<key>"``."""
    return f"dataset_options.{key}"


def check_options(
    options: Mapping[str, Any],
    schema: Mapping[str, Constraint],
    *,
    dataset: str,
    nullable: bool = False,
    checkers: Mapping[str, Callable[[Any, str], None]] | None = None,
) -> None:
    """Check dataset options against a loader's schema, reading no file.

    Parameters
    ----------
    options : mapping
        The options, as in ``spec.dataset_options``.
    schema : mapping of str to Constraint
        The loader's options.
    dataset : str
        What the options are for, named in the unknown-option message.
    nullable : bool, default=False
        Whether None is accepted for every option (it means "the loader decides").
    checkers : mapping of str to callable, optional
        ``checker(value, field)`` replacing the constraint's check of an option
        whose values a single constraint cannot describe (lists, for instance).

    Raises
    ------
    DatasetError
        With ``field="dataset_options.<key>"`` for the first unknown key or bad value.
    """
    for key, value in options.items():
        field = option_field(str(key))
        if key not in schema:
            raise DatasetError.at(field, f"unknown option for {dataset}; allowed: {', '.join(schema)}")
        if value is None and nullable:
            continue
        if checkers and key in checkers:
            checkers[key](value, field)
        else:
            schema[key].check(value, DatasetError, field=field)


@dataclass
class Dataset:
    """Images and labels with a train/test split (and an optional validation split).

    Images are float32 arrays (N, C, H, W) in [0, 1]; labels are int64 (N,).

    Parameters
    ----------
    name : str
        Display name.
    x_train, y_train, x_test, y_test : ndarray
        The splits.
    class_names : tuple of str, default=CLASS_NAMES
        Name of label k at position k.
    x_val, y_val : ndarray, optional
        A validation split, when the source has one.
    source : str, default=""
        Where the data came from (``"synthetic-cells"``, ``"folder:<path>"``,
        ``"npz:<path>"`` or a registered id).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    source: str = ""

    @property
    def channels(self) -> int:
        """Number of image channels."""
        return int(self.x_train.shape[1])

    @property
    def size(self) -> int:
        """Image height (= width) in pixels."""
        return int(self.x_train.shape[-1])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def probe_indices(labels: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """Pick a fixed, class-balanced probe set from held-out labels.

    Parameters
    ----------
    labels : ndarray of int
        Labels of the held-out (test) split.
    size : int
        Probe size; each class gets ``size // n_classes`` images (fewer if a
        class has fewer), the shortfall filled at random from the images left
        over (so from the larger classes).
    seed : int, default=0
        Seed of the choice.

    Returns
    -------
    ndarray of int64
        Sorted indices into ``labels``.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = size // max(1, len(classes))
    chosen, rest = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        chosen.append(idx[:per_class])
        rest.append(idx[per_class:])
    picked = np.concatenate(chosen)
    missing = min(size, len(labels)) - len(picked)
    if missing > 0:
        picked = np.concatenate([picked, rng.permutation(np.concatenate(rest))[:missing]])
    return np.sort(picked).astype(np.int64)
