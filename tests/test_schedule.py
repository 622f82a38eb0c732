import json

import pytest

from akp.schedule import PRESETS, ScheduleError, SwapEvent, SwapSchedule, random_stress


def test_active_at_applies_events_at_start_of_their_epoch():
    s = SwapSchedule("s", "relu", "cross_entropy", (SwapEvent(2, activation="tanh"), SwapEvent(4, loss="mse")))
    assert s.active_at(0) == ("relu", "cross_entropy")
    assert s.active_at(1) == ("relu", "cross_entropy")
    assert s.active_at(2) == ("tanh", "cross_entropy")
    assert s.active_at(3) == ("tanh", "cross_entropy")
    assert s.active_at(4) == ("tanh", "mse")
    assert s.active_at(100) == ("tanh", "mse")
    assert s.event_at(2) == SwapEvent(2, activation="tanh")
    assert s.event_at(3) is None


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    s = PRESETS[name]
    assert SwapSchedule.from_json(s.to_json()) == s
    assert SwapSchedule.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_required_presets_exist_and_steady_has_no_swap():
    assert {"steady", "single-swap", "alternating", "loss-shock", "random-stress"} <= set(PRESETS)
    assert PRESETS["steady"].events == ()
    assert all(PRESETS[n].events for n in PRESETS if n != "steady")


def test_random_stress_is_reproducible_by_seed():
    assert random_stress(10, n_events=4, seed=3) == random_stress(10, n_events=4, seed=3)
    assert random_stress(10, n_events=4, seed=3) != random_stress(10, n_events=4, seed=4)
    s = random_stress(10, n_events=4, seed=3)
    assert len(s.events) == 4 and all(1 <= e.epoch < 10 for e in s.events)


@pytest.mark.parametrize(
    "kwargs, field, allowed",
    [
        (dict(name="x", activation="swish2"), "activation", "relu"),
        (dict(name="x", loss="l1"), "loss", "cross_entropy"),
        (dict(name="x", events=({"epoch": 1, "activation": "nope"},)), "events[0].activation", "gelu"),
        (dict(name="x", events=({"epoch": 1, "loss": "nope"},)), "events[0].loss", "focal"),
        (dict(name="x", events=({"epoch": -1, "activation": "tanh"},)), "events[0].epoch", ">= 0"),
        (dict(name="x", events=({"epoch": 1.5, "activation": "tanh"},)), "events[0].epoch", "integer"),
        (dict(name="x", events=({"epoch": "2", "activation": "tanh"},)), "events[0].epoch", "integer"),
        (dict(name="x", events=({"epoch": 1, "activation": "tanh"}, {"epoch": 1, "loss": "mse"})),
         "events[1].epoch", "duplicate"),
        (dict(name="  "), "name", "non-empty"),
        (dict(name="x", events=({"epoch": 1},)), "events[0]", "activation or the loss"),
    ],
)
def test_invalid_schedules_name_field_and_allowed_values(kwargs, field, allowed):
    with pytest.raises(ScheduleError) as info:
        SwapSchedule(**kwargs)
    assert field in str(info.value)
    assert allowed in str(info.value)


def test_events_past_the_budget_are_rejected_with_the_allowed_range():
    s = SwapSchedule("x", events=(SwapEvent(5, activation="tanh"),))
    s.validate(epochs=6)
    with pytest.raises(ScheduleError, match=r"events\[0\]\.epoch: 5 is past the training budget; allowed: 0 to 4"):
        s.validate(epochs=5)


def test_schedule_error_is_a_value_error_and_bad_json_is_reported():
    assert issubclass(ScheduleError, ValueError)
    with pytest.raises(ScheduleError, match="not valid JSON"):
        SwapSchedule.from_json("{nope")
    with pytest.raises(ScheduleError, match="unknown field"):
        SwapSchedule.from_dict({"name": "x", "speed": 3})


def test_integral_floats_from_table_editors_are_accepted():
    s = SwapSchedule.from_dict({"name": "x", "events": [{"epoch": 3.0, "activation": "elu"}]})
    assert s.events[0].epoch == 3 and isinstance(s.events[0].epoch, int)


def test_route_presets_cover_several_mechanisms_and_share_final_activations():
    from akp.schedule import FAILURE_ROUTES, PRESETS, WORKING_ROUTES

    for name in WORKING_ROUTES + FAILURE_ROUTES:
        PRESETS[name].validate(8)  # fit the teaching budget
    final = {name: PRESETS[name].active_at(7) for name in WORKING_ROUTES + FAILURE_ROUTES}
    # Different end states, or the same end reached at a different epoch (frozen-loss at 1, frozen-late at 2).
    routes = {(final[n], PRESETS[n].events[0].epoch) for n in FAILURE_ROUTES}
    assert len(routes) == len(FAILURE_ROUTES) and len({final[n] for n in FAILURE_ROUTES}) >= 7
    working_acts = {final[n][0] for n in WORKING_ROUTES}
    assert working_acts & {final[n][0] for n in FAILURE_ROUTES} >= {"relu", "tanh"}
    assert final["late-flip"] == ("tanh", "flipped") and final["linear"][0] == "identity"
