"""Process-wide resources of the app: the run store and the job manager, one of each per store home.

Both are ``st.cache_resource`` objects keyed by the store's home, so two tabs
(or two users) on one server see the same runs, and tests that point
``$AKP_HOME`` at different temporary directories never share a store.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from akp.store import RunStore

_MANAGERS: dict[str, Any] = {}  # every manager this process made, so tests can shut them down


def home_path() -> Path:
    """The run store's home for this process: ``$AKP_HOME`` or ``./akp-data``, resolved.

    Returns
    -------
    Path
    """
    return Path(os.environ.get("AKP_HOME") or "akp-data").resolve()


@st.cache_resource(show_spinner=False, max_entries=16)
def _store_for(home: str) -> RunStore:
    return RunStore(home)


def get_store() -> RunStore:
    """The process-wide :class:`~akp.store.RunStore` of :func:`home_path` (cached per home).

    Returns
    -------
    RunStore
    """
    return _store_for(str(home_path()))


@st.cache_resource(show_spinner=False, max_entries=16)
def _manager_for(home: str) -> Any:
    from akp.jobs import JobManager  # imported lazily: the pages work (read-only) without it

    workers = int(os.environ.get("AKP_WORKERS", "1") or 1)
    manager = JobManager(_store_for(home), max_workers=max(1, workers))
    _MANAGERS[home] = manager
    return manager


def get_manager() -> Any | None:
    """The process-wide :class:`akp.jobs.JobManager` of the store, or None if unavailable.

    Worker threads of the manager never call ``st.*``; pages poll
    :meth:`JobManager.status` instead.

    Returns
    -------
    JobManager or None
        None when :mod:`akp.jobs` cannot be imported (the app then is read-only).
    """
    try:
        return _manager_for(str(home_path()))
    except ImportError:
        return None


def manager_of(home: str | os.PathLike) -> Any | None:
    """The job manager this process made for the store at ``home``, if any (for tests).

    Parameters
    ----------
    home : path
        A store home.

    Returns
    -------
    JobManager or None
    """
    return _MANAGERS.get(str(Path(home).resolve()))


def shutdown_managers(home: str | os.PathLike | None = None) -> None:
    """Cancel and stop the job managers this process made (all, or the one of ``home``); for tests.

    Parameters
    ----------
    home : path, optional
        Only the manager of this store home.
    """
    keys = [str(Path(home).resolve())] if home is not None else list(_MANAGERS)
    for key in keys:
        manager = _MANAGERS.pop(key, None)
        if manager is None:
            continue
        for exp in manager.store.experiments():
            try:
                manager.cancel(exp["id"])
            except ValueError:
                pass
        manager.shutdown(wait=True)
    _manager_for.clear()
    _store_for.clear()
