"""App tests of owners on the Runs page: manage an experiment (rename, notes, tags, delete), cancel and resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import ui
from akp.experiment import load_preset
from akp.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PROBE = (np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 0, 1]))
BEACON = "![x](http://127.0.0.1:9/beacon.png)"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "store"
    monkeypatch.setenv("AKP_HOME", str(home))
    monkeypatch.delenv("AKP_ADMINS", raising=False)
    yield home
    ui.shutdown_managers(home)


def experiment(home: Path, owner: str | None = None, *, finished: bool = True, name: str = "smoke") -> str:
    store = RunStore(home)
    spec = load_preset("smoke")
    spec.name = name
    eid = store.create_experiment(spec, owner=owner, probe_images=PROBE[0], probe_labels=PROBE[1])
    if finished:
        for r in store.runs(eid):
            store.set_state(r["run_id"], "done")
    return eid


def runs_page(eid: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["experiment"] = eid
    at.run()
    at.switch_page("pages/runs.py")
    at.query_params["experiment"] = eid
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def errors(at: AppTest) -> list[str]:
    return [ui.plain(e.value) for e in at.error]


def test_the_owner_renames_annotates_and_tags_and_user_text_shows_as_text(home: Path) -> None:
    eid = experiment(home)
    at = runs_page(eid)
    key = f"manage:{eid}"
    assert not at.text_input(key=f"{key}:name").disabled
    at.text_input(key=f"{key}:name").input(f"second {BEACON}")
    at.text_area(key=f"{key}:notes").input(f"see {BEACON}\nsecond line")
    at.text_input(key=f"{key}:tags").input("class, demo, class")
    at.button(key=f"{key}:save").click().run()
    assert not at.exception and errors(at) == []
    record = RunStore(home).experiment(eid)
    assert (record["name"], record["notes"], record["tags"]) == (f"second {BEACON}", f"see {BEACON}\nsecond line",
                                                                 ["class", "demo"])
    assert "Owner: local · Tags: class, demo" in [ui.plain(c.value) for c in at.caption]
    assert f"see {BEACON}\nsecond line" in [t.value for t in at.text]  # st.text: never Markdown
    shown = [c.value for c in at.caption] + [m.value for m in at.markdown]
    assert any(f"second {BEACON}" in ui.plain(v) for v in shown)  # the new name is shown...
    assert not any("](" in v for v in shown)  # ...with its image link escaped, as everywhere


def test_bad_fields_are_all_named_by_their_labels_and_nothing_is_saved(home: Path) -> None:
    eid = experiment(home)
    at = runs_page(eid)
    key = f"manage:{eid}"
    at.text_input(key=f"{key}:name").input("   ")
    at.text_area(key=f"{key}:notes").input("bell\x07")
    at.text_input(key=f"{key}:tags").input("ok, " + "t" * 40)
    at.button(key=f"{key}:save").click().run()
    assert not at.exception
    assert errors(at) == [
        "Experiment name: must be non-empty text of at most 200 characters",
        "Notes: must not contain control characters (newlines and tabs are fine)",
        "Tags: tag 2 at most 32 characters, got 40 ('" + "t" * 36 + "...)",
    ]
    record = RunStore(home).experiment(eid)
    assert (record["name"], record["notes"], record["tags"]) == ("smoke", "", [])


def test_another_users_experiment_is_read_only_with_an_explanation(home: Path, monkeypatch) -> None:
    eid = experiment(home, owner="ann@lab.org", finished=False)
    RunStore(home).set_notes(eid, "ann's notes")
    at = runs_page(eid)
    key = f"manage:{eid}"
    assert at.text_input(key=f"{key}:name").disabled and at.text_area(key=f"{key}:notes").disabled
    assert at.button(key=f"{key}:save").disabled and at.button(key=f"{key}:delete").disabled
    assert at.button(key="runs-cancel").disabled and at.button(key="runs-resume").disabled
    info = " ".join(ui.plain(i.value) for i in at.info)
    assert "Only its owner (ann@lab.org) or an admin can rename, annotate, tag, delete, cancel or resume" in info
    assert "you are local" in info and "ann's notes" in [t.value for t in at.text]  # viewing is open
    monkeypatch.setenv("AKP_ADMINS", "local")
    at = runs_page(eid)
    assert not at.text_input(key=f"{key}:name").disabled and not at.button(key="runs-cancel").disabled


def test_the_library_refuses_even_when_the_page_offers_the_button(home: Path, monkeypatch) -> None:
    eid = experiment(home, owner="ann@lab.org", finished=False)  # queued, never submitted
    monkeypatch.setattr(ui, "can_manage", lambda record: (True, ""))  # a stale or buggy page
    at = runs_page(eid)
    at.button(key="runs-cancel").click().run()
    assert not at.exception
    assert errors(at) == [f"experiment {eid} belongs to 'ann@lab.org': only its owner or an admin may cancel it "
                          "('local' is neither)"]
    assert {r["state"] for r in RunStore(home).runs(eid)} == {"queued"}


def test_delete_asks_first_and_is_refused_while_runs_are_active(home: Path) -> None:
    busy = experiment(home, finished=False, name="busy")
    at = runs_page(busy)
    button = at.button(key=f"manage:{busy}:delete")
    assert button.disabled and "Cancel its 4 queued or running runs first" in button.help
    eid = experiment(home, name="done")
    at = runs_page(eid)
    key = f"manage:{eid}"
    at.button(key=f"{key}:delete").click().run()
    assert "cannot be undone" in " ".join(ui.plain(w.value) for w in at.warning)
    at.button(key=f"{key}:delete-no").click().run()  # keep it
    assert RunStore(home).experiment(eid)["name"] == "done" and not at.warning
    at.button(key=f"{key}:delete").click().run()
    at.button(key=f"{key}:delete-yes").click().run()
    assert not at.exception and errors(at) == []
    store = RunStore(home)
    assert [e["id"] for e in store.experiments()] == [busy] and not store.experiment_dir(eid).exists()
    assert at.selectbox(key="akp_experiment").value == busy  # the page moved on to what is left


def test_home_lists_owner_and_tags(home: Path) -> None:
    eid = experiment(home, owner="ann@lab.org")
    RunStore(home).set_tags(eid, ["class", "demo"])
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    frame = at.dataframe[0].value
    assert list(frame["owner"]) == ["ann@lab.org"] and list(frame["tags"]) == ["class, demo"]
