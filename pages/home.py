"""Home: what AKP Lab is, the experiments in the store, and a one-click start on an empty store."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

import ui
from akp.experiment import load_preset
from akp.runs import CANCELLED, DIVERGED, DONE, FAILED, FINISHED_STATES, INTERRUPTED, QUEUED, RUNNING

STATE_ORDER = (QUEUED, RUNNING, DONE, DIVERGED, FAILED, CANCELLED, INTERRUPTED)  # the table's columns

st.title("AKP Lab")
st.markdown(
    "*All happy families are alike; each unhappy family is unhappy in its own way.* "
    "Train image classifiers while hot-swapping their activation and loss functions, sort them into "
    "**happy** (they generalize) and **unhappy** families, and test whether the unhappy ones are more "
    "dispersed in representation space."
)
with st.container(horizontal=True):
    st.page_link("pages/design.py", label="1 · Design an experiment", icon=":material/tune:")
    st.page_link("pages/runs.py", label="2 · Watch it train", icon=":material/monitoring:")
    st.page_link("pages/families.py", label="3 · Test the principle", icon=":material/diversity_3:")
    st.page_link("pages/learn.py", label="Learn the ideas", icon=":material/school:")


def launch_preset(name: str) -> str | None:
    """Create the preset's experiment and queue its runs; report problems, never raise."""
    store, manager = ui.get_store(), ui.get_manager()
    experiment_id = None
    with ui.guard("Creating the experiment", prefix=f"Could not create the {name} experiment: "):
        experiment_id = store.create_experiment(load_preset(name), owner=ui.current_user())
    if experiment_id is None:
        return None
    if manager is None:
        st.warning("The experiment was created, but no job manager is available to train it.")
        return experiment_id
    # Queue full or quota: the runs stay queued in the store, and the message says which limit.
    with ui.guard("Queueing the runs", prefix="The runs were created but not queued: "):
        manager.submit(experiment_id)
    ui.set_selected_experiment(experiment_id)
    return experiment_id


store = ui.get_store()
experiments = store.experiments()

if not experiments:
    st.subheader("Get started")
    st.markdown(
        "The store is empty. The **teaching** preset trains 3 swap schedules × 6 seeds of a small CNN on "
        "synthetic cancer/non-cancer cell images (a few minutes on a laptop CPU). Or design your own on "
        "**Design**, and read **Learn** for the ideas behind it."
    )
    c1 = c2 = st.container(horizontal=True)
    if c1.button("Start the teaching experiment", type="primary", icon=":material/play_arrow:",
                 key="home-start-teaching"):
        if experiment_id := launch_preset("teaching"):
            st.switch_page("pages/runs.py", query_params={"experiment": experiment_id})
    if c2.button("Quick smoke test (seconds)", icon=":material/bolt:", key="home-start-smoke"):
        if experiment_id := launch_preset("smoke"):
            st.switch_page("pages/runs.py", query_params={"experiment": experiment_id})
    st.stop()

st.subheader("Experiments")
rows = []
for exp in experiments:
    states = exp["states"] or {}
    row = {"id": exp["id"], "name": exp["name"], "owner": exp["owner"], "tags": ", ".join(exp["tags"]),
           "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(exp["created"])), "runs": exp["n_runs"]}
    for state in STATE_ORDER:
        row[state] = int(states.get(state, 0))
    finished = sum(row[state] for state in FINISHED_STATES)
    row["progress"] = finished / exp["n_runs"] if exp["n_runs"] else 0.0
    rows.append(row)
frame = pd.DataFrame(rows)
# Only show state columns that occur somewhere: most stores never see "interrupted".
shown = ["name", "id", "owner", "tags", "created", "runs", "progress"] + [s for s in STATE_ORDER if frame[s].any()]
event = st.dataframe(
    frame, hide_index=True, column_order=shown, on_select="rerun", selection_mode="single-row",
    key="home-experiments",
    column_config={"progress": st.column_config.ProgressColumn("finished", min_value=0.0, max_value=1.0,
                                                               format="percent")},
)
ui.download_csv(frame, "experiments", key="home-experiments-csv")
picked = event.selection.rows if event is not None and hasattr(event, "selection") else []
if picked:
    chosen = frame.iloc[picked[0]]["id"]
    ui.set_selected_experiment(chosen)
    st.caption(f"Selected **{ui.md(frame.iloc[picked[0]]['name'])}** ({ui.md(chosen)}).")
    c1 = c2 = c3 = st.container(horizontal=True)
    c1.page_link("pages/runs.py", label="Runs", icon=":material/monitoring:", query_params={"experiment": chosen})
    c2.page_link("pages/families.py", label="Families", icon=":material/diversity_3:",
                 query_params={"experiment": chosen})
    c3.page_link("pages/design.py", label="New experiment", icon=":material/tune:")
else:
    st.caption("Select a row to open its runs or families.")

with st.expander("Start another preset"):
    c1 = c2 = st.container(horizontal=True)
    if c1.button("Teaching", key="home-again-teaching", icon=":material/play_arrow:"):
        if experiment_id := launch_preset("teaching"):
            st.switch_page("pages/runs.py", query_params={"experiment": experiment_id})
    if c2.button("Smoke", key="home-again-smoke", icon=":material/bolt:"):
        if experiment_id := launch_preset("smoke"):
            st.switch_page("pages/runs.py", query_params={"experiment": experiment_id})
