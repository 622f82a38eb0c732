"""Background jobs: a thread pool that trains an experiment's runs and records them in the store.

One :class:`JobManager` serves a process (the Streamlit server keeps one in
``st.cache_resource``; ``python -m akp experiment`` makes its own). Worker
threads are plain daemon threads fed from a queue, so the server can exit at
any time; they never touch Streamlit. Pages read :meth:`JobManager.status`
snapshots (copies, safe from any thread) instead.

Where a job trains is the executor's business (:mod:`akp.executors`): ``thread``
(in this process, the default) or ``process`` (a local worker process, so
training does not share the interpreter with a Streamlit server), chosen with
the ``executor`` argument or ``AKP_EXECUTOR``.

What a job is: one run (``akp.runner.execute_run``) or, where
:func:`akp.vectorized.use_vectorized` says it is faster (several seeds on a GPU),
all queued seeds of one condition trained as one vectorized group
(``akp.runner.execute_vectorized``). Either way every run is written to the store
epoch by epoch.

The manager's lock guards only its memory: store and holder-file writes happen
after it is released, so :meth:`JobManager.status` never waits on a slow disk.

Nothing is lost across processes: each manager keeps a holder file of the runs
it took (:mod:`akp.holders`); a new manager marks ``interrupted`` the runs that
a stopped process left behind, and :meth:`JobManager.resume` queues them again.

Launching, queueing and repair are in :mod:`akp.launching` (a part of the manager).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

import torch

from akp.access import admins_from_env
from akp.errors import JobError, QueueFullError, QuotaError  # noqa: F401 - re-exported
from akp.executors import Executor, make_executor, resolve_settings, worker_threads  # noqa: F401 - re-exported
from akp.holders import Holder, recover_orphans
from akp.job_state import Job, JobSnapshot, Task, fill_eta, job_snapshot, store_snapshot
from akp.launching import _SHUTDOWN_ERROR, PREPARING, Launcher  # noqa: F401 - PREPARING re-exported
from akp.quotas import LaunchLimits, LaunchRefused, resolve_limits  # noqa: F401 - LaunchRefused re-exported
from akp.runs import (
    CANCELLED,
    FAILED,
    FINAL_STATES,
    FINISHED_STATES,
    INTERRUPTED,
    QUEUED,
    RESUMABLE_STATES,
    RUNNING,
    RunRecord,
)
from akp.store import RunStore, StoreError
from akp.train import Progress

log = logging.getLogger(__name__)



class JobManager(Launcher):
    """Train queued runs in background threads and report their progress.

    Parameters
    ----------
    store : RunStore
    max_workers : int
        Concurrent jobs (threads), 1 to 64.
    max_queued : int
        Most runs waiting in the queue at once, 1 to 100000.
    max_per_owner : int, optional
        Most queued plus running runs per owner (experiments submitted without
        an owner are not limited). None: no quota.
    device : str, optional
        Where runs train; default ``"cuda"`` when available, else ``"cpu"``.
    vectorized : bool, optional
        Train the seeds of a condition as one vectorized group: None decides per
        device with :func:`akp.vectorized.use_vectorized`; True or False forces it.
    cache_projections : bool, default=True
        After a run finishes, compute and cache the UMAP of its ``embedding``
        layer at the last epoch (:func:`akp.projection.cache_run_embedding`) so
        the app's view opens at once. The command line turns it off: it would
        pay umap's compile time for a view it never shows.
    executor : {"thread", "process"} or Executor, optional
        Where runs train; default ``$AKP_EXECUTOR`` or ``"thread"``
        (:func:`akp.executors.resolve_settings`). The manager runs ``max_workers``
        threads either way; with ``"process"`` each hands its task to a worker process.
    threads : int, optional
        Torch intra-op threads per worker; default ``$AKP_THREADS_PER_WORKER`` or
        ``max(1, cores // max_workers)`` (:func:`worker_threads`).
    limits : LaunchLimits, optional
        Quotas and the memory cap of :meth:`launch`; default from the environment
        (:func:`akp.quotas.resolve_limits`: ``AKP_MAX_RUNS_PER_USER`` and the others).
    repair : bool, default=True
        On start, queue again (or mark ``interrupted``) the runs an older version
        left ``queued`` with no manager (:meth:`repair`).
    admins : set of str, optional
        Users who may cancel and resume anyone's experiments; default
        :func:`akp.access.admins_from_env` (``$AKP_ADMINS``), read once here.

    Notes
    -----
    The thread executor sets torch's intra-op threads of this process
    (``torch.set_num_threads`` is process-wide: the last manager created in a
    process decides it for every thread); worker processes set their own.

    On start it marks runs that another process left behind as ``interrupted``
    (:func:`akp.holders.recover_orphans`); their ids are in :attr:`recovered`.
    Then it repairs the runs an older version left queued: :attr:`repaired` (queued
    here) and :attr:`repair_interrupted` (over a cap).

    Raises
    ------
    ValueError
        If a limit is out of range.
    LimitsError
        If a launch limit in the environment is bad (the message names the variable); nothing is started.
    ExecutorError
        If an executor setting is bad (unknown name, threads out of range); nothing is started.
    """

    def __init__(self, store: RunStore, *, max_workers: int = 1, max_queued: int = 64,
                 max_per_owner: int | None = None, device: str | None = None,
                 vectorized: bool | None = None, cache_projections: bool = True,
                 executor: str | Executor | None = None, threads: int | None = None,
                 limits: LaunchLimits | None = None, repair: bool = True,
                 admins: frozenset[str] | None = None) -> None:
        for name, value, hi in (("max_workers", max_workers, 64), ("max_queued", max_queued, 100_000)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise ValueError(f"{name}: must be an integer from 1 to {hi}, got {value!r}")
        if max_per_owner is not None and (isinstance(max_per_owner, bool) or not isinstance(max_per_owner, int)
                                          or max_per_owner < 1):
            raise ValueError(f"max_per_owner: must be a positive integer or None, got {max_per_owner!r}")
        if vectorized not in (None, True, False):
            raise ValueError(f"vectorized: must be None (auto), True or False, got {vectorized!r}")
        self.limits = (limits or resolve_limits()).check()
        if isinstance(executor, Executor):
            self.executor = executor
        else:  # checked before anything starts: a bad setting changes nothing
            self.executor = make_executor(resolve_settings(executor, max_workers, threads))
        self.store = store
        self.admins = frozenset(admins_from_env() if admins is None else admins)
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.max_per_owner = max_per_owner
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.vectorized = vectorized
        self.cache_projections = cache_projections
        self.threads = self.executor.threads

        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._tasks: deque[Task] = deque()
        self._experiment_runs: dict[str, list[str]] = {}
        self._epochs: dict[str, int] = {}
        self._closing = False
        self._alive_workers = max_workers
        self._launch_lock = threading.Lock()  # one launch checks and writes at a time
        self._unprepared: set[str] = set()  # experiments whose data a worker must build first
        self._prep_locks: dict[str, threading.Lock] = {}
        self._holder = Holder(store.home)
        self.recovered: list[str] = recover_orphans(store, self._holder)
        self.repaired: list[str] = []
        self.repair_interrupted: list[str] = []
        self._workers = [threading.Thread(target=self._worker, name=f"akp-job-{i}", daemon=True)
                         for i in range(max_workers)]
        for t in self._workers:
            t.start()
        if repair:
            self.repaired, self.repair_interrupted = self.repair()

    def __enter__(self) -> "JobManager":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=exc[0] is None)

    # -- launching ----------------------------------------------------------------
    def submit(self, experiment_id: str, *, owner: str | None = None) -> list[str]:
        """Queue the experiment's ``queued`` runs (those no manager holds yet).

        Parameters
        ----------
        experiment_id : str
        owner : str, optional
            Who asks (default: the experiment's owner); counted against ``max_per_owner``.

        Returns
        -------
        list of str
            The queued run ids (empty if there was nothing to queue).

        Raises
        ------
        QueueFullError, QuotaError
            If the runs do not fit; nothing is queued.
        StoreError
            If there is no such experiment.
        """
        return self._queue(experiment_id, owner, (QUEUED,), reset=False)

    def resume(self, experiment_id: str, *, user: str | None = None, owner: str | None = None) -> list[str]:
        """Queue again the experiment's unfinished runs: interrupted, failed, cancelled (and never-submitted queued).

        Each resumed run continues after the last epoch its checkpoint holds (:mod:`akp.checkpoints`),
        or from epoch 0 when it has none (or an unusable one); the store's rows are rewritten from it.

        Parameters
        ----------
        experiment_id : str
        user : str, optional
            Who asks: the experiment's owner or an admin (:attr:`admins`). None is a
            trusted local caller (:mod:`akp.access`).
        owner : str, optional
            Whose quota the runs count against (default: the experiment's owner).

        Returns
        -------
        list of str
            The queued run ids.

        Raises
        ------
        AccessError
            If ``user`` may not resume it; nothing is queued or changed.
        QueueFullError, QuotaError
            If the runs do not fit; nothing is queued or changed.
        StoreError
            If there is no such experiment.
        """
        if user is not None:
            self.store.check_access(experiment_id, user, admins=self.admins, action="resume")
        return self._queue(experiment_id, owner, (QUEUED, *RESUMABLE_STATES), reset=True)

    def _write_states(self, writes: list[tuple[str, str, str | None]]) -> None:
        """Record ``(run_id, state, error)`` in the store; called without the lock held."""
        for run_id, state, error in writes:
            self.store.set_state(run_id, state, error=error)

    # -- control ----------------------------------------------------------------
    def cancel(self, run_or_experiment_id: str, *, user: str | None = None) -> list[str]:
        """Cancel a run or all runs of an experiment.

        Queued runs become ``cancelled`` at once; running ones stop before their
        next batch and then become ``cancelled``. Runs in a final state are left alone.

        Parameters
        ----------
        run_or_experiment_id : str
        user : str, optional
            Who asks: the experiment's owner or an admin (:attr:`admins`). None is a
            trusted local caller (:mod:`akp.access`).

        Returns
        -------
        list of str
            Ids of the runs cancelled or asked to stop.

        Raises
        ------
        AccessError
            If ``user`` may not cancel the experiment (of the run); nothing is cancelled.
        JobError
            If the id is neither a run nor an experiment in the store.
        """
        target = run_or_experiment_id
        if user is not None:  # before anything changes
            try:
                self.store.check_access(target, user, admins=self.admins, action="cancel")
            except StoreError:
                raise JobError(f"run_or_experiment_id: no run or experiment {target!r}") from None
        affected: list[str] = []
        writes: list[tuple[str, str, str | None]] = []
        with self._cond:
            if target in self._jobs:
                jobs = [self._jobs[target]]
            else:
                jobs = [j for j in self._jobs.values() if j.experiment_id == target]
            for job in jobs:
                if job.state == QUEUED:
                    self._dequeue(job)
                    job.state, job.error = CANCELLED, None
                    writes.append((job.run_id, CANCELLED, None))
                    affected.append(job.run_id)
                elif job.state == RUNNING:
                    job.stop_reason = job.stop_reason or "cancel"
                    affected.append(job.run_id)
            self._cond.notify_all()
            known = {j.run_id for j in jobs}
        self._write_states(writes)
        # Runs this manager never took (created but not submitted): cancel them in the store.
        runs: list[RunRecord] = []
        if not known:
            try:
                runs = [self.store.run(target)]
            except StoreError:
                try:
                    runs = self.store.runs(target)
                except StoreError:
                    raise JobError(f"run_or_experiment_id: no run or experiment {target!r}") from None
        elif target not in self._jobs:
            runs = self.store.runs(target)
        if any(r["state"] == QUEUED and r["run_id"] not in known for r in runs):
            live, _, _ = self._holder.scan()
            for r in runs:
                if r["state"] == QUEUED and r["run_id"] not in known and r["run_id"] not in live:
                    self.store.set_state(r["run_id"], CANCELLED)
                    affected.append(r["run_id"])
        if affected:
            with self._cond:
                self._cond.notify_all()
        return affected

    def _dequeue(self, job: Job) -> None:
        for task in self._tasks:
            if job.run_id in task.run_ids:
                task.run_ids.remove(job.run_id)
                task.jobs.remove(job)
                if not task.run_ids:
                    self._tasks.remove(task)
                return

    def wait(self, experiment_id: str, timeout: float | None = None) -> bool:
        """Block until every run of the experiment is in a final state, or ``timeout`` seconds pass.

        Final states: done, failed, cancelled, diverged, interrupted.

        Returns
        -------
        bool
            True if all runs are final.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._all_final(experiment_id):
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with self._cond:
                self._cond.wait(0.5 if remaining is None else min(0.5, remaining))

    def _all_final(self, experiment_id: str) -> bool:
        with self._cond:
            ids = self._experiment_runs.get(experiment_id)
            if ids is not None:
                unknown = [r for r in ids if r not in self._jobs]
                if any(self._jobs[r].state not in FINAL_STATES for r in ids if r in self._jobs):
                    return False
                if not unknown:
                    return True
        states = {r["run_id"]: r["state"] for r in self.store.runs(experiment_id)}
        with self._cond:
            return all((self._jobs[r].state if r in self._jobs else s) in FINAL_STATES for r, s in states.items())

    def shutdown(self, wait: bool = True) -> None:
        """Stop the manager.

        Parameters
        ----------
        wait : bool
            True: train what is queued, then return once the workers have ended.
            False: return at once; queued runs and running ones (which stop before
            their next batch) are marked ``interrupted``, so :meth:`resume` can
            queue them again later.
        """
        writes: list[tuple[str, str, str | None]] = []
        with self._cond:
            already = self._closing
            self._closing = True
            if not wait:
                for task in self._tasks:
                    for job in task.jobs:
                        job.state, job.error = INTERRUPTED, _SHUTDOWN_ERROR
                        writes.append((job.run_id, job.state, job.error))
                self._tasks.clear()
                for job in self._jobs.values():
                    # Queued ones left here are in a worker's hands, waiting for their data: stop them too.
                    if job.state in (RUNNING, QUEUED):
                        job.stop_reason = job.stop_reason or "shutdown"  # a user's cancel stays a cancel
            self._cond.notify_all()
        self._write_states(writes)
        if wait and not already:
            for t in self._workers:
                if t is not threading.current_thread():
                    t.join()

    # -- status -----------------------------------------------------------------
    def status(self, experiment_id: str | None = None) -> list[JobSnapshot]:
        """Snapshots (copies) of runs: all runs this manager knows, or all runs of one experiment.

        With ``experiment_id``, runs this manager does not know are read from the store.
        Never waits for a store write in progress in another thread.

        Returns
        -------
        list of JobSnapshot
            The store's run record keys (run_id, experiment_id, condition, seed, state,
            epochs_done, test_acc, train_acc, gap, error) and the live ones (epoch, epochs, batch,
            n_batches, metrics, queue_position, owner, vectorized, managed, seconds_per_epoch, eta_seconds).
        """
        runs = None
        if experiment_id is not None:
            with self._cond:
                ids = self._experiment_runs.get(experiment_id)
                all_known = ids is not None and all(r in self._jobs for r in ids)
            if not all_known:
                runs = self.store.runs(experiment_id)
        with self._cond:
            positions: dict[str, int] = {}
            ahead = 0
            for task in self._tasks:
                for rid in task.run_ids:
                    positions[rid] = ahead
                ahead += len(task.run_ids)
            if experiment_id is None:
                order = list(self._jobs)
            elif runs is None:
                order = list(self._experiment_runs[experiment_id])
            else:
                order = [r["run_id"] for r in runs]
            now = time.monotonic()
            snaps = {r: job_snapshot(self._jobs[r], positions.get(r), now) for r in order if r in self._jobs}
        if runs is not None:
            epochs = self._epochs.get(experiment_id) or self.store.spec(experiment_id).epochs
            for r in runs:
                if r["run_id"] not in snaps:
                    snaps[r["run_id"]] = store_snapshot(self.store, r, epochs)
        return fill_eta([snaps[rid] for rid in order])

    # -- workers ----------------------------------------------------------------
    def _worker(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._tasks and not self._closing:
                        self._cond.wait()
                    if not self._tasks:
                        return
                    task = self._tasks.popleft()
                    if task.experiment_id not in self._unprepared:  # else queued until its data is built
                        for job in task.jobs:
                            job.state = RUNNING
                try:
                    self._prepare_and_run(task)
                except Exception:  # noqa: BLE001 - a worker must survive anything one job does
                    log.exception("job %s failed outside its run", task.run_ids)
                self._finish(task)
                if self.cache_projections:
                    self._cache_projections(task)
        finally:
            with self._cond:
                self._alive_workers -= 1
                last = self._alive_workers == 0 and self._closing
                self._cond.notify_all()
            if last:
                self.executor.close()
                self._holder.close()

    def _run_task(self, task: Task) -> None:
        by_id = {j.run_id: j for j in task.jobs}
        self.executor.run(self.store, list(by_id), vectorized=task.vectorized, device=self.device,
                          on_progress=lambda rid, p: self._progress(by_id[rid], p),
                          should_stop=lambda rid: by_id[rid].stop_reason is not None)

    def _cache_projections(self, task: Task) -> None:
        """Cache each finished run's embedding UMAP; a failure here never touches the run."""
        from akp.projection import cache_run_embedding  # lazy: umap is heavy

        for job in task.jobs:
            if job.state not in FINISHED_STATES:
                continue
            try:
                if "embedding" in self.store.layers(job.run_id):
                    cache_run_embedding(self.store, job.run_id)
            except Exception:  # noqa: BLE001 - a view cache is optional; the view computes it on demand
                log.exception("could not cache the embedding UMAP of run %s", job.run_id)

    def _progress(self, job: Job, p: Progress) -> None:
        now = time.monotonic()  # epoch timings for the live ETA (Job.record)
        with self._cond:
            job.record(p.epoch, p.epochs, p.batch, p.n_batches, p.metrics, now)

    def _finish(self, task: Task) -> None:
        for job in task.jobs:
            try:
                run = self.store.run(job.run_id)
                if job.stop_reason == "shutdown" and run["state"] in (CANCELLED, RUNNING):
                    self.store.set_state(job.run_id, INTERRUPTED, error=_SHUTDOWN_ERROR)
                    run = self.store.run(job.run_id)
                metrics = self.store.metrics(job.run_id)
                state, error = run["state"], run["error"]
                outcome = {k: run.get(k) for k in ("majority_rate", "pred_classes")}
            except Exception as exc:  # noqa: BLE001 - the store failed: report it on the run
                metrics, state, error = [], FAILED, f"{type(exc).__name__}: {exc}"
                outcome = {}
            with self._cond:
                job.state, job.error = state, error
                if state not in FINAL_STATES:
                    # The store did not record an outcome (claimed by another process, or the store failed
                    # before training began): end the job here so wait() and quotas never hang on it.
                    job.state = FAILED
                    job.error = error or f"the run was left {state!r} in the store; it was not trained here"
                job.metrics = metrics[-1] if metrics else job.metrics
                job.epochs_done = len(metrics)
                job.outcome = outcome
                self._cond.notify_all()


