"""AKP Lab: the Streamlit app's entry point.

``streamlit run app.py`` builds the navigation over ``pages/``, the shared
sidebar (who is signed in, the job queue) and the process-wide job manager.
With ``[auth]`` in ``.streamlit/secrets.toml`` every page is behind the
sign-in screen (:func:`ui.identity.sign_in_gate`); without it the app runs in
single-user local mode. The store's home is
``$AKP_HOME`` or ``./akp-data``. The pages' helpers are the ``ui`` package
beside this file (Streamlit puts this folder on ``sys.path``).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

try:  # what st.navigation does below; done first so that importing ui does not rerun (see ui.shell)
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
except ImportError:  # pragma: no cover
    pass

import ui  # noqa: E402
from akp.errors import AKPError  # noqa: E402
from akp.projection import start_warm_up  # noqa: E402
from akp.runs import QUEUED, RUNNING  # noqa: E402

ROOT = Path(__file__).resolve().parent
# (file, title, icon, default?) in menu order.
PAGES = [
    ("pages/home.py", "Home", ":material/home:", True),
    ("pages/design.py", "Design", ":material/tune:", False),
    ("pages/runs.py", "Runs", ":material/monitoring:", False),
    ("pages/families.py", "Families", ":material/diversity_3:", False),
    ("pages/representations.py", "Representations", ":material/scatter_plot:", False),
    ("pages/layers.py", "Layers", ":material/layers:", False),
    ("pages/learn.py", "Learn", ":material/school:", False),
]

QUEUE_POLL_SECONDS = 2.0

st.set_page_config(page_title="AKP Lab", page_icon=":material/family_restroom:", layout="wide",
                   initial_sidebar_state="expanded")
if not ui.identity.sign_in_gate():  # the sign-in screen; nothing below (pages, sidebar, manager) runs
    st.stop()


@st.cache_resource(show_spinner=False)
def _start_warm_up() -> bool:
    """Import and JIT-compile UMAP in a background thread, once per process (no st.* there)."""
    start_warm_up()
    return True


def build_navigation() -> st.navigation:
    """The pages, in menu order."""
    pages = [st.Page(str(ROOT / path), title=title, icon=icon, default=default,
                     url_path=Path(path).stem if not default else None)
             for path, title, icon, default in PAGES]
    return st.navigation(pages, position="sidebar")


def sidebar() -> None:
    """The shared sidebar: who is signed in, the job queue (refreshed while runs are active), the store."""
    with st.sidebar:
        ui.identity.sidebar_identity()
        queue_panel()
        if ui.get_manager() is None:
            st.caption("Job manager unavailable: the app is read-only.")
        st.caption(f"Store: `{ui.home_path()}`")


def _queue_active() -> bool:
    counts = ui.job_counts()
    return bool(counts[RUNNING] or counts[QUEUED])


_QUEUE_WAS_ACTIVE = _queue_active()


@st.fragment(run_every=QUEUE_POLL_SECONDS if _QUEUE_WAS_ACTIVE else None)
def queue_panel() -> None:
    """Running and queued counts, with a link to Runs; polls only while something is active."""
    counts = ui.job_counts()
    if not (counts[RUNNING] or counts[QUEUED]) and _QUEUE_WAS_ACTIVE:
        st.rerun(scope="app")  # all done: a full rerun stops the polling
    st.markdown("**Job queue**")
    cols = st.columns(2)
    cols[0].metric("Running", counts[RUNNING])
    cols[1].metric("Queued", counts[QUEUED])
    st.page_link(str(ROOT / "pages/runs.py"), label="Watch runs", icon=":material/monitoring:")


_start_warm_up()
nav = build_navigation()
sidebar()
with ui.guard("This page", expected=(AKPError,)):  # field and rule; anything else: one line, an error id
    nav.run()
