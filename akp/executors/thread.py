"""The ``thread`` executor: train in the calling thread, in the job manager's own process (the old behaviour)."""
from __future__ import annotations

import torch

from akp import runner
from akp.executors.base import Executor, ProgressFn, StopFn
from akp.store import RunStore
from akp.train import Progress


class ThreadExecutor(Executor):
    """Train each task in the manager's worker thread that asks for it.

    Parameters
    ----------
    workers : int
        Concurrent tasks (the manager's threads).
    threads : int
        Torch intra-op threads; ``torch.set_num_threads`` is process-wide, so the
        last executor made in a process decides it for every thread.
    """

    name = "thread"

    def __init__(self, workers: int, threads: int) -> None:
        super().__init__(workers, threads)
        torch.set_num_threads(threads)

    def run(self, store: RunStore, run_ids: list[str], *, vectorized: bool, device: str,
            on_progress: ProgressFn, should_stop: StopFn) -> None:
        """Call :func:`akp.runner.execute_run` (or ``execute_vectorized``) here; see :meth:`Executor.run`."""
        # Looked up on the module at call time, so a patched runner (tests) is the one that runs.
        if not vectorized:
            run_id = run_ids[0]

            def progress(p: Progress) -> None:
                on_progress(run_id, p)

            runner.execute_run(store, run_id, device=device, on_progress=progress,
                               should_stop=lambda: should_stop(run_id))
            return
        runner.execute_vectorized(store, list(run_ids), device=device, on_progress=on_progress,
                                  should_stop=lambda: all(should_stop(r) for r in run_ids),
                                  member_should_stop=lambda m: should_stop(run_ids[m]))
