"""Executors: where the job manager's runs train (``thread``: in this process; ``process``: local worker
processes; ``ray``: Ray tasks, on a local Ray or a cluster at ``RAY_ADDRESS``).

The job manager keeps its own threads (queue, supervise, record) and hands each
task to the executor its settings name (:func:`resolve_settings`,
:func:`make_executor`). Ray is imported only when the ``ray`` executor is made.
"""
from akp.executors.base import Executor, ProgressFn, StopFn, fail_unfinished
from akp.executors.factory import make_executor
from akp.executors.settings import (
    DEFAULT_EXECUTOR,
    EXECUTORS,
    ExecutorError,
    ExecutorSettings,
    available_cores,
    resolve_settings,
    worker_threads,
)

__all__ = ["DEFAULT_EXECUTOR", "EXECUTORS", "Executor", "ExecutorError", "ExecutorSettings", "ProgressFn",
           "StopFn", "available_cores", "fail_unfinished", "make_executor", "resolve_settings", "worker_threads"]
