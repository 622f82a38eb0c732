"""Representations: a projector of the probe set for two runs side by side, over epochs.

Default: one happy and one unhappy run. Colour by class, prediction,
correctness or confidence. Click a point (or type its id) to select that probe
image in both plots: it is shown with its label, each run's prediction and its
distance to its class centre, and kept in the URL (``?probe=ID``). A box or a
lasso lists the images it holds. The epoch slider replays training with aligned
frames, swap epochs marked. The numbers come from :mod:`akp.projection.probes`,
the figures from :mod:`akp.plots.projector`.
"""
from __future__ import annotations

import streamlit as st

import ui
from akp import projection
from akp.analysis import label_families
from akp.datasets import CLASS_NAMES, SYNTHETIC
from akp.plots.analysis import cell_image_figure
from akp.plots.projector import COLOR_MODES, NEEDS_LOGITS, projector_scatter, thumbnail_grid
from akp.projection import probes
from ui.selectors import own_page_params

SWAP_MARK = "⚡"
PROBE_KEY = "probe"  # the search box's key, so also the URL's ?probe=
LISTED_KEY = "_akp_listed_probes"  # images listed by the last box or lasso (session only)
MAX_THUMBNAILS = 48

# "epoch" means a captured epoch here, "final" or an epoch on Families: never take another page's value.
own_page_params("representations", ("epoch",))

st.title("Representations: how runs see the probe set")
st.caption("Each dot is one probe image, placed by UMAP so that images the run represents alike are close. "
           "Compare a happy run (left) with an unhappy one (right). Click a dot to select that image in both "
           "plots; drag a box or a lasso (tools above each plot) to list images.")

store = ui.get_store()
experiment_id = ui.experiment_selector(store)
if experiment_id is None:
    st.stop()

runs, finished = ui.finished_runs(
    store, experiment_id, minimum=1,
    pending_note="{pending} of {total} runs are still queued or running; their representations "
                 "appear here when they finish.",
    too_few="No finished run in this experiment yet: representations are stored when a run finishes.")

# UMAP's first fit in a process compiles numba kernels (~20-30 s): never block the page on it.
if not projection.is_warm():
    projection.start_warm_up()
    state = projection.warm_up_status()
    if state["state"] != "failed":
        st.info("Preparing UMAP (the first projection in a fresh server compiles its kernels, about "
                "20-30 seconds). This page refreshes by itself.", icon=":material/hourglass_top:")

        @st.fragment(run_every=2)
        def _wait_for_umap() -> None:
            if projection.is_warm() or projection.warm_up_status()["state"] == "failed":
                st.rerun()
            st.caption(f"UMAP warm-up: {projection.warm_up_status()['state']}…")

        _wait_for_umap()
        st.stop()
    st.warning(f"UMAP warm-up failed ({state['error']}); projections are computed on demand instead.")

by_id = {r["run_id"]: r for r in finished}
ids = list(by_id)


def _acc(run_id: str) -> float:
    acc = by_id[run_id]["test_acc"]
    return -1.0 if acc is None else float(acc)


def _default_pair() -> tuple[str, str]:
    """The best happy run and the worst unhappy run by the analysis's default rule (the clearest contrast);
    without two families, the best and the worst run by test accuracy."""
    ranked = sorted(ids, key=_acc, reverse=True)
    try:
        families = dict(zip(ids, label_families(finished), strict=True))
    except ValueError:
        families = {}
    happy = [i for i in ranked if families.get(i) == "happy"]
    unhappy = [i for i in ranked if families.get(i) == "unhappy"]
    if happy and unhappy:
        return happy[0], unhappy[-1]
    return ranked[0], ranked[-1]


def _label(run_id: str) -> str:
    r = by_id[run_id]
    acc = "n/a" if r["test_acc"] is None else f"{r['test_acc']:.3f}"
    return f"{r['condition']} · seed {r['seed']} · test acc {acc}"


left_default, right_default = _default_pair()
layers = list(dict.fromkeys(lay for i in ids for lay in store.layers(i)))
if not layers:
    st.info("These runs have no stored representations.")
    st.stop()
c_layer, c_color, c_probe = st.columns([2, 3, 1])
layer = c_layer.selectbox("Layer", layers, index=layers.index("embedding") if "embedding" in layers else 0,
                          key="layer", bind="query-params")
color_by = c_color.segmented_control("Colour by", list(COLOR_MODES), default="class", key="color",
                                     format_func=COLOR_MODES.get, bind="query-params") or "class"
n_probe = len(store.probe_labels(experiment_id))
probe_text = c_probe.text_input(probes.PROBE_FIELD, key=PROBE_KEY, bind="query-params", placeholder="e.g. 12",
                                help=f"Search by probe id (0 to {n_probe - 1}); clicking a dot fills it in.")

sel_l, sel_r = st.columns(2)
run_l = sel_l.selectbox("Left run", ids, index=ids.index(left_default), format_func=_label, key="left",
                        bind="query-params")
run_r = sel_r.selectbox("Right run", ids, index=ids.index(right_default), format_func=_label, key="right",
                        bind="query-params")
chosen = [run_l, run_r]

epochs_by_run = {r: store.representation_epochs(r, layer) for r in chosen}
missing = [r for r, e in epochs_by_run.items() if not e]
if missing:
    names = ui.md(", ".join(_label(r) for r in missing))
    st.info(f"Layer {ui.md(layer)} was not captured for {names}; pick another layer.")
    st.stop()
epochs = sorted(set(epochs_by_run[run_l]) & set(epochs_by_run[run_r]))
if not epochs:
    st.info("The two runs have no captured epoch in common at this layer; pick other runs.")
    st.stop()
swaps = {e["epoch"]: e for r in chosen for e in store.events(r)}


def _epoch_label(e: int) -> str:
    return f"{e} {SWAP_MARK}" if e in swaps else str(e)


if len(epochs) > 1:
    epoch = st.select_slider("Epoch", epochs, value=epochs[-1], format_func=_epoch_label, key="epoch",
                             bind="query-params",
                             help=f"{SWAP_MARK} marks an epoch at which a swap event took effect in one of the runs.")
else:
    epoch = epochs[0]


def _event_text(ev: dict) -> str:
    changes = ", ".join(f"{k} → {v}" for k, v in ev.items() if k != "epoch" and v)
    return f"{SWAP_MARK} epoch {ev['epoch']}: {changes}"


for run_id in dict.fromkeys(chosen):
    events = store.events(run_id)
    if events:
        r = by_id[run_id]
        st.caption(f"Swap events of {ui.md(r['condition'])} · seed {r['seed']}: " + "; ".join(map(_event_text, events)))


col_l, col_r = st.columns(2)


def _fingerprint(run_id: str) -> tuple:
    return (run_id, by_id[run_id]["state"], by_id[run_id]["epochs_done"])


@st.cache_data(show_spinner=False, max_entries=64)
def aligned_frames(home: str, run_id: str, layer: str, epochs: tuple[int, ...], fingerprint: tuple
                   ) -> dict[int, object]:
    """Aligned UMAP frames of one run over ``epochs`` (disk-cached by akp.projection too)."""
    got_epochs, frames = projection.run_aligned_embeddings(ui.get_store(), run_id, layer, list(epochs))
    return dict(zip(got_epochs, frames, strict=True))


labels = store.probe_labels(experiment_id)
spec = store.spec(experiment_id)
class_names = CLASS_NAMES if spec.dataset == SYNTHETIC else ()


@st.cache_data(show_spinner=False, max_entries=64)
def view_at(home: str, experiment: str, run_id: str, layer: str, epoch: int, fingerprint: tuple
            ) -> probes.ProbeView:
    """The run's view of the probe set at ``layer`` and ``epoch`` (prediction from its logits if captured)."""
    s = ui.get_store()
    logits = s.representations(run_id, "logits", epoch) if epoch in s.representation_epochs(run_id, "logits") \
        else None
    return probes.probe_view(s.representations(run_id, layer, epoch), s.probe_labels(experiment), logits)


def _on_select(chart_key: str) -> None:
    """Chart selection callback: a click selects one probe image (search box, hence URL);
    a box, a lasso or shift-clicks list images; clearing the selection clears the list."""
    chosen = probes.selection_from_event(st.session_state[chart_key].selection, n_probe)
    if chosen.kind == "point":
        st.session_state[PROBE_KEY] = str(chosen.probes[0])
    else:
        st.session_state[LISTED_KEY] = list(chosen.probes)


try:
    selected = probes.parse_probe_id(probe_text, n_probe)
except projection.ProjectionError as exc:
    c_probe.error(ui.error_text(exc))
    selected = st.session_state.get("_akp_last_probe")  # a bad search changes nothing
else:
    st.session_state["_akp_last_probe"] = selected
listed = [i for i in st.session_state.get(LISTED_KEY, []) if 0 <= i < n_probe]

views: list[tuple[str, probes.ProbeView]] = []
for col, run_id, side in ((col_l, run_l, "left"), (col_r, run_r, "right")):
    with col:
        try:
            with st.spinner("Projecting with UMAP…"):
                frames = aligned_frames(str(store.home), run_id, layer, tuple(epochs_by_run[run_id]),
                                        _fingerprint(run_id))
            view = view_at(str(store.home), experiment_id, run_id, layer, int(epoch), _fingerprint(run_id))
        except ValueError as exc:
            st.info(f"Cannot project this run: {ui.md(exc)}")
            continue
        views.append((_label(run_id), view))
        mode = "class" if color_by in NEEDS_LOGITS and view.prediction is None else color_by
        if mode != color_by:
            st.caption("No logits captured at this epoch: coloured by class.")
        r = by_id[run_id]
        own_swap = any(ev["epoch"] == int(epoch) for ev in store.events(run_id))
        title = f"{r['condition']} · seed {r['seed']} · epoch {epoch}" + (f" {SWAP_MARK} swap" if own_swap else "")
        coords = frames[int(epoch)]
        fig = projector_scatter(coords, view, color_by=mode, class_names=class_names, title=title,
                                selected=selected, listed=listed)
        chart_key = f"umap-{side}"
        st.plotly_chart(fig, key=chart_key, on_select=lambda k=chart_key: _on_select(k),
                        selection_mode=("points", "box", "lasso"), config={"displaylogo": False})
        table = [{"probe": i, "x": float(coords[i, 0]), "y": float(coords[i, 1]), "label": int(labels[i]),
                  "prediction": None if view.prediction is None else int(view.prediction[i]),
                  "confidence": None if view.confidence is None else float(view.confidence[i]),
                  "distance_to_class_centre": float(view.centre_distance[i]),
                  "run_id": run_id, "layer": layer, "epoch": int(epoch)} for i in range(n_probe)]
        b1, b2 = st.columns(2)
        base = ui.slug(f"umap-{run_id}-{layer}-e{epoch}")
        ui.download_figure(fig, base, key=f"{chart_key}-html", container=b1)
        ui.download_csv(table, base, key=f"{chart_key}-csv", container=b2)

st.subheader("Selected probe image")
if selected is None:
    st.caption("Click a dot in either plot (or type a probe id above) to see its cell image here; the same image "
               "is ringed in both plots.")
else:
    image = store.probe_images(experiment_id)[selected]
    name = probes.class_name(int(labels[selected]), class_names)
    c_img, c_rows = st.columns([1, 3])
    with c_img:
        ui.show_figure(cell_image_figure(image, title=f"probe #{selected} · {name}"), f"probe-{selected}",
                       key="probe-image")
    with c_rows, st.container(key="probe-details"):
        st.markdown(f"**Probe #{selected}** · true class **{ui.md(name)}**")
        ui.show_table(probes.probe_rows(selected, views, class_names), f"probe-{selected}-runs",
                      key="probe-rows")
        st.caption("Distance to class centre: Euclidean distance from this image's representation to the mean "
                   "representation of its true class, at this layer and epoch (the class median gives the scale).")

if listed:
    st.subheader(f"Listed by box or lasso: {len(listed)} images")
    shown = listed[:MAX_THUMBNAILS]
    images = store.probe_images(experiment_id)
    grid = thumbnail_grid([images[i] for i in shown],
                          [f"#{i} · {probes.class_name(int(labels[i]), class_names)}" for i in shown])
    st.plotly_chart(grid, key="listed-thumbnails", width="content", config={"displaylogo": False})
    if len(listed) > len(shown):
        st.caption(f"Thumbnails of the first {len(shown)}; the table lists all {len(listed)}.")
    rows = [{"probe": i, "true class": probes.class_name(int(labels[i]), class_names),
             **{f"prediction ({label})": (None if v.prediction is None
                                           else probes.class_name(int(v.prediction[i]), class_names))
                for label, v in views}} for i in listed]
    ui.show_table(rows, "listed-probes", key="listed-rows")
