"""Warm-up: import umap-learn and compile its numba kernels before anyone waits for a fit.

The first fit in a process costs about 20 s of import and 10-15 s of numba
compilation. :func:`start_warm_up` does both in a daemon thread at app
start-up; :func:`is_warm` and :func:`warm_up_status` say how far it got.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from akp.projection.aligned import _fit_aligned
from akp.projection.umap import _fit_umap

__all__ = ["is_warm", "start_warm_up", "warm_up", "warm_up_status"]

log = logging.getLogger(__name__)

_WARM_LOCK = threading.Lock()
_WARM_START_LOCK = threading.Lock()
_WARM_DONE = threading.Event()
_WARM_THREAD: threading.Thread | None = None
_WARM_STATE: dict[str, Any] = {"state": "not started", "seconds": None, "error": None}


def _fit_tiny_inputs() -> None:
    """One small UMAP fit and one small aligned fit: compiles every kernel the default views use."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    _fit_umap(x, n_neighbors=5, min_dist=0.1, metric="euclidean", seed=0, n_epochs=5)
    _fit_aligned([x, x + np.float32(0.01)], n_neighbors=5, min_dist=0.1, metric="euclidean", seed=0, n_epochs=5,
                 alignment_regularisation=1e-2, alignment_window_size=3)


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
            _fit_tiny_inputs()
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
            _WARM_THREAD = threading.Thread(target=_warm_up_in_background, name="akp-umap-warm-up", daemon=True)
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
