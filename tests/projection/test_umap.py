"""Tests for akp.projection.umap: the lazy import, the fit and its checks."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from projection_fakes import N_EPOCHS, blobs

from akp import projection as P


def test_umap_is_not_imported_by_akp_projection() -> None:
    import subprocess

    code = "import akp.projection, sys; print('umap' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.split() == ["False", "False"]


def test_umap_shape_dtype_and_determinism(tmp_path: Path) -> None:
    x = blobs()
    a = P.umap_embedding(x, seed=1, n_epochs=N_EPOCHS, use_cache=False)
    b = P.umap_embedding(x, seed=1, n_epochs=N_EPOCHS, use_cache=False)
    c = P.umap_embedding(x, seed=2, n_epochs=N_EPOCHS, use_cache=False)
    assert a.shape == (60, 2) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_umap_separates_clusters() -> None:
    e = P.umap_embedding(blobs(), n_epochs=N_EPOCHS, use_cache=False).astype(np.float64)
    g1, g2 = e[:30], e[30:]
    within = (np.linalg.norm(g1 - g1.mean(0), axis=1).mean()
              + np.linalg.norm(g2 - g2.mean(0), axis=1).mean()) / 2
    between = np.linalg.norm(g1.mean(0) - g2.mean(0))
    assert between > 3 * within


def test_fewer_points_than_neighbours_clamps(tmp_path: Path) -> None:
    assert P.effective_n_neighbors(15, 10) == 9
    assert P.effective_n_neighbors(15, 100) == 15
    x = blobs(n=10)
    e = P.umap_embedding(x, n_neighbors=15, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert e.shape == (10, 2) and np.isfinite(e).all()
    # The clamped request is the same embedding as asking for 9 directly.
    np.testing.assert_array_equal(
        e, P.umap_embedding(x, n_neighbors=9, n_epochs=N_EPOCHS, use_cache=False)
    )
    tiny = P.umap_embedding(blobs(n=P.MIN_POINTS), n_epochs=N_EPOCHS, use_cache=False)
    assert tiny.shape == (P.MIN_POINTS, 2) and np.isfinite(tiny).all()


@pytest.mark.parametrize(
    ("features", "field"),
    [
        (np.zeros((3, 4)), "at least 4 points"),
        (np.zeros(10), "2-D"),
        (np.zeros((2, 3, 4)), "2-D"),
        (np.zeros((10, 0)), "at least 1 feature"),
        (np.array([[1.0, np.nan]] * 10), "finite"),
        (np.array([[1.0, np.inf]] * 10), "finite"),
        (np.array([["a", "b"]] * 10), "real numbers"),
    ],
)
def test_bad_features_raise_naming_the_field(features, field, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="features") as info:
        P.umap_embedding(features, cache_dir=tmp_path)
    assert field in str(info.value)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n_neighbors": 1}, "n_neighbors"),
        ({"n_neighbors": 2.5}, "n_neighbors"),
        ({"n_neighbors": True}, "n_neighbors"),
        ({"min_dist": -0.1}, "min_dist"),
        ({"min_dist": 1.5}, "min_dist"),
        ({"min_dist": "0.1"}, "min_dist"),
        ({"metric": "hamming-ish"}, "metric"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"n_epochs": 0}, "n_epochs"),
    ],
)
def test_bad_parameters_raise_naming_the_field(params, field) -> None:
    with pytest.raises(ValueError, match=field):
        P.umap_embedding(blobs(), use_cache=False, **params)


def test_bad_parameter_errors_are_akp_errors_with_the_field() -> None:
    from akp.errors import AKPError

    with pytest.raises(P.ProjectionError) as info:
        P.umap_embedding(blobs(), use_cache=False, n_neighbors=1)
    assert isinstance(info.value, AKPError) and info.value.field == "n_neighbors"
