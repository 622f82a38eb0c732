"""Set-up hooks for the Ray worker processes of the ray executor's tests (``worker_process_setup_hook``)."""
from __future__ import annotations

import sqlite3

#: What a Ray task that tries to open a database gets (the test looks for it in run errors).
FORBIDDEN = "a Ray task opened an SQLite database; only the driver may open the run store"


def forbid_sqlite() -> None:
    """Make ``sqlite3.connect`` raise in this Ray worker: a task that opens the run store fails its run."""

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError(f"{FORBIDDEN} ({args[0] if args else kwargs.get('database')!r})")

    sqlite3.connect = refuse
