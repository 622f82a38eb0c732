"""Download buttons: tables as CSV, figures as standalone HTML, specs and results as JSON.

Every payload is built only when its button is clicked (deferred data), so
drawing many buttons stays cheap.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st


def slug(text: str) -> str:
    """A safe file-name fragment from ``text`` (letters, digits, ``-``, ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-")[:80] or "data"


def frame_of(data: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
    """``data`` as a DataFrame (a sequence of dicts becomes one row per dict)."""
    return data if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))


def _csv_bytes(data: pd.DataFrame | Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    frame_of(data).to_csv(buf, index=False)
    return buf.getvalue().encode()


def download_csv(data: pd.DataFrame | Sequence[dict[str, Any]], file_name: str, *,
                 label: str = "Download CSV", key: str | None = None, container: Any = None) -> None:
    """A download button for a table as CSV.

    Parameters
    ----------
    data : DataFrame or sequence of dict
    file_name : str
        Suggested file name (``.csv`` is appended if missing).
    label : str
    key : str, optional
        Widget key (default derived from the file name).
    container : streamlit container, optional
    """
    where = container or st
    name = file_name if file_name.endswith(".csv") else f"{file_name}.csv"
    where.download_button(label, data=lambda: _csv_bytes(data), file_name=name, mime="text/csv",
                          key=key or f"dl-csv-{name}", on_click="ignore", icon=":material/download:")


def figure_html(fig: Any) -> str:
    """A self-contained HTML page of a plotly figure (plotly.js inlined: works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def download_figure(fig: Any, file_name: str, *, label: str = "Download HTML", key: str | None = None,
                    container: Any = None) -> None:
    """A download button for a plotly figure as standalone HTML.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    file_name : str
        Suggested file name (``.html`` is appended if missing).
    label : str
    key : str, optional
    container : streamlit container, optional
    """
    where = container or st
    name = file_name if file_name.endswith(".html") else f"{file_name}.html"
    where.download_button(label, data=lambda: figure_html(fig), file_name=name, mime="text/html",
                          key=key or f"dl-html-{name}", on_click="ignore", icon=":material/download:")


def json_text(obj: Any) -> str:
    """JSON text of ``obj``: its ``to_json()``, the string itself, or ``json.dumps`` of the data."""
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, str):
        return obj
    return json.dumps(obj, indent=2, default=str)


def download_json(obj: Any, file_name: str, *, label: str = "Download JSON", key: str | None = None,
                  container: Any = None) -> None:
    """A download button for JSON (an object with ``to_json()``, a str, or JSON-ready data).

    Parameters
    ----------
    obj : object
        ``ExperimentSpec``/``SwapSchedule`` (anything with ``to_json``), JSON text, or a dict/list.
    file_name : str
        Suggested file name (``.json`` is appended if missing).
    label : str
    key : str, optional
    container : streamlit container, optional
    """
    where = container or st
    name = file_name if file_name.endswith(".json") else f"{file_name}.json"
    where.download_button(label, data=lambda: json_text(obj), file_name=name, mime="application/json",
                          key=key or f"dl-json-{name}", on_click="ignore", icon=":material/download:")
