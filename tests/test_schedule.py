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


# -- fit to budget -------------------------------------------------------------------------------------
def _random_schedules(n: int, seed: int = 0):
    """Seeded random schedules over budgets of 1..12 epochs: (schedule, the budget it was made for)."""
    import random

    from akp.swaps import ACTIVATIONS, LOSSES

    rng = random.Random(seed)
    acts, losses = sorted(ACTIVATIONS), sorted(LOSSES)
    for _ in range(n):
        budget = rng.randint(1, 12)
        epochs = sorted(rng.sample(range(budget), rng.randint(0, budget)))
        events = []
        for epoch in epochs:
            kind = rng.choice(("activation", "loss", "both"))
            events.append(SwapEvent(epoch, rng.choice(acts) if kind != "loss" else None,
                                    rng.choice(losses) if kind != "activation" else None))
        yield SwapSchedule("s", rng.choice(acts), rng.choice(losses), tuple(events)), budget


def test_fit_to_budget_properties_on_random_schedules():
    from akp.schedule import fit_to_budget

    checked = merged = 0
    for sched, old in _random_schedules(400):
        for new in range(1, 15):
            fitted = fit_to_budget(sched, new, old_epochs=old)
            checked += 1
            epochs = [e.epoch for e in fitted.events]
            assert all(0 <= e < new for e in epochs)  # within the new budget
            assert epochs == sorted(set(epochs))  # strictly increasing: a valid schedule
            assert (fitted.name, fitted.activation, fitted.loss) == (sched.name, sched.activation, sched.loss)
            # The functions in force at the end of training are the original schedule's.
            assert fitted.active_at(new - 1) == sched.active_at(old - 1)
            room = new - (1 if sched.events and sched.events[0].epoch >= 1 and new >= 2 else 0)
            if len(sched.events) <= room:
                # Room for every event: the same changes in the same order, each at its own epoch.
                assert [(e.activation, e.loss) for e in fitted.events] == \
                       [(e.activation, e.loss) for e in sched.events]
            else:
                merged += 1
                assert len(fitted.events) <= room
            if new >= 2:  # a swap after epoch 0 stays after it: the run starts with its starting functions
                assert all(e.epoch >= 1 for e in fitted.events) or sched.events[0].epoch == 0
            # Idempotent at the same budget.
            assert fit_to_budget(fitted, new) == fitted
            assert fit_to_budget(fitted, new, old_epochs=new) == fitted
        assert fit_to_budget(sched, old, old_epochs=old) == sched  # nothing to fit: unchanged
    assert checked == 400 * 14 and merged > 100  # both branches were exercised


def test_fit_to_budget_scales_the_presets_to_three_epochs():
    from akp.schedule import fit_to_budget

    late = fit_to_budget(PRESETS["late-flip"], 3, old_epochs=8)
    assert late.events == (SwapEvent(1, activation="tanh"), SwapEvent(2, loss="flipped"))
    assert fit_to_budget(PRESETS["gelu-swap"], 3, old_epochs=8).events == (SwapEvent(1, activation="gelu"),)
    # Growing the budget spreads the events out, keeping their share of the run.
    assert fit_to_budget(PRESETS["late-flip"], 16, old_epochs=8).events == (
        SwapEvent(4, activation="tanh"), SwapEvent(14, loss="flipped"))
    # Five alternations in three epochs: merged, ending on sigmoid like the original.
    alt = fit_to_budget(PRESETS["alternating"], 3, old_epochs=8)
    assert alt.active_at(2) == ("sigmoid", "cross_entropy") and all(1 <= e.epoch <= 2 for e in alt.events)


def test_fit_to_budget_drop_keeps_the_events_within_it():
    from akp.schedule import fit_to_budget, past_budget

    sched = PRESETS["late-flip"]
    assert past_budget(sched, 3) == [SwapEvent(7, loss="flipped")]
    dropped = fit_to_budget(sched, 3, old_epochs=8, mode="drop")
    assert dropped.events == (SwapEvent(2, activation="tanh"),) and past_budget(dropped, 3) == []
    for sched, _old in _random_schedules(100, seed=1):
        for new in (1, 3, 6):
            assert fit_to_budget(sched, new, mode="drop").events == tuple(e for e in sched.events if e.epoch < new)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"epochs": 0}, "epochs"), ({"epochs": 2.0}, "epochs"), ({"epochs": 3, "old_epochs": -1}, "old_epochs"),
    ({"epochs": 3, "mode": "squash"}, "mode"),
])
def test_fit_to_budget_refuses_bad_arguments(kwargs, field):
    from akp.schedule import fit_to_budget

    with pytest.raises(ScheduleError) as info:
        fit_to_budget(PRESETS["late-flip"], **kwargs)
    assert info.value.field == field
