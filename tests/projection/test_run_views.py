"""Tests for akp.projection.run_views: embeddings of a stored run, served from its cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from projection_fakes import N_EPOCHS, FakeStore, blobs

import akp.projection.umap as projection_umap
from akp import projection as P


def test_cache_run_embedding_then_view_from_cache(tmp_path: Path, count_fits, monkeypatch) -> None:
    reps = {("r1", "embedding"): {1: blobs(seed=1), 3: blobs(seed=3)}}
    store = FakeStore(tmp_path, reps)
    cached = P.cache_run_embedding(store, "r1")
    assert store.calls == [("r1", "embedding", None)]
    assert count_fits["umap"] == 1
    assert len(list((tmp_path / "cache" / "umap").glob("umap-*.npy"))) == 1
    # The last epoch's representations were used.
    np.testing.assert_array_equal(
        cached, P.umap_embedding(blobs(seed=3), cache_dir=store.cache_dir("umap"))
    )
    monkeypatch.setattr(projection_umap, "_fit_umap", lambda *a, **k: pytest.fail("fit on a cached view"))
    view = P.run_embedding(store, "r1")
    np.testing.assert_array_equal(view, cached)


def test_run_embedding_epoch_and_params(tmp_path: Path, count_fits) -> None:
    reps = {("r1", "conv2"): {1: blobs(seed=1, d=4), 3: blobs(seed=3, d=4)}}
    store = FakeStore(tmp_path, reps)
    e1 = P.run_embedding(store, "r1", layer="conv2", epoch=1, n_epochs=N_EPOCHS, seed=5)
    assert store.calls[-1] == ("r1", "conv2", 1)
    np.testing.assert_array_equal(
        e1, P.umap_embedding(blobs(seed=1, d=4), n_epochs=N_EPOCHS, seed=5, use_cache=False)
    )
    epochs, frames = P.run_aligned_embeddings(store, "r1", layer="conv2", n_epochs=N_EPOCHS)
    assert epochs == [1, 3] and [f.shape for f in frames] == [(60, 2), (60, 2)]
    assert count_fits == {"umap": 2, "aligned": 1}  # one of them uncached
