"""The map of runs: place runs in the plane so that their distances (e.g. 1 - CKA) are kept."""
from __future__ import annotations

from typing import Any

import numpy as np

from akp.distances import check_distance_matrix
from akp.projection.umap import ProjectionError, check_params, effective_n_neighbors, import_umap

__all__ = ["MIN_UMAP_RUNS", "model_map"]

#: Fewest runs for ``model_map(method="umap")``; with fewer, MDS is used.
MIN_UMAP_RUNS = 5
_MODEL_MAP_METHODS = ("mds", "umap")


def _classical_mds(d: np.ndarray) -> np.ndarray:
    """Torgerson's classical MDS in 2-D: exact for Euclidean distances."""
    m = d.shape[0]
    j = np.eye(m) - 1.0 / m
    b = -0.5 * j @ (d**2) @ j
    w, v = np.linalg.eigh(b)
    order = np.argsort(w)[::-1][:2]
    return v[:, order] * np.sqrt(np.clip(w[order], 0.0, None))


def _canonical(x: np.ndarray) -> np.ndarray:
    """Centre, rotate onto principal axes and fix signs, so the same
    distances always give the same picture (MDS is only defined up to a
    rotation and reflection)."""
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    x = x @ vt.T
    for c in range(x.shape[1]):
        if x[np.argmax(np.abs(x[:, c])), c] < 0:
            x[:, c] = -x[:, c]
    return x


def _umap_map(d: np.ndarray, *, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """UMAP of a precomputed distance matrix."""
    umap = import_umap()
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=effective_n_neighbors(n_neighbors, d.shape[0]),
        min_dist=min_dist,
        metric="precomputed",
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(d), dtype=np.float64)


def _mds_map(d: np.ndarray, *, seed: int) -> np.ndarray:
    """Metric MDS (SMACOF) started from classical MDS, in canonical orientation."""
    from sklearn.manifold import smacof  # noqa: PLC0415 - only needed here

    # All arguments explicit: their defaults moved between scikit-learn versions.
    coords, _ = smacof(
        d,
        metric=True,
        n_components=2,
        init=_classical_mds(d),
        n_init=1,
        max_iter=300,
        eps=1e-6,
        random_state=seed,
        normalized_stress=False,
    )
    return _canonical(np.asarray(coords, dtype=np.float64))


def model_map(
    distances: Any,
    *,
    method: str = "mds",
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> np.ndarray:
    """Place runs in the plane so that their distances (e.g. 1 - CKA) are kept.

    Parameters
    ----------
    distances : array-like of shape (M, M)
        Distances between runs: square, symmetric, finite, non-negative,
        zero diagonal (within :data:`akp.distances.DISTANCE_TOLERANCE`, relative).
    method : {"mds", "umap"}, default="mds"
        "mds": metric MDS (SMACOF from scikit-learn, started from classical
        MDS, so deterministic and exact when the distances are Euclidean).
        "umap": UMAP with a precomputed metric; with fewer than
        ``MIN_UMAP_RUNS`` runs MDS is used instead.
    seed : int, default=0
        Random seed for UMAP (and SMACOF).
    n_neighbors : int, default=15
        UMAP neighbourhood, clamped to M - 1.
    min_dist : float, default=0.1
        UMAP minimum distance, in [0, 1].

    Returns
    -------
    ndarray of shape (M, 2), float64
        Run i at row i. One run: ``[[0, 0]]``; two runs: on the x axis,
        symmetric about 0, at their distance.

    Raises
    ------
    ProjectionError
        A ValueError, if ``distances`` or ``method`` is invalid; the message and ``field`` name it.
    """
    if method not in _MODEL_MAP_METHODS:
        raise ProjectionError(f"method must be one of {_MODEL_MAP_METHODS}; got {method!r}", field="method")
    n_neighbors, min_dist, _, seed, _ = check_params(n_neighbors, min_dist, "euclidean", seed, None)
    d = check_distance_matrix(distances, name="distances", error=ProjectionError)
    m = d.shape[0]
    if m == 1:
        return np.zeros((1, 2))
    if m == 2:
        half = d[0, 1] / 2.0
        return np.array([[-half, 0.0], [half, 0.0]])
    if d.max() == 0.0:
        return np.zeros((m, 2))
    if method == "umap" and m >= MIN_UMAP_RUNS:
        return _umap_map(d, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    return _mds_map(d, seed=seed)
