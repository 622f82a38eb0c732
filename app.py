"""AKP Lab: the Streamlit app's entry point.

``streamlit run app.py`` builds the navigation over ``pages/``, the shared
sidebar (the job queue) and the process-wide job manager. The store's home is
``$AKP_HOME`` or ``./akp-data``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # pages import ui_state and akp from the repository root
    sys.path.insert(0, str(ROOT))

try:  # what st.navigation does below; done first so that importing ui_state does not rerun (see there)
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
except ImportError:  # pragma: no cover
    pass

import ui_state  # noqa: E402

# (file, title, icon, default?) in menu order; pages that do not exist yet are left out.
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


@st.cache_resource(show_spinner=False)
def _start_warm_up() -> bool:
    """Import and JIT-compile UMAP in a background thread, once per process (no st.* there)."""
    try:
        from akp.projection import start_warm_up
    except ImportError:
        return False
    start_warm_up()
    return True


def build_navigation() -> st.navigation:
    """The pages that exist, in menu order."""
    pages = [st.Page(str(ROOT / path), title=title, icon=icon, default=default,
                     url_path=Path(path).stem if not default else None)
             for path, title, icon, default in PAGES if (ROOT / path).exists()]
    return st.navigation(pages, position="sidebar")


def sidebar() -> None:
    """The shared sidebar: the job queue (refreshed while runs are active) and where runs are stored."""
    with st.sidebar:
        queue_panel()
        if ui_state.get_manager() is None:
            st.caption("Job manager unavailable: the app is read-only.")
        st.caption(f"Store: `{ui_state.home_path()}`")


def _queue_active() -> bool:
    counts = ui_state.job_counts()
    return bool(counts["running"] or counts["queued"])


_QUEUE_WAS_ACTIVE = _queue_active()


@st.fragment(run_every=QUEUE_POLL_SECONDS if _QUEUE_WAS_ACTIVE else None)
def queue_panel() -> None:
    """Running and queued counts, with a link to Runs; polls only while something is active."""
    counts = ui_state.job_counts()
    if not (counts["running"] or counts["queued"]) and _QUEUE_WAS_ACTIVE:
        st.rerun(scope="app")  # all done: a full rerun stops the polling
    st.markdown("**Job queue**")
    cols = st.columns(2)
    cols[0].metric("Running", counts["running"])
    cols[1].metric("Queued", counts["queued"])
    if (ROOT / "pages/runs.py").exists():
        st.page_link(str(ROOT / "pages/runs.py"), label="Watch runs", icon=":material/monitoring:")


_start_warm_up()
nav = build_navigation()
sidebar()
nav.run()
