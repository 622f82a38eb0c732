"""Build the executor that the settings name (a module of its own: the executors import the base, not this).

Each executor's module is imported only when it is chosen: ``ray`` (and Ray itself) only for ``ray``.
"""
from __future__ import annotations

from akp.executors.base import Executor
from akp.executors.settings import ExecutorSettings


def make_executor(settings: ExecutorSettings) -> Executor:
    """Build the executor the settings name.

    Raises
    ------
    ExecutorError
        Bad settings (the message names the setting and what is allowed), Ray not installed,
        or no Ray cluster at ``settings.ray_address``.
    """
    settings.check()
    if settings.executor == "ray":
        from akp.executors.ray_executor import RayExecutor

        return RayExecutor(settings.workers, settings.threads, address=settings.ray_address)
    if settings.executor == "process":
        from akp.executors.process import ProcessExecutor

        return ProcessExecutor(settings.workers, settings.threads)
    from akp.executors.thread import ThreadExecutor

    return ThreadExecutor(settings.workers, settings.threads)
