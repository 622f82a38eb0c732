"""What people write on an experiment besides its spec: free-text notes and short tags.

Both are user text: pages render them as text, never as Markdown or HTML.
The rules here are the only ones; the store, the CLI and the Runs page all
call :func:`check_notes` and :func:`check_tags`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from akp.errors import AKPError

__all__ = ["MAX_NOTES_CHARS", "MAX_TAGS", "MAX_TAG_CHARS", "NOTES_LABEL", "TAGS_LABEL", "check_notes", "check_tags",
           "parse_tags"]

#: Longest notes accepted (a page of text).
MAX_NOTES_CHARS = 5000
#: Most tags on one experiment.
MAX_TAGS = 20
#: Longest tag.
MAX_TAG_CHARS = 32
#: The labels of the widgets on the Runs page (messages name the field by its key, which is the same word).
NOTES_LABEL = "Notes"
TAGS_LABEL = "Tags"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_notes(text: Any) -> str:
    """Validate notes: text of at most :data:`MAX_NOTES_CHARS` characters; newlines and tabs allowed.

    Returns
    -------
    str
        The notes with trailing whitespace removed ("" clears them).

    Raises
    ------
    AKPError
        Field ``notes``.
    """
    if not isinstance(text, str):
        raise AKPError.at("notes", f"must be text of at most {MAX_NOTES_CHARS} characters, got {_show(text)}")
    text = text.rstrip()
    if len(text) > MAX_NOTES_CHARS:
        raise AKPError.at("notes", f"at most {MAX_NOTES_CHARS} characters, got {len(text)}")
    if any(not (ch.isprintable() or ch in "\n\t") for ch in text):
        raise AKPError.at("notes", "must not contain control characters (newlines and tabs are fine)")
    return text


def check_tags(tags: Any) -> list[str]:
    """Validate tags: at most :data:`MAX_TAGS`, each 1 to :data:`MAX_TAG_CHARS` printable characters, no comma.

    Surrounding spaces are removed and repeats dropped (first one kept), so the
    result is what the store records.

    Parameters
    ----------
    tags : iterable of str
        A single string is refused (it would be read letter by letter); use
        :func:`parse_tags` for comma-separated text.

    Returns
    -------
    list of str

    Raises
    ------
    AKPError
        Field ``tags`` (``tags[i]`` for one bad tag).
    """
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise AKPError.at("tags", f"must be a list of tags, got {_show(tags)}")
    out: list[str] = []
    for i, tag in enumerate(tags):
        field = f"tags[{i}]"
        if not isinstance(tag, str) or not tag.strip():
            raise AKPError.at(field, f"must be non-empty text of at most {MAX_TAG_CHARS} characters, "
                                     f"got {_show(tag)}")
        tag = tag.strip()
        if len(tag) > MAX_TAG_CHARS:
            raise AKPError.at(field, f"at most {MAX_TAG_CHARS} characters, got {len(tag)} ({_show(tag)})")
        if "," in tag or any(not ch.isprintable() for ch in tag):
            raise AKPError.at(field, f"must not contain commas or control characters, got {_show(tag)}")
        if tag not in out:
            out.append(tag)
        if len(out) > MAX_TAGS:
            raise AKPError.at("tags", f"at most {MAX_TAGS} tags")
    return out


def parse_tags(text: str) -> list[str]:
    """Split comma-separated text (a page's text input) into tags; blanks are skipped. Not validated."""
    return [part.strip() for part in str(text).split(",") if part.strip()]
