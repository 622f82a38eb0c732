"""Tests of akp.analysis.layers: layer-by-layer CKA between two runs, and the layers it must leave out."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from akp.analysis.layers import LayerCKA, common_epochs, layer_cka
from akp.cka import CKAError, cka_cross
from akp.store import StoreError


class Tweaked:
    """A read-only view of a real store whose representations can be altered for one run.

    ``drop``: {(layer, epoch)} not captured; ``values``: {(layer, epoch): array} replacing the stored one;
    ``broken``: {(layer, epoch)} raising an error when read. All apply to ``run_id`` only.
    """

    def __init__(self, store: Any, run_id: str, *, drop=(), values=None, broken=()) -> None:
        self.store, self.run_id = store, run_id
        self.drop, self.values, self.broken = set(drop), dict(values or {}), set(broken)
        self.reads = 0

    def layers(self, run_id: str) -> list[str]:
        return [lay for lay in self.store.layers(run_id) if self.representation_epochs(run_id, lay)]

    def representation_epochs(self, run_id: str, layer: str) -> list[int]:
        epochs = self.store.representation_epochs(run_id, layer)
        return [e for e in epochs if run_id != self.run_id or (layer, e) not in self.drop]

    def representations(self, run_id: str, layer: str, epoch: int | None = None) -> np.ndarray:
        self.reads += 1
        if run_id == self.run_id and (layer, epoch) in self.broken:
            raise StoreError(f"{layer}@{epoch}: damaged file")
        if run_id == self.run_id and (layer, epoch) in self.values:
            return self.values[(layer, epoch)]
        return self.store.representations(run_id, layer, epoch=epoch)


@pytest.fixture(scope="module")
def two_runs(smoke_store) -> tuple[Any, str, str]:
    """(store, a run of the first condition, a run of the other condition)."""
    store, experiment_id = smoke_store
    runs = store.runs(experiment_id)
    other = next(r for r in runs if r["condition"] != runs[0]["condition"])
    return store, runs[0]["run_id"], other["run_id"]


def test_layer_cka_matches_cka_cross_at_the_latest_common_epoch(two_runs) -> None:
    store, a, b = two_runs
    assert common_epochs(store, a, b) == [-1, 0, 1]  # -1: both untrained networks
    result = layer_cka(store, a, b)
    assert isinstance(result, LayerCKA) and result.epoch == 1 and result.skipped == []
    layers_a, layers_b, matrix, skipped, epoch = result
    assert layers_a == store.layers(a) and layers_b == store.layers(b)
    expected = cka_cross([store.representations(a, lay, epoch=1) for lay in layers_a],
                         [store.representations(b, lay, epoch=1) for lay in layers_b], device="cpu")
    np.testing.assert_allclose(matrix, expected, atol=1e-6)
    assert matrix.shape == (len(layers_a), len(layers_b)) and np.all((matrix >= -1e-6) & (matrix <= 1 + 1e-6))
    # A run against itself: ones on the diagonal; another epoch gives other values.
    self_result = layer_cka(store, a, a, epoch=0)
    np.testing.assert_allclose(np.diag(self_result.matrix), 1.0, atol=1e-5)
    assert not np.allclose(layer_cka(store, a, b, epoch=0).matrix, matrix)
    debiased = layer_cka(store, a, b, debiased=True).matrix
    assert debiased.shape == matrix.shape and not np.allclose(debiased, matrix)


def test_layer_not_captured_at_that_epoch_is_skipped(two_runs) -> None:
    store, a, b = two_runs
    view = Tweaked(store, b, drop={("conv2", 1)})
    result = layer_cka(view, a, b, epoch=1)
    assert result.layers_a == store.layers(a)
    assert result.layers_b == [lay for lay in store.layers(b) if lay != "conv2"]
    assert result.matrix.shape == (len(result.layers_a), len(result.layers_b))
    (skip,) = result.skipped
    assert skip["run"] == "B" and skip["run_id"] == b and skip["layer"] == "conv2"
    assert "not captured at epoch 1" in skip["reason"]
    # The other layers keep their values.
    full = layer_cka(store, a, b, epoch=1)
    keep = [store.layers(b).index(lay) for lay in result.layers_b]
    np.testing.assert_allclose(result.matrix, full.matrix[:, keep], atol=1e-6)
    # An epoch neither run captured: every layer skipped, an empty matrix, no error.
    missing = layer_cka(store, a, b, epoch=7)
    assert missing.layers_a == missing.layers_b == [] and missing.matrix.shape == (0, 0)
    assert len(missing.skipped) == len(store.layers(a)) + len(store.layers(b))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_layer_with_nan_or_inf_is_skipped(two_runs, bad: float) -> None:
    store, a, b = two_runs
    x = store.representations(a, "embedding", epoch=1).copy()
    x[3, 0] = bad
    view = Tweaked(store, a, values={("embedding", 1): x})
    result = layer_cka(view, a, b, epoch=1)
    assert "embedding" not in result.layers_a and result.layers_b == store.layers(b)
    assert np.isfinite(result.matrix).all()
    (skip,) = result.skipped
    assert (skip["run"], skip["layer"]) == ("A", "embedding") and "NaN or inf" in skip["reason"]


def test_diverged_run_whose_every_layer_is_bad_gives_an_empty_result(two_runs) -> None:
    store, a, b = two_runs
    values = {(lay, 1): np.full_like(store.representations(b, lay, epoch=1), np.nan) for lay in store.layers(b)}
    result = layer_cka(Tweaked(store, b, values=values), a, b)
    assert result.layers_b == [] and result.matrix.shape == (len(store.layers(a)), 0)
    assert {s["layer"] for s in result.skipped} == set(store.layers(b))


def test_unreadable_or_mismatched_layers_are_skipped_and_constant_gives_nan(two_runs) -> None:
    store, a, b = two_runs
    conv1 = store.representations(b, "conv1", epoch=1)
    view = Tweaked(store, b, broken={("conv2", 1)},
                   values={("logits", 1): conv1[:-5],                     # fewer probe rows
                           ("embedding", 1): np.ones_like(conv1)})       # constant: CKA undefined
    result = layer_cka(view, a, b, epoch=1)
    assert result.layers_b == ["conv1", "embedding"]
    reasons = {s["layer"]: s["reason"] for s in result.skipped}
    assert "could not be read" in reasons["conv2"] and "damaged" in reasons["conv2"]
    assert "probe rows" in reasons["logits"]
    assert np.isnan(result.matrix[:, 1]).all() and np.isfinite(result.matrix[:, 0]).all()


def test_runs_without_a_common_epoch(two_runs) -> None:
    store, a, b = two_runs
    view = Tweaked(store, b, drop={(lay, e) for lay in store.layers(b) for e in (-1, 0, 1)})
    assert common_epochs(view, a, b) == []
    result = layer_cka(view, a, b)
    assert result.epoch is None and result.matrix.shape == (0, 0) and result.layers_a == []
    assert {s["run"] for s in result.skipped} == {"A"}


def test_debiased_with_too_few_probe_images_raises_a_value_error(two_runs) -> None:
    store, a, b = two_runs
    values = {(lay, 1): store.representations(a, lay, epoch=1)[:3] for lay in store.layers(a)}
    other = {(lay, 1): store.representations(b, lay, epoch=1)[:3] for lay in store.layers(b)}

    class Both(Tweaked):
        def representations(self, run_id, layer, epoch=None):
            return (values if run_id == a else other)[(layer, epoch)]

    with pytest.raises(CKAError):
        layer_cka(Both(store, a), a, b, debiased=True)
