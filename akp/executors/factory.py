"""Build the executor that the settings name (a module of its own: the executors import the base, not this)."""
from __future__ import annotations

from akp.executors.base import Executor
from akp.executors.settings import ExecutorSettings


def make_executor(settings: ExecutorSettings) -> Executor:
    """Build the executor the settings name.

    Raises
    ------
    ExecutorError
        Bad settings (the message names the setting and what is allowed).
    """
    settings.check()
    if settings.executor == "process":
        from akp.executors.process import ProcessExecutor

        return ProcessExecutor(settings.workers, settings.threads)
    from akp.executors.thread import ThreadExecutor

    return ThreadExecutor(settings.workers, settings.threads)
