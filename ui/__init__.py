"""Shared helpers of the Streamlit pages (``app.py`` and ``pages/``); the pages import ``ui``.

Modules, by concept:

- :mod:`ui.state`: the process-wide run store and job manager (:func:`home_path`,
  :func:`get_store`, :func:`get_manager`, :func:`shutdown_managers`, :func:`manager_of`)
- :mod:`ui.jobs`: job state (:func:`live_status`, :func:`job_counts`, :func:`any_active`,
  :func:`finished_runs`)
- :mod:`ui.selectors`: experiment and run selectors synced with the URL
- :mod:`ui.downloads`: CSV, HTML and JSON download buttons, :func:`slug`
- :mod:`ui.tables`: :func:`show_table`, :func:`show_figure` (with their downloads)
- :mod:`ui.widgets`: widget labels and bounds from :mod:`akp.constraints`
- :mod:`ui.shell`: pages always run inside app.py's navigation
- :mod:`ui.identity`: who is signed in (:func:`current_user`, :func:`is_admin`, :func:`can_manage`);
  the sign-in screen and the sidebar's identity lines; local mode without ``[auth]``
- :mod:`ui.manage`: :func:`manage_experiment`, the Runs page's owner, rename, notes, tags and delete section
- :mod:`ui.text`: :func:`md`, user text made safe for Markdown (:func:`plain` reads it back)
- :mod:`ui.errors`: :func:`guard`, :func:`show_error`, :func:`error_text`: the field and rule of an
  input error; one line and an error id (traceback in the server log) for anything else

The main script's folder is on ``sys.path`` under ``streamlit run`` (and the
repository root under pytest), so ``import ui`` needs no path edits. Importing
this package makes sure pages run inside app.py's navigation
(:func:`ui.shell.leave_pages_directory_mode`).
"""
from __future__ import annotations

from ui import identity
from ui.downloads import download_csv, download_figure, download_json, figure_html, slug
from ui.errors import error_text, guard, log_unexpected, report_unexpected, show_error, unexpected_text
from ui.identity import can_manage, current_user, is_admin
from ui.jobs import any_active, finished_runs, job_counts, live_status
from ui.manage import manage_experiment
from ui.selectors import (
    EXPERIMENT_PARAM,
    RUN_PARAM,
    experiment_label,
    experiment_selector,
    run_label,
    run_selector,
    selected_experiment,
    selected_runs,
    set_selected_experiment,
    set_selected_runs,
)
from ui.shell import leave_pages_directory_mode
from ui.state import get_manager, get_store, home_path, manager_of, shutdown_managers
from ui.tables import show_figure, show_table
from ui.text import md, plain
from ui.widgets import choice_kwargs, number_kwargs, text_kwargs

__all__ = [
    "EXPERIMENT_PARAM", "RUN_PARAM", "any_active", "can_manage", "current_user", "identity", "is_admin",
    "choice_kwargs", "download_csv", "download_figure",
    "download_json", "error_text", "experiment_label", "experiment_selector", "figure_html", "finished_runs",
    "get_manager", "get_store", "guard", "home_path", "job_counts", "leave_pages_directory_mode", "live_status",
    "log_unexpected", "manager_of", "md", "number_kwargs", "plain", "report_unexpected", "run_label", "run_selector",
    "selected_experiment", "selected_runs", "set_selected_experiment", "set_selected_runs", "show_error",
    "show_figure", "show_table", "shutdown_managers", "slug", "text_kwargs", "unexpected_text",
]
__all__ += ["manage_experiment"]  # ui.manage

leave_pages_directory_mode()
