"""Tests of akp.design: the Design page's form <-> spec logic, seeds, estimates, uploads, progress."""
from __future__ import annotations

import json
import math

import pytest

from akp.design import (
    FORM_KEYS,
    MAX_UPLOAD_BYTES,
    SECONDS_PER_IMAGE_EPOCH,
    SPEC_FIELDS,
    DesignError,
    build_spec,
    constraint_of,
    estimate_seconds,
    form_key,
    form_values,
    format_duration,
    format_seeds,
    model_cost,
    parse_seeds,
    read_json_upload,
    run_progress,
    schedule_from_rows,
    schedule_rows,
)
from akp.errors import AKPError
from akp.experiment import ExperimentSpec, load_preset
from akp.models import ModelSpec
from akp.schedule import PRESETS, ScheduleError, SwapEvent, SwapSchedule


# -- seeds ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seeds"), [
    ("0-4", [0, 1, 2, 3, 4]), ("0, 2, 7", [0, 2, 7]), ("3", [3]), ("0-2, 5, 1", [0, 1, 2, 5]),
    (" 10 - 12 ", [10, 11, 12]), (3, [0, 1, 2]), ([4, 4, 5], [4, 5]),
])
def test_parse_seeds(text, seeds) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "message"), [
    ("", "at least one seed"), ("x", "cannot read 'x'"), ("5-2", "goes backwards"), ("-1", "cannot read"),
    ("0-64", "at most 64 seeds"), (0, "from 1 to 64"), (True, "seeds"),
])
def test_parse_seeds_errors_name_the_field(text, message) -> None:
    with pytest.raises(DesignError, match=message) as info:
        parse_seeds(text)
    assert info.value.field == "seeds"
    assert isinstance(info.value, AKPError)


def test_format_seeds_roundtrip() -> None:
    for seeds in ([0, 1, 2, 5], [3], [0, 2, 4], list(range(10))):
        assert parse_seeds(format_seeds(seeds)) == seeds
    assert format_seeds([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"


# -- schedules <-> rows -------------------------------------------------------------------------------
def test_schedule_rows_roundtrip_all_presets() -> None:
    for sched in PRESETS.values():
        back = schedule_from_rows(sched.name, sched.activation, sched.loss, schedule_rows(sched))
        assert back == sched


def test_schedule_from_rows_editor_values() -> None:
    rows = [
        {"epoch": 3.0, "activation": None, "loss": "mse"},        # floats from the editor, None = keep
        {"epoch": 1, "activation": "tanh", "loss": float("nan")},  # NaN = keep; out of order is sorted
        {"epoch": None, "activation": None, "loss": None},        # the editor's empty new row
    ]
    sched = schedule_from_rows("c", "relu", "cross_entropy", rows)
    assert sched.events == (SwapEvent(1, "tanh", None), SwapEvent(3, None, "mse"))
    assert sched.active_at(2) == ("tanh", "cross_entropy")
    assert sched.active_at(3) == ("tanh", "mse")


def test_schedule_from_rows_errors_carry_the_field() -> None:
    with pytest.raises(ScheduleError) as info:
        schedule_from_rows("c", "relu", "cross_entropy", [{"epoch": "x", "activation": "tanh", "loss": None}])
    assert info.value.field == "events[0].epoch"


@pytest.mark.parametrize(("rows", "message"), [
    ([{"epoch": None, "activation": "tanh", "loss": None}], r"events\[0\].epoch: missing"),
    ([{"epoch": 1.5, "activation": "tanh", "loss": None}], "non-negative integer"),
    ([{"epoch": 1, "activation": "swish", "loss": None}], "unknown function 'swish'; allowed: elu"),
    ([{"epoch": 1, "activation": None, "loss": None}], "both are empty"),
    ([{"epoch": 1, "activation": "tanh", "loss": None}, {"epoch": 1, "activation": None, "loss": "mse"}],
     "duplicate epoch 1"),
    ([{"epoch": -1, "activation": "tanh", "loss": None}], "must be >= 0"),
])
def test_schedule_from_rows_errors(rows, message) -> None:
    with pytest.raises(ScheduleError, match=message):
        schedule_from_rows("c", "relu", "cross_entropy", rows)


# -- form <-> spec ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["smoke", "teaching"])
def test_form_values_build_spec_roundtrip(preset: str) -> None:
    spec = load_preset(preset)
    back = build_spec(form_values(spec))
    expected = spec.to_dict()
    expected["dataset_options"].setdefault("difficulty", 0.5)
    assert back.to_dict() == expected


def test_build_spec_takes_conditions_and_text_seeds() -> None:
    values = form_values(load_preset("smoke")) | {"seeds": "0-2, 9", "epochs": 6.0}
    spec = build_spec(values, [PRESETS["single-swap"], PRESETS["loss-shock"]])
    assert spec.seeds == [0, 1, 2, 9]
    assert spec.epochs == 6 and isinstance(spec.epochs, int)
    assert [c.name for c in spec.conditions] == ["single-swap", "loss-shock"]


@pytest.mark.parametrize(("change", "field", "key", "message"), [
    ({"epochs": 1}, "conditions[1].events[0].epoch", "conditions[1]", "past the training budget"),
    ({"n_train": 5}, "dataset_options.n_train", "n_train", "dataset_options.n_train"),
    ({"data_seed": -1}, "dataset_options.seed", "data_seed", "dataset_options.seed"),
    ({"width": 0}, "model.width", "width", "model.width"),
    ({"optimizer": "rmsprop"}, "optimizer", "optimizer", "allowed: sgd, adam, adamw"),
    ({"lr": 0.0}, "lr", "lr", "lr: must be a number in"),
    ({"name": ""}, "name", "name", "name: must be non-empty text"),
    ({"probe_size": 200}, "probe_size", "probe_size", "at most n_test"),
    ({"conditions": []}, "conditions", "conditions", "at least one swap schedule"),
])
def test_build_spec_errors_name_the_field(change, field, key, message) -> None:
    values = form_values(load_preset("smoke")) | change
    with pytest.raises(DesignError, match=message) as info:
        build_spec(values)
    assert info.value.field == field
    assert form_key(info.value.field) == key
    assert isinstance(info.value, AKPError)


def test_build_spec_duplicate_condition_names() -> None:
    values = form_values(load_preset("smoke"))
    with pytest.raises(DesignError, match="names must be unique") as info:
        build_spec(values, [PRESETS["steady"], PRESETS["steady"]])
    assert info.value.field == "conditions"


def test_build_spec_custom_dataset_has_no_synthetic_options() -> None:
    values = form_values(load_preset("smoke")) | {"dataset": "/data/cells"}
    spec = build_spec(values)
    assert spec.dataset == "/data/cells" and spec.dataset_options == {}


def test_form_key_walks_up_the_field_path() -> None:
    assert form_key("dataset_options.n_test") == "n_test"
    assert form_key("dataset_options.seed") == "data_seed"
    assert form_key("dataset_options.channels") == "dataset"
    assert form_key("model.depth") == "depth"
    assert form_key("conditions[2].events[0].epoch") == "conditions[2]"
    assert form_key("conditions") == "conditions"
    assert form_key("seeds") == "seeds"
    assert form_key("upload") == "upload"
    assert form_key("layers") is None
    assert form_key(None) is None


def test_every_form_value_has_a_constraint_whose_field_it_fills() -> None:
    for key in FORM_KEYS:
        if key == "dataset":
            continue
        constraint = constraint_of(key)
        assert constraint.field == ("seed" if key == "seeds" else SPEC_FIELDS[key])
        assert constraint.label


@pytest.mark.parametrize("preset", ["smoke", "teaching"])
def test_preset_form_values_lie_within_the_widget_bounds(preset: str) -> None:
    values = form_values(load_preset(preset))
    for key in FORM_KEYS:
        if key in ("dataset", "seeds") or (key in ("threshold", "max_gap") and values[key] is None):
            continue  # free text; an empty optional number
        constraint_of(key).check(values[key])


# -- estimate ----------------------------------------------------------------------------------------------
def test_model_cost_matches_the_cnn() -> None:
    # width 16, depth 3 at 32 px: 1->16 @32x32, 16->32 @16x16, 32->64 @8x8, then fc 64x64.
    expected = 9 * (1 * 16 * 32 * 32 + 16 * 32 * 16 * 16 + 32 * 64 * 8 * 8) + 64 * 64
    assert model_cost(ModelSpec(16, 3, 64)) == expected


def test_estimate_scales_with_runs_epochs_and_workers() -> None:
    # The fallback constant (before this machine is calibrated; tests/test_timing_calibration.py: the calibrated one).
    spec = load_preset("teaching")
    k = {"seconds_per_image_epoch": SECONDS_PER_IMAGE_EPOCH}
    one = estimate_seconds(spec, **k)
    opts, runs = spec.dataset_options, len(spec.conditions) * len(spec.seeds)
    per_run = SECONDS_PER_IMAGE_EPOCH * (opts["n_train"] + (opts["n_test"] + spec.probe_size) / 3) * spec.epochs
    assert runs == 16 and one == pytest.approx(runs * (per_run + 0.3))
    assert estimate_seconds(spec, workers=2, **k) == pytest.approx(one / 2)
    assert estimate_seconds(spec, workers=3, **k) == pytest.approx(math.ceil(runs / 3) * (per_run + 0.3))
    longer = ExperimentSpec.from_dict(spec.to_dict() | {"epochs": 16})
    assert estimate_seconds(longer, **k) > 1.9 * one
    bigger = ExperimentSpec.from_dict(spec.to_dict() | {"model": {"width": 32, "depth": 3, "embedding_dim": 64}})
    assert estimate_seconds(bigger, **k) > 3 * one


def test_format_duration() -> None:
    assert format_duration(42.4) == "42 s"
    assert format_duration(75) == "1 min 15 s"
    assert format_duration(3720) == "1 h 2 min"


# -- uploads ------------------------------------------------------------------------------------------------
def test_read_json_upload_spec_and_schedule() -> None:
    spec = read_json_upload(load_preset("smoke").to_json().encode())
    assert isinstance(spec, ExperimentSpec) and spec.name == "smoke"
    sched = read_json_upload(PRESETS["alternating"].to_json().encode())
    assert isinstance(sched, SwapSchedule) and sched == PRESETS["alternating"]


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff\xfe", "not a UTF-8 JSON file"),
    (b"[1, 2", "not a UTF-8 JSON file"),
    (json.dumps({"name": "x", "epochs": 0}).encode(), "epochs: must be an integer from 1"),
    (json.dumps({"name": "s", "activation": "nope"}).encode(), "unknown function 'nope'"),
    (json.dumps([1]).encode(), "must be a JSON object"),
    (b" " * (MAX_UPLOAD_BYTES + 1), "at most"),
])
def test_read_json_upload_errors(data: bytes, message: str) -> None:
    with pytest.raises(DesignError, match=message) as info:
        read_json_upload(data)
    assert info.value.field == "upload"


# -- progress -------------------------------------------------------------------------------------------------
def test_run_progress_merges_store_and_live() -> None:
    runs = [
        {"run_id": "a", "condition": "c", "seed": 0, "state": "done", "epochs_done": 4, "test_acc": 0.9,
         "train_acc": 0.95, "gap": 0.05, "error": None},
        {"run_id": "b", "condition": "c", "seed": 1, "state": "running", "epochs_done": 1, "test_acc": 0.6,
         "train_acc": 0.6, "gap": 0.0, "error": None},
        {"run_id": "c", "condition": "c", "seed": 2, "state": "queued", "epochs_done": 0, "test_acc": None,
         "train_acc": None, "gap": None, "error": None},
        {"run_id": "d", "condition": "c", "seed": 3, "state": "failed", "epochs_done": 2, "test_acc": None,
         "train_acc": None, "gap": None, "error": "RuntimeError: boom\ntraceback..."},
    ]
    snaps = [
        {"run_id": "b", "state": "running", "epoch": 1, "batch": 5, "n_batches": 10, "queue_position": None},
        {"run_id": "c", "state": "queued", "epoch": 0, "batch": 0, "n_batches": 0, "queue_position": 0,
         "note": "preparing data"},
    ]
    rows = {r["run_id"]: r for r in run_progress(runs, snaps, epochs=4)}
    # What a queued run waits for reaches the table; other states have no note.
    assert (rows["c"]["note"], rows["b"]["note"], rows["a"]["note"]) == ("preparing data", "", "")
    assert rows["a"]["progress"] == 1.0 and (rows["a"]["epochs_done"], rows["a"]["epochs"]) == (4, 4)
    assert (rows["b"]["epochs_done"], rows["b"]["epochs"]) == (1, 4)
    assert "epoch" not in rows["a"]
    assert rows["b"]["progress"] == pytest.approx(1.5 / 4)
    assert rows["c"]["progress"] == 0.0 and rows["c"]["queue_position"] == 0
    assert rows["d"]["progress"] == 0.5 and rows["d"]["error"] == "RuntimeError: boom"
    assert rows["a"]["queue_position"] is None


def test_run_progress_manager_knows_a_run_started() -> None:
    runs = [{"run_id": "a", "condition": "c", "seed": 0, "state": "queued", "epochs_done": 0, "error": None}]
    snaps = [{"run_id": "a", "state": "running", "epoch": 0, "batch": 1, "n_batches": 4, "queue_position": None}]
    [row] = run_progress(runs, snaps, epochs=2)
    assert row["state"] == "running" and row["progress"] == pytest.approx(0.125)
