"""Families: happy vs unhappy runs, their CKA similarity, dispersion, the PERMDISP test and its verdict."""
from __future__ import annotations

import streamlit as st

import ui
from akp import analysis
from akp.plots.analysis import (
    accuracy_gap_scatter,
    cka_heatmap,
    convergence_figure,
    dispersion_box,
    model_map_figure,
)
from akp.projection import model_map
from akp.runs import DIVERGED, FINISHED_STATES

DISTANCE_LABELS = {"1-cka": "1 − CKA", "angular": "angular (arccos CKA)"}
RULE_LABELS = {"accuracy": "accuracy", "gap": "accuracy + gap"}

st.title("Families: are happy runs alike?")
st.caption("Runs that generalize (happy) should have similar representations of the probe set; runs that "
           "fail (unhappy) should each differ in their own way. This page sorts runs into families and "
           "tests whether the unhappy family is more dispersed.")

store = ui.get_store()
experiment_id = ui.experiment_selector(store)
if experiment_id is None:
    st.stop()

runs, finished = ui.finished_runs(
    store, experiment_id, minimum=2,
    pending_note="{pending} of {total} runs are still queued or running. The analysis below uses the "
                 "{finished} finished ones and will change when the rest finish.",
    too_few="The family analysis needs at least two finished runs in this experiment. "
            "Watch progress on the **Runs** page.")

# A fingerprint of the store's state for this experiment: any finished epoch or state change invalidates caches.
FINGERPRINT = tuple((r["run_id"], r["state"], r["epochs_done"]) for r in runs)
HOME = str(store.home)


@st.cache_data(show_spinner=False, max_entries=32)
def captured(home: str, experiment_id: str, fingerprint: tuple) -> dict[str, dict[str, list[int]]]:
    """Finished run -> layer -> captured epochs. Each lookup opens the run's .npz, so it is cached."""
    s = ui.get_store()
    ids = [run_id for run_id, state, _ in fingerprint if state in FINISHED_STATES]
    return {rid: {lay: s.representation_epochs(rid, lay) for lay in s.layers(rid)} for rid in ids}


CAPTURED = captured(HOME, experiment_id, FINGERPRINT)

# -- settings ----------------------------------------------------------------------------------------
layers = list(dict.fromkeys(lay for r in finished for lay in CAPTURED.get(r["run_id"], {})))
if not layers:
    st.info("The finished runs have no stored representations to compare.")
    st.stop()
auto_threshold = analysis.largest_gap_threshold(
    [r["test_acc"] for r in finished if r["state"] != DIVERGED])

with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("Layer", layers, index=layers.index("embedding") if "embedding" in layers else 0,
                         key="layer", bind="query-params", help="Which layer's representations are compared.")
    distance = c2.segmented_control("Distance", list(DISTANCE_LABELS), default="1-cka", key="distance",
                                    format_func=DISTANCE_LABELS.get, bind="query-params") or "1-cka"
    epochs = sorted({e for r in finished for e in CAPTURED.get(r["run_id"], {}).get(layer, [])})
    epoch_choice = c3.selectbox("Epoch", ["final", *epochs], key="epoch", bind="query-params",
                                format_func=lambda e: "final (last captured)" if e == "final" else f"epoch {e}")
    r1, r2, r3 = st.columns(3)
    rule = r1.segmented_control("Happy if", list(RULE_LABELS), default="accuracy", key="rule",
                                format_func=RULE_LABELS.get, bind="query-params",
                                help="accuracy: test accuracy at or above the threshold. accuracy + gap: also a "
                                     "generalization gap (train − test accuracy) no larger than a limit.") or "accuracy"
    auto_label = (f"none: no gap of {analysis.MIN_AUTO_GAP:.2f} or more between accuracies"
                  if auto_threshold is None else f"{auto_threshold:.3f}")
    auto = r2.toggle("Automatic threshold", value=True, key="auto_threshold", bind="query-params",
                     help="Split the runs' test accuracies where the gap between consecutive values is largest.")
    threshold = None
    if auto:
        r2.caption(f"Largest gap in test accuracy: {auto_label}")
    else:
        threshold = r2.slider("Test accuracy threshold (happy if ≥)", 0.0, 1.0,
                              value=round(auto_threshold if auto_threshold is not None else 0.5, 3), step=0.005,
                              key="threshold", bind="query-params")
    debiased = r3.toggle("Debiased CKA", value=False, key="debiased", bind="query-params",
                         help="Unbiased HSIC estimator: removes the upward bias of CKA on small probe sets; "
                              "values can be slightly negative.")
    max_gap = None
    if rule == "gap":
        max_gap = r1.slider("Largest generalization gap (train − test)", 0.0, 0.5, value=0.1, step=0.01,
                            key="max_gap", bind="query-params")
    permutations = r3.select_slider("Permutations", [99, 199, 499, 999, 1999, 4999, 9999], value=999,
                                    key="permutations", bind="query-params",
                                    help="More permutations give a finer p-value and take longer.")
epoch = None if epoch_choice == "final" else int(epoch_choice)


# -- computations (cached; keyed by the store's home and fingerprint) ---------------------------------
@st.cache_data(show_spinner="Comparing runs (CKA) and running PERMDISP…", max_entries=32)
def akp_result(home: str, experiment_id: str, layer: str, epoch: int | None, threshold: float | None,
               rule: str, max_gap: float | None, distance: str, debiased: bool, permutations: int,
               fingerprint: tuple) -> analysis.AKPResult:
    """The AKP test for these options (see :func:`akp.analysis.akp_test`)."""
    return analysis.akp_test(ui.get_store(), experiment_id, layer=layer, epoch=epoch, threshold=threshold,
                             rule=rule, max_gap=max_gap, distance=distance, debiased=debiased,
                             permutations=permutations, seed=0)


@st.cache_data(show_spinner=False, max_entries=32)
def run_map(distances, fingerprint: tuple):
    """Model-map coordinates of the runs (metric MDS of their distances)."""
    return model_map(distances, method="mds", seed=0)


@st.cache_data(show_spinner="Following the families over epochs…", max_entries=32)
def convergence_data(home: str, experiment_id: str, layer: str, threshold: float | None, rule: str,
                     max_gap: float | None, debiased: bool, fingerprint: tuple):
    """(epochs, by_family series, points as dicts) of :func:`akp.analysis.convergence`."""
    points = analysis.convergence(ui.get_store(), experiment_id, layer=layer, threshold=threshold,
                                  debiased=debiased, rule=rule, max_gap=max_gap)
    xs, series = analysis.convergence_series(points)
    return xs, series, [p.to_dict() for p in points]


try:
    result = akp_result(HOME, experiment_id, layer, epoch, threshold, rule, max_gap, distance, bool(debiased),
                        int(permutations), FINGERPRINT)
except ValueError as exc:  # bad option for this data (e.g. debiased CKA with a tiny probe set)
    st.info(f"Cannot run the analysis with these settings: {ui.md(exc)}")
    st.stop()

records = result.records
kind = "debiased CKA" if result.debiased else "CKA"
dist_label = DISTANCE_LABELS[result.distance]
base = ui.slug(f"{experiment_id}-{layer}-{'final' if epoch is None else f'e{epoch}'}")

# -- verdict ---------------------------------------------------------------------------------------------
st.header("Verdict")
show = {"supported": st.success, "reversed": st.warning, "no_difference": st.info}.get(result.verdict_code, st.info)
show(result.verdict)
for caveat in result.caveats:
    st.caption(f"Caveat: {caveat}")
test, primary = result.test, result.primary
unit_label = {"condition": "routes", "run": "runs"}.get(result.unit or "", "units")
m1, m2, m3, m4 = st.columns(4)
m1.metric("p (principle)", "—" if primary is None else f"{primary.p_akp:.3g}",
          help="One-sided: share of family relabellings in which the unhappy family is at least this much more "
               "dispersed than the happy one.")
m2.metric("p (reverse, anti-AKP)", "—" if primary is None else f"{primary.p_anti:.3g}",
          help="One-sided: the same for the happy family being the more dispersed.")
m3.metric(f"Happy dispersion ({unit_label})", f"{result.dispersion['happy']:.3f}" if "happy" in result.dispersion
          else "—")
m4.metric(f"Unhappy dispersion ({unit_label})", f"{result.dispersion['unhappy']:.3f}"
          if "unhappy" in result.dispersion else "—")
if result.dispersion_difference is not None:
    ci = result.difference_ci
    st.caption(f"Unhappy − happy dispersion: {result.dispersion_difference:.3f}"
               + (f" (bootstrap 95% interval {ci[0]:.3f} to {ci[1]:.3f})" if ci else "")
               + f". Unit: {unit_label}. Layer {layer}, distance {dist_label}, {kind}, {len(result.run_ids)} runs, "
               f"{primary.permutations} {'labellings, all enumerated' if primary.exact else 'random labellings'}. "
               f"Two-sided PERMDISP of the runs: F = {test.statistic:.3f}, p = {test.p_value:.3g}.")
counts = {f: result.families.count(f) for f in analysis.FAMILIES}
rule_text = (f"test accuracy ≥ {result.threshold:.3f}" if result.threshold is not None else "all runs (no split)")
if result.rule == "gap":
    rule_text += f" and generalization gap ≤ {max_gap:.2f}"
st.markdown(f"**Rule:** happy if {rule_text} · **happy** {counts['happy']} · **unhappy** {counts['unhappy']}"
            + (" · threshold chosen at the largest gap" if threshold is None and result.rule == "accuracy" else ""))
if result.excluded:
    with st.expander(f"{len(result.excluded)} run(s) left out of the test"):
        ui.show_table(result.excluded, f"{base}-excluded", key="families-excluded-csv")
ui.download_json(result.to_dict(), f"akp-test-{base}", label="Download the full result (JSON)",
                 key="families-result-json")

# -- families --------------------------------------------------------------------------------------------
st.header("Families")
# Every finished run, even those left out of the test, labelled by the same rule.
labelled = analysis.label_runs(runs, rule=rule, threshold=threshold, max_gap=max_gap)
table = [{"run_id": r["run_id"], "condition": r["condition"], "seed": r["seed"], "state": r["state"],
          "test_acc": r["test_acc"], "train_acc": r["train_acc"], "gap": r["gap"], "family": r["family"]}
         for r in labelled.records]
ui.show_figure(accuracy_gap_scatter(labelled.records, threshold=labelled.threshold),
               f"families-scatter-{base}", key="families-scatter", data=table)
with st.expander("Runs and their family"):
    ui.show_table(table, f"families-{base}", key="families-table-csv")

# -- similarity --------------------------------------------------------------------------------------------
st.header("Similarity between runs")
if len(result.run_ids) < 2:
    st.info("Fewer than two runs have usable representations at this layer: nothing to compare.")
    st.stop()
matrix_rows = [{"run_a": result.run_ids[i], "run_b": result.run_ids[j], "family_a": result.families[i],
                "family_b": result.families[j], kind.replace(" ", "_"): float(result.cka[i, j]),
                "distance": float(result.distances[i, j])}
               for i in range(len(result.run_ids)) for j in range(len(result.run_ids))]
ui.show_figure(cka_heatmap(result.cka, records, value_label=kind,
                           title=f"{kind} between runs at layer {layer} (ordered by family)"),
               f"cka-heatmap-{base}", key="families-heatmap", data=matrix_rows)

left, right = st.columns(2)
with left:
    if test is not None:
        disp_rows = [{"run_id": rid, "family": fam, "distance_to_centre": float(d)}
                     for rid, fam, d in zip(result.run_ids, result.families, test.distances, strict=True)]
        ui.show_figure(dispersion_box(test.distances, records, value_label=f"distance to centre ({dist_label})"),
                       f"dispersion-{base}", key="families-dispersion", data=disp_rows)
    else:
        st.info("Dispersion per family needs at least two runs in each family. Try another threshold, or "
                "train more seeds.")
with right:
    try:
        coords = run_map(result.distances, FINGERPRINT)
    except ValueError as exc:
        st.info(f"No model map for these distances: {ui.md(exc)}")
    else:
        map_rows = [{"run_id": rid, "family": fam, "x": float(x), "y": float(y)}
                    for rid, fam, (x, y) in zip(result.run_ids, result.families, coords, strict=True)]
        ui.show_figure(model_map_figure(coords, records), f"model-map-{base}", key="families-map",
                       data=map_rows)

# -- convergence -------------------------------------------------------------------------------------------
st.header("Convergence over epochs")
st.caption(f"Mean {kind} between runs of the same family at each captured epoch (band: ± one standard "
           "deviation over pairs). AKP predicts the happy line rising towards 1.")
try:
    xs, series, points = convergence_data(HOME, experiment_id, layer, threshold, rule, max_gap, bool(debiased),
                                          FINGERPRINT)
except ValueError as exc:
    xs, series, points = [], {}, []
    st.info(f"Cannot follow the families over epochs: {ui.md(exc)}")
if not xs:
    st.info("No captured epochs to follow.")
else:
    swap_epochs = sorted({e["epoch"] for r in finished for e in store.events(r["run_id"])})
    ui.show_figure(convergence_figure(xs, series, value_label=f"mean {kind} within family",
                                      swap_epochs=swap_epochs),
                   f"convergence-{base}", key="families-convergence", data=points)
    if any(p["count"] == 0 for p in points):
        st.caption("A family with a single run has no pair to average at that epoch (gaps in its line).")
    if swap_epochs:
        st.caption("Dotted lines: epochs at which a swap event took effect in some condition.")
