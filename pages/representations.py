"""Representations: UMAP of the probe set for two runs side by side, over epochs.

Default: one happy and one unhappy run. Colour by class, prediction or
correctness; click a point to see that probe image; the epoch slider replays
training with aligned frames, swap epochs marked.
"""
from __future__ import annotations

import streamlit as st

import ui
from akp import projection
from akp.analysis import label_families
from akp.datasets import CLASS_NAMES, SYNTHETIC
from akp.plots.analysis import cell_image_figure, probe_categories, umap_scatter

COLOR_OPTIONS = {"class": "true class", "prediction": "predicted class", "correctness": "right or wrong"}
SWAP_MARK = "⚡"
PROBE_KEY = "probe"

st.title("Representations: how runs see the probe set")
st.caption("Each dot is one probe image, placed by UMAP so that images the run represents alike are close. "
           "Compare a happy run (left) with an unhappy one (right). Click a dot to see the cell.")

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
c_layer, c_color = st.columns([1, 2])
layer = c_layer.selectbox("Layer", layers, index=layers.index("embedding") if "embedding" in layers else 0,
                          key="layer", bind="query-params")
color_by = c_color.segmented_control("Colour by", list(COLOR_OPTIONS), default="class", key="color",
                                     format_func=COLOR_OPTIONS.get, bind="query-params") or "class"

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


@st.cache_data(show_spinner=False, max_entries=64)
def logits_at(home: str, run_id: str, epoch: int, fingerprint: tuple):
    """The run's logits on the probe set at ``epoch``, or None if not captured."""
    s = ui.get_store()
    return s.representations(run_id, "logits", epoch) if epoch in s.representation_epochs(run_id, "logits") else None


labels = store.probe_labels(experiment_id)
spec = store.spec(experiment_id)
class_names = CLASS_NAMES if spec.dataset == SYNTHETIC else ()


def _select(chart_key: str) -> None:
    """Chart selection callback: remember the clicked probe image (URL too, so it can be shared)."""
    points = st.session_state[chart_key].selection.points
    if points:
        custom = points[0].get("customdata")
        idx = custom[0] if isinstance(custom, (list, tuple)) else custom
        if isinstance(idx, (int, float)):
            st.session_state[PROBE_KEY] = int(idx)
            st.query_params[PROBE_KEY] = str(int(idx))


selected = st.session_state.get(PROBE_KEY)
if selected is None and st.query_params.get(PROBE_KEY, "").isdigit():
    selected = int(st.query_params[PROBE_KEY])
if selected is not None and not 0 <= selected < len(labels):
    selected = None

for col, run_id, side in ((col_l, run_l, "left"), (col_r, run_r, "right")):
    with col:
        try:
            with st.spinner("Projecting with UMAP…"):
                frames = aligned_frames(str(store.home), run_id, layer, tuple(epochs_by_run[run_id]),
                                        _fingerprint(run_id))
        except ValueError as exc:
            st.info(f"Cannot project this run: {ui.md(exc)}")
            continue
        logits = logits_at(str(store.home), run_id, int(epoch), _fingerprint(run_id))
        mode = color_by if (color_by == "class" or logits is not None) else "class"
        if mode != color_by:
            st.caption("No logits captured at this epoch: coloured by class.")
        values, cats = probe_categories(labels, mode, logits=logits, class_names=class_names)
        r = by_id[run_id]
        own_swap = any(ev["epoch"] == int(epoch) for ev in store.events(run_id))
        title = f"{r['condition']} · seed {r['seed']} · epoch {epoch}" + (f" {SWAP_MARK} swap" if own_swap else "")
        fig = umap_scatter(frames[int(epoch)], values, color_by=COLOR_OPTIONS[mode], title=title,
                           hover=None if mode == "class" else [
                               f"true class: {class_names[k] if k < len(class_names) else k}" for k in labels],
                           categories=cats, highlight=selected)
        chart_key = f"umap-{side}"
        st.plotly_chart(fig, key=chart_key, on_select=lambda k=chart_key: _select(k), selection_mode="points",
                        config={"displaylogo": False})
        table = [{"probe": i, "x": float(frames[int(epoch)][i, 0]), "y": float(frames[int(epoch)][i, 1]),
                  "label": int(labels[i]), mode: values[i], "run_id": run_id, "layer": layer, "epoch": int(epoch)}
                 for i in range(len(labels))]
        b1, b2 = st.columns(2)
        base = ui.slug(f"umap-{run_id}-{layer}-e{epoch}")
        ui.download_figure(fig, base, key=f"{chart_key}-html", container=b1)
        ui.download_csv(table, base, key=f"{chart_key}-csv", container=b2)

st.subheader("Selected probe image")
if selected is None:
    st.caption("Click a dot in either plot to see its cell image here (the same image is ringed in both plots).")
else:
    image = store.probe_images(experiment_id)[selected]
    k = int(labels[selected])
    name = class_names[k] if k < len(class_names) else f"class {k}"
    ui.show_figure(cell_image_figure(image, title=f"probe #{selected} · {name}"), f"probe-{selected}",
                   key="probe-image")
