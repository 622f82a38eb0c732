"""Experiment and run selectors, synced with the URL.

Selections (experiment id, run ids) live in ``st.query_params`` so that a URL
can be shared; a session-level copy carries them across page navigation, which
drops the query string.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st

from akp.store import RunStore
from ui.state import get_store

EXPERIMENT_PARAM = "experiment"
RUN_PARAM = "run"
# Session-level copies of the selections: navigation between pages drops the query string.
_SESSION_EXPERIMENT = "_akp_selected_experiment"
_SESSION_RUNS = "_akp_selected_runs"
# Which page last drew each page-scoped, URL-bound widget key (see own_page_params).
_SESSION_PARAM_PAGES = "_akp_param_pages"


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
    """Point the URL (``?experiment=``) and the session at ``experiment_id``.

    Parameters
    ----------
    experiment_id : str or None
        None clears the selection.
    """
    previous = st.query_params.get(EXPERIMENT_PARAM)
    if previous is not None and previous != experiment_id:
        st.query_params.pop(RUN_PARAM, None)  # run ids belong to the previous experiment
        st.session_state[_SESSION_RUNS] = []
    st.session_state[_SESSION_EXPERIMENT] = experiment_id
    if experiment_id is None:
        st.query_params.pop(EXPERIMENT_PARAM, None)
    elif st.query_params.get(EXPERIMENT_PARAM) != experiment_id:
        st.query_params[EXPERIMENT_PARAM] = experiment_id


def own_page_params(page: str, keys: Iterable[str]) -> list[str]:
    """Forget values that another page left under the same URL-bound widget keys.

    Streamlit keeps a ``bind="query-params"`` widget's value under its key
    across page switches, and the next page's widget with that key picks it up
    and writes it to its own URL: Families' ``epoch=final`` reached
    Representations, whose epoch slider has no "final". Call this at the top of
    a page, before its widgets, with the keys whose meaning is the page's own.
    A fresh session (a deep link, a reload) keeps what its URL says.

    Parameters
    ----------
    page : str
        The page's name (any string unique among pages).
    keys : iterable of str
        Widget keys (= query-parameter names) of this page that other pages use differently.

    Returns
    -------
    list of str
        The keys whose foreign value was dropped.
    """
    owners: dict[str, str] = st.session_state.setdefault(_SESSION_PARAM_PAGES, {})
    dropped = []
    for key in keys:
        owner = owners.get(key)
        if owner is not None and owner != page:
            if key in st.session_state:
                del st.session_state[key]
                dropped.append(key)
            if key in st.query_params:
                try:
                    del st.query_params[key]
                except Exception:  # noqa: BLE001 - a bound parameter is managed by its widget
                    pass
        owners[key] = page
    return dropped


def experiment_label(exp: dict[str, Any]) -> str:
    """Human label of an experiment record from :meth:`RunStore.experiments`: name, run count, id.

    Only fixed facts: live counts belong in a polling fragment, not in a widget label.
    """
    return f"{exp['name']} · {exp['n_runs']} runs · {exp['id']}"


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
        Default :func:`ui.state.get_store`.
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
    """Run ids the URL (``?run=...&run=...``) or the session selects, among ``run_ids``; default all.

    Parameters
    ----------
    run_ids : sequence of str
        Run ids on offer.

    Returns
    -------
    list of str
    """
    wanted = st.query_params.get_all(RUN_PARAM) or st.session_state.get(_SESSION_RUNS) or []
    chosen = [r for r in wanted if r in run_ids]
    return chosen or list(run_ids)


def set_selected_runs(run_ids: Sequence[str], all_ids: Sequence[str]) -> None:
    """Write the run selection to the URL; "all runs" is the default and is left out of the URL.

    Parameters
    ----------
    run_ids : sequence of str
        The selection.
    all_ids : sequence of str
        Every run on offer.
    """
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
        Default :func:`ui.state.get_store`.
    experiment_id : str
    label, key : str
        Widget label and key.
    container : streamlit container, optional
        Where to draw it.
    states : iterable of str, optional
        Offer only runs in these states (e.g. :data:`akp.runs.FINISHED_STATES`).

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
