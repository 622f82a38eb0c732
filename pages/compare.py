"""Compare: training curves of several experiments overlaid, grouped by condition, and how their specs differ.

Everything is computed in :mod:`akp.analysis.compare` (grouping, mean and band),
:mod:`akp.analysis.spec_diff` (the fields that differ) and drawn by
:mod:`akp.plots.compare`. The selection lives in the URL (``?exp=..&exp=..``,
``condition``, ``metric``, ``band``, ``by``, ``color``) so a comparison can be shared.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

import ui
from akp.analysis.compare import BANDS, COMPARE_METRICS, GROUP_BY, gather_comparison, group_curves, group_summary
from akp.analysis.spec_diff import spec_diff
from akp.plots.compare import COLOR_BY, comparison_figure
from akp.plots.training import metrics_table

# widget key -> (query parameter, allowed values or None for free, default, several values?)
URL_STATE: dict[str, tuple[str, Any, Any, bool]] = {
    "compare-experiments": ("exp", None, None, True),
    "compare-conditions": ("condition", None, [], True),
    "compare-metric": ("metric", list(COMPARE_METRICS), "test_acc", False),
    "compare-band": ("band", list(BANDS), "minmax", False),
    "compare-by": ("by", list(GROUP_BY), "experiment", False),
    "compare-color": ("color", list(COLOR_BY), "group", False),
}
SHORT_BANDS = {"minmax": "min-max", "sd": "± 1 sd"}
SHORT_GROUP_BY = {"experiment": "experiment · condition", "condition": "condition"}


def read_url(key: str, offered: list[Any] | None = None) -> None:
    """Set a widget's state from its query parameter when the URL says something new (a shared link)."""
    param, allowed, default, multi = URL_STATE[key]
    allowed = offered if offered is not None else allowed
    raw = st.query_params.get_all(param)
    seen_key = f"_{key}-url"
    if raw == st.session_state.get(seen_key):
        return  # the URL is what this page wrote last: the widget's own state wins
    st.session_state[seen_key] = raw
    values = [v for v in dict.fromkeys(raw) if allowed is None or v in allowed]
    if multi and raw:
        st.session_state[key] = values
    elif not multi and values:
        st.session_state[key] = values[0]


def write_url(key: str, value: Any) -> None:
    """Put a widget's value into its query parameter (defaults are left out of the URL)."""
    param, _, default, multi = URL_STATE[key]
    values = [str(v) for v in (value or [])] if multi else ([] if value in (None, default) else [str(value)])
    if multi and default is not None and list(value or []) == list(default):
        values = []
    if values:
        if st.query_params.get_all(param) != values:
            st.query_params[param] = values
    else:
        st.query_params.pop(param, None)
    st.session_state[f"_{key}-url"] = values


st.title("Compare")
st.caption("Overlay the training curves of several experiments. Runs are grouped by condition: each group shows "
           "its mean (thick line), a band (min-max over its runs, or mean ± 1 standard deviation) and each run "
           "as a thin line; hover a line for its run id, seed, epoch and value. Below, the specs side by side, "
           "only the fields that differ.")

store = ui.get_store()
experiments = store.experiments()
if not experiments:
    st.info("No experiments yet. Start one on **Home** or **Design**.")
    st.stop()
by_id = {e["id"]: e for e in experiments}
ids = list(by_id)

read_url("compare-experiments", ids)
if "compare-experiments" not in st.session_state:
    st.session_state["compare-experiments"] = ids[:2]  # the two newest: the usual question is "what changed?"
chosen = st.multiselect("Experiments", ids, key="compare-experiments",
                        format_func=lambda i: ui.experiment_label(by_id[i]),
                        help="Pick two or more experiments; their runs are overlaid.")
write_url("compare-experiments", chosen)
if not chosen:
    st.info("Choose at least one experiment under **Experiments**.")
    st.stop()

comparison = None
with ui.guard("Reading the experiments", prefix="Cannot read these experiments: "):
    comparison = gather_comparison(store, chosen)
if comparison is None:
    st.stop()
condition_names = list(dict.fromkeys(r["condition"] for r in comparison.runs))

with st.container(border=True):
    c1, c2, c3 = st.columns([3, 2, 1])
    read_url("compare-conditions", condition_names)
    conditions = c1.multiselect("Conditions", condition_names, key="compare-conditions",
                                help="Leave empty for every condition of the chosen experiments.")
    write_url("compare-conditions", conditions)
    for key in ("compare-metric", "compare-band", "compare-by", "compare-color"):
        read_url(key)
    metric = c2.selectbox("Metric", list(COMPARE_METRICS), key="compare-metric", format_func=COMPARE_METRICS.get)
    show_runs = c3.toggle("Run lines", value=True, key="compare-runs", help="Draw each run's own thin line.")
    r1, r2, r3 = st.columns([1, 1.4, 1])
    band = r1.segmented_control("Band", list(BANDS), key="compare-band", format_func=SHORT_BANDS.get,
                                default=None if "compare-band" in st.session_state else "minmax",
                                help="min-max: from the lowest to the highest run at each epoch. "
                                     "± 1 sd: the mean plus and minus the runs' sample standard deviation.")
    by = r2.segmented_control("Group by", list(GROUP_BY), key="compare-by", format_func=SHORT_GROUP_BY.get,
                              default=None if "compare-by" in st.session_state else "experiment",
                              help="condition: runs of the same condition name are pooled across experiments.")
    color = r3.segmented_control("Colour runs by", list(COLOR_BY), key="compare-color",
                                 format_func={"group": "group", "seed": "seed"}.get,
                                 default=None if "compare-color" in st.session_state else "group",
                                 help="Seed: the same seed has the same colour in every group (the mean and band "
                                      "keep the group's colour).")
    band, by, color = band or "minmax", by or "experiment", color or "group"
    for key, value in (("compare-metric", metric), ("compare-band", band), ("compare-by", by),
                       ("compare-color", color)):
        write_url(key, value)

runs = [r for r in comparison.runs if not conditions or r["condition"] in conditions]
groups = group_curves(runs, comparison.metrics, metric=metric, by=by, band=band)
st.subheader(f"{COMPARE_METRICS[metric].capitalize()} per epoch")
st.caption(f"Band: {BANDS[band]}. Thin run lines are solid for the first experiment, dashed for the second, "
           "dotted for the third (and so on), also when groups pool several experiments.")
table = metrics_table(runs, comparison.metrics)
table.insert(0, "experiment", table["run_id"].map({r["run_id"]: r["experiment_name"] for r in runs}))
fig = comparison_figure(groups, comparison.metrics, metric=metric, band=band, color_by=color, show_runs=show_runs)
ui.show_figure(fig, f"compare-{metric}", key="compare-curves", data=table)

summary = pd.DataFrame(group_summary(groups))
if not summary.empty:
    st.subheader("At the last epoch")
    ui.show_table(summary, "compare-last-epoch", key="compare-summary-csv",
                  column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in ("mean", "low", "high")})

st.subheader("Specs: what differs")
labels = {e["id"]: f"{e['name']} ({e['id']})" for e in comparison.experiments}
diff = spec_diff({labels[e["id"]]: e["spec"] for e in comparison.experiments})
if len(comparison.experiments) < 2:
    st.caption("Choose a second experiment to see how the specs differ.")
elif not diff:
    st.caption("The specs are identical: any difference between the curves comes from chance.")
else:
    st.caption("Only fields whose values differ are shown; conditions are matched by name (— : not in that spec).")
    with st.container(key="compare-spec-diff"):
        frame = pd.DataFrame(diff).set_index("field")
        st.table(frame)  # a few rows of text: a plain table reads (and wraps) better than a grid
        ui.download_csv(frame.reset_index(), "compare-spec-diff", key="compare-diff-csv")
