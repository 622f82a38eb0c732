"""Design: dataset, model, training budget, conditions (swap schedules) and seeds; then launch.

A thin view over :mod:`akp.design`: the form's values become an
:class:`~akp.experiment.ExperimentSpec` through :func:`akp.design.build_spec`,
which validates everything; a message appears under the field at fault and
nothing is created or queued while anything is invalid.

"My data" takes a .zip (image folder) or .npz upload, a registered dataset, or
a server-side path; uploads and paths are registered through :mod:`akp.datasets.uploads`
(checked, processed, stored by content id), the dataset card is shown, and the
experiment names the id. A path not yet registered is registered at launch.

Server-side paths (typed, or named by an imported spec or a preset) are read
only inside the folders of ``$AKP_DATA_ROOTS`` (:func:`akp.datasets.uploads.check_server_path`);
with none set they are refused, and uploads and registered ids still work.
"""
from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import ui
from akp.datasets import (
    CLASS_NAMES,
    SYNTHETIC,
    DatasetError,
    card_samples,
    card_summary,
    card_table,
    dataset_card,
    dataset_label,
    is_dataset_id,
    list_datasets,
    make_synthetic_cells,
)
from akp.datasets.uploads import (
    MAX_UPLOAD_MB,
    UPLOAD_TYPES,
    check_server_path,
    parse_positive_classes,
    register_path,
    register_upload,
)
from akp.design import (
    MAX_UPLOAD_BYTES,
    DesignError,
    activation_names,
    build_spec,
    constraint_of,
    estimate_seconds,
    form_key,
    form_values,
    format_duration,
    loss_names,
    read_json_upload,
    schedule_from_rows,
    schedule_rows,
)
from akp.experiment import ExperimentError, ExperimentSpec, load_preset, preset_names, preset_needs_dataset
from akp.plots.training import schedule_timeline
from akp.quotas import LaunchRefused
from akp.schedule import PRESETS, ScheduleError, SwapSchedule

PREFIX = "design-"
SAVED = "_design_saved"        # form values kept across page navigation (widget state is dropped)
CONDITIONS = "design-conditions"  # list of {uid, name, activation, loss, rows, current}
UPLOADS_SEEN = "_design_uploads_seen"
DATA_UPLOADS_SEEN = "_design_data_uploads_seen"  # file_id -> ("ok", dataset id) | ("error", message)
DATA_ERROR = "_design_data_error"  # the Register button's message, shown once under the dataset field
DEFAULT_PRESET = "teaching"
SIZES = [16, 24, 32, 48, 64, 96, 128]  # offered within the bounds of the size option
DATA_SIZES = [8, 16, 24, 28, 32, 48, 64, 96, 128, 224]  # of real data (28: MedMNIST's own size)
FIELDS = ("name", "dataset_kind", "dataset_path", "n_train", "n_test", "size", "data_seed", "difficulty", "width",
          "depth", "embedding_dim", "epochs", "batch_size", "optimizer", "lr", "seeds", "probe_size", "family_rule",
          "threshold", "max_gap", "primary_layer", "seed_mode")


# -- state -----------------------------------------------------------------------------------------
def _condition_state(schedule: SwapSchedule) -> dict[str, Any]:
    rows = [{"epoch": r["epoch"], "activation": r["activation"] or None, "loss": r["loss"] or None}
            for r in schedule_rows(schedule)]
    return {"uid": secrets.token_hex(4), "name": schedule.name, "activation": schedule.activation,
            "loss": schedule.loss, "rows": rows, "current": rows}


def apply_spec(spec: ExperimentSpec) -> None:
    """Fill the form (widget state) and the conditions from ``spec``."""
    values = form_values(spec)
    custom = spec.dataset != SYNTHETIC
    values["dataset_kind"] = "my data" if custom else SYNTHETIC
    values["dataset_path"] = spec.dataset if custom else ""
    for field in FIELDS:
        st.session_state[PREFIX + field] = values[field]
    st.session_state[SAVED] = {f: values[f] for f in FIELDS}
    st.session_state[CONDITIONS] = [_condition_state(c) for c in spec.conditions]
    st.session_state.pop(DATA_ERROR, None)
    problem = path_problem(values["dataset_path"])
    if problem:
        st.session_state[DATA_ERROR] = problem


def path_problem(dataset: str) -> str | None:
    """Why the dataset field's server path may not be used here (outside ``$AKP_DATA_ROOTS``), or None."""
    text = str(dataset or "").strip()
    if not text or text == SYNTHETIC or is_dataset_id(text):
        return None
    try:
        check_server_path(text)
    except DatasetError as exc:
        return str(exc)
    return None


def allowed_source(dataset: str) -> str:
    """An id as is; a server path resolved, only inside ``$AKP_DATA_ROOTS`` (DatasetError otherwise)."""
    text = str(dataset or "").strip()
    return text if is_dataset_id(text) else str(check_server_path(text))


def on_preset() -> None:
    """Callback of the preset selector: refill the form (a preset on real data keeps the path typed here)."""
    name = st.session_state.get(PREFIX + "preset")
    if not name:
        return
    if preset_needs_dataset(name) is None:
        apply_spec(load_preset(name))
        return
    typed = str(st.session_state.get(PREFIX + "dataset_path") or "").strip()
    # A stand-in path lets the preset's real-data options validate; the form then shows the field empty.
    apply_spec(load_preset(name, dataset=typed or "your-data"))
    if not typed:  # "my data" with an empty path: the dataset field asks for one
        st.session_state[PREFIX + "dataset_path"] = st.session_state[SAVED]["dataset_path"] = ""
        st.session_state.pop(DATA_ERROR, None)  # about the stand-in, not about anything the user typed


def init_state() -> None:
    """First visit: the default preset; later visits: the values the user left."""
    if SAVED not in st.session_state or CONDITIONS not in st.session_state:
        st.session_state.setdefault(PREFIX + "preset", DEFAULT_PRESET)
        apply_spec(load_preset(st.session_state[PREFIX + "preset"] or DEFAULT_PRESET))
        return
    for field, value in st.session_state[SAVED].items():
        st.session_state.setdefault(PREFIX + field, value)


@st.cache_data(max_entries=16, show_spinner=False)
def gallery(size: int, seed: int, difficulty: float, per_class: int = 6) -> dict[int, list[np.ndarray]]:
    """A few sample cells per class, upscaled for display."""
    images, labels = make_synthetic_cells(4 * per_class, size=size, seed=seed, difficulty=difficulty)
    scale = max(1, 96 // size)
    out: dict[int, list[np.ndarray]] = {}
    for cls in range(len(CLASS_NAMES)):
        picks = images[labels == cls][:per_class, 0]
        out[cls] = [np.kron(im, np.ones((scale, scale), np.float32)) for im in picks]
    return out


def my_data_options() -> dict[str, Any]:
    """The processing options of a dataset to register (size, channels, positive classes)."""
    st.session_state.setdefault(PREFIX + "data_size", 32)
    st.session_state.setdefault(PREFIX + "data_channels", None)
    st.session_state.setdefault(PREFIX + "data_positive", "")
    c = st.columns([1, 1, 2])
    c[0].selectbox("Image size (px)", DATA_SIZES, key=PREFIX + "data_size",
                   help="Images are resized to this square size when registered.")
    c[1].selectbox("Channels", [None, 1, 3], key=PREFIX + "data_channels",
                   format_func={None: "auto", 1: "1 (grayscale)", 3: "3 (RGB)"}.get,
                   help="auto: grayscale if every image is, else RGB.")
    c[2].text_input("Cancer classes (optional)", key=PREFIX + "data_positive",
                    placeholder="e.g. malignant, atypical (npz: labels such as 1, 2)",
                    help="Comma-separated classes that count as cancer; the others become non-cancer. "
                         "Leave empty to keep every class.")
    return {"size": int(st.session_state[PREFIX + "data_size"]),
            "channels": st.session_state[PREFIX + "data_channels"],
            "positive_classes": parse_positive_classes(st.session_state[PREFIX + "data_positive"])}


def handle_data_upload(upload: Any, options: dict[str, Any], slot: Any) -> None:
    """Register a dataset upload once per file (its id goes to the dataset field); show its error if any."""
    if upload is None:
        return
    seen = st.session_state.setdefault(DATA_UPLOADS_SEEN, {})
    if upload.file_id not in seen:
        try:
            with st.spinner(f"Checking and registering {upload.name}..."):
                dataset_id = register_upload(upload.getvalue(), upload.name, home=ui.home_path(), **options)
        except DatasetError as exc:
            seen[upload.file_id] = ("error", ui.error_text(exc, "Nothing was registered: "))
        except Exception as exc:  # a bug or an outage: logged with an id, and not retried on every rerun
            seen[upload.file_id] = ("error", ui.unexpected_text("Registering the upload",
                                                                ui.log_unexpected(exc, "Registering the upload")))
        else:
            seen[upload.file_id] = ("ok", dataset_id)
            st.session_state[PREFIX + "dataset_path"] = dataset_id
            st.toast(f"Registered {ui.md(upload.name)} as {ui.md(dataset_id)}")
    status, detail = seen[upload.file_id]
    if status == "error":
        slot.error(detail)  # escaped when stored


def on_registered() -> None:
    """Callback of the registered-datasets selectbox: put the chosen id in the dataset field."""
    chosen = st.session_state.get(PREFIX + "registered")
    if chosen:
        st.session_state[PREFIX + "dataset_path"] = chosen


@ui.guard("Register")  # a callback runs before app.py's guard
def on_register(options: dict[str, Any]) -> None:
    """Callback of the Register button: register the server-side path and show its id in the field."""
    try:
        source = allowed_source(str(st.session_state.get(PREFIX + "dataset_path") or ""))
        dataset_id = register_path(source, home=ui.home_path(), **options)
    except DatasetError as exc:
        st.session_state[DATA_ERROR] = ui.error_text(exc, "Nothing was registered: ")
    else:
        st.session_state[PREFIX + "dataset_path"] = dataset_id


def show_dataset_card(dataset: str, slot: Any) -> None:
    """The card of a registered dataset: counts per class and split, image format, sample images."""
    if not is_dataset_id(dataset):
        return
    home = ui.home_path()
    try:
        card = dataset_card(dataset, home=home)
    except DatasetError as exc:
        ui.show_error(exc, slot)
        return
    with st.container(border=True, key=PREFIX + "dataset-card"):
        st.subheader(f"{ui.md(card.get('name', dataset))} ({ui.md(dataset)})")
        st.caption(ui.md(card_summary(card)))  # class names come from the user's folders
        st.dataframe(card_table(card), hide_index=True, key=PREFIX + "card-counts")
        for name, paths in card_samples(card, home=home).items():
            if paths:
                st.caption(ui.md(name))
                st.image([str(p) for p in paths], width=72)


def errors_slot() -> Any:
    """A placeholder right under a widget, filled with its validation message if any."""
    return st.empty()


def number(where: Any, key: str, **extra: Any) -> None:
    """A number input for form value ``key``, its label and bounds from the constraints table."""
    where.number_input(**ui.number_kwargs(constraint_of(key), key=PREFIX + key, **extra))


def show_problem(problem: DesignError, slots: dict[str, Any], schedules: list[SwapSchedule | None]) -> None:
    """Show a form error under the widget of its field (the name field when it names none the form has)."""
    key = form_key(problem.field) or "name"
    if key == "conditions" and any(s is None for s in schedules):
        return  # each bad schedule's message is under it already
    where = slots.get(key) or slots["conditions" if key.startswith("conditions") else "name"]
    ui.show_error(problem, where)


# -- page ------------------------------------------------------------------------------------------
st.title("Design an experiment")
init_state()
slots: dict[str, Any] = {}

top = st.columns([2, 3])
top[0].selectbox("Start from a preset", preset_names(), key=PREFIX + "preset", on_change=on_preset,
                 help="Fills the whole form; edit anything afterwards.")
with top[1]:
    upload = st.file_uploader("Import a spec or schedule (JSON)", type=["json"], key=PREFIX + "upload",
                              max_upload_size=1,  # MB, enforced by the server; read_json_upload caps lower
                              help=f"An experiment spec fills the form; a swap schedule is added as a condition. "
                                   f"At most {MAX_UPLOAD_BYTES // 1024} KiB.")
    slots["upload"] = errors_slot()
if upload is not None and upload.file_id not in st.session_state.setdefault(UPLOADS_SEEN, []):
    st.session_state[UPLOADS_SEEN].append(upload.file_id)
    loaded: ExperimentSpec | SwapSchedule | None = None
    with ui.guard("Importing the file", slots["upload"]):
        loaded = read_json_upload(upload.getvalue())
    if isinstance(loaded, ExperimentSpec):
        apply_spec(loaded)
        st.toast(f"Loaded the spec {ui.md(loaded.name)}")
        st.rerun()
    elif loaded is not None:
        st.session_state[CONDITIONS].append(_condition_state(loaded))
        st.toast(f"Added the schedule {ui.md(loaded.name)}")
        st.rerun()

st.text_input(**ui.text_kwargs(constraint_of("name"), key=PREFIX + "name"))
slots["name"] = errors_slot()

# Dataset -------------------------------------------------------------------------------------------
st.header("Dataset", divider="gray")
st.radio("Images", [SYNTHETIC, "my data"], key=PREFIX + "dataset_kind", horizontal=True,
         format_func={SYNTHETIC: "Synthetic cells (built in)", "my data": "My data (folder, .npz, or id)"}.get)
synthetic = st.session_state[PREFIX + "dataset_kind"] == SYNTHETIC
if synthetic:
    c = st.columns(5)
    number(c[0], "n_train", step=100)
    number(c[1], "n_test", step=100)
    c[2].selectbox(**ui.choice_kwargs(constraint_of("size"), SIZES, key=PREFIX + "size"))
    number(c[3], "data_seed", step=1)
    c[4].slider(**ui.number_kwargs(constraint_of("difficulty"), step=0.05, key=PREFIX + "difficulty"))
    for i, f in enumerate(("n_train", "n_test", "size", "data_seed", "difficulty")):
        with c[i]:
            slots[f] = errors_slot()
    with st.expander("Sample cells", expanded=False):
        samples = gallery(int(st.session_state[PREFIX + "size"]), int(st.session_state[PREFIX + "data_seed"]),
                          float(st.session_state[PREFIX + "difficulty"]))
        for cls, name in enumerate(CLASS_NAMES):
            st.caption(name)
            st.image(samples[cls], width=72, clamp=True)
else:
    data_options = my_data_options()
    with st.container(border=True):
        data_upload = st.file_uploader(
            "Upload images (.zip) or a MedMNIST file (.npz)", type=list(UPLOAD_TYPES), key=PREFIX + "data_upload",
            max_upload_size=MAX_UPLOAD_MB,  # MB, enforced by the server; register_upload checks again
            help="A .zip of an image folder with one sub-folder per class (PNG, JPEG, TIFF or BMP), or an .npz "
                 "with train_images/train_labels (optional val_*, test_*). It is checked, processed with the "
                 f"options above and stored as a dataset id. At most {MAX_UPLOAD_MB} MB.")
        slots["data_upload"] = errors_slot()
    handle_data_upload(data_upload, data_options, slots["data_upload"])
    registered = {c["id"]: c for c in list_datasets(ui.home_path())}
    current = str(st.session_state.get(PREFIX + "dataset_path") or "").strip()
    st.session_state[PREFIX + "registered"] = current if current in registered else None
    st.selectbox("Registered datasets", list(registered), index=None, key=PREFIX + "registered",
                 format_func=lambda i: dataset_label(registered[i]), on_change=on_registered,
                 placeholder="Choose a dataset registered on this server" if registered else "None registered yet")
    c = st.columns([5, 1], vertical_alignment="bottom")
    c[0].text_input("Dataset", key=PREFIX + "dataset_path",
                    placeholder="/path/to/images or data.npz on the server, or a dataset id",
                    help="An image folder with one sub-folder per class, a MedMNIST-style .npz, or a registered "
                         "id. A path is registered (checked and processed with the options above) by the "
                         "Register button, or at launch.")
    c[1].button("Register", key=PREFIX + "register", on_click=on_register, args=(data_options,),
                icon=":material/inventory_2:", help="Check and store the folder or .npz file as a dataset id.")
slots["dataset"] = errors_slot()
if not synthetic:
    field_problem = path_problem(str(st.session_state.get(PREFIX + "dataset_path") or ""))
    if DATA_ERROR in st.session_state:
        slots["dataset"].error(st.session_state.pop(DATA_ERROR))  # escaped when stored
    elif field_problem:
        slots["dataset"].error(ui.md(field_problem))
    show_dataset_card(str(st.session_state.get(PREFIX + "dataset_path") or "").strip(), slots["dataset"])

# Model and training ----------------------------------------------------------------------------------
st.header("Model and training budget", divider="gray")
c = st.columns(4)
number(c[0], "width", step=4)
number(c[1], "depth", step=1)
number(c[2], "embedding_dim", step=8)
number(c[3], "probe_size", step=32)
for i, f in enumerate(("width", "depth", "embedding_dim", "probe_size")):
    with c[i]:
        slots[f] = errors_slot()
c = st.columns(4)
number(c[0], "epochs", step=1)
number(c[1], "batch_size", step=16)
c[2].selectbox(**ui.choice_kwargs(constraint_of("optimizer"), key=PREFIX + "optimizer"))
number(c[3], "lr", step=1e-4, format="%.5f")
for i, f in enumerate(("epochs", "batch_size", "optimizer", "lr")):
    with c[i]:
        slots[f] = errors_slot()

# Conditions -----------------------------------------------------------------------------------------
st.header("Conditions (swap schedules)", divider="gray")
st.caption("Each condition starts with an activation and a loss; a swap event at epoch *e* (0-based) changes "
           "them at the start of that epoch. Leave a cell empty to keep the function unchanged.")
slots["conditions"] = errors_slot()
epochs_now = int(st.session_state[PREFIX + "epochs"])
schedules: list[SwapSchedule | None] = []
remove: list[int] = []
for i, cond in enumerate(st.session_state[CONDITIONS]):
    uid = cond["uid"]
    with st.container(border=True):
        c = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
        name = c[0].text_input("Condition name", value=cond["name"], key=f"cond-{uid}-name")
        acts, losses = activation_names(), loss_names()
        act = c[1].selectbox("Start activation", acts, index=acts.index(cond["activation"]), key=f"cond-{uid}-act")
        los = c[2].selectbox("Start loss", losses, index=losses.index(cond["loss"]), key=f"cond-{uid}-loss")
        if c[3].button("Remove", key=f"cond-{uid}-remove", icon=":material/delete:"):
            remove.append(i)
        editor_key = f"cond-{uid}-events"
        if editor_key not in st.session_state:  # fresh editor (first draw, or back from another page)
            cond["rows"] = cond["current"]
        frame = pd.DataFrame(cond["rows"], columns=["epoch", "activation", "loss"]).astype(
            {"epoch": "Int64", "activation": "object", "loss": "object"})
        edited = st.data_editor(
            frame, key=editor_key, num_rows="dynamic", hide_index=True, width="stretch",
            column_config={
                "epoch": st.column_config.NumberColumn("epoch", min_value=0, step=1, format="%d",
                                                       help=f"0 to {epochs_now - 1}"),
                "activation": st.column_config.SelectboxColumn("new activation", options=acts),
                "loss": st.column_config.SelectboxColumn("new loss", options=losses),
            },
        )
        rows = edited.astype(object).where(edited.notna(), None).to_dict("records")
        cond.update(name=name, activation=act, loss=los, current=rows)
        slot = errors_slot()
        slots[f"conditions[{i}]"] = slot
        try:
            sched = schedule_from_rows(name, act, los, rows)
            sched.validate(epochs_now)
            schedules.append(sched)
            ui.download_json(sched, f"schedule-{ui.slug(sched.name)}", label="Export schedule (JSON)",
                             key=f"cond-{uid}-json")
        except ScheduleError as exc:
            ui.show_error(exc, slot, prefix=f"{name or 'condition'}: ")
            schedules.append(None)
if remove:
    st.session_state[CONDITIONS] = [c for j, c in enumerate(st.session_state[CONDITIONS]) if j not in remove]
    st.rerun()

c = st.columns([2, 1, 1], vertical_alignment="bottom")
preset_choice = c[0].selectbox("Schedule preset", list(PRESETS), key=PREFIX + "schedule-preset")
if c[1].button("Add preset", key=PREFIX + "add-preset", icon=":material/add:"):
    taken = {cond["name"] for cond in st.session_state[CONDITIONS]}
    sched = PRESETS[preset_choice]
    if sched.name in taken:
        sched = sched.renamed(f"{sched.name}-{len(taken) + 1}")
    st.session_state[CONDITIONS].append(_condition_state(sched))
    st.rerun()
if c[2].button("Add empty", key=PREFIX + "add-empty", icon=":material/add:"):
    st.session_state[CONDITIONS].append(_condition_state(
        SwapSchedule(f"custom-{len(st.session_state[CONDITIONS]) + 1}")))
    st.rerun()

valid_schedules = [s for s in schedules if s is not None]
if valid_schedules:
    st.subheader("Timeline")
    ui.show_figure(schedule_timeline(valid_schedules, epochs_now), "schedule-timeline",
                   key="design-timeline")

# Analysis plan -------------------------------------------------------------------------------------------
st.header("Analysis plan", divider="gray")
st.caption("Fixed before any run trains, so the verdict cannot be tuned to the results. An empty threshold "
           "means the largest accuracy gap in the data: the verdict is then labelled exploratory.")
c = st.columns(5)
c[0].selectbox(**ui.choice_kwargs(constraint_of("family_rule"), key=PREFIX + "family_rule"))
number(c[1], "threshold", step=0.01, format="%.3f", placeholder="largest gap")
number(c[2], "max_gap", step=0.01, format="%.3f", placeholder="none",
       disabled=st.session_state[PREFIX + "family_rule"] != "gap")
depth_now = st.session_state[PREFIX + "depth"]
layer_options = [f"conv{i + 1}" for i in range(depth_now if isinstance(depth_now, int) else 0)] + ["embedding",
                                                                                                  "logits"]
if st.session_state[PREFIX + "primary_layer"] not in layer_options:
    layer_options.append(st.session_state[PREFIX + "primary_layer"])  # the validator names the problem
c[3].selectbox(constraint_of("primary_layer").label, layer_options, key=PREFIX + "primary_layer",
               help=constraint_of("primary_layer").help)
c[4].selectbox(**ui.choice_kwargs(constraint_of("seed_mode"), key=PREFIX + "seed_mode"))
for i, f in enumerate(("family_rule", "threshold", "max_gap", "primary_layer", "seed_mode")):
    with c[i]:
        slots[f] = errors_slot()

# Seeds and launch --------------------------------------------------------------------------------------
st.header("Seeds and launch", divider="gray")
st.text_input(constraint_of("seeds").label, key=PREFIX + "seeds",
              help="Comma-separated seeds and ranges, e.g. '0-5' or '0, 2, 7'.")
slots["seeds"] = errors_slot()

values = {f: st.session_state[PREFIX + f] for f in FIELDS}
st.session_state[SAVED] = dict(values)
values["dataset"] = SYNTHETIC if synthetic else str(values["dataset_path"]).strip()
spec: ExperimentSpec | None = None
problem: DesignError | None = None
if any(s is None for s in schedules):
    problem = DesignError("a condition's schedule is invalid (see the message under it)", field="conditions")
elif not values["dataset"]:  # "my data" chosen but no path: never fall back to the synthetic cells
    problem = DesignError.at("dataset", "enter an image folder, an .npz file or a dataset id "
                                        "(or choose synthetic-cells)")
else:
    try:
        spec = build_spec(values, valid_schedules)
    except DesignError as exc:
        problem = exc
if problem is not None:
    show_problem(problem, slots, schedules)

manager = ui.get_manager()
workers = getattr(manager, "max_workers", 1)
if spec is not None:
    n_runs = len(spec.conditions) * len(spec.seeds)
    c = st.columns(3)
    c[0].metric("Runs", n_runs, help="conditions × seeds")
    c[1].metric("Estimated time", format_duration(estimate_seconds(spec, workers=workers)),
                help=f"A rough CPU estimate for {workers} worker(s): calibrated seconds per training image and "
                     "epoch for the reference model, scaled by the model's conv cost (see akp.design).")
    c[2].metric("Epochs per run", spec.epochs)
    ui.download_json(spec, f"spec-{ui.slug(spec.name)}", label="Export spec (JSON)",
                     key="design-spec-json")

launch_slot = st.container()
if st.button("Launch", type="primary", key=PREFIX + "launch", icon=":material/rocket_launch:"):
    if spec is None:
        ui.show_error(problem, launch_slot, prefix="Nothing was queued: ")
    else:
        store = ui.get_store()
        experiment_id = None
        try:
            if spec.dataset != SYNTHETIC and not is_dataset_id(spec.dataset):
                # A server-side path is registered first, so the experiment names content, not a path.
                # Only inside $AKP_DATA_ROOTS: a shared instance must not read the rest of the server.
                source = allowed_source(spec.dataset)
                with st.spinner("Checking and registering the dataset..."):
                    spec = dataclasses.replace(spec, dataset=register_path(
                        source, home=ui.home_path(), **data_options))
            if manager is None:
                launch_slot.warning("No job manager is available to train it: nothing was created.")
            else:
                # Checks quotas, the queue and memory before writing anything; the data is built by a worker.
                experiment_id = manager.launch(spec, user=ui.current_user())
        except LaunchRefused as exc:  # a limit, not the dataset: one line that names it and by how much
            ui.show_error(exc, launch_slot, prefix="Nothing was queued: ")
        except (ExperimentError, DatasetError, ValueError) as exc:
            ui.show_error(exc, slots["dataset"], prefix="" if str(exc).startswith("dataset") else "dataset: ")
            ui.show_error(exc, launch_slot, prefix="Nothing was queued: ")
        except Exception as exc:  # a bug or an outage (memory, disk): one line and an error id
            ui.report_unexpected(exc, "Launch", launch_slot)
        if experiment_id is not None:
            ui.set_selected_experiment(experiment_id)
            st.session_state["_design_launched"] = (experiment_id, len(spec.conditions) * len(spec.seeds))
            st.switch_page("pages/runs.py", query_params={"experiment": experiment_id})
