"""Errors on the pages: what akp refuses shows its field and rule; anything else, one line and an error id.

akp raises :class:`akp.errors.AKPError` (a ``ValueError`` whose ``field`` names
the field at fault) for bad input. :func:`error_text` makes one escaped line of
it ("field: rule"). Everything else is a bug or an outage: :func:`guard` logs
the traceback on the server under a short error id and shows the user one line
with that id, never the traceback (``.streamlit/config.toml`` hides the
details of anything that still escapes).

Streamlit's own control flow (``st.rerun``, ``st.switch_page``, ``st.stop``)
raises ``BaseException`` subclasses, which pass through untouched.

Set ``AKP_RAISE_ERRORS=1`` (the test suite does) to let unexpected errors
propagate, so that app tests see them as exceptions.
"""
from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import streamlit as st

from ui.text import md

__all__ = ["RAISE_ENV", "error_text", "guard", "log_unexpected", "report_unexpected", "show_error",
           "unexpected_text"]

#: Environment variable: when "1", :func:`guard` re-raises unexpected errors (tests, debugging).
RAISE_ENV = "AKP_RAISE_ERRORS"
#: Longest message shown for an input error (a 100 MB value must not flood the page).
MAX_MESSAGE_CHARS = 500

log = logging.getLogger("akp.app")


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[:MAX_MESSAGE_CHARS - 3] + "..."


def error_text(exc: BaseException, prefix: str = "") -> str:
    """One line of Markdown-safe text for an input error: its field and its rule.

    Parameters
    ----------
    exc : BaseException
        Usually an :class:`~akp.errors.AKPError`; its message already starts with
        the field, which is added when it does not.
    prefix : str
        Put before the message, e.g. ``"Nothing was queued: "`` (escaped as well).

    Returns
    -------
    str
        Escaped with :func:`ui.md`, cut to :data:`MAX_MESSAGE_CHARS`.
    """
    message = _one_line(str(exc))
    field = getattr(exc, "field", None)
    if field and not message.startswith(str(field)):
        message = f"{field}: {message}"
    return md(prefix + message)


def show_error(exc: BaseException, where: Any = None, prefix: str = "") -> None:
    """Show an input error (field and rule) in ``where`` (a container or ``st.empty``; default: here)."""
    (where if where is not None else st).error(error_text(exc, prefix))


def log_unexpected(exc: BaseException, action: str) -> str:
    """Log ``exc`` with its traceback on the server under a new error id; return the id.

    Re-raises ``exc`` instead when ``$AKP_RAISE_ERRORS`` is "1" (tests see the real error).

    Parameters
    ----------
    exc : BaseException
        The unexpected error (call this in its ``except`` block).
    action : str
        What the user was doing, e.g. ``"Launch"`` (fixed text, not user input).

    Returns
    -------
    str
        The error id (8 hex digits), as in the server log.
    """
    if os.environ.get(RAISE_ENV) == "1":
        raise exc
    error_id = uuid.uuid4().hex[:8]
    log.error("error id %s in %s: %s", error_id, action, type(exc).__name__, exc_info=exc)
    return error_id


def unexpected_text(action: str, error_id: str) -> str:
    """The one line a user sees for an unexpected error: what failed and the id to quote."""
    return md(f"{action} failed with an unexpected error (error id {error_id}); "
              "the server log has the details under this id.")


def report_unexpected(exc: BaseException, action: str, where: Any = None) -> str:
    """:func:`log_unexpected`, then show the user one line with the error id in ``where`` (default: here).

    Returns
    -------
    str
        The error id.
    """
    error_id = log_unexpected(exc, action)
    (where if where is not None else st).error(unexpected_text(action, error_id))
    return error_id


@contextlib.contextmanager
def guard(action: str, where: Any = None, *, prefix: str = "",
          expected: tuple[type[Exception], ...] = (ValueError,)) -> Iterator[None]:
    """Run a page's action so that no error shows a traceback.

    An ``expected`` error (default ``ValueError``: akp's input errors,
    :class:`~akp.errors.AKPError` among them) is shown as its field and rule;
    anything else is reported by :func:`report_unexpected`. Either way the block stops and the page goes on
    after it. Usable as a decorator too (``@guard("Register")``), e.g. for a
    widget callback.

    Parameters
    ----------
    action : str
        What the block does, for the unexpected-error message.
    where : container, optional
        Where messages go (default: where the block is).
    prefix : str
        Put before an input error's message.
    expected : tuple of exception types
        The input errors; e.g. ``(AKPError,)`` around a whole page, where a
        plain ``ValueError`` is more likely a bug.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point: nothing reaches the user as a traceback
        if isinstance(exc, expected):
            show_error(exc, where, prefix)
            return
        report_unexpected(exc, action, where)
