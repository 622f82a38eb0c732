"""Tables and figures drawn with their downloads under them."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ui.downloads import download_csv, download_figure, frame_of, slug


def show_table(data: pd.DataFrame | Sequence[dict[str, Any]], file_name: str, *, key: str | None = None,
               **dataframe_kwargs: Any) -> pd.DataFrame:
    """Draw a table with a CSV download button under it.

    Parameters
    ----------
    data : DataFrame or sequence of dict
    file_name : str
        CSV file name.
    key : str, optional
        Download button key.
    **dataframe_kwargs
        Passed to ``st.dataframe`` (default ``hide_index=True``).

    Returns
    -------
    DataFrame
        The frame drawn.
    """
    frame = frame_of(data)
    dataframe_kwargs.setdefault("hide_index", True)
    st.dataframe(frame, **dataframe_kwargs)
    download_csv(frame, file_name, key=key)
    return frame


def show_figure(fig: Any, file_name: str, *, key: str | None = None,
                data: pd.DataFrame | Sequence[dict[str, Any]] | None = None) -> None:
    """Draw a plotly figure with an HTML download (and a CSV of its data, if given).

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    file_name : str
        Base file name (without extension).
    key : str, optional
        Base key of the chart and the buttons (default from the file name).
    data : DataFrame or sequence of dict, optional
        The figure's data, offered as CSV too.
    """
    base = key or f"fig-{slug(file_name)}"
    st.plotly_chart(fig, key=base, config={"displaylogo": False})
    row = st.container(horizontal=True, gap="small")
    download_figure(fig, file_name, key=f"{base}-html", container=row)
    if data is not None:
        download_csv(data, file_name, key=f"{base}-csv", container=row)
