"""Job state for the pages: live snapshots from the manager, queue counts, finished runs.

The store is the source of truth for a run's state (it survives restarts and is
shared between processes); the job manager only adds what it holds in memory
(the batch within the epoch, the queue position).
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from akp.runs import ACTIVE_STATES, FINISHED_STATES, QUEUED, RUNNING
from akp.store import RunStore
from ui.state import get_manager, get_store


def live_status(experiment_id: str | None = None) -> list[dict[str, Any]]:
    """Live job snapshots from the manager (``[]`` without a manager).

    Parameters
    ----------
    experiment_id : str, optional
        Only this experiment's runs.

    Returns
    -------
    list of dict
        Keys run_id, experiment_id, condition, seed, state, epoch, epochs, batch,
        n_batches, metrics, queue_position, error, owner, vectorized (trained with
        the other seeds of its condition as one vectorized model), managed.
    """
    manager = get_manager()
    if manager is None:
        return []
    try:
        return list(manager.status(experiment_id))
    except (ValueError, KeyError):
        return []


def job_counts() -> dict[str, int]:
    """Counts of running and queued runs across the store, plus those the manager holds in memory.

    Returns
    -------
    dict
        ``{"running": int, "queued": int}`` (keys :data:`akp.runs.RUNNING`, :data:`akp.runs.QUEUED`).
    """
    counts = {RUNNING: 0, QUEUED: 0}
    seen: set[str] = set()
    for snap in live_status():
        if snap.get("state") in counts:
            counts[snap["state"]] += 1
            seen.add(snap["run_id"])
    for run in get_store().runs_in_state(*ACTIVE_STATES):
        if run["run_id"] not in seen:
            counts[run["state"]] += 1
    return counts


def any_active(experiment_id: str | None = None) -> bool:
    """True if any run (of ``experiment_id``, or anywhere) is queued or running.

    Parameters
    ----------
    experiment_id : str, optional
        Only this experiment's runs.

    Returns
    -------
    bool
    """
    store = get_store()
    if experiment_id is None:
        return bool(store.runs_in_state(*ACTIVE_STATES)) or any(
            s.get("state") in ACTIVE_STATES for s in live_status())
    try:
        runs = store.runs(experiment_id)
    except ValueError:
        return False
    return any(r["state"] in ACTIVE_STATES for r in runs)


def finished_runs(store: RunStore, experiment_id: str, *, minimum: int, pending_note: str,
                  too_few: str) -> tuple[list[dict], list[dict]]:
    """The experiment's runs and its finished ones; explain unfinished runs, and stop with too few finished.

    Parameters
    ----------
    store : RunStore
    experiment_id : str
    minimum : int
        Finished runs the page needs; below it ``too_few`` is shown and the page stops.
    pending_note : str
        Shown while runs are queued or running; ``{pending}``, ``{total}`` and
        ``{finished}`` are filled in.
    too_few : str
        Shown when fewer than ``minimum`` runs finished.

    Returns
    -------
    runs, finished : list of dict
    """
    runs = store.runs(experiment_id)
    finished = [r for r in runs if r["state"] in FINISHED_STATES]
    pending = [r for r in runs if r["state"] in ACTIVE_STATES]
    if pending:
        st.info(pending_note.format(pending=len(pending), total=len(runs), finished=len(finished)))
    if len(finished) < minimum:
        st.info(too_few)
        st.stop()
    return runs, finished
