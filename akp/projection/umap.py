"""UMAP of one set of representations: the lazy umap-learn import, the parameter checks, the fit.

umap-learn costs about 20 s to import, so it is imported by :func:`import_umap`
on first use, never when ``akp`` is imported. (This module's name is
``akp.projection.umap``; ``import umap`` inside it is umap-learn, since imports
are absolute.)
"""
from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import numpy as np

from akp.errors import AKPError
from akp.projection.cache import cached

__all__ = [
    "ALLOWED_METRICS", "MIN_POINTS", "ProjectionError", "check_features", "check_int", "check_params",
    "effective_n_neighbors", "import_umap", "umap_embedding",
]

#: Fewest points a UMAP accepts: below this the neighbour graph and the
#: spectral initialisation have nothing to work with.
MIN_POINTS = 4
#: Metrics accepted for representations (names as umap-learn spells them).
ALLOWED_METRICS = (
    "euclidean",
    "cosine",
    "correlation",
    "manhattan",
    "chebyshev",
    "canberra",
    "braycurtis",
)
# Largest seed umap-learn's random_state takes.
_MAX_SEED = 2**32 - 1


class ProjectionError(AKPError):
    """Invalid input to a projection function (a ValueError); ``field`` names the argument."""


_IMPORT_LOCK = threading.Lock()


def import_umap() -> Any:
    """Import umap-learn on first use (about 20 s cold) and silence the
    warnings it gives for choices made here on purpose."""
    with _IMPORT_LOCK:
        # Installed on every call: re-adding a filter is idempotent, and
        # callers such as pytest reset the filters between uses.
        # (warnings.catch_warnings is not thread-safe; fits run in threads.)
        warnings.filterwarnings("ignore", message=r"n_jobs value .* overridden", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"using precomputed metric", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"Tensorflow not installed", category=ImportWarning)
        import umap  # noqa: PLC0415  (lazy on purpose: see module docstring)

    return umap


# ---- checks ------------------------------------------------------------------------------------


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``, else ProjectionError on ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ProjectionError(f"{name} must be an integer >= {minimum}; got {value!r}", field=name)
    if value < minimum:
        raise ProjectionError(f"{name} must be an integer >= {minimum}; got {value}", field=name)
    return int(value)


def check_params(
    n_neighbors: Any, min_dist: Any, metric: Any, seed: Any, n_epochs: Any
) -> tuple[int, float, str, int, int | None]:
    """The UMAP parameters, checked and normalised: (n_neighbors, min_dist, metric, seed, n_epochs)."""
    n_neighbors = check_int("n_neighbors", n_neighbors, 2)
    if isinstance(min_dist, bool) or not isinstance(min_dist, (int, float, np.floating)):
        raise ProjectionError(f"min_dist must be a number in [0, 1]; got {min_dist!r}", field="min_dist")
    min_dist = float(min_dist)
    # umap-learn requires min_dist <= spread, and spread is fixed at 1.0 here.
    if not 0.0 <= min_dist <= 1.0:
        raise ProjectionError(f"min_dist must be a number in [0, 1]; got {min_dist}", field="min_dist")
    if metric not in ALLOWED_METRICS:
        raise ProjectionError(f"metric must be one of {ALLOWED_METRICS}; got {metric!r}", field="metric")
    seed = check_int("seed", seed, 0)
    if seed > _MAX_SEED:
        raise ProjectionError(f"seed must be an integer in [0, 2**32 - 1]; got {seed}", field="seed")
    if n_epochs is not None:
        n_epochs = check_int("n_epochs", n_epochs, 1)
    return n_neighbors, min_dist, metric, seed, n_epochs


def check_features(features: Any, name: str = "features") -> np.ndarray:
    """Return ``features`` as an array after checking it is a finite, real,
    2-D (n_points, n_features) array with at least MIN_POINTS points."""
    try:
        x = np.asarray(features)
    except (TypeError, ValueError) as exc:
        raise ProjectionError(f"{name} must be a 2-D numeric array; {exc}", field=name) from exc
    if x.ndim != 2:
        raise ProjectionError(f"{name} must be a 2-D array (n_points, n_features); got shape {x.shape}", field=name)
    if x.dtype.kind not in "biuf":
        raise ProjectionError(f"{name} must hold real numbers; got dtype {x.dtype}", field=name)
    n, d = x.shape
    if n < MIN_POINTS:
        raise ProjectionError(f"{name} must have at least {MIN_POINTS} points (rows); got {n}", field=name)
    if d < 1:
        raise ProjectionError(f"{name} must have at least 1 feature (column); got {d}", field=name)
    if not np.isfinite(x).all():
        raise ProjectionError(f"{name} must be finite; it holds NaN or infinite values", field=name)
    return x


def effective_n_neighbors(n_neighbors: int, n_points: int) -> int:
    """The number of neighbours actually used for ``n_points`` points.

    Rule: ``min(n_neighbors, n_points - 1)``, since a point has at most
    ``n_points - 1`` neighbours (umap-learn applies the same rule, with a
    warning).

    Parameters
    ----------
    n_neighbors : int
        Requested number of neighbours.
    n_points : int
        Number of points to embed.

    Returns
    -------
    int
        The clamped number of neighbours.
    """
    return max(1, min(int(n_neighbors), int(n_points) - 1))


# ---- the fit -----------------------------------------------------------------------------------


def _fit_umap(
    x: np.ndarray,
    *,
    n_neighbors: int,
    min_dist: float,
    metric: str,
    seed: int,
    n_epochs: int | None,
) -> np.ndarray:
    """One UMAP fit; n_neighbors already clamped. Deterministic: a fixed
    random_state makes umap-learn run single-threaded."""
    umap = import_umap()
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        n_epochs=n_epochs,
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,
    )
    emb = reducer.fit_transform(x)
    return np.ascontiguousarray(emb, dtype=np.float32)


def umap_embedding(
    features: Any,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
    n_epochs: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> np.ndarray:
    """Two-dimensional UMAP of one set of representations, cached on disk.

    Parameters
    ----------
    features : array-like of shape (n_points, n_features)
        Finite real values, at least ``MIN_POINTS`` rows (e.g. the probe-set
        representations of one layer).
    n_neighbors : int, default=15
        Size of the local neighbourhood, >= 2. Clamped to ``n_points - 1``
        when there are fewer points (see :func:`effective_n_neighbors`).
    min_dist : float, default=0.1
        Minimum distance between embedded points, in [0, 1].
    metric : str, default="euclidean"
        One of ``ALLOWED_METRICS``. Only "euclidean" is compiled by
        :func:`akp.projection.warmup.warm_up`; another metric compiles on its
        first fit (seconds).
    seed : int, default=0
        Random seed in [0, 2**32 - 1]; the same seed gives the same result.
    n_epochs : int or None, default=None
        Optimisation epochs (None: umap-learn's default, 500 for small data).
    cache_dir : path-like or None, default=None
        Cache directory; callers with a store pass ``store.cache_dir("umap")``.
        None: :func:`akp.projection.cache.default_cache_dir`.
    use_cache : bool, default=True
        False fits without reading or writing the cache.

    Returns
    -------
    ndarray of shape (n_points, 2), float32
        The embedding, row i for point i.

    Raises
    ------
    ProjectionError
        A ValueError, if ``features`` or a parameter is invalid; the message and ``field`` name it.
    """
    x = check_features(features)
    n_neighbors, min_dist, metric, seed, n_epochs = check_params(n_neighbors, min_dist, metric, seed, n_epochs)
    k = effective_n_neighbors(n_neighbors, x.shape[0])
    params = {"n_neighbors": k, "min_dist": min_dist, "metric": metric, "seed": seed, "n_epochs": n_epochs}
    return cached(
        "umap",
        [x],
        params,
        (x.shape[0], 2),
        lambda: _fit_umap(x, n_neighbors=k, min_dist=min_dist, metric=metric, seed=seed, n_epochs=n_epochs),
        cache_dir,
        use_cache,
    )
