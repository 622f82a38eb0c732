"""The logic behind the app's Design and Runs pages, kept free of Streamlit so it can be tested.

- :func:`form_values` / :func:`build_spec`: an :class:`~akp.experiment.ExperimentSpec`
  to flat form values and back, with validation; :data:`SPEC_FIELDS` says which
  spec field each form value fills, :func:`form_key` which form field shows an
  error's ``field``.
- :func:`schedule_rows` / :func:`schedule_from_rows`: a swap schedule to the rows of
  the table editor and back (blank cells mean "keep").
- :func:`parse_seeds`: ``"0-4, 7"`` -> ``[0, 1, 2, 3, 4, 7]``.
- :func:`estimate_seconds`: a run-time estimate from this machine's calibration (:mod:`akp.calibration`),
  or a constant until it exists; :func:`estimate_note` says which.
- :func:`run_progress`: stored runs merged with the job manager's live snapshots.
- :func:`read_json_upload`: a size-capped JSON upload parsed as a spec or a schedule.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from akp.calibration import Calibration, calibration_status, estimate_with, load_calibration, model_cost, spec_cost
from akp.constraints import MAX_SEEDS, SPEC, Constraint
from akp.datasets import SYNTHETIC, SYNTHETIC_OPTIONS
from akp.datasets.synthetic import DEFAULTS as SYNTHETIC_DEFAULTS
from akp.errors import AKPError
from akp.executors.settings import resolve_settings, worker_threads
from akp.experiment import ExperimentSpec
from akp.models import ModelSpec
from akp.runs import ACTIVE_STATES, DONE, QUEUED, RUNNING
from akp.schedule import ScheduleError, SwapEvent, SwapSchedule, int_or_raw
from akp.swaps import ACTIVATIONS, LOSSES

# The fallback until this machine is calibrated (akp.calibration).
# Seconds of training per (training image x epoch) for the reference model (width 16, depth 3,
# 32 px) on CPU with 2 torch threads, evaluation and probe capture included. Calibrated on the
# 2-core development VM (PyTorch 2.x): a teaching-preset run of 2 epochs took 2.1 s when the machine
# was quiet (4.2e-4 s per image-epoch, counting test/probe images at 1/3) and about 3x that under a
# shared load; 6.1e-4 sits in between. Other models scale by their conv cost (see :func:`model_cost`).
# It is an order-of-magnitude guide, not a promise; akp.calibration measures the real figure.
SECONDS_PER_IMAGE_EPOCH = 6.1e-4
RUN_OVERHEAD_SECONDS = 0.3  # model build, data transfer, final save
REFERENCE_MODEL = ModelSpec(16, 3, 64)
MAX_UPLOAD_BYTES = 256 * 1024
KEEP = ""  # what an editor cell holds for "leave unchanged"
# Form key -> the spec field it fills (the dotted paths of akp.constraints and of AKPError.field).
SPEC_FIELDS: dict[str, str] = {
    "name": "name", "dataset": "dataset", "n_train": "dataset_options.n_train", "n_test": "dataset_options.n_test",
    "size": "dataset_options.size", "data_seed": "dataset_options.seed",
    "difficulty": "dataset_options.difficulty", "width": "model.width", "depth": "model.depth",
    "embedding_dim": "model.embedding_dim", "epochs": "epochs", "batch_size": "batch_size",
    "optimizer": "optimizer", "lr": "lr", "seeds": "seeds", "probe_size": "probe_size",
    "family_rule": "family_rule.rule", "threshold": "family_rule.threshold", "max_gap": "family_rule.max_gap",
    "primary_layer": "primary_layer", "seed_mode": "seed_mode",
}
FORM_KEYS = tuple(SPEC_FIELDS)
_FORM_KEY_OF = {path: key for key, path in SPEC_FIELDS.items()} | {"dataset_options": "dataset"}
_CONDITION = re.compile(r"conditions(\[\d+\])?")
_LAST_STEP = re.compile(r"(\.[^.\[\]]+|\[\d+\])$")


class DesignError(AKPError):
    """A design form value is invalid; ``field`` is the spec field at fault (see :func:`form_key`).

    ``field`` is a dotted spec path (``"model.width"``, ``"conditions[1].events[0].epoch"``),
    ``"seeds"``, ``"conditions"``, ``"upload"``, or None when the validator did not name one.
    """


def constraint_of(key: str) -> Constraint:
    """The constraint of the spec field that form value ``key`` fills: its label and bounds for the widget.

    Parameters
    ----------
    key : str
        A key of :data:`SPEC_FIELDS`, except ``"dataset"`` (free text checked by the loaders).
        ``"seeds"`` gives the constraint of one seed.

    Returns
    -------
    Constraint
        From :data:`akp.constraints.SPEC` or the synthetic cells' option schema
        :data:`akp.datasets.synthetic.OPTIONS`.

    Raises
    ------
    KeyError
        If no table holds the field.
    """
    path = "seed" if key == "seeds" else SPEC_FIELDS[key]
    if path in SPEC:
        return SPEC[path]
    by_field = {c.field: c for c in SYNTHETIC_OPTIONS.values()}
    return by_field[path]


def form_key(field: str | None) -> str | None:
    """The form field whose widget shows an error about spec field ``field``.

    The path is walked up to the nearest field the form has: ``"model.width"`` ->
    ``"width"``, ``"dataset_options.seed"`` -> ``"data_seed"``,
    ``"conditions[1].events[0].epoch"`` -> ``"conditions[1]"``; ``"upload"`` is
    its own field.

    Parameters
    ----------
    field : str or None
        An :attr:`AKPError.field`.

    Returns
    -------
    str or None
        A key of :data:`SPEC_FIELDS`, ``"conditions"``, ``"conditions[i]"``,
        ``"upload"``, or None (no field, or one the form does not show).
    """
    path = field or ""
    while path:
        if path in _FORM_KEY_OF:
            return _FORM_KEY_OF[path]
        if path == "upload" or _CONDITION.fullmatch(path):
            return path
        parent = _LAST_STEP.sub("", path)
        if parent == path:
            return None
        path = parent
    return None


def activation_names() -> list[str]:
    """Allowed activation names, sorted."""
    return sorted(ACTIVATIONS)


def loss_names() -> list[str]:
    """Allowed loss names, sorted."""
    return sorted(LOSSES)


# -- seeds ------------------------------------------------------------------------------------------
def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """Parse seeds from ``"0-4, 7"``, ``"3"`` (a single seed), an int count, or a list.

    Parameters
    ----------
    text : str, int or sequence of int
        A string of comma-separated seeds and inclusive ranges ``a-b``; an int ``n``
        means seeds ``0 .. n-1``; a sequence is taken as is.

    Returns
    -------
    list of int
        Seeds in the given order, duplicates removed.

    Raises
    ------
    DesignError
        If the text is malformed, a range is reversed, or there are more than
        ``MAX_SEEDS`` seeds (field ``"seeds"``).
    """
    if isinstance(text, bool):
        raise DesignError.at("seeds", "give seeds such as '0-4' or '0, 1, 2'")
    if isinstance(text, int):
        if not 1 <= text <= MAX_SEEDS:
            raise DesignError.at("seeds", f"the number of seeds must be from 1 to {MAX_SEEDS}, got {text}")
        return list(range(text))
    if not isinstance(text, str):
        seeds = [int_or_raw(s) for s in text]
    else:
        seeds = []
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise DesignError.at("seeds", "list at least one seed, e.g. '0-4' or '0, 1, 2'")
        for part in parts:
            # ASCII digits, at most 12 (seeds end at 2**31 - 1): no int() of thousands of digits.
            m = re.fullmatch(r"([0-9]{1,12})\s*(?:-\s*([0-9]{1,12}))?", part)
            if not m:
                shown = part if len(part) <= 40 else part[:37] + "..."
                raise DesignError.at("seeds", f"cannot read {shown!r}; use integers and ranges like '0-4'")
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) is not None else lo
            if hi < lo:
                raise DesignError.at("seeds", f"range {part!r} goes backwards; write it as '{hi}-{lo}'")
            if hi - lo + 1 > MAX_SEEDS:
                raise DesignError.at("seeds", f"at most {MAX_SEEDS} seeds, the range {part!r} has {hi - lo + 1}")
            seeds.extend(range(lo, hi + 1))
    seeds = list(dict.fromkeys(seeds))
    if len(seeds) > MAX_SEEDS:
        raise DesignError.at("seeds", f"at most {MAX_SEEDS} seeds, got {len(seeds)}")
    return seeds


def format_seeds(seeds: Sequence[int]) -> str:
    """Inverse of :func:`parse_seeds`: ``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    out: list[str] = []
    ordered = list(seeds)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(out)


# -- schedules <-> editor rows ----------------------------------------------------------------------
def schedule_rows(schedule: SwapSchedule) -> list[dict[str, Any]]:
    """The events of ``schedule`` as editor rows: epoch, activation, loss (``""`` = keep)."""
    return [{"epoch": e.epoch, "activation": e.activation or KEEP, "loss": e.loss or KEEP}
            for e in schedule.events]


def blank_cell(value: Any) -> bool:
    """Whether a table-editor cell means "keep": None, NaN, empty text or "(keep)"."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "(keep)", "keep")


def schedule_from_rows(name: str, activation: str, loss: str, rows: Sequence[Mapping[str, Any]]) -> SwapSchedule:
    """Build a swap schedule from table-editor rows.

    Rows are sorted by epoch; rows whose cells are all blank are dropped (the
    editor's empty new row). Blank activation or loss cells mean "keep".

    Parameters
    ----------
    name : str
        Condition name.
    activation, loss : str
        Starting functions.
    rows : sequence of mapping
        Each with ``epoch``, ``activation``, ``loss``.

    Returns
    -------
    SwapSchedule

    Raises
    ------
    ScheduleError
        If a row is malformed: missing or non-integer epoch, unknown function,
        duplicate epochs, or a row that changes nothing. The message names the
        row by its epoch.
    """
    events = []
    for i, row in enumerate(rows):
        epoch, act, los = row.get("epoch"), row.get("activation"), row.get("loss")
        if blank_cell(epoch) and blank_cell(act) and blank_cell(los):
            continue
        if blank_cell(epoch):
            raise ScheduleError.at(f"events[{i}].epoch", "missing; give the 0-based epoch at which the swap applies")
        epoch = int_or_raw(epoch)
        if isinstance(epoch, str) and epoch.strip().isdigit():
            epoch = int(epoch)
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ScheduleError.at(f"events[{i}].epoch", f"must be a non-negative integer, got {epoch!r}")
        events.append(SwapEvent(epoch, None if blank_cell(act) else str(act), None if blank_cell(los) else str(los)))
    events.sort(key=lambda e: e.epoch)
    return SwapSchedule(name, activation, loss, tuple(events))


# -- form values <-> spec ---------------------------------------------------------------------------
def form_values(spec: ExperimentSpec) -> dict[str, Any]:
    """Flatten a spec into the Design form's values (the inverse of :func:`build_spec`).

    Parameters
    ----------
    spec : ExperimentSpec

    Returns
    -------
    dict
        Keys of :data:`FORM_KEYS`, plus ``conditions`` (list of SwapSchedule).
    """
    opts = SYNTHETIC_DEFAULTS | spec.dataset_options
    return {
        "name": spec.name,
        "dataset": spec.dataset,
        "n_train": int(opts["n_train"]),
        "n_test": int(opts["n_test"]),
        "size": int(opts["size"]),
        "data_seed": int(opts["seed"]),
        "difficulty": float(opts["difficulty"]),
        "width": spec.model.width,
        "depth": spec.model.depth,
        "embedding_dim": spec.model.embedding_dim,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "optimizer": spec.optimizer,
        "lr": float(spec.lr),
        "seeds": format_seeds(spec.seeds),
        "probe_size": spec.probe_size,
        # The pre-registered analysis: None threshold = the largest gap (exploratory).
        "family_rule": spec.family_rule["rule"],
        "threshold": spec.family_rule["threshold"],
        "max_gap": spec.family_rule["max_gap"],
        "primary_layer": spec.primary_layer,
        "seed_mode": spec.seed_mode,
        "conditions": list(spec.conditions),
    }


def _int(values: Mapping[str, Any], key: str) -> Any:
    return int_or_raw(values[key])


def number_or_none(value: Any) -> Any:
    """An empty field (None or blank text) is None; a number stays as it is, for the validator to check."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def build_spec(values: Mapping[str, Any], conditions: Sequence[SwapSchedule] | None = None) -> ExperimentSpec:
    """Build and validate an experiment spec from Design form values.

    Parameters
    ----------
    values : mapping
        Form values as from :func:`form_values` (``seeds`` may be text such as ``"0-4"``).
    conditions : sequence of SwapSchedule, optional
        Overrides ``values["conditions"]``.

    Returns
    -------
    ExperimentSpec
        Validated.

    Raises
    ------
    DesignError
        With ``field`` set to the spec field at fault, as the validator named it
        (:func:`form_key` finds its widget).
    """
    missing = [k for k in FORM_KEYS if k not in values]
    if missing:
        raise DesignError(f"form: missing field(s) {missing}", field=SPEC_FIELDS[missing[0]])
    seeds = parse_seeds(values["seeds"])
    conds = list(conditions if conditions is not None else values.get("conditions") or [])
    dataset = str(values["dataset"] or SYNTHETIC)
    options: dict[str, Any]
    if dataset == SYNTHETIC:
        options = {"n_train": _int(values, "n_train"), "n_test": _int(values, "n_test"), "size": _int(values, "size"),
                   "seed": _int(values, "data_seed"), "difficulty": float(values["difficulty"])}
    else:
        options = {}
    spec = ExperimentSpec(
        name=str(values["name"]).strip(), dataset=dataset, dataset_options=options,
        model=ModelSpec(_int(values, "width"), _int(values, "depth"), _int(values, "embedding_dim")),
        epochs=_int(values, "epochs"), batch_size=_int(values, "batch_size"), optimizer=str(values["optimizer"]),
        lr=float(values["lr"]), seeds=seeds, conditions=conds, probe_size=_int(values, "probe_size"),
        family_rule={"rule": values["family_rule"], "threshold": number_or_none(values["threshold"]),
                     "max_gap": number_or_none(values["max_gap"])},
        primary_layer=values["primary_layer"], seed_mode=values["seed_mode"],
    )
    try:
        spec.validate()
    except AKPError as exc:
        raise exc.rebrand(DesignError) from None
    if spec.dataset == SYNTHETIC and spec.probe_size > options["n_test"]:
        raise DesignError.at("probe_size", f"at most n_test ({options['n_test']}) probe images, "
                                           f"got {spec.probe_size}")
    return spec



# -- run-time estimate ------------------------------------------------------------------------------
def estimate_seconds(spec: ExperimentSpec, *, workers: int = 1,
                     seconds_per_image_epoch: float | None = None) -> float:
    """Wall-clock estimate of an experiment, from this machine's calibration when it has one.

    With a calibration for the thread count the workers use (:func:`akp.calibration.load_calibration`,
    measured once per machine by :func:`akp.calibration.start_calibration`), the measured costs are
    scaled by the spec (:func:`akp.calibration.estimate_with`). Without one, or with
    ``seconds_per_image_epoch`` given: ``seconds_per_image_epoch x model_cost_ratio x
    (n_train + (n_test + probe)/3) x epochs`` per run plus a fixed overhead, runs spread over
    ``workers`` (:data:`SECONDS_PER_IMAGE_EPOCH` by default). :func:`estimate_note` says which.

    Parameters
    ----------
    spec : ExperimentSpec
    workers : int
        Runs trained at the same time.
    seconds_per_image_epoch : float, optional
        A constant for the reference model instead of the calibration.

    Returns
    -------
    float
        Seconds.
    """
    if seconds_per_image_epoch is None:
        calibration, executor = _calibration_for(workers)
        if calibration is not None:
            loads = 2 if executor == "thread" else 1 + max(1, workers)  # probe set, then once per process
            return estimate_with(calibration, spec, workers=workers, data_loads=loads)
        seconds_per_image_epoch = SECONDS_PER_IMAGE_EPOCH
    cost = spec_cost(spec)
    ratio = cost["model_cost"] / model_cost(REFERENCE_MODEL, 32)
    # Small models do not get proportionally faster: per-batch overhead dominates.
    ratio = max(ratio, 0.15)
    per_run = seconds_per_image_epoch * ratio * cost["units"] * spec.epochs
    n_runs = len(spec.conditions) * len(spec.seeds)
    return (per_run + RUN_OVERHEAD_SECONDS) * math.ceil(n_runs / max(1, workers))


def _calibration_for(workers: int) -> tuple[Calibration | None, str]:
    """The calibration for the torch threads ``workers`` workers get, and the executor's name."""
    try:
        settings = resolve_settings(workers=max(1, workers))
    except AKPError:  # a bad AKP_* setting is reported where the manager is made; estimate with defaults
        return load_calibration(worker_threads(max(1, workers))), "thread"
    return load_calibration(settings.threads), settings.executor


def calibration_threads(workers: int = 1) -> int:
    """Torch threads per worker that the estimate for ``workers`` workers looks up (what to calibrate).

    Parameters
    ----------
    workers : int

    Returns
    -------
    int
    """
    try:
        return resolve_settings(workers=max(1, workers)).threads
    except AKPError:
        return worker_threads(max(1, workers))


def estimate_note(workers: int = 1) -> str:
    """Where :func:`estimate_seconds` gets its speed from, for the estimate's help text.

    Parameters
    ----------
    workers : int

    Returns
    -------
    str
        "Calibrated on this machine ..." or "Not calibrated yet ...".
    """
    calibration, _ = _calibration_for(workers)
    if calibration is None:
        state = calibration_status()["state"]
        why = {"running": "the calibration is running now", "failed": "the calibration failed"}.get(
            state, "the calibration runs once, in the background, when the app starts")
        return (f"Not calibrated yet ({why}): a rough constant for {workers} worker(s), seconds per training "
                "image and epoch of a reference model, scaled by the model's conv cost.")
    return (f"Calibrated on this machine ({calibration.measured_at}, load average {calibration.load_average:g}) "
            f"for {workers} worker(s): measured seconds per image and epoch, scaled by the spec's images, "
            "epochs, image size, model size, conditions x seeds and workers.")


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1 min 15 s"``; ``3700`` -> ``"1 h 2 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# -- uploads ----------------------------------------------------------------------------------------
def read_json_upload(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> ExperimentSpec | SwapSchedule:
    """Parse an uploaded JSON file as an experiment spec or a swap schedule.

    Parameters
    ----------
    data : bytes
        File contents.
    max_bytes : int
        Larger files are refused before parsing.

    Returns
    -------
    ExperimentSpec or SwapSchedule
        A spec if the object has ``conditions`` or ``epochs``, else a schedule.

    Raises
    ------
    DesignError
        Field ``"upload"``: too large, not UTF-8 JSON, or invalid.
    """
    if len(data) > max_bytes:
        raise DesignError.at("upload", f"file is {len(data)} bytes; at most {max_bytes} bytes allowed")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DesignError.at("upload", f"not a UTF-8 JSON file ({exc})") from None
    except ValueError:  # an integer of thousands of digits (Python's int-string limit)
        raise DesignError.at("upload", "holds a number too long to be a spec value") from None
    except RecursionError:
        raise DesignError.at("upload", "nested too deeply to be a spec") from None
    try:
        if isinstance(obj, dict) and ("conditions" in obj or "epochs" in obj or "model" in obj):
            return ExperimentSpec.from_dict(obj)
        return SwapSchedule.from_dict(obj)
    except (AKPError, TypeError) as exc:
        raise DesignError.at("upload", str(exc)) from None


# -- live progress ----------------------------------------------------------------------------------
def run_progress(runs: Sequence[Mapping[str, Any]], snapshots: Sequence[Mapping[str, Any]],
                 epochs: int) -> list[dict[str, Any]]:
    """Stored runs merged with the job manager's live snapshots, with a progress fraction.

    The store is the source of truth for finished states (it survives restarts);
    a live snapshot adds the batch within the epoch and the queue position.

    Parameters
    ----------
    runs : sequence of dict
        From ``RunStore.runs`` (run_id, condition, seed, state, epochs_done, test_acc, ...).
    snapshots : sequence of dict
        From ``JobManager.status`` (run_id, state, epoch, epochs, batch, n_batches, queue_position, ...).
    epochs : int
        The experiment's budget.

    Returns
    -------
    list of dict
        Per run: run_id, condition, seed, state, progress (0..1), epochs_done (int), epochs (int,
        the budget), queue_position, test_acc, train_acc, gap, error (first line), note (what a queued run
        waits for, e.g. ``"preparing data"``), seconds_per_epoch
        (measured, from the snapshot; None if unknown), eta_seconds (remaining, for active runs; else None).
    """
    live = {s["run_id"]: s for s in snapshots}
    out = []
    for run in runs:
        snap = live.get(run["run_id"], {})
        state = run["state"]
        if state in ACTIVE_STATES and snap.get("state") in ACTIVE_STATES:
            state = snap["state"]  # the manager knows first that a queued run has started
        epochs_done = int(run.get("epochs_done") or 0)
        done = float(epochs_done)
        if state == RUNNING and snap.get("n_batches"):
            epoch = int(snap.get("epoch") or 0)
            done = max(done, epoch + float(snap.get("batch") or 0) / float(snap["n_batches"]))
        if state == DONE:
            done = float(epochs)
        progress = min(1.0, done / epochs) if epochs else 0.0
        qpos = snap.get("queue_position")
        error = (run.get("error") or snap.get("error") or "").strip().splitlines()
        out.append({
            "run_id": run["run_id"], "condition": run["condition"], "seed": run["seed"], "state": state,
            "progress": progress, "epochs_done": epochs_done, "epochs": int(epochs),
            "queue_position": qpos if state == QUEUED else None,
            "test_acc": run.get("test_acc"), "train_acc": run.get("train_acc"), "gap": run.get("gap"),
            "error": error[0] if error else "",
            "note": (snap.get("note") or "") if state == QUEUED else "",  # e.g. "preparing data"
            "seconds_per_epoch": snap.get("seconds_per_epoch"),
            "eta_seconds": snap.get("eta_seconds") if state in ACTIVE_STATES else None,
        })
    return out
