"""Executor settings: which executor, how many workers, how many torch threads each; read and checked once.

The settings come from the environment (``AKP_EXECUTOR``, ``AKP_WORKERS``,
``AKP_THREADS_PER_WORKER``) or from explicit values (the job manager's
arguments, the command line's ``--executor`` and ``--workers``), which win. A bad
value raises :class:`ExecutorError` naming the setting and what is allowed,
before anything is created or started. This module imports no torch, so the
command line can check its flags at once.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from akp.errors import AKPError

EXECUTORS = ("thread", "process")
#: Executors the issue plans that this version does not have: named in their own message, not "unknown".
PLANNED = ("ray",)
MAX_WORKERS = 64
MAX_THREADS = 256
# Today's behaviour stays the default; bench/watch.py measures what "process" buys while a page watches.
DEFAULT_EXECUTOR = "thread"


class ExecutorError(AKPError):
    """An executor setting is invalid or its cluster cannot be reached; ``field`` names the setting."""


def available_cores() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def worker_threads(max_workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads per worker so that ``max_workers`` concurrent runs use the cores, not more.

    Parameters
    ----------
    max_workers : int
    cores : int, optional
        Default: the CPUs this process may run on.

    Returns
    -------
    int
        ``max(1, cores // max_workers)``.
    """
    if cores is None:
        cores = available_cores()
    return max(1, cores // max(1, max_workers))


@dataclass(frozen=True)
class ExecutorSettings:
    """Where and how runs train.

    Attributes
    ----------
    executor : {"thread", "process"}
    workers : int
        Concurrent tasks (the manager's threads; for ``process`` as many worker processes), 1 to 64.
    threads : int
        Torch intra-op threads per worker, 1 to 256 (``thread``: for the whole process).
    """

    executor: str = DEFAULT_EXECUTOR
    workers: int = 1
    threads: int = 1

    def check(self) -> "ExecutorSettings":
        """Raise :class:`ExecutorError` naming the first bad setting; return self when all are good."""
        if self.executor in PLANNED:
            raise ExecutorError.at("executor", f"(AKP_EXECUTOR or --executor) {self.executor!r} is not available "
                                   f"in this version; allowed: {', '.join(EXECUTORS)}")
        if self.executor not in EXECUTORS:
            raise ExecutorError.at("executor", f"(AKP_EXECUTOR or --executor) unknown {self.executor!r}; "
                                   f"allowed: {', '.join(EXECUTORS)}")
        for name, value, hi, env, flag in (("workers", self.workers, MAX_WORKERS, "AKP_WORKERS", "--workers"),
                                           ("threads", self.threads, MAX_THREADS, "AKP_THREADS_PER_WORKER",
                                            "--threads")):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise ExecutorError.at(name, f"({env} or {flag}) must be an integer from 1 to {hi}, got {value!r}")
        return self


def _int_setting(environ: Mapping[str, str], env: str, field: str, flag: str) -> int | None:
    text = (environ.get(env) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ExecutorError.at(field, f"({env} or {flag}) must be an integer, got {text!r}") from None


def resolve_settings(executor: str | None = None, workers: int | None = None, threads: int | None = None, *,
                     environ: Mapping[str, str] | None = None, cores: int | None = None) -> ExecutorSettings:
    """The executor settings: explicit values, else the environment, else the defaults for this machine.

    Parameters
    ----------
    executor, workers, threads : optional
        Explicit values (the job manager's arguments, ``--executor``, ``--workers``); they win.
    environ : mapping, optional
        Default ``os.environ``: ``AKP_EXECUTOR``, ``AKP_WORKERS``, ``AKP_THREADS_PER_WORKER``.
    cores : int, optional
        Default: the CPUs of this process. Threads default to ``cores // workers`` (at least 1).

    Returns
    -------
    ExecutorSettings

    Raises
    ------
    ExecutorError
        A setting is unknown, not an integer or out of range; ``field`` names it.
    """
    env = os.environ if environ is None else environ
    name = executor if executor is not None else ((env.get("AKP_EXECUTOR") or "").strip().lower()
                                                  or DEFAULT_EXECUTOR)
    if workers is None:
        workers = _int_setting(env, "AKP_WORKERS", "workers", "--workers") or 1
    if threads is None:
        threads = _int_setting(env, "AKP_THREADS_PER_WORKER", "threads", "--threads")
    if threads is None:
        threads = worker_threads(workers if isinstance(workers, int) and not isinstance(workers, bool) else 1,
                                 available_cores() if cores is None else cores)
    return ExecutorSettings(name, workers, threads).check()
