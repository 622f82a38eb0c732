"""Tests for akp.projection.model_map: the map of runs."""
from __future__ import annotations

import numpy as np
import pytest

from akp import projection as P


def two_groups(per_group: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.normal(scale=0.05, size=(2 * per_group, 6))
    pts[per_group:, 0] += 1.0
    return np.linalg.norm(pts[:, None] - pts[None], axis=-1)


def within_between(coords: np.ndarray, per_group: int) -> tuple[float, float]:
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    a, b = slice(0, per_group), slice(per_group, None)
    iu = np.triu_indices(per_group, 1)
    within = (d[a, a][iu].mean() + d[b, b][iu].mean()) / 2
    return float(within), float(d[a, b].mean())


@pytest.mark.parametrize("method", ["mds", "umap"])
def test_model_map_separates_two_tight_groups(method: str) -> None:
    d = two_groups()
    coords = P.model_map(d, method=method, seed=0)
    assert coords.shape == (10, 2) and coords.dtype == np.float64
    within, between = within_between(coords, 5)
    assert within < 0.2 * between
    np.testing.assert_array_equal(coords, P.model_map(d, method=method, seed=0))


def test_model_map_mds_keeps_euclidean_distances() -> None:
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(6, 2))
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    coords = P.model_map(d)
    got = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(got, d, atol=1e-6)
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-9)


def test_model_map_small_cases() -> None:
    np.testing.assert_array_equal(P.model_map([[0.0]]), [[0.0, 0.0]])
    np.testing.assert_allclose(P.model_map([[0, 0.4], [0.4, 0]], method="umap"),
                               [[-0.2, 0.0], [0.2, 0.0]])
    np.testing.assert_array_equal(P.model_map(np.zeros((4, 4))), np.zeros((4, 4))[:, :2])
    # Too few runs for UMAP: MDS is used, exactly the MDS answer.
    d = two_groups(per_group=2)
    np.testing.assert_array_equal(P.model_map(d, method="umap"), P.model_map(d, method="mds"))


@pytest.mark.parametrize(
    ("distances", "kwargs", "message"),
    [
        (np.zeros((3, 2)), {}, "square"),
        (np.zeros(3), {}, "square"),
        (np.zeros((0, 0)), {}, "at least 1 run"),
        ([[0, 1], [2, 0]], {}, "symmetric"),
        ([[0, -1], [-1, 0]], {}, "non-negative"),
        ([[0, np.nan], [np.nan, 0]], {}, "finite"),
        ([[1, 1], [1, 1]], {}, "zero diagonal"),
        ([["a"]], {}, "distances"),
        (np.zeros((3, 3)), {"method": "tsne"}, "method"),
    ],
)
def test_model_map_validation(distances, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        P.model_map(distances, **kwargs)
    assert "distances" in str(info.value) or "method" in str(info.value)


def test_model_map_tolerates_rounding_asymmetry() -> None:
    d = two_groups()
    noisy = d + np.triu(np.full_like(d, 1e-9), 1)
    coords = P.model_map(noisy)
    np.testing.assert_allclose(coords, P.model_map(d), atol=1e-6)
