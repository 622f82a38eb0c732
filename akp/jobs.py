"""Background jobs: a thread pool that trains an experiment's runs and records them in the store.

One :class:`JobManager` serves a process (the Streamlit server keeps one in
``st.cache_resource``; ``python -m akp experiment`` makes its own). Worker
threads are plain daemon threads fed from a queue, so the server can exit at
any time; they never touch Streamlit. Pages read :meth:`JobManager.status`
snapshots (copies, safe from any thread) instead.

What a job is: one run (``akp.runner.execute_run``) or, where
:func:`akp.family.use_family_path` says it is faster (several seeds on a GPU),
all queued seeds of one condition trained as one vectorized family
(``akp.runner.execute_family``). Either way every run is written to the store
epoch by epoch.

Nothing is lost across processes: each manager keeps a *holder* file under
``home/jobs/`` listing the runs it took, locked (``fcntl.flock``) for as long as
its process lives; the lock goes with the process, even on SIGKILL. A new
manager marks ``interrupted`` every run left ``running`` that no live manager
holds, and every ``queued`` run that a dead manager held (runs that were
created but never submitted stay ``queued``). :meth:`JobManager.resume`
queues them again.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from akp.family import use_family_path
from akp.runner import execute_family, execute_run
from akp.store import RunStore, StoreError, atomic_write_bytes
from akp.train import Progress

try:  # POSIX: liveness of other managers through advisory locks
    import fcntl
except ImportError:  # pragma: no cover - Windows: other managers' holders count as dead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

FINAL_STATES = ("done", "failed", "cancelled", "diverged", "interrupted")
ACTIVE_STATES = ("queued", "running")
RESUMABLE_STATES = ("interrupted", "failed", "cancelled")


class JobError(ValueError):
    """A job request was refused; the message names the limit or field."""


class QueueFullError(JobError):
    """Submitting would put more runs in the queue than ``max_queued`` allows (nothing was queued)."""


class QuotaError(JobError):
    """Submitting would give an owner more queued and running runs than ``max_per_owner`` (nothing was queued)."""


def worker_threads(max_workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads per process so that ``max_workers`` concurrent runs use the cores, not more.

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
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, max_workers))


@dataclass
class _Job:
    run_id: str
    experiment_id: str
    condition: str
    seed: int
    epochs: int
    owner: str | None
    family: bool = False
    state: str = "queued"
    epoch: int = 0
    batch: int = 0
    n_batches: int = 0
    epochs_done: int = 0
    metrics: dict | None = None
    error: str | None = None
    stop_reason: str | None = None  # "cancel" or "shutdown" once asked to stop


@dataclass
class _Task:
    experiment_id: str
    condition: str
    run_ids: list[str]
    family: bool
    jobs: list[_Job] = field(default_factory=list)


class _Holder:
    """This manager's claim on its runs: ``home/jobs/<token>.runs``, alive while ``<token>.lock`` is locked."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.lock_path = self.dir / f"{self.token}.lock"
        self.runs_path = self.dir / f"{self.token}.runs"
        self.runs: set[str] = set()
        # Lock under a temporary name, then rename: a scanner never sees an unlocked live holder.
        tmp = self.dir / f".{self.token}.tmp"
        self._fh = open(tmp, "w")  # noqa: SIM115 - held open for the manager's lifetime
        if fcntl is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, self.lock_path)

    def add(self, run_ids: list[str]) -> None:
        self.runs.update(run_ids)
        atomic_write_bytes(self.runs_path, "\n".join(sorted(self.runs)).encode())

    def scan(self) -> tuple[set[str], set[str], list[Path]]:
        """Runs held by live managers (other than this one), runs held by dead ones, and dead lock files."""
        live: set[str] = set()
        dead: set[str] = set()
        dead_locks: list[Path] = []
        for lock in self.dir.glob("*.lock"):
            if lock == self.lock_path:
                continue
            runs_file = lock.with_suffix(".runs")
            try:
                runs = set(runs_file.read_text().split()) if runs_file.exists() else set()
            except OSError:
                runs = set()
            if _is_live(lock):
                live |= runs
            else:
                dead |= runs
                dead_locks.append(lock)
        return live, dead, dead_locks

    def close(self) -> None:
        self.runs_path.unlink(missing_ok=True)
        self.lock_path.unlink(missing_ok=True)
        if not self._fh.closed:
            self._fh.close()


def _is_live(lock: Path) -> bool:
    """True if a process still holds ``lock`` (a lock we can take belongs to a dead process)."""
    if fcntl is None:
        return False
    try:
        with open(lock) as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return True  # its owner just closed it: not ours to clean


class JobManager:
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
    family : bool, optional
        Train the seeds of a condition as one vectorized family: None decides per
        device with :func:`akp.family.use_family_path`; True or False forces it.
    cache_projections : bool, default=True
        After a run finishes, compute and cache the UMAP of its ``embedding``
        layer at the last epoch (:func:`akp.projection.cache_run_embedding`) so
        the app's view opens at once. The command line turns it off: it would
        pay umap's compile time for a view it never shows.

    Notes
    -----
    The constructor sets torch's intra-op threads to ``max(1, cores // max_workers)``
    (:func:`worker_threads`). ``torch.set_num_threads`` is process-wide: the last
    manager created in a process decides it for every thread.

    On start it marks runs that another process left behind as ``interrupted``
    (see the module docstring); their ids are in :attr:`recovered`.

    Raises
    ------
    ValueError
        If a limit is out of range.
    """

    def __init__(self, store: RunStore, *, max_workers: int = 1, max_queued: int = 64,
                 max_per_owner: int | None = None, device: str | None = None,
                 family: bool | None = None, cache_projections: bool = True) -> None:
        for name, value, hi in (("max_workers", max_workers, 64), ("max_queued", max_queued, 100_000)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise ValueError(f"{name}: must be an integer from 1 to {hi}, got {value!r}")
        if max_per_owner is not None and (isinstance(max_per_owner, bool) or not isinstance(max_per_owner, int)
                                          or max_per_owner < 1):
            raise ValueError(f"max_per_owner: must be a positive integer or None, got {max_per_owner!r}")
        if family not in (None, True, False):
            raise ValueError(f"family: must be None (auto), True or False, got {family!r}")
        self.store = store
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.max_per_owner = max_per_owner
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.family = family
        self.cache_projections = cache_projections
        self.threads = worker_threads(max_workers)
        torch.set_num_threads(self.threads)

        self._cond = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._tasks: deque[_Task] = deque()
        self._experiment_runs: dict[str, list[str]] = {}
        self._epochs: dict[str, int] = {}
        self._closing = False
        self._alive_workers = max_workers
        self._holder = _Holder(store.home)
        self.recovered: list[str] = self._recover()
        self._workers = [threading.Thread(target=self._worker, name=f"akp-job-{i}", daemon=True)
                         for i in range(max_workers)]
        for t in self._workers:
            t.start()

    def __enter__(self) -> "JobManager":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=exc[0] is None)

    # -- recovery ---------------------------------------------------------------
    def _recover(self) -> list[str]:
        live, dead, dead_locks = self._holder.scan()
        marked = []
        for run in self.store.runs_in_state("running", "queued"):
            rid = run["run_id"]
            if rid in live:
                continue
            if run["state"] == "running" or rid in dead:
                self.store.set_state(rid, "interrupted",
                                     error="interrupted: the process running it stopped before it finished")
                marked.append(rid)
        for lock in dead_locks:
            lock.with_suffix(".runs").unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
        if marked:
            log.info("marked %d runs interrupted", len(marked))
        return marked

    # -- queueing ---------------------------------------------------------------
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
        return self._queue(experiment_id, owner, ("queued",), reset=False)

    def resume(self, experiment_id: str, *, owner: str | None = None) -> list[str]:
        """Queue again the experiment's unfinished runs: interrupted, failed, cancelled (and never-submitted queued).

        Resumed runs train again from their first epoch (their partial results are cleared).

        Returns
        -------
        list of str
            The queued run ids.

        Raises
        ------
        QueueFullError, QuotaError
            If the runs do not fit; nothing is queued or changed.
        StoreError
            If there is no such experiment.
        """
        return self._queue(experiment_id, owner, ("queued", *RESUMABLE_STATES), reset=True)

    def _queue(self, experiment_id: str, owner: str | None, states: tuple[str, ...], *, reset: bool) -> list[str]:
        record = self.store.experiment(experiment_id)
        owner = owner if owner is not None else record["owner"]
        spec = self.store.spec(experiment_id)
        runs = self.store.runs(experiment_id)
        live, _, _ = self._holder.scan()
        with self._cond:
            if self._closing:
                raise JobError("manager: shut down; create a new JobManager to queue runs")
            todo = [r for r in runs if r["state"] in states and r["run_id"] not in live
                    and not (r["run_id"] in self._jobs and self._jobs[r["run_id"]].state in ACTIVE_STATES)]
            if not todo:
                return []
            queued = sum(1 for j in self._jobs.values() if j.state == "queued")
            if queued + len(todo) > self.max_queued:
                raise QueueFullError(
                    f"max_queued: the queue holds {queued} of at most {self.max_queued} runs; "
                    f"{len(todo)} more do not fit (nothing was queued)")
            if owner is not None and self.max_per_owner is not None:
                mine = sum(1 for j in self._jobs.values() if j.owner == owner and j.state in ACTIVE_STATES)
                if mine + len(todo) > self.max_per_owner:
                    raise QuotaError(
                        f"max_per_owner: {owner!r} has {mine} queued or running runs of at most "
                        f"{self.max_per_owner}; {len(todo)} more are over the quota (nothing was queued)")
            ids = [r["run_id"] for r in todo]
            if reset:
                for rid in ids:
                    self.store.reset_run(rid, "queued")
            self._holder.add(ids)
            self._experiment_runs[experiment_id] = [r["run_id"] for r in runs]
            self._epochs[experiment_id] = spec.epochs
            by_condition: dict[str, list[dict[str, Any]]] = {}
            for r in todo:
                by_condition.setdefault(r["condition"], []).append(r)
            for condition, group in by_condition.items():
                as_family = use_family_path(self.device, len(group), force=self.family)
                jobs = [_Job(r["run_id"], experiment_id, condition, r["seed"], spec.epochs, owner, as_family)
                        for r in group]
                for job in jobs:
                    self._jobs[job.run_id] = job
                if as_family:
                    self._tasks.append(_Task(experiment_id, condition, [j.run_id for j in jobs], True, jobs))
                else:
                    self._tasks.extend(_Task(experiment_id, condition, [j.run_id], False, [j]) for j in jobs)
            self._cond.notify_all()
            return ids

    # -- control ----------------------------------------------------------------
    def cancel(self, run_or_experiment_id: str) -> list[str]:
        """Cancel a run or all runs of an experiment.

        Queued runs become ``cancelled`` at once; running ones stop before their
        next batch and then become ``cancelled``. Runs in a final state are left alone.

        Returns
        -------
        list of str
            Ids of the runs cancelled or asked to stop.

        Raises
        ------
        JobError
            If the id is neither a run nor an experiment in the store.
        """
        target = run_or_experiment_id
        affected: list[str] = []
        with self._cond:
            if target in self._jobs:
                jobs = [self._jobs[target]]
            else:
                jobs = [j for j in self._jobs.values() if j.experiment_id == target]
            for job in jobs:
                if job.state == "queued":
                    self._dequeue(job)
                    job.state, job.error = "cancelled", None
                    self.store.set_state(job.run_id, "cancelled")
                    affected.append(job.run_id)
                elif job.state == "running":
                    job.stop_reason = job.stop_reason or "cancel"
                    affected.append(job.run_id)
            self._cond.notify_all()
            known = {j.run_id for j in jobs}
        # Runs this manager never took (created but not submitted): cancel them in the store.
        runs: list[dict[str, Any]] = []
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
        if any(r["state"] == "queued" and r["run_id"] not in known for r in runs):
            live, _, _ = self._holder.scan()
            for r in runs:
                if r["state"] == "queued" and r["run_id"] not in known and r["run_id"] not in live:
                    self.store.set_state(r["run_id"], "cancelled")
                    affected.append(r["run_id"])
        if affected:
            with self._cond:
                self._cond.notify_all()
        return affected

    def _dequeue(self, job: _Job) -> None:
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
        with self._cond:
            already = self._closing
            self._closing = True
            if not wait:
                for task in self._tasks:
                    for job in task.jobs:
                        job.state = "interrupted"
                        job.error = "interrupted: the job manager shut down"
                        self.store.set_state(job.run_id, "interrupted", error=job.error)
                self._tasks.clear()
                for job in self._jobs.values():
                    if job.state == "running":
                        job.stop_reason = job.stop_reason or "shutdown"  # a user's cancel stays a cancel
            self._cond.notify_all()
        if wait and not already:
            for t in self._workers:
                if t is not threading.current_thread():
                    t.join()

    # -- status -----------------------------------------------------------------
    def status(self, experiment_id: str | None = None) -> list[dict[str, Any]]:
        """Snapshots (copies) of runs: all runs this manager knows, or all runs of one experiment.

        With ``experiment_id``, runs this manager does not know are read from the store.

        Returns
        -------
        list of dict
            Keys: run_id, experiment_id, condition, seed, state, epoch (0-based epoch in
            progress or last finished), epochs, epochs_done, batch, n_batches, metrics (latest
            epoch row or None), queue_position (runs ahead of it in the queue, 0 = next;
            None when not queued here), error, owner, family, managed (known to this manager).
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
            snaps = {rid: self._snapshot(self._jobs[rid], positions.get(rid)) for rid in order if rid in self._jobs}
        if runs is not None:
            epochs = self._epochs.get(experiment_id) or self.store.spec(experiment_id).epochs
            for r in runs:
                if r["run_id"] not in snaps:
                    snaps[r["run_id"]] = self._store_snapshot(r, epochs)
        return [snaps[rid] for rid in order]

    @staticmethod
    def _snapshot(job: _Job, position: int | None) -> dict[str, Any]:
        return {
            "run_id": job.run_id, "experiment_id": job.experiment_id, "condition": job.condition,
            "seed": job.seed, "state": job.state, "epoch": job.epoch, "epochs": job.epochs,
            "epochs_done": job.epochs_done, "batch": job.batch, "n_batches": job.n_batches,
            "metrics": dict(job.metrics) if job.metrics is not None else None,
            "queue_position": position if job.state == "queued" else None, "error": job.error,
            "owner": job.owner, "family": job.family, "managed": True,
        }

    def _store_snapshot(self, run: dict[str, Any], epochs: int) -> dict[str, Any]:
        done = run["epochs_done"] or 0
        metrics = self.store.metrics(run["run_id"]) if done else []
        return {
            "run_id": run["run_id"], "experiment_id": run["experiment_id"], "condition": run["condition"],
            "seed": run["seed"], "state": run["state"], "epoch": max(0, done - 1), "epochs": epochs,
            "epochs_done": done, "batch": 0, "n_batches": 0, "metrics": metrics[-1] if metrics else None,
            "queue_position": None, "error": run["error"], "owner": None, "family": False, "managed": False,
        }

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
                    for job in task.jobs:
                        job.state = "running"
                try:
                    self._run_task(task)
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
                self._holder.close()

    def _run_task(self, task: _Task) -> None:
        jobs = list(task.jobs)
        if not task.family:
            job = jobs[0]
            execute_run(self.store, job.run_id, device=self.device,
                        on_progress=lambda p: self._progress(job, p),
                        should_stop=lambda: job.stop_reason is not None)
            return
        by_id = {j.run_id: j for j in jobs}
        execute_family(self.store, [j.run_id for j in jobs], device=self.device,
                       on_progress=lambda rid, p: self._progress(by_id[rid], p),
                       should_stop=lambda: all(j.stop_reason is not None for j in jobs),
                       member_should_stop=lambda m: jobs[m].stop_reason is not None)

    def _cache_projections(self, task: _Task) -> None:
        """Cache each finished run's embedding UMAP; a failure here never touches the run."""
        from akp.projection import cache_run_embedding  # lazy: umap is heavy

        for job in task.jobs:
            if job.state not in ("done", "diverged"):
                continue
            try:
                if "embedding" in self.store.layers(job.run_id):
                    cache_run_embedding(self.store, job.run_id)
            except Exception:  # noqa: BLE001 - a view cache is optional; the view computes it on demand
                log.exception("could not cache the embedding UMAP of run %s", job.run_id)

    def _progress(self, job: _Job, p: Progress) -> None:
        with self._cond:
            job.epoch, job.epochs, job.batch, job.n_batches = p.epoch, p.epochs, p.batch, p.n_batches
            if p.metrics is not None:
                job.metrics = dict(p.metrics)
                job.epochs_done = p.epoch + 1

    def _finish(self, task: _Task) -> None:
        for job in task.jobs:
            try:
                run = self.store.run(job.run_id)
                if job.stop_reason == "shutdown" and run["state"] in ("cancelled", "running"):
                    self.store.set_state(job.run_id, "interrupted", error="interrupted: the job manager shut down")
                    run = self.store.run(job.run_id)
                metrics = self.store.metrics(job.run_id)
                state, error = run["state"], run["error"]
            except Exception as exc:  # noqa: BLE001 - the store failed: report it on the run
                metrics, state, error = [], "failed", f"{type(exc).__name__}: {exc}"
            with self._cond:
                job.state, job.error = state, error
                if state not in FINAL_STATES:
                    # The store did not record an outcome (claimed by another process, or the store failed
                    # before training began): end the job here so wait() and quotas never hang on it.
                    job.state = "failed"
                    job.error = error or f"the run was left {state!r} in the store; it was not trained here"
                job.metrics = metrics[-1] if metrics else job.metrics
                job.epochs_done = len(metrics)
                self._cond.notify_all()
