"""Job state for the pages: live snapshots from the manager, queue counts, finished runs.

The store is the source of truth for a run's state (it survives restarts and is
shared between processes); the job manager only adds what it holds in memory
(the batch within the epoch, the queue position).
"""
from __future__ import annotations

import threading
import time
from typing import Any

import streamlit as st

from akp.job_state import experiment_eta
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


# A worker spends a moment between two runs (storing the finished one, caching its projection) before
# it claims the next queued run. Counted literally, the queue would flash "Running 0" then.
HANDOVER_S = 15.0
_last_running: dict[str, tuple[float, int]] = {}  # store home -> (when, how many) something last ran
_last_lock = threading.Lock()


def bridge_handover(counts: dict[str, int], home: str, *, now: float | None = None,
                    handover_s: float = HANDOVER_S) -> dict[str, int]:
    """Keep the running count across a worker's hand-over from one run to the next queued one.

    Parameters
    ----------
    counts : dict
        ``{"running": int, "queued": int}`` as counted now.
    home : str
        The store's home (the memory is per store).
    now : float, optional
        ``time.monotonic()`` by default (tests pass their own clock).
    handover_s : float
        How long after the last running run a queue with waiting runs still counts it as running.

    Returns
    -------
    dict
        ``counts``, or with the last running count when nothing runs, runs are queued and
        something ran less than ``handover_s`` ago.
    """
    now = time.monotonic() if now is None else now
    with _last_lock:
        if counts[RUNNING]:
            _last_running[home] = (now, counts[RUNNING])
            return counts
        when, running = _last_running.get(home, (None, 0))
        if counts[QUEUED] and when is not None and now - when < handover_s:
            return {**counts, RUNNING: min(running, counts[QUEUED]), QUEUED: counts[QUEUED] - min(running,
                                                                                                   counts[QUEUED])}
        if not counts[QUEUED]:
            _last_running.pop(home, None)
        return counts


def time_left(snapshots: list[dict[str, Any]]) -> float | None:
    """Remaining wall time of an experiment from its snapshots, over the manager's workers.

    Parameters
    ----------
    snapshots : list of dict
        :func:`live_status` of one experiment.

    Returns
    -------
    float or None
        Seconds (:func:`akp.job_state.experiment_eta`); None without a manager or before anything is measured.
    """
    manager = get_manager()
    if manager is None or not snapshots:
        return None
    return experiment_eta(snapshots, getattr(manager, "max_workers", 1))


def figures_due(shown: tuple[str, tuple, float] | None, experiment_id: str, fingerprint: tuple, now: float,
                refresh_seconds: float) -> bool:
    """Whether figures drawn from ``shown`` are out of date and due to be drawn again.

    Parameters
    ----------
    shown : (experiment_id, fingerprint, time) or None
        What the figures on screen were drawn from, and when (a monotonic clock).
    experiment_id : str
    fingerprint : tuple of (run_id, epochs_done, state)
        The data now.
    now : float
        The same clock.
    refresh_seconds : float
        Least time between two redraws for new epochs alone.

    Returns
    -------
    bool
        True when the data changed and either a run changed state (started, finished, failed) or
        ``refresh_seconds`` passed since the figures were drawn; False when nothing is on screen yet.
    """
    if shown is None or shown[0] != experiment_id or tuple(shown[1]) == tuple(fingerprint):
        return False
    def runs_and_states(fp: tuple) -> list[tuple[str, str]]:
        return [(f[0], f[2]) for f in fp]

    if runs_and_states(shown[1]) != runs_and_states(fingerprint):
        return True
    return now - shown[2] >= refresh_seconds


def job_counts() -> dict[str, int]:
    """Counts of running and queued runs across the store, plus those the manager holds in memory.

    The hand-over between two runs of a busy queue counts as running (:func:`bridge_handover`).

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
    if get_manager() is None:
        return counts  # nobody will start the queued runs: no hand-over to bridge
    return bridge_handover(counts, str(get_store().home))


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
