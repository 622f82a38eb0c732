"""The Design form reports every problem at once: akp.design_check.check_form, and the page (AppTest).

Each problem names its widget by the label the page shows ("Probe images", not
"probe_size") and, in a schedule table, the row as displayed; Launch lists them
all and creates nothing. When Epochs leaves swap events past the budget, one
click fits every condition to it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui
from akp.constraints import SPEC
from akp.datasets import SYNTHETIC
from akp.design import FORM_KEYS, build_spec, constraint_of, form_values, schedule_rows
from akp.design_check import CONDITION_NAME_LABEL, check_form, check_rows, form_label
from akp.experiment import load_preset
from akp.schedule import past_budget
from akp.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
NUMERIC_KEYS = ("n_train", "n_test", "data_seed", "width", "depth", "embedding_dim", "probe_size", "epochs",
                "batch_size", "lr")


def teaching_form() -> tuple[dict, list[dict]]:
    """The teaching preset as the page hands it to check_form: form values and condition boxes."""
    spec = load_preset("teaching")
    values = form_values(spec) | {"dataset": SYNTHETIC}
    conditions = [{"name": c.name, "activation": c.activation, "loss": c.loss, "rows": schedule_rows(c)}
                  for c in spec.conditions]
    return values, conditions


# -- check_form ----------------------------------------------------------------------------------------
def test_a_valid_form_has_no_problem_and_builds_the_spec() -> None:
    values, conditions = teaching_form()
    check = check_form(values, conditions)
    assert check.problems == ()
    assert check.spec is not None and check.spec.to_dict() == build_spec(values).to_dict()
    assert [s.name for s in check.schedules] == [c["name"] for c in conditions]


def test_every_problem_at_once_with_labels() -> None:
    values, conditions = teaching_form()
    values |= {"epochs": 3, "seeds": "abc", "name": "  ", "probe_size": 700}  # teaching has 600 test images
    check = check_form(values, conditions)
    assert check.spec is None
    by_field = {p.field: p for p in check.problems}
    assert set(by_field) == {"name", "probe_size", "conditions[1]", "conditions[2]", "conditions[7]", "seeds"}
    assert by_field["name"].text == "Experiment name: must be non-empty text of at most 200 characters"
    assert by_field["probe_size"].text == "Probe images: at most the number of Test images (600), got 700"
    assert by_field["seeds"].text == "Seeds: cannot read 'abc'; use integers and ranges like '0-4'"
    assert by_field["conditions[7]"].text == ("late-flip · swap events, row 2: epoch 7 is past the training budget; "
                                              "allowed: 0 to 2 for 3 epochs")
    assert not any(internal in p.text for p in check.problems
                   for internal in ("probe_size", "n_test", "events[", "conditions["))
    # In the page's order, top to bottom, so that Launch lists them as the user scrolls.
    assert [p.field for p in check.problems] == ["name", "probe_size", "conditions[1]", "conditions[2]",
                                                 "conditions[7]", "seeds"]
    # Schedules past the budget still read as schedules: "fit to budget" can move their events.
    assert past_budget(check.schedules[7], 3) and check.schedules[0] is not None


def test_table_rows_are_numbered_as_displayed_not_sorted() -> None:
    # An epoch-1 row added under an epoch-2 row is row 2, whatever the epoch order.
    rows = [{"epoch": 2, "activation": "tanh", "loss": None}, {"epoch": 1, "activation": None, "loss": None},
            {"epoch": None, "activation": None, "loss": None},  # the editor's empty new row keeps its number
            {"epoch": 2, "activation": None, "loss": "mse"}, {"epoch": 9, "activation": "gelu", "loss": None}]
    problems, readable = check_rows(rows, epochs=4)
    assert problems == [(2, "changes nothing; choose a new activation or a new loss"),
                        (4, "epoch 2 is also in row 1; merge both changes into one row"),
                        (5, "epoch 9 is past the training budget; allowed: 0 to 3 for 4 epochs")]
    assert not readable
    assert check_rows(rows[:1] + rows[4:], epochs=4) == (
        [(2, "epoch 9 is past the training budget; allowed: 0 to 3 for 4 epochs")], True)


@pytest.mark.parametrize(("row", "message"), [
    ({"epoch": None, "activation": "tanh"}, "epoch is missing; give the 0-based epoch at which the swap applies"),
    ({"epoch": 1.5, "activation": "tanh"}, "epoch must be a whole number >= 0, got 1.5"),
    ({"epoch": -1, "activation": "tanh"}, "epoch must be a whole number >= 0, got -1"),
    ({"epoch": 1, "activation": "swish"}, "new activation: unknown 'swish'; allowed: elu, gelu"),
    ({"epoch": 1, "loss": "l1"}, "new loss: unknown 'l1'; allowed: cross_entropy"),
])
def test_each_row_problem_names_the_row(row: dict, message: str) -> None:
    values, conditions = teaching_form()
    conditions[0]["rows"] = [{"epoch": 0, "activation": "gelu", "loss": None},
                             {"activation": None, "loss": None} | row]
    check = check_form(values, conditions)
    [problem] = check.problems
    assert (problem.field, problem.label, problem.row) == ("conditions[0]", "steady · swap events", 2)
    assert problem.message.startswith(message)
    assert check.schedules[0] is None and check.spec is None


def test_condition_names_and_count() -> None:
    values, conditions = teaching_form()
    conditions[1]["name"], conditions[3]["name"] = "", "steady"
    problems = check_form(values, conditions).problems
    assert [(p.field, p.label, p.message) for p in problems] == [
        ("conditions[1]", CONDITION_NAME_LABEL, "must be non-empty text"),
        ("conditions[3]", CONDITION_NAME_LABEL, "'steady' is also the name of condition 1; names must be unique"),
    ]
    [none] = check_form(values, []).problems
    assert none.text == "Conditions: add at least one condition (a swap schedule)"


def test_analysis_plan_and_dataset_problems() -> None:
    values, conditions = teaching_form()
    values |= {"threshold": 0.0, "depth": 2, "primary_layer": "conv3", "family_rule": "vibes"}
    texts = [p.text for p in check_form(values, conditions).problems]
    assert texts == ["Family rule: unknown 'vibes'; allowed: accuracy, gap",
                     "Happy threshold: must be a number in (0, 1], got 0.0",
                     "Primary layer: 'conv3' is not captured; allowed: conv1, conv2, embedding, logits"]
    values, conditions = teaching_form()
    [empty] = check_form(values | {"dataset": ""}, conditions).problems
    assert (empty.field, empty.label) == ("dataset", "Dataset")
    # Real data: the synthetic options are not the form's business there.
    assert check_form(values | {"dataset": "ds-0123456789ab", "n_test": 5}, conditions).problems == ()


def test_garbage_values_give_problems_not_exceptions() -> None:
    values, conditions = teaching_form()
    values = {key: "x" for key in FORM_KEYS} | {"dataset": SYNTHETIC, "seeds": None, "threshold": None,
                                                "max_gap": None}
    problems = check_form(values, [{"name": "c", "activation": "relu", "loss": "nope", "rows": [{"epoch": "y"}]}])
    fields = {p.field for p in problems.problems}
    assert {"n_train", "width", "epochs", "lr", "optimizer", "seed_mode", "seeds", "conditions[0]"} <= fields
    assert problems.spec is None


@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_widget_bounds_and_validation_agree(key: str) -> None:
    """A value at a widget's min or max is accepted; one step past it is refused, under that widget."""
    kwargs = ui.number_kwargs(constraint_of(key))
    values, conditions = teaching_form()
    values |= {"probe_size": 4, "n_test": 100_000} if key in ("probe_size", "n_test") else {}
    for bound, outside in (("min_value", -1), ("max_value", +1)):
        edge = kwargs[bound]
        step = 1 if isinstance(edge, int) else 1e-6
        if key == "epochs" and bound == "min_value":
            conditions = [dict(c, rows=[]) for c in conditions]  # one epoch: no room for swaps
        inside = [p for p in check_form(values | {key: edge}, conditions).problems if p.field == key]
        constraint = constraint_of(key)
        if not (bound == "min_value" and constraint.low_open):  # an open bound is refused at the bound itself
            assert inside == [], (key, edge, inside)
        [problem] = [p for p in check_form(values | {key: edge + outside * step}, conditions).problems
                     if p.field == key]
        assert problem.label == kwargs["label"] == form_label(key)
        assert problem.message == constraint.problem(edge + outside * step)


def test_every_form_field_has_a_label() -> None:
    for key in FORM_KEYS:
        assert form_label(key) and "_" not in form_label(key), key
    assert form_label("seeds") == SPEC["seed"].label == "Seeds"


# -- the page ------------------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AKP_HOME", str(tmp_path / "store"))
    yield tmp_path / "store"
    ui.shutdown_managers(tmp_path / "store")


def design_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/design.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at: AppTest) -> list[str]:
    return [ui.plain(e.value) for e in at.error]


def test_page_shows_every_problem_and_launch_lists_them(home: Path) -> None:
    at = design_page()
    at.number_input(key="design-epochs").set_value(3)
    at.text_input(key="design-seeds").input("abc")
    at.text_input(key="design-name").input("")
    at.number_input(key="design-probe_size").set_value(700).run()
    expected = ["Experiment name: must be non-empty text", "Probe images: at most the number of Test images (600)",
                "gelu-swap · swap events, row 1: epoch 3 is past the training budget",
                "silu-swap · swap events, row 1: epoch 3 is past the training budget",
                "late-flip · swap events, row 2: epoch 7 is past the training budget",
                "Seeds: cannot read 'abc'"]
    shown = errors(at)
    assert len(shown) == len(expected) and all(e in s for e, s in zip(expected, shown, strict=True)), shown
    at.button(key="design-launch").click().run()
    listed = errors(at)[-1]
    assert listed.startswith("Nothing was queued. Fix these first:")
    assert all(e in listed for e in expected), listed
    assert RunStore(home).experiments() == []


def test_page_fits_every_condition_to_the_budget_in_one_click(home: Path) -> None:
    at = design_page()
    at.number_input(key="design-epochs").set_value(3).run()
    assert [ui.plain(w.value) for w in at.warning] == [
        "3 condition(s) swap past the budget of 3 epochs: gelu-swap, silu-swap, late-flip."]
    assert at.radio(key="design-fit-mode").value == "scale"
    charts = [c for c in at.get("plotly_chart") if "fit-preview" in c.proto.id]
    assert len(charts) == 1  # the preview of the fitted timeline, before anything is applied
    assert len(errors(at)) == 3 and at.session_state["design-conditions"][7]["rows"][1]["epoch"] == 7
    at.button(key="design-fit-apply").click().run()
    assert errors(at) == [] and not at.warning
    conds = at.session_state["design-conditions"]
    assert [c["name"] for c in conds] == [s.name for s in load_preset("teaching").conditions]
    assert conds[7]["rows"] == [{"epoch": 1, "activation": "tanh", "loss": None},
                                {"epoch": 2, "activation": None, "loss": "flipped"}]
    assert all(r["epoch"] < 3 for c in conds for r in c["rows"])
    assert any(m.label == "Epochs per run" and m.value == "3" for m in at.metric)


def test_page_drop_mode_removes_the_late_events(home: Path) -> None:
    at = design_page()
    at.number_input(key="design-epochs").set_value(3).run()
    at.radio(key="design-fit-mode").set_value("drop").run()
    at.button(key="design-fit-apply").click().run()
    assert errors(at) == []
    rows = {c["name"]: c["rows"] for c in at.session_state["design-conditions"]}
    assert rows["gelu-swap"] == [] and rows["smooth-swap"] == [{"epoch": 2, "activation": None,
                                                                "loss": "label_smoothing"}]
    assert rows["late-flip"] == [{"epoch": 2, "activation": "tanh", "loss": None}]
