"""Small specs for tests that train: the smoke preset, shrunk."""
from __future__ import annotations

from collections.abc import Sequence

from akp.experiment import ExperimentSpec, load_preset


def small_smoke_spec(name: str, *, epochs: int, seeds: Sequence[int], n_train: int, n_test: int = 48,
                     conditions: slice = slice(None)) -> ExperimentSpec:
    """The smoke preset with ``conditions`` of its two (steady, sigmoid-shock), few images, 16 probe images.

    Parameters
    ----------
    name : str
    epochs : int
    seeds : sequence of int
    n_train, n_test : int
        Synthetic images (32 px).
    conditions : slice, default=all
        Which of the preset's conditions to keep.

    Returns
    -------
    ExperimentSpec
        Validated.
    """
    spec = load_preset("smoke")
    spec.name = name
    spec.epochs = epochs
    spec.seeds = list(seeds)
    spec.dataset_options = {"n_train": n_train, "n_test": n_test, "size": 32, "seed": 0}
    spec.probe_size = 16
    spec.conditions = spec.conditions[conditions]
    spec.validate()
    return spec
