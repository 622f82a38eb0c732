"""Errors on pages: input errors show their field and rule, anything else one line with an error id."""
from __future__ import annotations

import logging

from streamlit.testing.v1 import AppTest

import ui
from akp.errors import AKPError


def test_error_text_names_the_field_and_escapes_user_text():
    exc = AKPError("must be at least 1, got -3 for **x**", field="epochs")
    assert ui.plain(ui.error_text(exc, "Nothing was queued: ")) == \
        "Nothing was queued: epochs: must be at least 1, got -3 for **x**"
    assert "\\*\\*x\\*\\*" in ui.error_text(exc)  # rendered as text, not bold
    assert len(ui.error_text(AKPError("v" * 10_000, field="name"))) <= 520  # a huge value is cut


def test_plain_undoes_md():
    for text in ["![x](http://h/b.png)", "<b>&</b>", "- item", "a_b*c"]:
        assert ui.plain(ui.md(text)) == text


def _page_with_bug() -> None:
    import streamlit as st

    import ui

    with ui.guard("Doing the thing"):
        raise KeyError("internal detail")
    st.write("after the block")
    with ui.guard("Checking input"):
        from akp.errors import AKPError
        raise AKPError("must be positive", field="lr")


def test_guard_shows_one_line_with_an_error_id_and_logs_the_traceback(monkeypatch, caplog):
    monkeypatch.setenv("AKP_RAISE_ERRORS", "0")
    with caplog.at_level(logging.ERROR, logger="akp.app"):
        at = AppTest.from_function(_page_with_bug).run()
    assert not at.exception
    errors = [ui.plain(e.value) for e in at.error]
    assert len(errors) == 2, errors
    assert errors[0].startswith("Doing the thing failed with an unexpected error (error id ")
    assert "internal detail" not in errors[0] and "Traceback" not in errors[0]
    assert errors[1] == "lr: must be positive"
    assert "after the block" in [m.value for m in at.markdown]
    error_id = errors[0].split("error id ")[1][:8]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the server log


def test_guard_reraises_under_the_test_setting(monkeypatch):
    monkeypatch.setenv("AKP_RAISE_ERRORS", "1")
    at = AppTest.from_function(_page_with_bug).run()
    # The exception reaches Streamlit (which, per .streamlit/config.toml, shows no details) and stops the page.
    assert len(at.exception) == 1 and "internal detail" not in at.exception[0].value
    assert "after the block" not in [m.value for m in at.markdown]
