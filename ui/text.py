"""User text in Markdown: names, conditions, notes and dataset labels are shown as text, never as markup.

Streamlit renders captions, info boxes and headers as Markdown, where an
experiment named ``![x](http://host/beacon.png)`` would make every viewer's
browser fetch that URL. :func:`md` escapes such text before it is put into
Markdown; pages use it for every value a user typed or uploaded.
"""
from __future__ import annotations

import re
from typing import Any

# Punctuation that makes inline markup anywhere in a line (links, images, emphasis, code, math, tables).
_SPECIALS = re.compile(r"([\\`*_{}\[\]()!|~$>])")
# What makes block markup only at the start of a line: headings, lists, numbered lists.
_LEADING = re.compile(r"^(\s*)([#+-])")
_LEADING_NUMBER = re.compile(r"^(\s*\d+)([.)])")


def md(value: Any) -> str:
    """``value`` as Markdown that renders as the same plain text.

    Parameters
    ----------
    value : object
        Converted with ``str``.

    Returns
    -------
    str
        Backslash-escaped Markdown punctuation, ``&``/``<`` as HTML entities, newlines as spaces.
    """
    text = str(value).replace("&", "&amp;").replace("<", "&lt;")
    text = _SPECIALS.sub(r"\\\1", " ".join(text.splitlines()))
    text = _LEADING.sub(r"\1\\\2", text)
    return _LEADING_NUMBER.sub(r"\1\\\2", text)


_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()!|~$>#+\-.)])")


def plain(markdown: str) -> str:
    """The text that Markdown made by :func:`md` reads as: its escapes undone (what a viewer sees).

    Parameters
    ----------
    markdown : str
        Text escaped by :func:`md` (possibly within a longer fixed message).

    Returns
    -------
    str
        Backslash escapes removed, ``&lt;``/``&amp;`` back to ``<``/``&``.
    """
    return _ESCAPED.sub(r"\1", str(markdown)).replace("&lt;", "<").replace("&amp;", "&")
