"""App tests (Streamlit AppTest) for the core pages: Home, Design, Runs, and the app shell.

Each test points ``$AKP_HOME`` at its own store; the process-wide store and job
manager are cached per home (``st.cache_resource``) and shut down after each test.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui
from akp.constraints import SPEC
from akp.design import constraint_of
from akp.experiment import load_preset
from akp.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 120


@pytest.fixture(scope="session")
def smoke_home(smoke_store) -> Path:
    """The home of the conftest's store trained once on the smoke preset (2 conditions x 2 seeds x 2 epochs)."""
    store, _ = smoke_store
    return Path(store.home)


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "store"
    monkeypatch.setenv("AKP_HOME", str(home))
    yield home
    ui.shutdown_managers(home)


@pytest.fixture
def filled_home(smoke_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AKP_HOME", str(smoke_home))
    yield smoke_home
    ui.shutdown_managers(smoke_home)


def app(page: str | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.run()
    if page is not None:
        at.switch_page(page)
        if query:
            at.query_params.update(query)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    parts += [ui.plain(e.value) for e in at.error] + [i.value for i in at.info] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


# -- shell and Home -------------------------------------------------------------------------------------
def test_home_empty_store_offers_a_start(empty_home: Path) -> None:
    at = app()
    labels = [b.label for b in at.button]
    assert "Start the teaching experiment" in labels
    assert "Get started" in texts(at)
    # The sidebar shows the queue, empty.
    metrics = {m.label: m.value for m in at.sidebar.metric}
    assert metrics == {"Running": "0", "Queued": "0"}
    assert RunStore(empty_home).experiments() == []


def test_home_start_button_creates_and_queues_the_preset(empty_home: Path) -> None:
    at = app()
    at.button(key="home-start-smoke").click().run()
    assert not at.exception, [e.value for e in at.exception]
    exps = RunStore(empty_home).experiments()
    assert [e["name"] for e in exps] == ["smoke"]
    assert exps[0]["n_runs"] == 4
    manager = ui.manager_of(empty_home)
    assert {s["run_id"] for s in manager.status(exps[0]["id"])} == {
        r["run_id"] for r in RunStore(empty_home).runs(exps[0]["id"])}


def test_home_start_button_over_the_run_quota_says_so_and_creates_nothing(empty_home: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKP_MAX_RUNS_PER_USER", "3")  # the smoke preset has 4 runs
    at = app()
    at.button(key="home-start-smoke").click().run()
    assert not at.exception, [e.value for e in at.exception]
    message = " ".join(e.value for e in at.error)
    assert "quota.runs" in message and "1 over" in message, message
    assert RunStore(empty_home).experiments() == []


def test_home_lists_experiments_with_states(filled_home: Path) -> None:
    at = app()
    frame = at.dataframe[0].value
    assert list(frame["name"]) == ["smoke"]
    assert int(frame["done"].iloc[0]) + int(frame["diverged"].iloc[0]) == 4
    assert float(frame["progress"].iloc[0]) == 1.0
    assert "Get started" not in texts(at)


# -- Design -----------------------------------------------------------------------------------------------
def design(query: dict | None = None) -> AppTest:
    return app("pages/design.py", query)


def test_design_renders_with_the_default_preset(empty_home: Path) -> None:
    at = design()
    assert at.selectbox(key="design-preset").value == "teaching"
    assert at.text_input(key="design-name").value == "teaching"
    assert at.number_input(key="design-epochs").value == 8
    assert not at.error
    assert any(m.label == "Runs" and m.value == "16" for m in at.metric)  # 8 conditions x 2 seeds
    # The pre-registered analysis plan comes with the preset.
    assert at.number_input(key="design-threshold").value == 0.8
    assert at.selectbox(key="design-primary_layer").value == "embedding"
    assert at.selectbox(key="design-seed_mode").value == "independent"
    assert any(m.label == "Estimated time" for m in at.metric)
    assert [d.label for d in at.download_button if d.label == "Export spec (JSON)"]


def test_design_widgets_take_labels_and_bounds_from_the_constraints(empty_home: Path) -> None:
    at = design()
    for key in ("n_train", "n_test", "data_seed", "width", "depth", "embedding_dim", "probe_size", "epochs",
                "batch_size", "lr"):
        constraint = constraint_of(key)
        widget = at.number_input(key=f"design-{key}")
        assert widget.label == constraint.label
        assert (widget.min, widget.max) == (constraint.low, constraint.high), key
    assert at.slider(key="design-difficulty").label == constraint_of("difficulty").label
    assert at.selectbox(key="design-optimizer").options == list(SPEC["optimizer"].choices)
    size = constraint_of("size")
    assert all(size.low <= int(v) <= size.high for v in at.selectbox(key="design-size").options)
    assert at.text_input(key="design-name").label == SPEC["name"].label


def test_widget_kwargs_follow_the_constraint() -> None:
    epochs = ui.number_kwargs(SPEC["epochs"], step=1, key="k", help="kept: the constraint has none")
    assert epochs == {"label": "Epochs", "min_value": 1, "max_value": 200, "step": 1, "key": "k",
                      "help": "kept: the constraint has none"}
    assert all(type(epochs[k]) is int for k in ("min_value", "max_value"))
    lr = ui.number_kwargs(SPEC["lr"])
    assert (lr["min_value"], lr["max_value"]) == (0.0, 10.0) and type(lr["min_value"]) is float
    assert ui.number_kwargs(SPEC["probe_size"])["help"] == SPEC["probe_size"].help
    assert ui.choice_kwargs(SPEC["optimizer"])["options"] == list(SPEC["optimizer"].choices)
    assert ui.choice_kwargs(constraint_of("size"), [8, 16, 32, 256])["options"] == [16, 32]
    assert ui.text_kwargs(SPEC["name"])["max_chars"] == SPEC["name"].max_chars
    with pytest.raises(TypeError):
        ui.number_kwargs(SPEC["optimizer"])


def test_design_preset_fills_form_and_launch_queues_runs(empty_home: Path) -> None:
    at = design()
    at.selectbox(key="design-preset").select("smoke").run()
    assert at.text_input(key="design-name").value == "smoke"
    assert at.number_input(key="design-epochs").value == 2
    assert at.text_input(key="design-seeds").value == "0-1"
    assert not at.error
    at.button(key="design-launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = RunStore(empty_home)
    exps = store.experiments()
    assert len(exps) == 1 and exps[0]["name"] == "smoke"
    spec = store.spec(exps[0]["id"])
    expected = load_preset("smoke").to_dict()
    assert expected["dataset_options"]["difficulty"] == 0.0  # smoke's own, kept by the form
    assert spec.to_dict() == expected
    runs = store.runs(exps[0]["id"])
    assert len(runs) == 4 and {r["condition"] for r in runs} == {"steady", "sigmoid-shock"}
    manager = ui.manager_of(empty_home)
    assert len(manager.status(exps[0]["id"])) == 4
    # Launch goes to Runs, which now shows this experiment.
    assert at.query_params.get("experiment") == exps[0]["id"]
    assert [t.value for t in at.title] == ["Runs"]
    assert at.selectbox(key="akp_experiment").value == exps[0]["id"]


def test_design_event_past_budget_shows_error_and_creates_nothing(empty_home: Path) -> None:
    at = design()
    at.selectbox(key="design-preset").select("smoke").run()
    at.number_input(key="design-epochs").set_value(1).run()  # sigmoid-shock swaps at epoch 1
    errors = [ui.plain(e.value) for e in at.error]
    assert any("past the training budget" in e and "sigmoid-shock" in e for e in errors), errors
    at.button(key="design-launch").click().run()
    assert any("Nothing was queued" in ui.plain(e.value) for e in at.error)
    assert RunStore(empty_home).experiments() == []


def test_design_edited_schedule_rows_are_validated(empty_home: Path) -> None:
    at = design()
    at.selectbox(key="design-preset").select("smoke").run()
    conds = at.session_state["design-conditions"]
    # A row the table editor would produce: epoch 5 with a 2-epoch budget.
    conds[1]["current"] = conds[1]["rows"] = [{"epoch": 5.0, "activation": "tanh", "loss": None}]
    at.session_state["design-conditions"] = conds
    at.run()
    assert any("sigmoid-shock · swap events, row 1: epoch 5 is past the training budget" in ui.plain(e.value)
               for e in at.error), \
        [ui.plain(e.value) for e in at.error]
    at.button(key="design-launch").click().run()
    assert RunStore(empty_home).experiments() == []


@pytest.mark.parametrize(("key", "value", "message"), [
    ("design-seeds", "3-1", "Seeds: range '3-1' goes backwards"),
    ("design-seeds", "a, b", "Seeds: cannot read 'a'"),
    ("design-name", "  ", "Experiment name: must be non-empty text"),
])
def test_design_invalid_field_message_and_nothing_created(empty_home: Path, key: str, value: str,
                                                          message: str) -> None:
    at = design()
    at.text_input(key=key).input(value).run()
    assert any(message in ui.plain(e.value) for e in at.error), [ui.plain(e.value) for e in at.error]
    at.button(key="design-launch").click().run()
    assert RunStore(empty_home).experiments() == []


def test_design_probe_larger_than_test_set_is_refused(empty_home: Path) -> None:
    at = design()
    at.selectbox(key="design-preset").select("smoke").run()
    at.number_input(key="design-probe_size").set_value(500).run()  # smoke has 160 test images
    assert any("Probe images: at most the number of Test images (160)" in ui.plain(e.value) for e in at.error)


def test_design_import_schedule_and_spec_json(empty_home: Path) -> None:
    at = design()
    at.selectbox(key="design-preset").select("smoke").run()
    schedule = {"name": "gelu-late", "activation": "relu", "loss": "cross_entropy",
                "events": [{"epoch": 1, "activation": "gelu", "loss": None}]}
    at.file_uploader(key="design-upload").upload("s.json", json.dumps(schedule).encode(), "application/json").run()
    names = [c["name"] for c in at.session_state["design-conditions"]]
    assert names == ["steady", "sigmoid-shock", "gelu-late"]
    spec = load_preset("smoke").to_dict() | {"name": "imported", "epochs": 3}
    at.file_uploader(key="design-upload").upload("e.json", json.dumps(spec).encode(), "application/json").run()
    assert at.text_input(key="design-name").value == "imported"
    assert at.number_input(key="design-epochs").value == 3
    at.file_uploader(key="design-upload").upload("bad.json", b"{not json", "application/json").run()
    assert any("upload: not a UTF-8 JSON file" in ui.plain(e.value) for e in at.error)
    assert RunStore(empty_home).experiments() == []


# -- Runs -----------------------------------------------------------------------------------------------
def test_runs_empty_store(empty_home: Path) -> None:
    at = app("pages/runs.py")
    assert any("No experiments yet" in i.value for i in at.info)


def test_runs_shows_progress_curves_and_downloads(filled_home: Path) -> None:
    exp_id = RunStore(filled_home).experiments()[0]["id"]
    at = app("pages/runs.py", {"experiment": exp_id})
    assert at.selectbox(key="akp_experiment").value == exp_id
    table = at.dataframe[0].value
    assert sorted(table["state"]) == ["done"] * 4 or set(table["state"]) <= {"done", "diverged"}
    assert list(table["progress"]) == [1.0] * 4
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # curves and final accuracy
    curves = json.loads(charts[0].proto.spec)
    names = {t["name"] for t in curves["data"]}
    assert names == {"steady · train", "steady · test", "sigmoid-shock · train", "sigmoid-shock · test"}
    shapes = curves["layout"].get("shapes", [])
    assert [s["x0"] for s in shapes] == [0.5]  # sigmoid-shock's swap at epoch 1
    labels = {d.label for d in at.download_button}
    assert {"Runs (CSV)", "Download HTML", "Download CSV", "Spec (JSON)"} <= labels
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Done"] == str(4 - int(metrics.get("Diverged", 0)))


def test_runs_selection_lives_in_the_url(filled_home: Path) -> None:
    store = RunStore(filled_home)
    exp_id = store.experiments()[0]["id"]
    run_id = store.runs(exp_id)[0]["run_id"]
    at = app("pages/runs.py", {"experiment": exp_id, "run": run_id})
    assert at.multiselect(key=f"akp_runs:{exp_id}").value == [run_id]
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t["name"] for t in curves["data"]} == {"steady · train", "steady · test"}


def test_experiment_choice_syncs_with_the_url(empty_home: Path) -> None:
    store = RunStore(empty_home)
    first = store.create_experiment(load_preset("smoke"))
    spec = load_preset("smoke")
    spec.name = "second"
    second = store.create_experiment(spec)
    at = app("pages/runs.py", {"experiment": first})
    assert at.selectbox(key="akp_experiment").value == first
    assert not at.warning  # no "default value and Session State" clash
    at.selectbox(key="akp_experiment").select(second).run()
    assert at.query_params["experiment"] == second
    assert set(at.dataframe[0].value["run_id"]) == {r["run_id"] for r in store.runs(second)}
    # Another page of the same session keeps the choice; a shared URL opens its own.
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/runs.py").run()
    assert at.selectbox(key="akp_experiment").value == second
    assert app("pages/runs.py", {"experiment": first}).selectbox(key="akp_experiment").value == first


def test_runs_cancel_and_resume(empty_home: Path) -> None:
    store = RunStore(empty_home)
    exp_id = store.create_experiment(load_preset("smoke"))  # created, not submitted: stays queued
    at = app("pages/runs.py", {"experiment": exp_id})
    assert at.button(key="runs-cancel").label == "Cancel 4 active"
    at.button(key="runs-cancel").click().run()
    assert not at.exception
    assert {r["state"] for r in store.runs(exp_id)} == {"cancelled"}
    assert at.button(key="runs-resume").label == "Resume 4"
    at.button(key="runs-resume").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [ui.plain(e.value) for e in at.error]
    # Resume queued all four again: none is left cancelled, and the manager holds them.
    states = [r["state"] for r in store.runs(exp_id)]
    assert len(states) == 4 and set(states) <= {"queued", "running", "done", "diverged"}, states
    manager = ui.manager_of(empty_home)
    assert len(manager.status(exp_id)) == 4
    manager.cancel(exp_id)
    deadline = time.monotonic() + 60
    while not manager.wait(exp_id, timeout=0.5) and time.monotonic() < deadline:
        pass
    assert {r["state"] for r in store.runs(exp_id)} <= {"cancelled", "done", "diverged"}


def test_reload_shows_the_same_runs(filled_home: Path) -> None:
    exp_id = RunStore(filled_home).experiments()[0]["id"]
    first = app("pages/runs.py", {"experiment": exp_id}).dataframe[0].value
    second = app("pages/runs.py", {"experiment": exp_id}).dataframe[0].value  # a fresh session
    assert first[["run_id", "state", "test_acc"]].equals(second[["run_id", "state", "test_acc"]])


@pytest.mark.parametrize("page", ["pages/home.py", "pages/design.py", "pages/runs.py", "pages/families.py",
                                  "pages/representations.py", "pages/layers.py", "pages/learn.py"])
def test_every_page_renders_on_the_smoke_store(filled_home: Path, page: str) -> None:
    at = app(page)
    assert not at.exception
