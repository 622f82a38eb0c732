"""Tests for akp.projection.cache: hits, misses, broken files, concurrency."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from projection_fakes import N_EPOCHS, blobs

import akp.projection.umap as projection_umap
from akp import projection as P
from akp.paths import TMP_PREFIX


def test_cache_hit_skips_fit_and_returns_same(tmp_path: Path, count_fits, monkeypatch) -> None:
    x = blobs()
    first = P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert count_fits["umap"] == 1
    files = list(tmp_path.glob("umap-*.npy"))
    assert len(files) == 1
    assert not list(tmp_path.glob(f"{TMP_PREFIX}*"))  # atomic write left nothing behind

    def boom(*args, **kwargs):
        raise AssertionError("fit called on a cache hit")

    monkeypatch.setattr(projection_umap, "_fit_umap", boom)
    again = P.umap_embedding(x.copy(), n_epochs=N_EPOCHS, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)
    assert again.dtype == np.float32


def test_cache_misses_when_data_or_any_parameter_changes(tmp_path: Path, count_fits) -> None:
    x = blobs()
    base = dict(n_neighbors=10, min_dist=0.1, metric="euclidean", seed=0, n_epochs=N_EPOCHS)
    P.umap_embedding(x, cache_dir=tmp_path, **base)
    assert count_fits["umap"] == 1

    changed = x.copy()
    changed[3, 2] += 1e-3
    variants = [
        (changed, base),
        (x.astype(np.float64), base),  # same values, other dtype
        (x[:, :6], base),  # other shape
        (x, {**base, "n_neighbors": 11}),
        (x, {**base, "min_dist": 0.2}),
        (x, {**base, "metric": "cosine"}),
        (x, {**base, "seed": 1}),
        (x, {**base, "n_epochs": N_EPOCHS + 1}),
    ]
    for i, (data, params) in enumerate(variants, start=2):
        P.umap_embedding(data, cache_dir=tmp_path, **params)
        assert count_fits["umap"] == i, f"variant {i - 2} should miss the cache"
    assert len(list(tmp_path.glob("umap-*.npy"))) == len(variants) + 1
    # ...and every variant now hits.
    for data, params in variants:
        P.umap_embedding(data, cache_dir=tmp_path, **params)
    assert count_fits["umap"] == len(variants) + 1


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not a numpy file at all", "wrong-shape", "wrong-dtype", "pickled"],
)
def test_corrupt_cache_file_is_ignored_and_rebuilt(tmp_path: Path, count_fits, garbage) -> None:
    x = blobs()
    good = P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    (path,) = tmp_path.glob("umap-*.npy")
    if garbage == "wrong-shape":
        np.save(path, np.zeros((5, 2), np.float32))
    elif garbage == "wrong-dtype":
        np.save(path, good.astype(np.float64))
    elif garbage == "pickled":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(garbage)
    rebuilt = P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert count_fits["umap"] == 2
    np.testing.assert_array_equal(rebuilt, good)
    # The file was rewritten and is now valid.
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), good)


def test_default_cache_dir_follows_akp_home(tmp_path: Path, monkeypatch, count_fits) -> None:
    monkeypatch.setenv("AKP_HOME", str(tmp_path))
    assert P.default_cache_dir() == tmp_path / "cache" / "umap"
    P.umap_embedding(blobs(), n_epochs=N_EPOCHS)
    assert len(list((tmp_path / "cache" / "umap").glob("umap-*.npy"))) == 1


def test_concurrent_identical_requests_fit_once(tmp_path: Path, count_fits) -> None:
    x = blobs()
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path))
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count_fits["umap"] == 1
    assert len(results) == 4
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
