"""User text is rendered as text: a Markdown image in an experiment's or a condition's name stays inert."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import ui
from akp.experiment import load_preset
from akp.schedule import SwapSchedule
from akp.store import RunStore

APP = str(Path(__file__).resolve().parent.parent / "app.py")
BEACON = "![x](http://127.0.0.1:9/beacon.png)"


def test_md_escapes_markup_so_it_renders_as_the_same_text():
    assert ui.md(BEACON) == r"\!\[x\]\(http://127.0.0.1:9/beacon.png\)"
    assert ui.md("<img src=x> & **bold**") == r"&lt;img src=x\> &amp; \*\*bold\*\*"
    assert ui.md("two\nlines") == "two lines"
    assert (ui.md("- item"), ui.md("# big"), ui.md("12. x")) == (r"\- item", r"\# big", r"12\. x")
    assert ui.md("ds-2606f49d") == "ds-2606f49d"  # ids stay readable


@pytest.fixture
def hostile_home(tmp_path, monkeypatch):
    home = tmp_path / "store"
    store = RunStore(home)
    spec = dataclasses.replace(load_preset("smoke"), name=BEACON,
                               conditions=[SwapSchedule(f"<b>{BEACON}</b>"), SwapSchedule("plain")])
    eid = store.create_experiment(spec, probe_images=np.zeros((4, 1, 16, 16), np.float32),
                                  probe_labels=np.array([0, 1, 0, 1]))
    monkeypatch.setenv("AKP_HOME", str(home))
    yield home, eid
    ui.shutdown_managers(home)


def rendered(at: AppTest) -> list[str]:
    groups = (at.markdown, at.caption, at.info, at.warning, at.error, at.success, at.subheader, at.header, at.title)
    return [str(e.value) for g in groups for e in g]


@pytest.mark.parametrize("page", [None, "pages/runs.py", "pages/families.py", "pages/representations.py",
                                  "pages/layers.py"])
def test_no_page_renders_user_text_as_markup(hostile_home, page):
    _, eid = hostile_home
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["experiment"] = eid
    at.run()
    if page is not None:
        at.switch_page(page)
        at.query_params["experiment"] = eid
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    bodies = rendered(at)
    assert bodies, "the page rendered nothing to check"
    for body in bodies:
        assert "![x](" not in body and "<b>" not in body
    if page == "pages/runs.py":  # the page does show the name: escaped, so it reads as typed
        assert any(ui.md(BEACON) in body for body in bodies)
