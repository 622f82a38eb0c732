"""The "Manage experiment" section of the Runs page: owner, rename, notes, tags, delete.

Everyone sees the owner, notes and tags (as text, never Markdown); only the
owner or an admin (:func:`ui.identity.can_manage`) gets working widgets, and
the store checks again (:mod:`akp.access`), so a stale page changes nothing.
Bad input is shown under the widget's label, and nothing is written unless
every field is valid.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

import ui.identity as identity
from akp.access import owner_of
from akp.annotations import MAX_NOTES_CHARS, NOTES_LABEL, TAGS_LABEL, check_notes, check_tags, parse_tags
from akp.constraints import SPEC
from akp.errors import AccessError, AKPError
from akp.runs import ACTIVE_STATES
from akp.store import RunStore
from ui.selectors import set_selected_experiment
from ui.text import md

__all__ = ["FIELD_LABELS", "field_message", "manage_experiment"]

#: The widget label of each field the store may name in an error.
FIELD_LABELS = {"name": SPEC["name"].label, "notes": NOTES_LABEL, "tags": TAGS_LABEL}


def field_message(exc: BaseException) -> str:
    """One line of plain text for an error of this section: the widget's label instead of the field's key.

    ``tags[2]: must not ...`` becomes ``Tags: tag 3 must not ...``; an AccessError keeps its message.
    """
    text = " ".join(str(exc).split())
    field = getattr(exc, "field", None)
    if not field:
        return text
    key, _, index = field.partition("[")
    label = FIELD_LABELS.get(key, field)
    rest = text[len(field) + 2:] if text.startswith(f"{field}: ") else text
    if index:
        return f"{label}: tag {int(index.rstrip(']')) + 1} {rest}"
    return f"{label}: {rest}"


def _save(store: RunStore, record: dict[str, Any], name: str, notes: str, tags_text: str) -> list[str]:
    """Check every field, then write the changed ones; returns the messages of the bad fields (nothing written)."""
    problems: list[str] = []
    checked: dict[str, Any] = {}
    for key, check, value in (("name", lambda v: SPEC["name"].check(v, AKPError), name),
                              ("notes", check_notes, notes), ("tags", check_tags, parse_tags(tags_text))):
        try:
            checked[key] = check(value)
        except AKPError as exc:
            problems.append(field_message(exc))
    if problems:
        return problems
    user, eid = identity.current_user(), record["id"]
    if checked["name"].strip() != record["name"]:
        store.rename_experiment(eid, checked["name"], user=user)
    if checked["notes"] != record["notes"]:
        store.set_notes(eid, checked["notes"], user=user)
    if checked["tags"] != record["tags"]:
        store.set_tags(eid, checked["tags"], user=user)
    return []


def manage_experiment(store: RunStore, experiment_id: str) -> None:
    """Draw the section for one experiment (an expander, closed by default).

    Parameters
    ----------
    store : RunStore
    experiment_id : str
    """
    record = store.experiment(experiment_id)
    runs = store.runs(experiment_id)
    owner, user = owner_of(record), identity.current_user()
    allowed, _ = identity.can_manage(record)  # (allowed, why); the info box below explains in full
    tags = ", ".join(record["tags"])
    summary = f"Owner: {owner}" + (f" · Tags: {tags}" if tags else "")
    st.caption(md(summary))
    with st.expander("Manage experiment", expanded=False, icon=":material/edit_note:"):
        if record["notes"]:
            st.text(record["notes"])
        if not allowed:
            st.info(md(f"Only its owner ({owner}) or an admin can rename, annotate, tag, delete, cancel or resume "
                       f"this experiment; you are {user}. You can view everything."))
        key = f"manage:{experiment_id}"
        with st.form(f"{key}:form", border=False):
            name = st.text_input(FIELD_LABELS["name"], value=record["name"], max_chars=SPEC["name"].max_chars,
                                 disabled=not allowed, key=f"{key}:name")
            notes = st.text_area(NOTES_LABEL, value=record["notes"], max_chars=MAX_NOTES_CHARS, height=100,
                                 disabled=not allowed, key=f"{key}:notes",
                                 help="Free text, shown as plain text to everyone.")
            tags_text = st.text_input(TAGS_LABEL, value=tags, disabled=not allowed, key=f"{key}:tags",
                                      help="Comma-separated, e.g. class, lr-sweep (at most 20, 32 characters each).")
            saved = st.form_submit_button("Save", icon=":material/save:", disabled=not allowed, key=f"{key}:save")
        if saved:
            try:
                problems = _save(store, record, name, notes, tags_text)
            except (AKPError, AccessError) as exc:
                problems = [field_message(exc)]
            for problem in problems:
                st.error(md(problem))
            if not problems:
                st.toast("Saved")
                st.rerun(scope="app")
        _delete_controls(store, record, runs, allowed, key)


def _delete_controls(store: RunStore, record: dict[str, Any], runs: list[dict[str, Any]], allowed: bool,
                     key: str) -> None:
    """Delete, with a confirmation step; refused while runs are queued or running."""
    active = sum(1 for r in runs if r["state"] in ACTIVE_STATES)
    confirm = f"{key}:confirm-delete"
    help_text = (f"Cancel its {active} queued or running runs first." if active else
                 "Deletes its runs, representations, checkpoints and cached views.")
    if not st.session_state.get(confirm):
        if st.button("Delete experiment…", key=f"{key}:delete", icon=":material/delete:",
                     disabled=not allowed or bool(active), help=help_text):
            st.session_state[confirm] = True
            st.rerun(scope="app")
        if active and allowed:
            st.caption(md(help_text))
        return
    st.warning(md(f"Delete {record['name']} ({record['id']}) with its {len(runs)} runs and all their files? "
                  "This cannot be undone."))
    with st.container(horizontal=True):
        really = st.button("Delete for good", key=f"{key}:delete-yes", type="primary", icon=":material/delete:")
        keep = st.button("Keep it", key=f"{key}:delete-no")
    if keep:
        st.session_state[confirm] = False
        st.rerun(scope="app")
    if really:
        st.session_state[confirm] = False
        try:
            store.delete_experiment(record["id"], user=identity.current_user())
        except (AKPError, AccessError) as exc:
            st.error(md(field_message(exc)))
            return
        set_selected_experiment(None)
        st.toast(md(f"Deleted {record['name']}"))
        st.rerun(scope="app")
