"""Executor settings: which executor, how many workers, how many torch threads each; read and checked once.

The settings come from the environment (``AKP_EXECUTOR``, ``AKP_WORKERS``,
``AKP_THREADS_PER_WORKER``, ``RAY_ADDRESS``) or from explicit values (the job
manager's arguments, the command line's ``--executor`` and ``--workers``), which
win. A bad value raises :class:`ExecutorError` naming the setting and what is
allowed, before anything is created or started. This module imports neither
torch nor ray, so the command line can check its flags at once.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from akp.errors import AKPError

EXECUTORS = ("thread", "process", "ray")
MAX_WORKERS = 64
MAX_THREADS = 256
# Today's behaviour stays the default; bench/watch.py measures what "process" buys while a page watches.
DEFAULT_EXECUTOR = "thread"
#: How long a check of ``RAY_ADDRESS`` waits for the head node to answer.
RAY_CONNECT_TIMEOUT_S = 5.0


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
    executor : {"thread", "process", "ray"}
    workers : int
        Concurrent tasks (the manager's threads; for ``process`` as many worker processes, for ``ray`` as
        many Ray tasks in flight), 1 to 64.
    threads : int
        Torch intra-op threads per worker, 1 to 256 (``thread``: for the whole process; ``ray``: also the
        CPUs each Ray task asks for).
    ray_address : str or None
        The Ray cluster to join (``RAY_ADDRESS``: ``host:port``, ``ray://host:port`` or ``auto``); None
        starts a local Ray. Read only by the ``ray`` executor.
    """

    executor: str = DEFAULT_EXECUTOR
    workers: int = 1
    threads: int = 1
    ray_address: str | None = None

    def check(self) -> "ExecutorSettings":
        """Raise :class:`ExecutorError` naming the first bad setting; return self when all are good."""
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
                     environ: Mapping[str, str] | None = None, cores: int | None = None,
                     check_ray: bool = True) -> ExecutorSettings:
    """The executor settings: explicit values, else the environment, else the defaults for this machine.

    Parameters
    ----------
    executor, workers, threads : optional
        Explicit values (the job manager's arguments, ``--executor``, ``--workers``); they win.
    environ : mapping, optional
        Default ``os.environ``: ``AKP_EXECUTOR``, ``AKP_WORKERS``, ``AKP_THREADS_PER_WORKER``, ``RAY_ADDRESS``.
    cores : int, optional
        Default: the CPUs of this process. Threads default to ``cores // workers`` (at least 1).
    check_ray : bool, default=True
        With the ``ray`` executor and ``RAY_ADDRESS`` set, check that a head node answers there
        (:func:`check_ray_address`, seconds at most), so a wrong address stops before anything is created.

    Returns
    -------
    ExecutorSettings

    Raises
    ------
    ExecutorError
        A setting is unknown, not an integer or out of range, or no Ray head node answers at
        ``RAY_ADDRESS``; ``field`` names it.
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
    address = (env.get("RAY_ADDRESS") or "").strip() or None
    settings = ExecutorSettings(name, workers, threads, address).check()
    if name == "ray" and address is not None and check_ray:
        check_ray_address(address)
    return settings


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Check that a Ray head node answers at ``address`` (``host:port``, ``ray://host:port``, ``auto``).

    ``ray.init`` keeps retrying an address where nobody answers for about a
    minute; a plain TCP connect tells in seconds, with a message a person can act on.

    Parameters
    ----------
    address : str
        ``RAY_ADDRESS``. ``auto`` and ``local`` are left to Ray (a cluster on this machine).
    timeout : float
        Seconds to wait for the connection.

    Raises
    ------
    ExecutorError
        With ``field="RAY_ADDRESS"``: not of the form host:port, or nothing answers there.
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError.at("RAY_ADDRESS", f"{address!r} is not host:port or ray://host:port; set it to the "
                               "address `ray start --head` printed, or unset it to train on a local Ray")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ExecutorError.at("RAY_ADDRESS", f"no Ray head node answers at {address!r} ({reason}); start one "
                               "with `ray start --head`, or unset RAY_ADDRESS to train on a local Ray") from None
