"""The child side of the ``process`` executor: a long-lived worker process that trains the tasks it is sent.

It speaks with its manager over one pipe (only this process's main thread
touches its end):

- manager → worker: ``("task", seq, home, run_ids, vectorized, device)``,
  ``("stop", seq, run_ids)``, or ``None`` to exit;
- worker → manager: ``("ready", pid)`` once imported, ``("progress", run_id,
  epoch, epochs, batch, n_batches, metrics)`` and ``("done", seq, error)``.

The worker opens its own :class:`~akp.store.RunStore` on the local disk (SQLite
WAL is safe across processes of one machine) and calls the runner, which writes
every epoch. Cancel is read from the pipe before every batch. If the manager
dies, the worker exits at its next batch without writing, so the next manager
finds the run ``running`` with no live holder and marks it ``interrupted``.
"""
from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection

#: Exit code of a worker whose manager went away.
EXIT_ORPHANED = 3
#: Batch progress is sent at most this often per run (epoch ends are always sent).
PROGRESS_INTERVAL_S = 0.05


class _Control:
    """Cancel flags and progress of one task in the worker: polled by the runner before every batch."""

    def __init__(self, conn: Connection, seq: int, run_ids: list[str], parent_pid: int) -> None:
        self.conn, self.seq, self.run_ids, self.parent_pid = conn, seq, run_ids, parent_pid
        self.stopped: set[str] = set()
        self._last: dict[str, float] = {}

    def poll(self) -> None:
        """Read pending stop messages; exit at once if the manager is gone."""
        if os.getppid() != self.parent_pid:
            os._exit(EXIT_ORPHANED)  # re-parented: the manager died; leave the run for it to recover
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                if msg is None:
                    os._exit(0)  # told to quit while training: the manager records the outcome
                if msg[0] == "stop" and msg[1] == self.seq:
                    self.stopped.update(msg[2])
        except (EOFError, OSError):
            os._exit(EXIT_ORPHANED)

    def should_stop(self) -> bool:
        self.poll()
        return all(r in self.stopped for r in self.run_ids)

    def member_should_stop(self, member: int) -> bool:
        return self.run_ids[member] in self.stopped  # polled just before by should_stop

    def progress(self, run_id: str, p) -> None:
        now = time.monotonic()
        if p.metrics is None and now - self._last.get(run_id, 0.0) < PROGRESS_INTERVAL_S:
            return  # a pipe message per batch would cost more than the batch on small models
        self._last[run_id] = now
        try:
            self.conn.send(("progress", run_id, p.epoch, p.epochs, p.batch, p.n_batches, p.metrics))
        except OSError:  # a closed pipe: the manager died; as in poll, leave the run to its recovery
            os._exit(EXIT_ORPHANED)


def worker_main(conn: Connection, threads: int, parent_pid: int) -> None:
    """Entry point of a worker process (``multiprocessing`` spawn target).

    Parameters
    ----------
    conn : Connection
        The worker's end of the pipe to its manager.
    threads : int
        Torch intra-op threads of this process.
    parent_pid : int
        The manager's pid; the worker exits when it is no longer its parent.
    """
    # Ctrl-C in a terminal reaches the whole process group; the manager decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from akp import runner
    from akp.store import RunStore

    torch.set_num_threads(threads)
    stores: dict[str, RunStore] = {}
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the manager closed the pipe or died
        if msg is None:
            return
        if msg[0] != "task":
            continue  # a stop for a task that has already ended
        _, seq, home, run_ids, vectorized, device = msg
        control = _Control(conn, seq, run_ids, parent_pid)
        error = None
        try:
            store = stores.get(home) or stores.setdefault(home, RunStore(home))
            _train(runner, store, run_ids, vectorized, device, control)
        except Exception as exc:  # noqa: BLE001 - the runner records its own failures; this is the rest
            error = f"{type(exc).__name__}: {exc}"
        conn.send(("done", seq, error))


def _train(runner, store, run_ids: list[str], vectorized: bool, device: str, control: _Control) -> None:
    """Call the runner exactly as the thread executor does, with this process's store and the pipe's flags."""
    if not vectorized:
        run_id = run_ids[0]
        runner.execute_run(store, run_id, device=device, on_progress=lambda p: control.progress(run_id, p),
                           should_stop=control.should_stop)
        return
    runner.execute_vectorized(store, run_ids, device=device, on_progress=control.progress,
                              should_stop=control.should_stop, member_should_stop=control.member_should_stop)
