"""Aligned UMAP: the same points seen in several frames (epochs of a run, or runs at one epoch).

Consecutive frames are related by the identity ``{i: i}`` (row i is the same
probe image in every frame), so the layouts move smoothly from frame to frame.
The fit follows ``umap.AlignedUMAP.fit`` step by step, with the changes noted
in :func:`_fit_aligned`; umap-learn and numba are imported only when it runs.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from akp.projection.cache import cached
from akp.projection.umap import (
    ProjectionError,
    check_features,
    check_int,
    check_params,
    effective_n_neighbors,
    import_umap,
    umap_embedding,
)

__all__ = ["aligned_umap"]

# AlignedUMAP's own default number of epochs.
_ALIGNED_DEFAULT_EPOCHS = 200
# As AlignedUMAP: negative samples per positive one, and the optimiser's repulsion strength.
_NEGATIVE_SAMPLE_RATE = 5.0
_GAMMA = 1.0

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


def _typed_list(kind: Any, items: Sequence[Any] = ()) -> Any:
    """A numba typed list of ``kind`` holding ``items`` (what the compiled kernels take)."""
    import numba  # noqa: PLC0415 - heavy, only needed with umap

    out = numba.typed.List.empty_list(kind)
    for item in items:
        out.append(item)
    return out


def _frame_graphs(xs: Sequence[np.ndarray], *, n_neighbors: int, min_dist: float, metric: str, seed: int,
                  epochs: int) -> list[Any]:
    """One fitted UMAP per frame that only builds its neighbour graph (no layout of its own)."""
    umap = import_umap()
    return [
        umap.UMAP(
            n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, n_epochs=epochs,
            random_state=seed, transform_seed=seed, n_jobs=1, transform_mode="graph",
        ).fit(x)
        for x in xs
    ]


def _initial_layouts(mappers: list[Any], relations: Any, window_size: int, rng: np.random.RandomState,
                     metric: str) -> Any:
    """Spectral layouts, each Procrustes-aligned to the previous frame's, as a numba typed list."""
    import numba  # noqa: PLC0415
    from umap.aligned_umap import procrustes_align  # noqa: PLC0415
    from umap.spectral import spectral_layout  # noqa: PLC0415

    def init(i: int) -> np.ndarray:
        layout = spectral_layout(mappers[i]._raw_data, mappers[i].graph_, 2, rng, metric=metric)
        expansion = 10.0 / np.abs(layout).max()
        return (layout * expansion).astype(np.float32, order="C")

    embeddings = _typed_list(numba.types.float32[:, ::1], [init(0)])
    for i in range(1, len(mappers)):
        anchor_data = relations[i][window_size - 1]
        left = anchor_data[anchor_data >= 0]
        right = np.where(anchor_data >= 0)[0]
        aligned = procrustes_align(embeddings[-1], init(i), np.vstack([left, right]))
        embeddings.append(np.ascontiguousarray(aligned, dtype=np.float32))
    return embeddings


def _optimise(embeddings: Any, heads: Any, tails: Any, epochs_per_samples: Any, weights: Any, relations: Any,
              rng_state: np.ndarray, *, min_dist: float, regularisation: float, epochs: int) -> None:
    """The loop of ``umap.layouts.optimize_layout_aligned_euclidean``, with the kernel compiled once."""
    import numba  # noqa: PLC0415
    from umap.umap_ import find_ab_params  # noqa: PLC0415

    a, b = find_ab_params(1.0, min_dist)  # of our min_dist (AlignedUMAP would use those of 0.1)
    f32 = numba.types.float32[::1]
    per_neg = _typed_list(f32, [(eps / _NEGATIVE_SAMPLE_RATE).astype(np.float32) for eps in epochs_per_samples])
    next_neg = _typed_list(f32, [(eps / _NEGATIVE_SAMPLE_RATE).astype(np.float32) for eps in epochs_per_samples])
    next_sample = _typed_list(f32, [eps.astype(np.float32) for eps in epochs_per_samples])
    epoch_fn = _aligned_epoch_fn()
    alpha = 1.0
    for epoch in range(epochs):
        epoch_fn(
            embeddings, embeddings, heads, tails, epochs_per_samples, float(a), float(b), weights, relations,
            rng_state, _GAMMA, float(regularisation),
            2,  # dim
            True,  # move_other, as AlignedUMAP
            alpha, per_neg, next_neg, next_sample, epoch,
        )
        alpha = 1.0 - epoch / epochs


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
    import numba  # noqa: PLC0415
    from umap.aligned_umap import build_neighborhood_similarities, expand_relations  # noqa: PLC0415
    from umap.umap_ import make_epochs_per_sample  # noqa: PLC0415

    epochs = n_epochs if n_epochs is not None else _ALIGNED_DEFAULT_EPOCHS
    n = xs[0].shape[0]
    mappers = _frame_graphs(xs, n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, seed=seed,
                            epochs=epochs)
    relations = expand_relations([{i: i for i in range(n)}] * (len(xs) - 1), alignment_window_size)
    i32, f64 = numba.types.int32[::1], numba.types.float64[::1]
    graphs = [m.graph_ for m in mappers]
    coos = [g.tocoo() for g in graphs]
    indptr_list = _typed_list(i32, [g.indptr for g in graphs])
    indices_list = _typed_list(i32, [g.indices for g in graphs])
    heads = _typed_list(i32, [c.row for c in coos])
    tails = _typed_list(i32, [c.col for c in coos])
    epochs_per_samples = _typed_list(f64, [make_epochs_per_sample(c.data, epochs) for c in coos])

    # Same seeding as AlignedUMAP: transform_seed drives initialisation and
    # the optimiser's random state (in this order: do not reorder the draws).
    rng = np.random.RandomState(seed)
    weights = build_neighborhood_similarities(indptr_list, indices_list, relations)
    embeddings = _initial_layouts(mappers, relations, alignment_window_size, rng, metric)
    int32 = np.iinfo(np.int32)
    rng_state = rng.randint(int32.min + 1, int32.max - 1, 3).astype(np.int64)
    _optimise(embeddings, heads, tails, epochs_per_samples, weights, relations, rng_state, min_dist=min_dist,
              regularisation=alignment_regularisation, epochs=epochs)

    out = []
    for graph, emb in zip(graphs, embeddings, strict=True):
        emb = np.array(emb, dtype=np.float32)
        # As AlignedUMAP: points with no neighbour at all have no place.
        emb[np.asarray(graph.sum(axis=1)).ravel() == 0] = np.nan
        out.append(emb)
    return out


def _check_frames(features_sequence: Any) -> list[np.ndarray]:
    """The frames as checked 2-D arrays, all with the same number of points."""
    if isinstance(features_sequence, np.ndarray) and features_sequence.ndim == 3:
        features_sequence = list(features_sequence)
    if not isinstance(features_sequence, Sequence) or isinstance(features_sequence, (str, bytes)):
        raise ProjectionError("features_sequence must be a sequence of 2-D arrays (one per frame)",
                              field="features_sequence")
    if len(features_sequence) == 0:
        raise ProjectionError("features_sequence must hold at least 1 frame; got 0", field="features_sequence")
    xs = [check_features(f, f"features_sequence[{i}]") for i, f in enumerate(features_sequence)]
    n = xs[0].shape[0]
    for i, x in enumerate(xs):
        if x.shape[0] != n:
            raise ProjectionError(f"features_sequence[{i}] must have the same number of points as frame 0 "
                                  f"({n}); got {x.shape[0]}", field=f"features_sequence[{i}]")
    return xs


def _check_regularisation(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not np.isfinite(value)
        or value <= 0
    ):
        raise ProjectionError(f"alignment_regularisation must be a finite number > 0; got {value!r}",
                              field="alignment_regularisation")
    return float(value)


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
        As in :func:`akp.projection.umap.umap_embedding`; n_epochs None means
        200 (AlignedUMAP's default).
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
    ProjectionError
        A ValueError, if a frame or parameter is invalid; the message and ``field`` name it.
    """
    xs = _check_frames(features_sequence)
    n = xs[0].shape[0]
    n_neighbors, min_dist, metric, seed, n_epochs = check_params(n_neighbors, min_dist, metric, seed, n_epochs)
    regularisation = _check_regularisation(alignment_regularisation)
    window = check_int("alignment_window_size", alignment_window_size, 1)
    if len(xs) == 1:
        return [umap_embedding(xs[0], n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, seed=seed,
                               n_epochs=n_epochs, cache_dir=cache_dir, use_cache=use_cache)]
    k = effective_n_neighbors(n_neighbors, n)
    params = {
        "n_neighbors": k, "min_dist": min_dist, "metric": metric, "seed": seed, "n_epochs": n_epochs,
        "alignment_regularisation": regularisation, "alignment_window_size": window,
    }

    def compute() -> np.ndarray:
        frames = _fit_aligned(xs, n_neighbors=k, min_dist=min_dist, metric=metric, seed=seed, n_epochs=n_epochs,
                              alignment_regularisation=regularisation, alignment_window_size=window)
        return np.stack(frames).astype(np.float32)

    stacked = cached("aligned", xs, params, (len(xs), n, 2), compute, cache_dir, use_cache)
    return [np.ascontiguousarray(frame) for frame in stacked]

