"""Layers: layer-by-layer CKA between any two runs of an experiment, at a chosen epoch.

A thin view over :mod:`akp.layers` (the computation, with the layers it must leave out).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

import ui
from akp.analysis import layers as layer_analysis
from akp.plots.analysis import layer_cka_heatmap
from ui.selectors import own_page_params

# "epoch" is an epoch both runs captured here; Families and Representations use the key differently.
own_page_params("layers", ("epoch",))

st.title("Layers: compare two runs layer by layer")
st.caption("CKA between every layer of run A and every layer of run B, on the experiment's probe set. "
           "A bright diagonal means the two runs build similar representations at the same depth.")

store = ui.get_store()
experiment_id = ui.experiment_selector(store)
if experiment_id is None:
    st.stop()

runs, finished = ui.finished_runs(
    store, experiment_id, minimum=2,
    pending_note="{pending} of {total} runs are still queued or running; "
                 "only finished runs can be compared. Come back when they are done.",
    too_few="Layer-by-layer CKA needs at least two finished runs in this experiment.")

by_id = {r["run_id"]: r for r in finished}
ids = list(by_id)


def _label(run_id: str) -> str:
    r = by_id[run_id]
    acc = "n/a" if r["test_acc"] is None else f"{r['test_acc']:.3f}"
    return f"{r['condition']} · seed {r['seed']} · test acc {acc}"


# Default B: the first run of another condition, so the first view shows a real contrast.
default_b = next((i for i in ids[1:] if by_id[i]["condition"] != by_id[ids[0]]["condition"]), ids[1])
col_a, col_b = st.columns(2)
run_a = col_a.selectbox("Run A", ids, index=0, format_func=_label, key="run_a", bind="query-params")
run_b = col_b.selectbox("Run B", ids, index=ids.index(default_b), format_func=_label, key="run_b",
                        bind="query-params")


def _fingerprint(run_ids: tuple[str, ...]) -> tuple:
    return tuple((r, by_id[r]["state"], by_id[r]["epochs_done"]) for r in run_ids)


@st.cache_data(show_spinner=False, max_entries=64)
def shared_epochs(home: str, a: str, b: str, fingerprint: tuple) -> list[int]:
    """Epochs captured by both runs; keyed by the store's home and the runs' fingerprint."""
    return layer_analysis.common_epochs(ui.get_store(), a, b)


@st.cache_data(show_spinner="Computing CKA between layers…", max_entries=64)
def layer_cka(home: str, a: str, b: str, epoch: int, debiased: bool, fingerprint: tuple
              ) -> layer_analysis.LayerCKA:
    """:func:`akp.layers.layer_cka`; keyed by the store's home and the runs' fingerprint."""
    return layer_analysis.layer_cka(ui.get_store(), a, b, epoch=epoch, debiased=debiased)


common_epochs = shared_epochs(str(store.home), run_a, run_b, _fingerprint((run_a, run_b)))
if not common_epochs:
    st.info("These two runs have no captured epoch in common; pick other runs.")
    st.stop()
col_e, col_d = st.columns([3, 1])
if len(common_epochs) > 1:
    epoch = col_e.select_slider("Epoch", common_epochs, value=common_epochs[-1], key="epoch",
                                bind="query-params", help="Epochs captured for both runs.")
else:
    epoch = common_epochs[0]
    col_e.caption(f"Epoch {epoch} (the only epoch captured for both runs).")
debiased = col_d.toggle("Debiased CKA", value=False, key="debiased", bind="query-params",
                        help="Unbiased HSIC estimator (Song et al. 2012): less biased on small probe sets; "
                             "can be slightly negative.")


try:
    result = layer_cka(str(store.home), run_a, run_b, int(epoch), bool(debiased), _fingerprint((run_a, run_b)))
except ValueError as exc:  # e.g. too few probe images for the debiased estimator
    st.info(f"Cannot compare these runs: {ui.md(exc)}")
    st.stop()
layers_a, layers_b, matrix = result.layers_a, result.layers_b, result.matrix
if result.skipped:
    with st.expander(f"{len(result.skipped)} layer(s) left out at epoch {epoch}",
                     expanded=not layers_a or not layers_b):
        ui.show_table(result.skipped, ui.slug(f"layer-cka-skipped-{run_a}-vs-{run_b}-e{epoch}"),
                      key="layers-skipped-csv")
if not layers_a or not layers_b:
    st.info("No layer of one of these runs can be compared at this epoch (see the reasons above); "
            "pick another epoch or other runs.")
    st.stop()

name_a, name_b = _label(run_a), _label(run_b)
kind = "debiased CKA" if debiased else "CKA"
fig = layer_cka_heatmap(matrix, layers_a, layers_b, name_a=f"A ({by_id[run_a]['condition']} s{by_id[run_a]['seed']})",
                        name_b=f"B ({by_id[run_b]['condition']} s{by_id[run_b]['seed']})", value_label=kind,
                        title=f"Layer-by-layer {kind} at epoch {epoch}")
table = [{"layer_a": la, "layer_b": lb, "cka": None if not np.isfinite(matrix[i, j]) else float(matrix[i, j]),
          "run_a": run_a, "run_b": run_b, "epoch": int(epoch), "debiased": bool(debiased)}
         for i, la in enumerate(layers_a) for j, lb in enumerate(layers_b)]
base = ui.slug(f"layer-cka-{run_a}-vs-{run_b}-e{epoch}")
ui.show_figure(fig, base, key="layers-heatmap", data=table)
if np.isnan(matrix).any():
    st.caption("n/a: a layer whose representation is constant over the probe set (a collapsed run) "
               "has no defined CKA.")

st.subheader("Same layer in both runs")
same = [row for row in table if row["layer_a"] == row["layer_b"]]
ui.show_table(same, f"{base}-diagonal", key="layers-diagonal-csv")
st.caption(f"Run A: {ui.md(name_a)}  ·  Run B: {ui.md(name_b)}")
