"""Runs: live progress of an experiment's runs, training and test curves with swap events, cancel and resume.

Its owner (or an admin) may also rename, annotate, tag and delete it here (:mod:`ui.manage`);
cancel and resume act as the current user, and the library refuses anyone else.

Everything shown comes from the store and the process-wide job manager, so a
reload or a second tab shows the same runs. While anything is queued or
running, a fragment polls once a second; figures are rebuilt only when a run's
epochs or state changed (cached by that fingerprint).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import streamlit as st

import ui
from akp.design import run_progress
from akp.errors import AccessError
from akp.plots.training import final_accuracy_figure, metrics_table, training_curves
from akp.runs import ACTIVE_STATES, CANCELLED, DIVERGED, DONE, FAILED, INTERRUPTED, QUEUED, RESUMABLE_STATES, RUNNING

POLL_SECONDS = 1.0
METRIC_LABELS = {"accuracy": "Accuracy", "loss": "Loss", "gap": "Generalization gap"}
COUNTED_STATES = (QUEUED, RUNNING, DONE, DIVERGED, FAILED, CANCELLED)  # one metric each, in this order

st.title("Runs")

store = ui.get_store()
manager = ui.get_manager()
experiment_id = ui.experiment_selector(store)
if experiment_id is None:
    st.page_link("pages/design.py", label="Design an experiment", icon=":material/tune:")
    st.stop()

spec = None
with ui.guard("Reading the spec", prefix="Cannot read this experiment's spec: "):
    spec = store.spec(experiment_id)
if spec is None:
    st.stop()

st.caption(f"{ui.md(spec.name)}: {len(spec.conditions)} conditions × {len(spec.seeds)} seeds × {spec.epochs} epochs, "
           f"dataset {ui.md(spec.dataset)}, model width {spec.model.width} depth {spec.model.depth}, "
           f"{spec.optimizer} lr {spec.lr:g}.")
with ui.guard("Manage experiment", expected=(ValueError, AccessError)):
    ui.manage_experiment(store, experiment_id)


@st.cache_data(max_entries=32, show_spinner=False)
def curves_data(home: str, experiment_id: str, fingerprint: tuple[tuple[str, int, str], ...], metric: str,
                epochs: int) -> tuple[Any, pd.DataFrame]:
    """Training curves and their data, rebuilt only when the runs' (epochs_done, state) change.

    ``home`` keys the cache per store; ``fingerprint`` is ((run_id, epochs_done, state), ...).
    """
    s = ui.get_store()
    run_ids = [f[0] for f in fingerprint]
    runs = [r for r in s.runs(experiment_id) if r["run_id"] in set(run_ids)]
    metrics = {r["run_id"]: s.metrics(r["run_id"]) for r in runs if r["epochs_done"]}
    events = {r["run_id"]: s.events(r["run_id"]) for r in runs if r["epochs_done"]}
    fig = training_curves(runs, metrics, events, metric=metric, epochs=epochs)
    return fig, metrics_table(runs, metrics)


@st.cache_data(max_entries=32, show_spinner=False)
def final_figure(home: str, experiment_id: str, fingerprint: tuple[tuple[str, int, str], ...]) -> Any:
    """Final test accuracy per condition, rebuilt only when the fingerprint changes."""
    ids = {f[0] for f in fingerprint}
    runs = [r for r in ui.get_store().runs(experiment_id) if r["run_id"] in ids]
    return final_accuracy_figure(runs)


def actions(runs: list[dict[str, Any]], snaps: list[dict[str, Any]]) -> None:
    """Cancel and resume buttons for the whole experiment."""
    active = [r for r in runs if r["state"] in ACTIVE_STATES]
    resumable = [r for r in runs if r["state"] in RESUMABLE_STATES]
    # Queued in the store but held by no manager (created elsewhere, never submitted): resume queues them.
    never_submitted = any(s.get("state") == QUEUED and not s.get("managed", True) for s in snaps)
    # Only its owner or an admin may act (the library refuses the others too); the help says who owns it.
    allowed, why = ui.can_manage(store.experiment(experiment_id))
    why = ui.md(why) if why else None  # a tooltip is Markdown; the owner's name is user text
    c1 = c2 = c3 = st.container(horizontal=True)
    if c1.button(f"Cancel {len(active)} active", key="runs-cancel", icon=":material/stop:",
                 disabled=manager is None or not active or not allowed, help=why):
        with ui.guard("Cancel", expected=(ValueError, PermissionError)):
            cancelled = manager.cancel(experiment_id, user=ui.current_user())
            st.toast(f"Cancelled {len(cancelled)} runs")
            st.rerun(scope="app")
    label = f"Resume {len(resumable)}" if resumable else "Resume"
    if c2.button(label, key="runs-resume", icon=":material/replay:",
                 disabled=manager is None or not (resumable or never_submitted) or not allowed, help=why):
        with ui.guard("Resume", prefix="Cannot resume: ", expected=(ValueError, PermissionError)):
            queued = manager.resume(experiment_id, user=ui.current_user())
            st.toast(f"Queued {len(queued)} runs again")
            st.rerun(scope="app")
    ui.download_json(spec, f"spec-{ui.slug(spec.name)}", label="Spec (JSON)",
                     key="runs-spec-json", container=c3)


initially_active = ui.any_active(experiment_id)


@st.fragment(run_every=POLL_SECONDS if initially_active else None)
@ui.guard("Live progress")  # a fragment's rerun runs outside app.py's guard
def live() -> None:
    """Progress table, state counts, cancel/resume; polls while runs are active."""
    runs = store.runs(experiment_id)
    active_now = any(r["state"] in ACTIVE_STATES for r in runs)
    snaps = ui.live_status(experiment_id) if active_now else []
    rows = run_progress(runs, snaps, spec.epochs)
    counts = Counter(r["state"] for r in rows)
    cols = st.columns(6)
    for col, state in zip(cols, COUNTED_STATES, strict=True):
        col.metric(state.capitalize(), counts.get(state, 0))
    if counts.get(INTERRUPTED):
        st.warning(f"{counts[INTERRUPTED]} runs were interrupted (the server stopped while they trained). "
                   "Resume continues each one after its last finished epoch (from its checkpoint).")
    actions(runs, snaps)
    frame = pd.DataFrame(rows)
    shown = frame.assign(epoch=[f"{done}/{total}" for done, total in zip(frame["epochs_done"], frame["epochs"],
                                                                          strict=True)])
    st.dataframe(
        shown, hide_index=True, key="runs-table",
        column_order=["condition", "seed", "state", "progress", "epoch", "queue_position", "test_acc",
                      "train_acc", "gap", "error"],
        column_config={
            "epoch": st.column_config.TextColumn("epoch", help="Finished epochs of the budget"),
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0,
                                                        format="percent"),
            "queue_position": st.column_config.NumberColumn("queue pos.", help="Runs ahead of it (0 = next)"),
            "test_acc": st.column_config.NumberColumn("test acc", format="%.3f"),
            "train_acc": st.column_config.NumberColumn("train acc", format="%.3f"),
            "gap": st.column_config.NumberColumn("gap", format="%+.3f"),
            "error": st.column_config.TextColumn("error", width="medium"),
        },
    )
    ui.download_csv(frame, f"runs-{experiment_id}", label="Runs (CSV)", key="runs-table-csv")

    selected = set(st.session_state.get("_runs_curve_selection") or [r["run_id"] for r in runs])
    fingerprint = tuple((r["run_id"], int(r["epochs_done"] or 0), r["state"]) for r in runs
                        if r["run_id"] in selected)
    metric = st.session_state.get("runs-metric") or "accuracy"
    st.subheader(f"{METRIC_LABELS[metric]} per epoch")
    st.caption("Dotted: train; solid: test. Dashed vertical lines: swap events (they apply at the start of "
               "the epoch they name).")
    fig, table = curves_data(str(store.home), experiment_id, fingerprint, metric, spec.epochs)
    ui.show_figure(fig, f"curves-{metric}-{experiment_id}", key="runs-curves", data=table)
    if any(r["test_acc"] is not None for r in runs):
        st.subheader("Final test accuracy")
        ui.show_figure(final_figure(str(store.home), experiment_id, fingerprint),
                       f"final-accuracy-{experiment_id}", key="runs-final")
    if active_now != initially_active:
        st.rerun(scope="app")  # start or stop polling


with st.expander("Curve options", expanded=False):
    st.segmented_control("Curves", list(METRIC_LABELS), format_func=METRIC_LABELS.get, key="runs-metric",
                         default="accuracy", selection_mode="single")
    st.session_state["_runs_curve_selection"] = ui.run_selector(store, experiment_id, label="Runs in the curves")
live()
