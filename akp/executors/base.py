"""The executor seam: what the job manager hands a task to, and what every executor promises.

A *task* is one run, or the queued seeds of one condition trained as one
vectorized group. The job manager keeps its own threads (queue, supervise,
record); each of its worker threads calls :meth:`Executor.run` for one task and
blocks until the task ends. The executor decides where the training happens:
in this process (``thread``), in a local worker process (``process``) or in a
Ray task (``ray``). Every executor ends up calling :func:`akp.runner.execute_run`
or :func:`akp.runner.execute_vectorized`, so whatever the runner learns (epoch
-1 capture, checkpoints, resume from an epoch) every executor gets unchanged.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from akp.executors.settings import ExecutorError, ExecutorSettings
from akp.runs import ACTIVE_STATES, FAILED

if TYPE_CHECKING:  # torch stays unimported until an executor is made
    from akp.store import RunStore
    from akp.train import Progress

log = logging.getLogger(__name__)

#: ``on_progress(run_id, progress)``: every batch (throttled by remote executors) and every finished epoch.
ProgressFn = Callable[[str, "Progress"], None]
#: ``should_stop(run_id)``: True once the manager wants that run to stop (cancel or shutdown).
StopFn = Callable[[str], bool]


class Executor(ABC):
    """Where tasks train. Subclasses: thread, process, ray.

    Parameters
    ----------
    workers : int
        Tasks that may train at once; the job manager runs as many worker threads.
    threads : int
        Torch intra-op threads per task.

    Notes
    -----
    :meth:`run` is called from up to ``workers`` threads at once. When it
    returns, every run of the task is in a final state in the store, or left
    ``queued`` untouched when another process had claimed it. It never raises
    for what one task does: a failure is recorded on the task's runs, with its
    reason, and the manager goes on with the next task.
    """

    name: ClassVar[str] = ""

    def __init__(self, workers: int, threads: int) -> None:
        ExecutorSettings(self.name or "thread", workers, threads).check()
        self.workers = workers
        self.threads = threads

    @abstractmethod
    def run(self, store: RunStore, run_ids: list[str], *, vectorized: bool, device: str,
            on_progress: ProgressFn, should_stop: StopFn) -> None:
        """Train one task (one run, or a vectorized group of one condition's runs) and record it in ``store``.

        Parameters
        ----------
        store : RunStore
            The manager's store (its ``home`` is on this machine's disk).
        run_ids : list of str
            One run, or the runs of one condition when ``vectorized``.
        vectorized : bool
        device : str
        on_progress : callable
            ``(run_id, Progress)``; called from the calling thread only.
        should_stop : callable
            ``(run_id) -> bool``; polled while the task trains.
        """

    def close(self) -> None:  # noqa: B027 - optional: executors without workers have nothing to release
        """Release workers and connections (idempotent). Tasks still training are abandoned."""

    def describe(self) -> str:
        """A short label, e.g. ``"process 2x1"`` (workers x threads)."""
        return f"{self.name} {self.workers}x{self.threads}"


def fail_unfinished(store: RunStore, run_ids: list[str], reason: str) -> None:
    """Mark ``failed`` with ``reason`` the runs of a task that are still queued or running in the store.

    Used when a worker vanished (killed, out of memory, node lost) and could not record its outcome.
    """
    for run_id in run_ids:
        try:
            if store.run(run_id)["state"] in ACTIVE_STATES:
                store.set_state(run_id, FAILED, error=reason)
        except Exception:  # noqa: BLE001 - the manager's _finish reports a store that fails
            log.exception("could not mark run %s failed", run_id)


__all__ = ["Executor", "ExecutorError", "ProgressFn", "StopFn", "fail_unfinished"]
