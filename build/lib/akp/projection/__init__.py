"""Two-dimensional projections: UMAP of representations, aligned UMAP over
epochs or runs, and a map of the runs themselves.

umap-learn costs about 20 s to import and about 10-15 s of numba compilation on
its first fit in a process. Nobody should wait for that, so:

- ``umap`` is imported lazily, inside the functions that fit, never when
  ``akp`` is imported (:func:`akp.projection.umap.import_umap`);
- :func:`start_warm_up` compiles the kernels in a daemon thread at app
  start-up, and :func:`is_warm` tells whether it is done;
- every embedding is cached on disk under a content hash of its input and
  parameters (:mod:`akp.projection.cache`), so a view that asks again gets it
  back in milliseconds.

Modules
-------
* :mod:`akp.projection.cache` -- the content-hash disk cache.
* :mod:`akp.projection.umap` -- :func:`umap_embedding`, parameter checks, :func:`effective_n_neighbors`.
* :mod:`akp.projection.aligned` -- :func:`aligned_umap`.
* :mod:`akp.projection.model_map` -- :func:`model_map`.
* :mod:`akp.projection.warmup` -- :func:`warm_up`, :func:`start_warm_up`, :func:`is_warm`, :func:`warm_up_status`.
* :mod:`akp.projection.run_views` -- :func:`run_embedding`, :func:`cache_run_embedding`,
  :func:`run_aligned_embeddings` (read a store-like object).
"""
from akp.projection.aligned import aligned_umap
from akp.projection.cache import default_cache_dir
from akp.projection.model_map import MIN_UMAP_RUNS, model_map
from akp.projection.run_views import cache_run_embedding, run_aligned_embeddings, run_embedding
from akp.projection.umap import ALLOWED_METRICS, MIN_POINTS, ProjectionError, effective_n_neighbors, umap_embedding
from akp.projection.warmup import is_warm, start_warm_up, warm_up, warm_up_status

__all__ = [
    "ALLOWED_METRICS",
    "MIN_POINTS",
    "MIN_UMAP_RUNS",
    "ProjectionError",
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
