"""The app shell's one piece of Streamlit plumbing: pages always run inside app.py's navigation."""
from __future__ import annotations

import streamlit as st


def leave_pages_directory_mode() -> None:
    """Make sure pages run inside app.py's navigation, even on a fresh server's first request.

    Streamlit treats a ``pages/`` folder beside the main script as a v1 multipage
    app until ``st.navigation`` is first called in the process. A first request
    for ``/runs`` (a reload or a shared link after a restart) would then run
    ``pages/runs.py`` alone, without app.py's navigation and sidebar. Clearing
    the flag (as ``st.navigation`` does) and rerunning sends that request
    through app.py. :mod:`ui` calls this once per process, at its first import.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # pragma: no cover - a Streamlit without these internals
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        if get_script_run_ctx() is not None:
            st.rerun()
