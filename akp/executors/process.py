"""The ``process`` executor: train each task in a local worker process, supervised by the calling thread.

Why: runs that train in threads of the Streamlit server share its interpreter
with the pages, so watching a run slows it down; a worker process has its own.

Each of the manager's worker threads takes an idle worker process (or starts
one: ``multiprocessing`` "spawn", so no lock or thread of the server is
inherited), sends it the task, and then supervises it: it turns the worker's
progress messages into ``on_progress`` calls (so ``JobManager.status`` stays
live), forwards cancels (the worker reads them before every batch), and
watches the process's sentinel. A worker that dies (SIGKILL, out of memory)
has its task's unfinished runs marked ``failed`` with the exit code or signal;
the next task starts a fresh worker. Workers are daemon processes: they end
with the manager's process.

As with any ``multiprocessing`` "spawn" child, a worker imports the parent's
main script (not ``python -m`` modules): a script that makes a job manager with
this executor must do so under ``if __name__ == "__main__":``.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
from multiprocessing.connection import wait

from akp.executors.base import Executor, ProgressFn, StopFn, fail_unfinished
from akp.executors.worker import EXIT_ORPHANED, worker_main
from akp.store import RunStore
from akp.train import Progress

log = logging.getLogger(__name__)

#: How long a new worker may take to import torch and say it is ready.
START_TIMEOUT_S = 180.0
#: How often the supervising thread looks at cancels when no message comes.
POLL_S = 0.05


class WorkerLost(RuntimeError):
    """A worker process died or stopped answering; the message says how (exit code or signal)."""


def exit_reason(pid: int | None, exitcode: int | None) -> str:
    """Why a worker process ended, for a run's error message."""
    who = f"the worker process (pid {pid})"
    if exitcode is None:
        return f"{who} stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (killed, or out of memory)" if -exitcode == signal.SIGKILL else ""
        return f"{who} was killed by {name}{hint}"
    if exitcode == EXIT_ORPHANED:
        return f"{who} lost its job manager"
    return f"{who} exited with code {exitcode}"


class _Worker:
    """One worker process and the manager's end of its pipe; used by one supervising thread at a time."""

    def __init__(self, ctx, threads: int, start_timeout: float) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, threads, os.getpid()),
                                   name="akp-worker", daemon=True)
        self.process.start()
        child.close()  # only the child holds its end now: its death reads as EOF here
        self.seq = 0
        ready = wait([self.conn, self.process.sentinel], timeout=start_timeout)
        if self.conn not in ready:
            self.kill()
            raise WorkerLost(exit_reason(self.process.pid, self.process.exitcode) + " while starting")
        try:
            self.conn.recv()  # ("ready", pid)
        except (EOFError, OSError):
            raise WorkerLost(self._death() + " while starting") from None

    def alive(self) -> bool:
        return self.process.is_alive()

    def _death(self) -> str:
        self.process.join(timeout=5)
        return exit_reason(self.process.pid, self.process.exitcode)

    def execute(self, home: str, run_ids: list[str], vectorized: bool, device: str,
                on_progress: ProgressFn, should_stop: StopFn) -> str | None:
        """Send one task and supervise it to its end.

        Returns
        -------
        str or None
            An error the worker hit outside the runner (None: the runner ran to its end).

        Raises
        ------
        WorkerLost
            The process died or the pipe broke; the message gives the exit code or signal.
        """
        self.seq += 1
        seq, asked = self.seq, set()
        try:
            self.conn.send(("task", seq, home, run_ids, vectorized, device))
            while True:
                if wait([self.conn, self.process.sentinel], timeout=POLL_S):
                    # Read what the pipe still holds before looking at the sentinel: it may end with "done".
                    while self.conn.poll():
                        msg = self.conn.recv()
                        if msg[0] == "progress":
                            on_progress(msg[1], Progress(*msg[2:]))
                        elif msg[0] == "done" and msg[1] == seq:
                            return msg[2]
                    if not self.alive():
                        raise WorkerLost(self._death())
                stop = {r for r in run_ids if should_stop(r)} - asked
                if stop:
                    self.conn.send(("stop", seq, sorted(stop)))
                    asked |= stop
        except (EOFError, OSError) as exc:  # a broken pipe: the worker is gone, or going
            raise WorkerLost(self._death()) from exc

    def quit(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class ProcessExecutor(Executor):
    """Train tasks in up to ``workers`` local worker processes, each with ``threads`` torch threads.

    Parameters
    ----------
    workers : int
    threads : int
    context : {"spawn", "forkserver"}, default="spawn"
        The ``multiprocessing`` start method; never "fork" (the server has threads and locks).
    start_timeout : float
        Seconds a new worker may take to start.

    Notes
    -----
    Workers start on the first task that needs one (not with the manager), and
    stay for the next tasks; their dataset cache (:func:`akp.runner.cached_dataset`)
    stays with them.
    """

    name = "process"

    def __init__(self, workers: int, threads: int, *, context: str = "spawn",
                 start_timeout: float = START_TIMEOUT_S) -> None:
        super().__init__(workers, threads)
        if context not in ("spawn", "forkserver"):
            raise ValueError(f"context: must be 'spawn' or 'forkserver', got {context!r}")
        self._ctx = mp.get_context(context)
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False

    def run(self, store: RunStore, run_ids: list[str], *, vectorized: bool, device: str,
            on_progress: ProgressFn, should_stop: StopFn) -> None:
        """Train the task in a worker process; see :meth:`Executor.run`."""
        try:
            worker = self._acquire()
        except WorkerLost as exc:
            fail_unfinished(store, run_ids, f"could not start a worker process: {exc}")
            return
        try:
            error = worker.execute(str(store.home), list(run_ids), vectorized, device, on_progress, should_stop)
        except WorkerLost as exc:
            log.warning("runs %s: %s; a new worker will take the next task", run_ids, exc)
            self._discard(worker)
            fail_unfinished(store, run_ids, f"failed: {exc}")
            return
        self._release(worker)
        if error is not None:
            fail_unfinished(store, run_ids, f"failed in the worker process: {error}")

    def _acquire(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerLost("the executor is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    self._busy.add(worker)
                    return worker
                worker.kill()  # died while idle: replace it
        worker = _Worker(self._ctx, self.threads, self._start_timeout)  # outside the lock: it takes seconds
        with self._lock:
            self._busy.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if not self._closed:
                self._idle.append(worker)
                return
        worker.quit()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def pids(self) -> list[int]:
        """Process ids of the live worker processes (busy first); for tests and diagnostics."""
        with self._lock:
            return [w.process.pid for w in [*self._busy, *self._idle] if w.alive() and w.process.pid]

    def busy_pids(self) -> list[int]:
        """Process ids of the workers training a task now."""
        with self._lock:
            return [w.process.pid for w in self._busy if w.alive() and w.process.pid]

    def close(self) -> None:
        """Ask idle workers to exit and kill busy ones (idempotent)."""
        with self._lock:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle, self._busy = [], set()
        for worker in idle:
            worker.quit()
        for worker in busy:
            worker.kill()
