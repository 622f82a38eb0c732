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
from akp.plots.dispersion import add_floor_line, mark_floor_on_heatmap, pcoa_figure, route_convergence_figure
from akp.projection import model_map
from akp.runs import DIVERGED, FINISHED_STATES
from ui.selectors import own_page_params

DISTANCE_LABELS = {"1-cka": "1 − CKA", "angular": "angular (arccos CKA)"}
RULE_LABELS = {"accuracy": "accuracy", "gap": "accuracy + gap"}

# "epoch" is "final" or an epoch here, a captured epoch on Representations and Layers: keep it to this page.
own_page_params("families", ("epoch",))

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
                                    help="How many random relabellings of the families the p-values use: more give a "
                                         "finer p-value and take longer. When there are fewer distinct "
                                         "labellings than this (small families: 3 + 3 runs have only 20), all of "
                                         "them are enumerated instead, an exact test; the caption under the "
                                         "verdict says which.")
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


@st.cache_data(show_spinner="Following each route over epochs…", max_entries=32)
def route_data(home: str, experiment_id: str, layer: str, threshold: float | None, rule: str,
               max_gap: float | None, debiased: bool, fingerprint: tuple) -> analysis.RouteConvergence:
    """Within-route CKA per epoch, trend tests and the untrained floor (:func:`akp.analysis.route_convergence`)."""
    return analysis.route_convergence(ui.get_store(), experiment_id, layer=layer, threshold=threshold,
                                      debiased=debiased, rule=rule, max_gap=max_gap, seed=0)


@st.cache_data(show_spinner=False, max_entries=32)
def floor_data(home: str, experiment_id: str, layer: str, debiased: bool,
               fingerprint: tuple) -> analysis.CKAFloor:
    """CKA between the untrained networks (epoch −1) of the experiment (:func:`akp.analysis.cka_floor`)."""
    return analysis.cka_floor(ui.get_store(), experiment_id, layer=layer, debiased=debiased)


@st.cache_data(show_spinner="Sweeping the happy threshold…", max_entries=32)
def sweep_data(home: str, experiment_id: str, layer: str, epoch: int | None, rule: str, max_gap: float | None,
               distance: str, debiased: bool, permutations: int, fingerprint: tuple) -> list[dict]:
    """Rows of :func:`akp.analysis.threshold_sweep` as dicts."""
    rows = analysis.threshold_sweep(ui.get_store(), experiment_id, layer=layer, epoch=epoch, rule=rule,
                                    max_gap=max_gap, distance=distance, debiased=debiased,
                                    permutations=permutations, seed=0)
    return [r.to_dict() for r in rows]


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
# Warn before the verdict: a rank-1 representation makes CKA compare one direction, and collapsed runs are left out.
rank_one = [d for d in result.diagnostics if d.get("rank_one")]
collapsed = [d for d in result.diagnostics if d.get("collapsed")]
if rank_one or collapsed:
    parts = []
    if rank_one:
        parts.append(f"{len(rank_one)} run(s) have an effective rank below 1.5 at layer {layer} (their "
                     "representation is almost one direction, so CKA compares little)")
    if collapsed:
        parts.append(f"{len(collapsed)} run(s) collapsed (no better than the majority class) and are left out")
    st.warning("Read the verdict with care: " + "; ".join(parts) + ". See the diagnostics per run below.")
show = {"supported": st.success, "reversed": st.warning, "no_difference": st.info}.get(result.verdict_code, st.info)
with st.container(key="families-verdict"):  # one box to find on small screens (the e2e test)
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
               + (f"all {primary.permutations} distinct ways to split the {unit_label} into two families of "
                  "these sizes were enumerated (an exact test; the Permutations setting, "
                  f"{permutations}, is an upper limit that only applies when there are more). " if primary.exact
                  else f"{primary.permutations} random labellings. ")
               + f"Two-sided PERMDISP of the runs: F = {test.statistic:.3f}, p = {test.p_value:.3g}.")
counts = {f: result.families.count(f) for f in analysis.FAMILIES}
rule_text = analysis.describe_rule(result.rule, result.threshold, automatic=threshold is None, max_gap=max_gap)
st.markdown(f"**Rule:** {rule_text} · **happy** {counts['happy']} · **unhappy** {counts['unhappy']}")
if result.excluded:
    with st.expander(f"{len(result.excluded)} run(s) left out of the test"):
        ui.show_table(result.excluded, f"{base}-excluded", key="families-excluded-csv")
by_id = {r["run_id"]: r for r in runs}
diag_rows = [{"run_id": d["run_id"], "condition": by_id.get(d["run_id"], {}).get("condition"),
              "seed": by_id.get(d["run_id"], {}).get("seed"), "family": d["family"],
              "test_acc": by_id.get(d["run_id"], {}).get("test_acc"),
              "effective_rank": d["effective_rank"], "total_variance": d["total_variance"],
              "rank_one": d["rank_one"], "distance_to_centre": d["distance_to_centre"],
              "collapsed": d["collapsed"], "collapsed_reason": d["collapsed_reason"]}
             for d in result.diagnostics]
with st.expander("Diagnostics per run", expanded=bool(rank_one or collapsed)):
    st.caption(f"At layer {layer}: effective rank (participation ratio of the covariance eigenvalues: 1 = one "
               "direction), total variance, distance to the family centre (bias-adjusted PERMDISP of the runs), "
               "and collapse with its reason.")
    ui.show_table(diag_rows, f"{base}-diagnostics", key="families-diagnostics-csv")
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
else:
    matrix_rows = [{"run_a": result.run_ids[i], "run_b": result.run_ids[j], "family_a": result.families[i],
                    "family_b": result.families[j], kind.replace(" ", "_"): float(result.cka[i, j]),
                    "distance": float(result.distances[i, j])}
                   for i in range(len(result.run_ids)) for j in range(len(result.run_ids))]
    floor = floor_data(HOME, experiment_id, layer, bool(debiased), FINGERPRINT)
    heatmap = cka_heatmap(result.cka, records, value_label=kind,
                          title=f"{kind} between runs at layer {layer} (ordered by family)")
    ui.show_figure(mark_floor_on_heatmap(heatmap, floor.mean if floor.n_pairs else None),
                   f"cka-heatmap-{base}", key="families-heatmap", data=matrix_rows)
    if floor.n_pairs:
        st.caption(f"Untrained floor (marked on the colour bar): {kind} between the untrained networks (epoch −1) of "
                   f"this experiment at layer {layer} is {floor.mean:.3f} on average (min {floor.min:.3f}, max "
                   f"{floor.max:.3f}, {floor.n_pairs} pairs). Random weights alone give this much similarity: only "
                   "values above it say that runs learned alike.")
    else:
        st.caption("No untrained floor: fewer than two runs captured their untrained network (epoch −1).")

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

    # -- ecology's picture: PCoA with family centres ----------------------------------------------------------
    try:
        ordination = analysis.family_pcoa(result.distances, result.families)
    except ValueError as exc:
        st.info(f"No PCoA for these distances: {ui.md(exc)}")
    else:
        pcoa_rows = [{"run_id": rid, "family": fam, "axis_1": float(x), "axis_2": float(y)}
                     for rid, fam, (x, y) in zip(result.run_ids, result.families, ordination.coords, strict=True)]
        ui.show_figure(pcoa_figure(ordination.coords, records, ordination.centres, explained=ordination.explained),
                       f"pcoa-{base}", key="families-pcoa", data=pcoa_rows)
        st.caption("Principal coordinates of the distances between runs, as PERMDISP sees them: each line joins a "
                   "run to its family centre, and the test compares the lengths of these lines."
                   + (f" {ordination.n_negative_axes} imaginary axes (a non-Euclidean distance) are not drawn."
                      if ordination.n_negative_axes else ""))

# -- convergence -------------------------------------------------------------------------------------------
st.header("Convergence over epochs")
st.caption(f"Mean {kind} between the seeds of each route (a condition within its family) at every captured "
           "epoch, from the untrained network (epoch −1) on. The theorem predicts happy routes rising: their "
           "seeds come to represent the data alike. The dashed line is the untrained floor.")
try:
    routes = route_data(HOME, experiment_id, layer, threshold, rule, max_gap, bool(debiased), FINGERPRINT)
except ValueError as exc:
    routes = None
    st.info(f"Cannot follow the routes over epochs: {ui.md(exc)}")
if routes is not None and not routes.points:
    st.info("No captured epochs to follow.")
elif routes is not None:
    xs, by_route = analysis.route_series(routes.points)
    swap_epochs = sorted({e["epoch"] for r in finished for e in store.events(r["run_id"])})
    ui.show_figure(route_convergence_figure(xs, by_route, floor=routes.floor.mean if routes.floor.n_pairs else None,
                                            value_label=f"mean {kind} between seeds", swap_epochs=swap_epochs),
                   f"convergence-{base}", key="families-convergence", data=[p.to_dict() for p in routes.points])
    if swap_epochs:
        st.caption("Dotted lines: epochs at which a swap event took effect in some condition.")
    trend_rows = [{"route": f"{t.condition} ({t.family})", "family": t.family, "seeds": t.n_seeds,
                   "epochs": f"{t.epochs[0]} to {t.epochs[-1]}" if t.epochs else "—", "slope per epoch": t.slope,
                   "interval low": None if t.ci is None else t.ci[0],
                   "interval high": None if t.ci is None else t.ci[1], "change first to last": t.change,
                   "trend": t.status} for t in routes.trends]
    st.subheader("Trend per route")
    st.caption("Slope of the route's mean between-seed CKA over epochs, with a 95% bootstrap interval (seeds "
               "resampled). Converging: the whole interval is above 0. At least 3 seeds are needed.")
    ui.show_table(trend_rows, f"{base}-trends", key="families-trends-csv")
    happy_trends = [t for t in routes.trends if t.family == "happy" and t.ci is not None]
    if happy_trends:
        n_conv = sum(t.status == "converging" for t in happy_trends)
        st.markdown(f"**Happy routes converging:** {n_conv} of {len(happy_trends)} tested.")
    with st.expander("Families pooled (all routes of a family together)"):
        st.caption("The older view: mean CKA over all pairs of runs of a family, routes mixed, band ± one standard "
                   "deviation over pairs (not independent). A route joining a family can lower it without any "
                   "route diverging.")
        try:
            pooled_xs, series, points = convergence_data(HOME, experiment_id, layer, threshold, rule, max_gap,
                                                         bool(debiased), FINGERPRINT)
        except ValueError as exc:
            st.info(f"Cannot follow the families over epochs: {ui.md(exc)}")
        else:
            if pooled_xs:
                pooled = convergence_figure(pooled_xs, series, value_label=f"mean {kind} within family",
                                            title="Pooled within-family CKA over epochs", swap_epochs=swap_epochs)
                ui.show_figure(add_floor_line(pooled, routes.floor.mean if routes.floor.n_pairs else None),
                               f"convergence-pooled-{base}", key="families-convergence-pooled", data=points)

# -- threshold sweep -------------------------------------------------------------------------------------------
st.header("Threshold sweep (exploratory)")
st.caption("The same test at other happy thresholds, to see how much the verdict depends on the one chosen. "
           f"Runs whose test accuracy lies within {analysis.NEAR_MARGIN:.2f} of a threshold could fall on either "
           "side of it by chance; they are listed. This is exploratory: the verdict above is the one to report.")
try:
    sweep = sweep_data(HOME, experiment_id, layer, epoch, rule, max_gap, distance, bool(debiased),
                       int(permutations), FINGERPRINT)
except ValueError as exc:
    sweep = []
    st.info(f"Cannot sweep the threshold: {ui.md(exc)}")
if sweep:
    sweep_rows = [{"threshold": r["threshold"], "verdict": r["verdict_code"] or "refused",
                   "p (principle)": r["p_value"], "p (reverse)": r["p_anti"], "unit": r["unit"],
                   "happy": r["n_happy"], "unhappy": r["n_unhappy"], "runs near": len(r["near"]),
                   "near runs": ", ".join(r["near"]), "note": r["error"] or ""} for r in sweep]
    ui.show_table(sweep_rows, f"{base}-sweep", key="families-sweep-csv")
    if result.threshold is not None:
        st.caption(f"The verdict above uses threshold {result.threshold:.3f}.")
else:
    st.info("No thresholds to sweep: the runs' test accuracies span no step of 0.025.")
