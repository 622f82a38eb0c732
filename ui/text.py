"""User text in Markdown: names, conditions, notes and dataset labels are shown as text, never as markup.

Streamlit renders captions, info boxes and headers as Markdown, where an
experiment named ``![x](http://host/beacon.png)`` would make every viewer's
browser fetch that URL. :func:`md` escapes such text before it is put into
Markdown; pages use it for every value a user typed or uploaded.
"""
from __future__ import annotations

import re
from typing import Any

# Markdown's punctuation that can start markup (CommonMark backslash escapes), plus "<" and "&" for HTML.
_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:>])")


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
    return _SPECIALS.sub(r"\\\1", " ".join(text.splitlines()))
