"""Two-dimensional projections: UMAP of representations, aligned UMAP over
epochs or runs, and a map of the runs themselves.

umap-learn costs about 20 s to import and about 10-15 s of numba compilation on
its first fit in a process. Nobody should wait for that, so:

- ``umap`` is imported lazily, inside the functions that fit, never when
  ``akp`` is imported;
- :func:`start_warm_up` compiles the kernels in a daemon thread at app
  start-up, and :func:`is_warm` tells whether it is done;
- every embedding is cached on disk under a content hash of its input and
  parameters, so a view that asks again gets it back in milliseconds.

Cache files are ``.npy`` arrays written atomically (temporary file, then
``os.replace``) and read with ``allow_pickle=False``; a file that cannot be
read, or holds the wrong shape or dtype, is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ALLOWED_METRICS",
    "MIN_POINTS",
    "MIN_UMAP_RUNS",
    "aligned_umap",
    "cache_run_embedding",
    "default_cache_dir",
    "effective_n_neighbors",
    "is_warm",
    "model_map",
    "run_aligned_embeddings",
    "run_embedding",
    "start_warm_up",
    "umap_embedding",
    "warm_up",
    "warm_up_status",
]

log = logging.getLogger(__name__)

#: Fewest points a UMAP accepts: below this the neighbour graph and the
#: spectral initialisation have nothing to work with.
MIN_POINTS = 4
#: Fewest runs for ``model_map(method="umap")``; with fewer, MDS is used.
MIN_UMAP_RUNS = 5
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
_MODEL_MAP_METHODS = ("mds", "umap")
# Bump when the algorithm or the cache layout changes: old files then miss.
_CACHE_VERSION = 1
# AlignedUMAP's own default number of epochs.
_ALIGNED_DEFAULT_EPOCHS = 200


# --------------------------------------------------------------------------
# Lazy umap import
# --------------------------------------------------------------------------

_IMPORT_LOCK = threading.Lock()


def _umap() -> Any:
    """Import umap-learn on first use (about 20 s cold) and silence the
    warnings it gives for choices made here on purpose."""
    with _IMPORT_LOCK:
        # Installed on every call: re-adding a filter is idempotent, and
        # callers such as pytest reset the filters between uses.
        # (warnings.catch_warnings is not thread-safe; fits run in threads.)
        warnings.filterwarnings(
            "ignore", message=r"n_jobs value .* overridden", category=UserWarning
        )
        warnings.filterwarnings(
            "ignore", message=r"using precomputed metric", category=UserWarning
        )
        warnings.filterwarnings(
            "ignore", message=r"Tensorflow not installed", category=ImportWarning
        )
        import umap  # noqa: PLC0415  (lazy on purpose: see module docstring)

    return umap


def _umap_version() -> str:
    # Read from the package metadata: cheap, and does not import umap.
    try:
        return metadata.version("umap-learn")
    except metadata.PackageNotFoundError:  # pragma: no cover - required dependency
        return "unknown"


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def _check_params(
    n_neighbors: Any, min_dist: Any, metric: Any, seed: Any, n_epochs: Any
) -> tuple[int, float, str, int, int | None]:
    n_neighbors = _check_int("n_neighbors", n_neighbors, 2)
    if isinstance(min_dist, bool) or not isinstance(min_dist, (int, float, np.floating)):
        raise ValueError(f"min_dist must be a number in [0, 1]; got {min_dist!r}")
    min_dist = float(min_dist)
    # umap-learn requires min_dist <= spread, and spread is fixed at 1.0 here.
    if not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"min_dist must be a number in [0, 1]; got {min_dist}")
    if metric not in ALLOWED_METRICS:
        raise ValueError(f"metric must be one of {ALLOWED_METRICS}; got {metric!r}")
    seed = _check_int("seed", seed, 0)
    if seed > 2**32 - 1:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1]; got {seed}")
    if n_epochs is not None:
        n_epochs = _check_int("n_epochs", n_epochs, 1)
    return n_neighbors, min_dist, metric, seed, n_epochs


def _check_features(features: Any, name: str = "features") -> np.ndarray:
    """Return ``features`` as an array after checking it is a finite, real,
    2-D (n_points, n_features) array with at least MIN_POINTS points."""
    try:
        x = np.asarray(features)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 2-D numeric array; {exc}") from exc
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_points, n_features); got shape {x.shape}"
        )
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {x.dtype}")
    n, d = x.shape
    if n < MIN_POINTS:
        raise ValueError(f"{name} must have at least {MIN_POINTS} points (rows); got {n}")
    if d < 1:
        raise ValueError(f"{name} must have at least 1 feature (column); got {d}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
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


# --------------------------------------------------------------------------
# Disk cache
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$AKP_HOME/cache/umap``, or ``./akp-data/cache/umap`` without AKP_HOME.

    Returns
    -------
    Path
        The directory (not created here).
    """
    home = os.environ.get("AKP_HOME") or "akp-data"
    return Path(home) / "cache" / "umap"


def _hash_key(kind: str, arrays: Sequence[np.ndarray], params: dict[str, Any]) -> str:
    h = hashlib.sha256()
    header = {"kind": kind, "version": _CACHE_VERSION, "umap": _umap_version(), **params}
    h.update(json.dumps(header, sort_keys=True).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"|{a.dtype.str}|{a.shape}|".encode())
        # Hash the buffer in place: no copy of a large representation.
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _load(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None when absent, unreadable or not as expected."""
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any broken file is a miss, never a crash
        log.warning("ignoring unreadable UMAP cache file %s: %s", path, exc)
        return None
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float32:
        log.warning("ignoring UMAP cache file %s with unexpected shape or dtype", path)
        return None
    return arr


def _save(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` to ``path`` atomically; a failure only costs the cache."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        log.warning("could not write UMAP cache file %s: %s", path, exc)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# One lock per cache key, so two threads asking for the same embedding (the
# job manager at run end and a page view) fit it once.
_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_LOCKS_GUARD = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _KEY_LOCKS_GUARD:
        lock = _KEY_LOCKS.get(key)
        if lock is None:
            lock = _KEY_LOCKS[key] = threading.Lock()
        return lock


def _cached(
    kind: str,
    arrays: Sequence[np.ndarray],
    params: dict[str, Any],
    shape: tuple[int, ...],
    compute: Callable[[], np.ndarray],
    cache_dir: str | os.PathLike[str] | None,
    use_cache: bool,
) -> np.ndarray:
    if not use_cache:
        return compute()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _hash_key(kind, arrays, params)
    path = directory / f"{kind}-{key}.npy"
    hit = _load(path, shape)
    if hit is not None:
        return hit
    with _key_lock(key):
        hit = _load(path, shape)  # another thread may have just written it
        if hit is not None:
            return hit
        result = compute()
        _save(path, result)
        return result


# --------------------------------------------------------------------------
# Fitting (the only code that touches umap-learn)
# --------------------------------------------------------------------------


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
    umap = _umap()
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


_ALIGNED_EPOCH_FN: Any = None


def _aligned_epoch_fn() -> Any:
    """The aligned-UMAP epoch kernel, compiled once per process.

    umap-learn's ``optimize_layout_aligned_euclidean`` wraps its epoch
    function in a fresh ``numba.njit`` on every call, so each AlignedUMAP fit
    pays a compilation of a second or more; keeping one dispatcher here
    compiles it once (and warm_up can do it ahead of time).
    """
    global _ALIGNED_EPOCH_FN
    if _ALIGNED_EPOCH_FN is None:
        import numba  # noqa: PLC0415 - heavy, only needed with umap
        from umap import layouts  # noqa: PLC0415

        # The kernel has no prange loop, so parallel=False changes nothing
        # but the compile time. cache=True keeps the machine code on disk
        # (numba's cache next to umap, or NUMBA_CACHE_DIR) for later processes.
        _ALIGNED_EPOCH_FN = numba.njit(
            layouts._optimize_layout_aligned_euclidean_single_epoch,
            fastmath=True,
            parallel=False,
            cache=True,
        )
    return _ALIGNED_EPOCH_FN


def _fit_aligned(
    xs: Sequence[np.ndarray],
    *,
    n_neighbors: int,
    min_dist: float,
    metric: str,
    seed: int,
    n_epochs: int | None,
    alignment_regularisation: float,
    alignment_window_size: int,
) -> list[np.ndarray]:
    """AlignedUMAP with identity relations between consecutive frames.

    Follows ``umap.AlignedUMAP.fit`` step by step, with two changes: the
    per-frame UMAPs only build their graphs (AlignedUMAP also optimises a
    per-frame layout that it then throws away), and the curve parameters
    a, b follow ``min_dist`` (AlignedUMAP always uses those of 0.1).
    """
    umap = _umap()
    import numba  # noqa: PLC0415
    from umap.aligned_umap import (  # noqa: PLC0415
        build_neighborhood_similarities,
        expand_relations,
        procrustes_align,
    )
    from umap.spectral import spectral_layout  # noqa: PLC0415
    from umap.umap_ import find_ab_params, make_epochs_per_sample  # noqa: PLC0415

    epochs = n_epochs if n_epochs is not None else _ALIGNED_DEFAULT_EPOCHS
    n = xs[0].shape[0]
    identity = {i: i for i in range(n)}
    dict_relations = [identity] * (len(xs) - 1)

    mappers = [
        umap.UMAP(
            n_components=2,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            metric=metric,
            n_epochs=epochs,
            random_state=seed,
            transform_seed=seed,
            n_jobs=1,
            transform_mode="graph",
        ).fit(x)
        for x in xs
    ]
    window_size = alignment_window_size
    relations = expand_relations(dict_relations, window_size)

    indptr_list = numba.typed.List.empty_list(numba.types.int32[::1])
    indices_list = numba.typed.List.empty_list(numba.types.int32[::1])
    heads = numba.typed.List.empty_list(numba.types.int32[::1])
    tails = numba.typed.List.empty_list(numba.types.int32[::1])
    epochs_per_samples = numba.typed.List.empty_list(numba.types.float64[::1])
    for mapper in mappers:
        graph = mapper.graph_
        coo = graph.tocoo()
        indptr_list.append(graph.indptr)
        indices_list.append(graph.indices)
        heads.append(coo.row)
        tails.append(coo.col)
        epochs_per_samples.append(make_epochs_per_sample(coo.data, epochs))

    # Same seeding as AlignedUMAP: transform_seed drives initialisation and
    # the optimiser's random state.
    rng = np.random.RandomState(seed)
    weights = build_neighborhood_similarities(indptr_list, indices_list, relations)

    def _init(i: int) -> np.ndarray:
        layout = spectral_layout(mappers[i]._raw_data, mappers[i].graph_, 2, rng, metric=metric)
        expansion = 10.0 / np.abs(layout).max()
        return (layout * expansion).astype(np.float32, order="C")

    embeddings = numba.typed.List.empty_list(numba.types.float32[:, ::1])
    embeddings.append(_init(0))
    for i in range(1, len(xs)):
        anchor_data = relations[i][window_size - 1]
        left = anchor_data[anchor_data >= 0]
        right = np.where(anchor_data >= 0)[0]
        aligned = procrustes_align(embeddings[-1], _init(i), np.vstack([left, right]))
        embeddings.append(np.ascontiguousarray(aligned, dtype=np.float32))

    int32 = np.iinfo(np.int32)
    rng_state = rng.randint(int32.min + 1, int32.max - 1, 3).astype(np.int64)
    a, b = find_ab_params(1.0, min_dist)
    negative_sample_rate = 5.0

    # The loop of umap.layouts.optimize_layout_aligned_euclidean, with the
    # kernel compiled once (see _aligned_epoch_fn).
    epoch_fn = _aligned_epoch_fn()
    per_neg = numba.typed.List.empty_list(numba.types.float32[::1])
    next_neg = numba.typed.List.empty_list(numba.types.float32[::1])
    next_sample = numba.typed.List.empty_list(numba.types.float32[::1])
    for eps in epochs_per_samples:
        per_neg.append((eps / negative_sample_rate).astype(np.float32))
        next_neg.append((eps / negative_sample_rate).astype(np.float32))
        next_sample.append(eps.astype(np.float32))
    alpha = 1.0
    for epoch in range(epochs):
        epoch_fn(
            embeddings,
            embeddings,
            heads,
            tails,
            epochs_per_samples,
            float(a),
            float(b),
            weights,
            relations,
            rng_state,
            1.0,  # gamma
            float(alignment_regularisation),
            2,  # dim
            True,  # move_other, as AlignedUMAP
            alpha,
            per_neg,
            next_neg,
            next_sample,
            epoch,
        )
        alpha = 1.0 - epoch / epochs

    out = []
    for mapper, emb in zip(mappers, embeddings, strict=True):
        emb = np.array(emb, dtype=np.float32)
        # As AlignedUMAP: points with no neighbour at all have no place.
        disconnected = np.asarray(mapper.graph_.sum(axis=1)).ravel() == 0
        emb[disconnected] = np.nan
        out.append(emb)
    return out


# --------------------------------------------------------------------------
# Public API: embeddings
# --------------------------------------------------------------------------


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
        :func:`warm_up`; another metric compiles on its first fit (seconds).
    seed : int, default=0
        Random seed in [0, 2**32 - 1]; the same seed gives the same result.
    n_epochs : int or None, default=None
        Optimisation epochs (None: umap-learn's default, 500 for small data).
    cache_dir : path-like or None, default=None
        Cache directory; callers with a store pass ``store.cache_dir("umap")``.
        None: :func:`default_cache_dir`.
    use_cache : bool, default=True
        False fits without reading or writing the cache.

    Returns
    -------
    ndarray of shape (n_points, 2), float32
        The embedding, row i for point i.

    Raises
    ------
    ValueError
        If ``features`` or a parameter is invalid; the message names it.
    """
    x = _check_features(features)
    n_neighbors, min_dist, metric, seed, n_epochs = _check_params(
        n_neighbors, min_dist, metric, seed, n_epochs
    )
    k = effective_n_neighbors(n_neighbors, x.shape[0])
    params = {"n_neighbors": k, "min_dist": min_dist, "metric": metric, "seed": seed,
              "n_epochs": n_epochs}
    return _cached(
        "umap",
        [x],
        params,
        (x.shape[0], 2),
        lambda: _fit_umap(x, n_neighbors=k, min_dist=min_dist, metric=metric, seed=seed,
                          n_epochs=n_epochs),
        cache_dir,
        use_cache,
    )


def aligned_umap(
    features_sequence: Sequence[Any],
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
    n_epochs: int | None = None,
    alignment_regularisation: float = 1e-2,
    alignment_window_size: int = 3,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
) -> list[np.ndarray]:
    """Aligned UMAP of the same points seen in several frames, cached on disk.

    The frames are, for example, the probe-set representations of one run at
    successive epochs, or of several runs at one epoch. Row i is the same
    probe image in every frame; consecutive frames are related by the
    identity ``{i: i}``, so the layouts move smoothly from frame to frame.

    Parameters
    ----------
    features_sequence : sequence of array-like, each (n_points, n_features_t)
        One array per frame, all with the same number of points (the number
        of features may differ).
    n_neighbors, min_dist, metric, seed, n_epochs, cache_dir, use_cache
        As in :func:`umap_embedding`; n_epochs None means 200 (AlignedUMAP's
        default).
    alignment_regularisation : float, default=1e-2
        Strength of the pull between a point's positions in nearby frames, > 0.
    alignment_window_size : int, default=3
        How many frames on each side are pulled together, >= 1.

    Returns
    -------
    list of ndarray of shape (n_points, 2), float32
        One embedding per frame, points in the input order. A single frame
        gives ``[umap_embedding(frame)]``.

    Raises
    ------
    ValueError
        If a frame or parameter is invalid; the message names it.
    """
    if isinstance(features_sequence, np.ndarray) and features_sequence.ndim == 3:
        features_sequence = list(features_sequence)
    if not isinstance(features_sequence, Sequence) or isinstance(features_sequence, (str, bytes)):
        raise ValueError("features_sequence must be a sequence of 2-D arrays (one per frame)")
    if len(features_sequence) == 0:
        raise ValueError("features_sequence must hold at least 1 frame; got 0")
    xs = [_check_features(f, f"features_sequence[{i}]") for i, f in enumerate(features_sequence)]
    n = xs[0].shape[0]
    for i, x in enumerate(xs):
        if x.shape[0] != n:
            raise ValueError(
                f"features_sequence[{i}] must have the same number of points as frame 0 "
                f"({n}); got {x.shape[0]}"
            )
    n_neighbors, min_dist, metric, seed, n_epochs = _check_params(
        n_neighbors, min_dist, metric, seed, n_epochs
    )
    if (
        isinstance(alignment_regularisation, bool)
        or not isinstance(alignment_regularisation, (int, float, np.floating))
        or not np.isfinite(alignment_regularisation)
        or alignment_regularisation <= 0
    ):
        raise ValueError(
            f"alignment_regularisation must be a finite number > 0; got {alignment_regularisation!r}"
        )
    alignment_window_size = _check_int("alignment_window_size", alignment_window_size, 1)
    if len(xs) == 1:
        return [
            umap_embedding(xs[0], n_neighbors=n_neighbors, min_dist=min_dist, metric=metric,
                           seed=seed, n_epochs=n_epochs, cache_dir=cache_dir,
                           use_cache=use_cache)
        ]
    k = effective_n_neighbors(n_neighbors, n)
    params = {
        "n_neighbors": k, "min_dist": min_dist, "metric": metric, "seed": seed,
        "n_epochs": n_epochs, "alignment_regularisation": float(alignment_regularisation),
        "alignment_window_size": alignment_window_size,
    }

    def compute() -> np.ndarray:
        frames = _fit_aligned(
            xs, n_neighbors=k, min_dist=min_dist, metric=metric, seed=seed,
            n_epochs=n_epochs, alignment_regularisation=float(alignment_regularisation),
            alignment_window_size=alignment_window_size,
        )
        return np.stack(frames).astype(np.float32)

    stacked = _cached("aligned", xs, params, (len(xs), n, 2), compute, cache_dir, use_cache)
    return [np.ascontiguousarray(frame) for frame in stacked]


# --------------------------------------------------------------------------
# Public API: the map of runs
# --------------------------------------------------------------------------


def _check_distances(distances: Any) -> np.ndarray:
    try:
        d = np.array(distances, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"distances must be a square numeric matrix; {exc}") from exc
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances must be a square (M, M) matrix; got shape {d.shape}")
    if d.shape[0] == 0:
        raise ValueError("distances must describe at least 1 run; got shape (0, 0)")
    if not np.isfinite(d).all():
        raise ValueError("distances must be finite; it holds NaN or infinite values")
    tol = 1e-6 * max(1.0, float(np.abs(d).max()))
    if (d < -tol).any():
        raise ValueError(f"distances must be non-negative; minimum is {d.min():.3g}")
    if not np.allclose(d, d.T, rtol=0.0, atol=tol):
        raise ValueError("distances must be symmetric (distances[i, j] == distances[j, i])")
    if np.abs(np.diag(d)).max() > tol:
        raise ValueError("distances must have a zero diagonal (a run is at distance 0 from itself)")
    # Remove rounding noise only (already checked to be within tol).
    d = np.clip((d + d.T) / 2.0, 0.0, None)
    np.fill_diagonal(d, 0.0)
    return d


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
        zero diagonal (within a relative tolerance of 1e-6).
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
    ValueError
        If ``distances`` or ``method`` is invalid; the message names it.
    """
    if method not in _MODEL_MAP_METHODS:
        raise ValueError(f"method must be one of {_MODEL_MAP_METHODS}; got {method!r}")
    n_neighbors, min_dist, _, seed, _ = _check_params(n_neighbors, min_dist, "euclidean", seed, None)
    d = _check_distances(distances)
    m = d.shape[0]
    if m == 1:
        return np.zeros((1, 2))
    if m == 2:
        half = d[0, 1] / 2.0
        return np.array([[-half, 0.0], [half, 0.0]])
    if d.max() == 0.0:
        return np.zeros((m, 2))
    if method == "umap" and m >= MIN_UMAP_RUNS:
        umap = _umap()
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=effective_n_neighbors(n_neighbors, m),
            min_dist=min_dist,
            metric="precomputed",
            random_state=seed,
            transform_seed=seed,
            n_jobs=1,
        )
        return np.asarray(reducer.fit_transform(d), dtype=np.float64)
    from sklearn.manifold import smacof  # noqa: PLC0415 - only needed here

    init = _classical_mds(d)
    # All arguments explicit: their defaults moved between scikit-learn versions.
    coords, _ = smacof(
        d,
        metric=True,
        n_components=2,
        init=init,
        n_init=1,
        max_iter=300,
        eps=1e-6,
        random_state=seed,
        normalized_stress=False,
    )
    return _canonical(np.asarray(coords, dtype=np.float64))


# --------------------------------------------------------------------------
# Warm-up
# --------------------------------------------------------------------------

_WARM_LOCK = threading.Lock()
_WARM_START_LOCK = threading.Lock()
_WARM_DONE = threading.Event()
_WARM_THREAD: threading.Thread | None = None
_WARM_STATE: dict[str, Any] = {"state": "not started", "seconds": None, "error": None}


def warm_up() -> float:
    """Import umap-learn and compile its numba kernels on a tiny input.

    Covers the UMAP path (exact neighbours for fewer than 4096 points,
    spectral initialisation, single-threaded seeded optimiser) and the
    aligned path. Idempotent and thread-safe: concurrent callers wait for
    the first one; later calls return at once.

    Returns
    -------
    float
        Seconds spent by this call's warm-up (0.0 if it was already done).
    """
    if _WARM_DONE.is_set():
        return 0.0
    with _WARM_LOCK:
        if _WARM_DONE.is_set():
            return 0.0
        _WARM_STATE.update(state="running", error=None)
        t0 = time.perf_counter()
        try:
            rng = np.random.default_rng(0)
            x = rng.normal(size=(40, 4)).astype(np.float32)
            _fit_umap(x, n_neighbors=5, min_dist=0.1, metric="euclidean", seed=0, n_epochs=5)
            _fit_aligned([x, x + np.float32(0.01)], n_neighbors=5, min_dist=0.1,
                         metric="euclidean", seed=0, n_epochs=5,
                         alignment_regularisation=1e-2, alignment_window_size=3)
        except Exception as exc:
            _WARM_STATE.update(state="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        seconds = time.perf_counter() - t0
        _WARM_STATE.update(state="done", seconds=seconds)
        _WARM_DONE.set()
        return seconds


def _warm_up_in_background() -> None:
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - recorded in warm_up_status; fits still work
        log.exception("UMAP warm-up failed")


def start_warm_up() -> threading.Thread:
    """Start :func:`warm_up` in a daemon thread, once per process.

    Returns
    -------
    threading.Thread
        The warm-up thread (the same one on every call).
    """
    global _WARM_THREAD
    with _WARM_START_LOCK:
        if _WARM_THREAD is None:
            _WARM_THREAD = threading.Thread(
                target=_warm_up_in_background, name="akp-umap-warm-up", daemon=True
            )
            _WARM_THREAD.start()
        return _WARM_THREAD


def is_warm() -> bool:
    """True once umap-learn is imported and compiled in this process.

    Returns
    -------
    bool
    """
    return _WARM_DONE.is_set()


def warm_up_status() -> dict[str, Any]:
    """State of the warm-up: ``{"state", "seconds", "error"}`` with state in
    {"not started", "running", "done", "failed"}.

    Returns
    -------
    dict
        A copy of the state.
    """
    return dict(_WARM_STATE)


# --------------------------------------------------------------------------
# Store helpers
# --------------------------------------------------------------------------


def run_embedding(
    store: Any,
    run_id: str,
    layer: str = "embedding",
    epoch: int | None = None,
    **params: Any,
) -> np.ndarray:
    """UMAP of one run's probe-set representations at one layer and epoch.

    Served from ``store.cache_dir("umap")``: after
    :func:`cache_run_embedding` (called when a run finishes) the default view
    costs one read of the representations and one of the cached file.

    Parameters
    ----------
    store : RunStore
        Anything with ``representations(run_id, layer, epoch=None)`` and
        ``cache_dir(kind)``.
    run_id : str
        The run.
    layer : str, default="embedding"
        The layer.
    epoch : int or None, default=None
        Captured epoch; None means the last captured one.
    **params
        Keyword arguments of :func:`umap_embedding` (n_neighbors, min_dist,
        metric, seed, n_epochs, cache_dir, use_cache).

    Returns
    -------
    ndarray of shape (n_probe, 2), float32

    Raises
    ------
    ValueError
        StoreError if the run, layer or epoch is absent; ValueError for a
        bad parameter.
    """
    features = store.representations(run_id, layer, epoch=epoch)
    params.setdefault("cache_dir", store.cache_dir("umap"))
    return umap_embedding(features, **params)


def cache_run_embedding(store: Any, run_id: str, *, layer: str = "embedding") -> np.ndarray:
    """Compute and cache the default UMAP of a finished run's ``layer`` at its
    last captured epoch, so the run's view opens at once.

    Parameters
    ----------
    store : RunStore
        As in :func:`run_embedding`.
    run_id : str
        The run.
    layer : str, default="embedding"
        The layer.

    Returns
    -------
    ndarray of shape (n_probe, 2), float32
    """
    return run_embedding(store, run_id, layer=layer)


def run_aligned_embeddings(
    store: Any,
    run_id: str,
    layer: str = "embedding",
    epochs: Sequence[int] | None = None,
    **params: Any,
) -> tuple[list[int], list[np.ndarray]]:
    """Aligned UMAP of one run's representations over its captured epochs.

    Parameters
    ----------
    store : RunStore
        Anything with ``representation_epochs``, ``representations`` and
        ``cache_dir``.
    run_id : str
        The run.
    layer : str, default="embedding"
        The layer.
    epochs : sequence of int or None, default=None
        Epochs to use, in order; None means all captured epochs.
    **params
        Keyword arguments of :func:`aligned_umap`.

    Returns
    -------
    epochs : list of int
        The epochs, one per frame.
    frames : list of ndarray of shape (n_probe, 2), float32
        The aligned embeddings.
    """
    chosen = list(store.representation_epochs(run_id, layer) if epochs is None else epochs)
    if not chosen:
        raise ValueError(f"epochs must name at least one captured epoch of layer {layer!r}")
    frames = [store.representations(run_id, layer, epoch=e) for e in chosen]
    params.setdefault("cache_dir", store.cache_dir("umap"))
    return chosen, aligned_umap(frames, **params)
