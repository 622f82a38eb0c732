"""Embeddings of a stored run: read its representations from a store-like object, embed, cache.

The store is duck-typed: anything with ``representations(run_id, layer,
epoch=None)``, ``representation_epochs(run_id, layer)`` and
``cache_dir(kind)``. Embeddings go to ``store.run_cache_dir(run_id, "umap")``
when the store has it (a :class:`akp.store.RunStore` does: the cache is then
deleted with its experiment), else to ``store.cache_dir("umap")``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from akp.projection.aligned import aligned_umap
from akp.projection.umap import ProjectionError, umap_embedding

__all__ = ["cache_run_embedding", "run_aligned_embeddings", "run_embedding"]


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
    store : RunStore-like
        Anything with ``representations(run_id, layer, epoch=None)`` and
        ``cache_dir(kind)``.
    run_id : str
        The run.
    layer : str, default="embedding"
        The layer.
    epoch : int or None, default=None
        Captured epoch; None means the last captured one.
    **params
        Keyword arguments of :func:`akp.projection.umap.umap_embedding`
        (n_neighbors, min_dist, metric, seed, n_epochs, cache_dir, use_cache).

    Returns
    -------
    ndarray of shape (n_probe, 2), float32

    Raises
    ------
    ValueError
        The store's error if the run, layer or epoch is absent; ProjectionError
        for a bad parameter.
    """
    features = store.representations(run_id, layer, epoch=epoch)
    params.setdefault("cache_dir", _cache_dir(store, run_id))
    return umap_embedding(features, **params)


def cache_run_embedding(store: Any, run_id: str, *, layer: str = "embedding") -> np.ndarray:
    """Compute and cache the default UMAP of a finished run's ``layer`` at its
    last captured epoch, so the run's view opens at once.

    Parameters
    ----------
    store : RunStore-like
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
    store : RunStore-like
        Anything with ``representation_epochs``, ``representations`` and
        ``cache_dir``.
    run_id : str
        The run.
    layer : str, default="embedding"
        The layer.
    epochs : sequence of int or None, default=None
        Epochs to use, in order; None means all captured epochs.
    **params
        Keyword arguments of :func:`akp.projection.aligned.aligned_umap`.

    Returns
    -------
    epochs : list of int
        The epochs, one per frame.
    frames : list of ndarray of shape (n_probe, 2), float32
        The aligned embeddings.

    Raises
    ------
    ProjectionError
        No epoch to embed (field ``epochs``), or a bad parameter.
    """
    chosen = list(store.representation_epochs(run_id, layer) if epochs is None else epochs)
    if not chosen:
        raise ProjectionError(f"epochs must name at least one captured epoch of layer {layer!r}", field="epochs")
    frames = [store.representations(run_id, layer, epoch=e) for e in chosen]
    params.setdefault("cache_dir", _cache_dir(store, run_id))
    return chosen, aligned_umap(frames, **params)


def _cache_dir(store: Any, run_id: str) -> Any:
    """The run's own cache directory when the store has one (deleted with its experiment), else the shared one."""
    per_run = getattr(store, "run_cache_dir", None)
    return per_run(run_id, "umap") if per_run is not None else store.cache_dir("umap")
