"""Shared helpers for the Streamlit pages: store, job manager, selectors, downloads.

Every page imports this module. The run store and the job manager are
process-wide resources (``st.cache_resource``) keyed by the store's home, so
two tabs (or two users) on one server see the same runs, and tests that point
``$AKP_HOME`` at different temporary directories never share a store.

Selections (experiment id, run ids) live in ``st.query_params`` so that a URL
can be shared; a session-level copy carries them across page navigation, which
drops the query string.

Stable API (other pages rely on these names):

- :func:`home_path`, :func:`get_store`, :func:`get_manager`, :func:`shutdown_managers`
- :func:`experiment_selector`, :func:`run_selector`, :func:`selected_experiment`
- :func:`job_counts`, :func:`any_active`, :func:`live_status`
- :func:`download_csv`, :func:`download_figure`, :func:`download_json`,
  :func:`show_table`, :func:`show_figure`
- :func:`slug`
"""
from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from akp.store import RunStore

EXPERIMENT_PARAM = "experiment"
RUN_PARAM = "run"
ACTIVE_STATES = ("queued", "running")
# Session-level copies of the selections: navigation between pages drops the query string.
_SESSION_EXPERIMENT = "_akp_selected_experiment"
_SESSION_RUNS = "_akp_selected_runs"


# -- the app shell -------------------------------------------------------------------------------------
def _leave_pages_directory_mode() -> None:
    """Make sure pages run inside app.py's navigation, even on a fresh server's first request.

    Streamlit treats a ``pages/`` folder beside the main script as a v1 multipage
    app until ``st.navigation`` is first called in the process. A first request
    for ``/runs`` (a reload or a shared link after a restart) would then run
    ``pages/runs.py`` alone, without app.py's navigation and sidebar. Clearing
    the flag (as ``st.navigation`` does) and rerunning sends that request
    through app.py. Runs once per process, at the first import of this module.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # pragma: no cover - a Streamlit without these internals
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        if get_script_run_ctx() is not None:
            st.rerun()


_leave_pages_directory_mode()


# -- process-wide resources -----------------------------------------------------------------------
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


_MANAGERS: dict[str, Any] = {}  # every manager this process made, so tests can shut them down


@st.cache_resource(show_spinner=False, max_entries=16)
def _manager_for(home: str) -> Any:
    from akp.jobs import JobManager  # imported lazily: the pages work (read-only) without it

    workers = int(os.environ.get("AKP_WORKERS", "1") or 1)
    manager = JobManager(_store_for(home), max_workers=max(1, workers))
    _MANAGERS[home] = manager
    return manager


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
        n_batches, metrics, queue_position, error.
    """
    manager = get_manager()
    if manager is None:
        return []
    try:
        return list(manager.status(experiment_id))
    except (ValueError, KeyError):
        return []


def job_counts() -> dict[str, int]:
    """Counts of ``running`` and ``queued`` runs across the store.

    The store is the source of truth (it survives restarts and is shared
    between processes); the manager only adds runs it holds in memory.

    Returns
    -------
    dict
        ``{"running": int, "queued": int}``
    """
    counts = {"running": 0, "queued": 0}
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
    """True if any run (of ``experiment_id``, or anywhere) is queued or running."""
    store = get_store()
    if experiment_id is None:
        return bool(store.runs_in_state(*ACTIVE_STATES)) or any(
            s.get("state") in ACTIVE_STATES for s in live_status())
    try:
        runs = store.runs(experiment_id)
    except ValueError:
        return False
    return any(r["state"] in ACTIVE_STATES for r in runs)


# -- selections synced with the URL ---------------------------------------------------------------
def selected_experiment(ids: Sequence[str]) -> str | None:
    """The experiment the URL or the session points to, if it is one of ``ids``; else the first.

    Parameters
    ----------
    ids : sequence of str
        Experiment ids on offer (newest first).

    Returns
    -------
    str or None
        None when ``ids`` is empty.
    """
    if not ids:
        return None
    for candidate in (st.query_params.get(EXPERIMENT_PARAM), st.session_state.get(_SESSION_EXPERIMENT)):
        if candidate in ids:
            return candidate
    return ids[0]


def set_selected_experiment(experiment_id: str | None) -> None:
    """Point the URL (``?experiment=``) and the session at ``experiment_id``."""
    previous = st.query_params.get(EXPERIMENT_PARAM)
    if previous is not None and previous != experiment_id:
        st.query_params.pop(RUN_PARAM, None)  # run ids belong to the previous experiment
        st.session_state[_SESSION_RUNS] = []
    st.session_state[_SESSION_EXPERIMENT] = experiment_id
    if experiment_id is None:
        st.query_params.pop(EXPERIMENT_PARAM, None)
    elif st.query_params.get(EXPERIMENT_PARAM) != experiment_id:
        st.query_params[EXPERIMENT_PARAM] = experiment_id


def experiment_label(exp: dict[str, Any]) -> str:
    """Human label of an experiment record from :meth:`RunStore.experiments`: name, run count, id.

    Only fixed facts: live counts belong in a polling fragment, not in a widget label.
    """
    return f"{exp['name']} · {exp['n_runs']} runs · {exp['id']}"


def finished_runs(store: RunStore, experiment_id: str, *, minimum: int, pending_note: str,
                  too_few: str) -> tuple[list[dict], list[dict]]:
    """The experiment's runs and its finished ones; explain unfinished runs, and stop with too few finished.

    Parameters
    ----------
    store, experiment_id
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
    from akp.store import FINISHED_STATES

    runs = store.runs(experiment_id)
    finished = [r for r in runs if r["state"] in FINISHED_STATES]
    pending = [r for r in runs if r["state"] in ACTIVE_STATES]
    if pending:
        st.info(pending_note.format(pending=len(pending), total=len(runs), finished=len(finished)))
    if len(finished) < minimum:
        st.info(too_few)
        st.stop()
    return runs, finished


def experiment_selector(
    store: RunStore | None = None,
    *,
    label: str = "Experiment",
    key: str = "akp_experiment",
    container: Any = None,
) -> str | None:
    """A selectbox of the store's experiments, synced with ``?experiment=`` in the URL.

    Parameters
    ----------
    store : RunStore, optional
        Default :func:`get_store`.
    label : str
        Widget label.
    key : str
        Widget key (use the default on every page so the choice carries over).
    container : streamlit container, optional
        Where to draw it (e.g. ``st.sidebar``); default the main area.

    Returns
    -------
    str or None
        The chosen experiment id, or None if the store has no experiments
        (an info message is shown then).
    """
    store = store or get_store()
    where = container or st
    exps = store.experiments()
    if not exps:
        where.info("No experiments yet. Start one on **Home** or **Design**.")
        return None
    by_id = {e["id"]: e for e in exps}
    ids = list(by_id)
    # The URL wins (a shared link, a page link, a reload); the widget's own changes reach the URL
    # through on_change, before the script reruns, so they are not overridden here.
    current = selected_experiment(ids)
    if st.session_state.get(key) != current:
        st.session_state[key] = current

    def _on_change() -> None:
        set_selected_experiment(st.session_state[key])

    chosen = where.selectbox(label, ids, key=key, on_change=_on_change,
                             format_func=lambda i: experiment_label(by_id[i]))
    set_selected_experiment(chosen)
    return chosen


def run_label(run: dict[str, Any]) -> str:
    """Human label of a run record: condition, seed and state."""
    return f"{run['condition']} · seed {run['seed']} · {run['state']}"


def selected_runs(run_ids: Sequence[str]) -> list[str]:
    """Run ids the URL (``?run=...&run=...``) or the session selects, among ``run_ids``; default all."""
    wanted = st.query_params.get_all(RUN_PARAM) or st.session_state.get(_SESSION_RUNS) or []
    chosen = [r for r in wanted if r in run_ids]
    return chosen or list(run_ids)


def set_selected_runs(run_ids: Sequence[str], all_ids: Sequence[str]) -> None:
    """Write the run selection to the URL; "all runs" is the default and is left out of the URL."""
    chosen = list(run_ids)
    st.session_state[_SESSION_RUNS] = chosen
    if not chosen or set(chosen) == set(all_ids):
        st.query_params.pop(RUN_PARAM, None)
        st.session_state[_SESSION_RUNS] = []
    elif st.query_params.get_all(RUN_PARAM) != chosen:
        st.query_params[RUN_PARAM] = chosen


def run_selector(
    store: RunStore | None,
    experiment_id: str,
    *,
    label: str = "Runs",
    key: str = "akp_runs",
    container: Any = None,
    states: Iterable[str] | None = None,
) -> list[str]:
    """A multiselect of an experiment's runs, synced with ``?run=`` in the URL.

    Parameters
    ----------
    store : RunStore or None
        Default :func:`get_store`.
    experiment_id : str
    label, key : str
        Widget label and key.
    container : streamlit container, optional
        Where to draw it.
    states : iterable of str, optional
        Offer only runs in these states (e.g. ``("done", "diverged")``).

    Returns
    -------
    list of str
        Selected run ids (all offered runs when nothing is selected).
    """
    store = store or get_store()
    where = container or st
    runs = store.runs(experiment_id)
    if states is not None:
        allowed = set(states)
        runs = [r for r in runs if r["state"] in allowed]
    by_id = {r["run_id"]: r for r in runs}
    ids = list(by_id)
    if not ids:
        return []
    default = selected_runs(ids)
    widget_key = f"{key}:{experiment_id}"  # a new experiment starts from the URL's / default selection
    if widget_key in st.session_state:
        st.session_state[widget_key] = [r for r in st.session_state[widget_key] if r in by_id]
    chosen = where.multiselect(label, ids, default=default if widget_key not in st.session_state else None,
                               key=widget_key, format_func=lambda i: run_label(by_id[i]),
                               help="Leave empty for all runs.")
    chosen = chosen or ids
    set_selected_runs(chosen, ids)
    return chosen


# -- downloads --------------------------------------------------------------------------------------
def slug(text: str) -> str:
    """A safe file-name fragment from ``text`` (letters, digits, ``-``, ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-")[:80] or "data"


def _csv_bytes(data: pd.DataFrame | Sequence[dict[str, Any]]) -> bytes:
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def download_csv(data: pd.DataFrame | Sequence[dict[str, Any]], file_name: str, *,
                 label: str = "Download CSV", key: str | None = None, container: Any = None) -> None:
    """A download button for a table as CSV.

    Parameters
    ----------
    data : DataFrame or sequence of dict
    file_name : str
        Suggested file name (``.csv`` is appended if missing).
    label : str
    key : str, optional
        Widget key (default derived from the file name).
    container : streamlit container, optional
    """
    where = container or st
    name = file_name if file_name.endswith(".csv") else f"{file_name}.csv"
    where.download_button(label, data=lambda: _csv_bytes(data), file_name=name, mime="text/csv",
                          key=key or f"dl-csv-{name}", on_click="ignore", icon=":material/download:")


def figure_html(fig: Any) -> str:
    """A self-contained HTML page of a plotly figure (plotly.js inlined: works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def download_figure(fig: Any, file_name: str, *, label: str = "Download HTML", key: str | None = None,
                    container: Any = None) -> None:
    """A download button for a plotly figure as standalone HTML.

    The HTML is built only when the button is clicked (deferred data), so
    drawing many figures stays cheap.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    file_name : str
        Suggested file name (``.html`` is appended if missing).
    label : str
    key : str, optional
    container : streamlit container, optional
    """
    where = container or st
    name = file_name if file_name.endswith(".html") else f"{file_name}.html"
    where.download_button(label, data=lambda: figure_html(fig), file_name=name, mime="text/html",
                          key=key or f"dl-html-{name}", on_click="ignore", icon=":material/download:")


def download_json(obj: Any, file_name: str, *, label: str = "Download JSON", key: str | None = None,
                  container: Any = None) -> None:
    """A download button for JSON (an object with ``to_json()``, a str, or JSON-ready data).

    Parameters
    ----------
    obj : object
        ``ExperimentSpec``/``SwapSchedule`` (anything with ``to_json``), JSON text, or a dict/list.
    file_name : str
        Suggested file name (``.json`` is appended if missing).
    label : str
    key : str, optional
    container : streamlit container, optional
    """
    where = container or st
    name = file_name if file_name.endswith(".json") else f"{file_name}.json"

    def payload() -> str:
        if hasattr(obj, "to_json"):
            return obj.to_json()
        if isinstance(obj, str):
            return obj
        return json.dumps(obj, indent=2, default=str)

    where.download_button(label, data=payload, file_name=name, mime="application/json",
                          key=key or f"dl-json-{name}", on_click="ignore", icon=":material/download:")


def show_table(data: pd.DataFrame | Sequence[dict[str, Any]], file_name: str, *, key: str | None = None,
               **dataframe_kwargs: Any) -> pd.DataFrame:
    """Draw a table with a CSV download button under it.

    Parameters
    ----------
    data : DataFrame or sequence of dict
    file_name : str
        CSV file name.
    key : str, optional
        Download button key.
    **dataframe_kwargs
        Passed to ``st.dataframe`` (default ``hide_index=True``).

    Returns
    -------
    DataFrame
        The frame drawn.
    """
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))
    dataframe_kwargs.setdefault("hide_index", True)
    st.dataframe(frame, **dataframe_kwargs)
    download_csv(frame, file_name, key=key)
    return frame


def show_figure(fig: Any, file_name: str, *, key: str | None = None,
                data: pd.DataFrame | Sequence[dict[str, Any]] | None = None) -> None:
    """Draw a plotly figure with an HTML download (and a CSV of its data, if given).

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    file_name : str
        Base file name (without extension).
    key : str, optional
        Base key of the chart and the buttons (default from the file name).
    data : DataFrame or sequence of dict, optional
        The figure's data, offered as CSV too.
    """
    base = key or f"fig-{slug(file_name)}"
    st.plotly_chart(fig, key=base, config={"displaylogo": False})
    row = st.container(horizontal=True, gap="small")
    download_figure(fig, file_name, key=f"{base}-html", container=row)
    if data is not None:
        download_csv(data, file_name, key=f"{base}-csv", container=row)


def guarded(fn: Callable[[], Any], message: str = "Something went wrong") -> Any:
    """Call ``fn``; on a ``ValueError`` (our validation errors) show it as ``st.error`` and return None."""
    try:
        return fn()
    except ValueError as exc:
        st.error(f"{message}: {exc}")
        return None
