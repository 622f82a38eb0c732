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

Launching (:meth:`JobManager.launch`) checks the queue cap, the user's quotas and
the estimated peak memory (:mod:`akp.quotas`, :mod:`akp.memory`) before it writes
anything, then records the experiment and queues its runs at once; the dataset
and probe set are built by a worker before the first run trains (the runs show
the note ``"preparing data"`` until then). Runs an older version left ``queued``
with no manager are repaired when a manager starts (:meth:`JobManager.repair`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

import torch

from akp import runner
from akp.access import admins_from_env, check_user
from akp.datasets import SYNTHETIC, DatasetError, dataset_card, is_dataset_id
from akp.executors import Executor, make_executor, resolve_settings, worker_threads  # noqa: F401 - re-exported
from akp.experiment import ExperimentSpec
from akp.holders import Holder, recover_orphans
from akp.job_state import Job, JobSnapshot, Task, job_snapshot, store_snapshot
from akp.memory import footprint
from akp.quotas import MB, LaunchLimits, LaunchRefused, resolve_limits
from akp.runs import (
    ACTIVE_STATES,
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
from akp.vectorized import use_vectorized

log = logging.getLogger(__name__)

_SHUTDOWN_ERROR = "interrupted: the job manager shut down"
PREPARING = "preparing data"


class JobError(ValueError):
    """A job request was refused; the message names the limit or field."""


class QueueFullError(JobError):
    """Submitting would put more runs in the queue than ``max_queued`` allows (nothing was queued)."""


class QuotaError(JobError):
    """Submitting would give an owner more queued and running runs than ``max_per_owner`` (nothing was queued)."""


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
    def launch(self, spec: ExperimentSpec, *, user: str) -> str:
        """Check, record and queue a new experiment, atomically: either all of it or nothing.

        In order: the spec is validated; the estimated peak memory of building its
        dataset and of training one run (:func:`akp.memory.footprint`) must fit
        ``limits.max_memory_mb``; the user's experiments, queued or running runs
        and disk (with this experiment's estimate) must fit their quotas; its runs
        must fit the queue (``max_queued``). Only then is the experiment recorded
        (owner ``user``) and its runs queued. It returns at once: the dataset and
        probe set are built by a worker before the first run trains (the runs'
        snapshots carry the note ``"preparing data"``); if that fails, the runs
        become ``failed`` with the reason.

        Parameters
        ----------
        spec : ExperimentSpec
        user : str
            Who launches it: its owner, whose quotas count.

        Returns
        -------
        str
            The new experiment's id.

        Raises
        ------
        ExperimentError
            The spec is invalid (``field`` names the field).
        DatasetError
            The dataset is a registered id that is not registered, or a path that does not exist.
        LaunchRefused
            A limit would be exceeded; ``field`` names it (``memory.dataset``,
            ``memory.run``, ``quota.experiments``, ``quota.runs``, ``quota.disk``,
            ``queue``) and the message says by how much.
        AKPError
            ``user`` is not a valid user name (field ``user``).
        JobError
            The manager is shut down.

        In every case nothing is written: no experiment, no run, no file.
        """
        user = check_user(user, "user")
        spec.validate()
        _check_dataset_exists(spec, self.store.home)
        n_runs = len(spec.conditions) * len(spec.seeds)
        need = footprint(spec, self.store.home)
        cap = self.limits.max_memory_mb
        for field, what, value, hint in (
                ("memory.dataset", "building its dataset", need.dataset_build, "fewer or smaller images"),
                ("memory.run", "training one run", need.run, "fewer or smaller images, or a smaller model or batch")):
            if value > cap * MB:
                raise _refused(
                    field, "AKP_MAX_MEMORY_MB",
                    f"{what} needs about {_mb(value)} MB of at most {cap:,} MB, {_mb(value - cap * MB)} MB over; "
                    f"use {hint} (nothing was created)")
        with self._launch_lock:
            self._check_quotas(user, n_runs, need.disk)
            with self._cond:
                if self._closing:
                    raise JobError("manager: shut down; create a new JobManager to launch experiments")
                queued = sum(1 for j in self._jobs.values() if j.state == QUEUED)
            if queued + n_runs > self.max_queued:
                raise _refused(
                    "queue", "max_queued", f"the queue holds {queued} runs of at most {self.max_queued}; "
                    f"this experiment adds {n_runs}, {queued + n_runs - self.max_queued} over; "
                    "launch it when some have started (nothing was created)")
            experiment_id = self.store.create_experiment(spec, owner=user, build_data=False)
            try:
                self._queue(experiment_id, user, (QUEUED,), reset=False, note=PREPARING)
            except BaseException as exc:  # a race with submit/resume, or a store failure: undo the rows
                self.store.delete_experiment(experiment_id, force=True)  # its runs are queued: undo them too
                if isinstance(exc, QueueFullError):
                    raise _refused("queue", "max_queued", f"{exc}") from None
                if isinstance(exc, QuotaError):
                    raise _refused("quota.runs", "max_per_owner", f"{exc}") from None
                raise
        return experiment_id

    def _check_quotas(self, user: str, n_runs: int, disk: int) -> None:
        """Raise :class:`LaunchRefused` if ``user`` would exceed a quota with a new experiment."""
        usage = self.store.owner_usage(user)
        lim = self.limits
        if usage["experiments"] + 1 > lim.max_experiments_per_user:
            raise _refused(
                "quota.experiments", "AKP_MAX_EXPERIMENTS_PER_USER",
                f"{user} has {usage['experiments']} experiments of at most {lim.max_experiments_per_user}; "
                f"this one adds 1, {usage['experiments'] + 1 - lim.max_experiments_per_user} over; "
                "delete one first (nothing was created)")
        if usage["active_runs"] + n_runs > lim.max_runs_per_user:
            raise _refused(
                "quota.runs", "AKP_MAX_RUNS_PER_USER",
                f"{user} has {usage['active_runs']} queued or running runs of at most {lim.max_runs_per_user}; "
                f"this experiment adds {n_runs}, {usage['active_runs'] + n_runs - lim.max_runs_per_user} over; "
                "wait for some to finish, or use fewer conditions or seeds (nothing was created)")
        if usage["disk_bytes"] + disk > lim.max_disk_mb_per_user * MB:
            over = usage["disk_bytes"] + disk - lim.max_disk_mb_per_user * MB
            raise _refused(
                "quota.disk", "AKP_MAX_DISK_MB_PER_USER",
                f"{user}'s experiments use {_mb(usage['disk_bytes'])} MB of at most {lim.max_disk_mb_per_user:,} "
                f"MB; this experiment adds about {_mb(disk)} MB, {_mb(over)} MB over; delete an experiment, or "
                "capture fewer epochs, layers or probe images (nothing was created)")

    def repair(self) -> tuple[list[str], list[str]]:
        """Queue again the runs an older version left ``queued`` with no manager, or mark them ``interrupted``.

        Older versions created runs they never queued (a launch over the queue cap
        left them ``queued`` forever). Each such run (``queued`` since before the
        store's :attr:`~akp.store.RunStore.launch_era`, held by no live manager) is
        queued in this manager if it fits the queue (``max_queued``) and its owner's
        run quota (``limits.max_runs_per_user``), in creation order; the others become
        ``interrupted`` with the reason (resume queues them later). Runs created
        since (``RunStore.create_experiment`` called directly) are left for their
        caller to submit.

        Returns
        -------
        queued, interrupted : list of str
            Run ids.
        """
        era = getattr(self.store, "launch_era", None)
        if era is None:
            return [], []
        live, _, _ = self._holder.scan()
        old = [r for r in self.store.queued_before(era) if r["run_id"] not in live]
        if not old:
            return [], []
        old_ids = {r["run_id"] for r in old}
        by_experiment: dict[str, list[RunRecord]] = {}
        for r in old:
            by_experiment.setdefault(r["experiment_id"], []).append(r)
        owners = {eid: self.store.experiment(eid)["owner"] for eid in by_experiment}
        active: dict[str | None, int] = {}  # queued or running runs per owner that are not being repaired
        for r in self.store.runs_in_state(QUEUED, RUNNING):
            if r["run_id"] not in old_ids:
                eid = r["experiment_id"]
                if eid not in owners:
                    owners[eid] = self.store.experiment(eid)["owner"]
                active[owners[eid]] = active.get(owners[eid], 0) + 1
        with self._cond:
            room = self.max_queued - sum(1 for j in self._jobs.values() if j.state == QUEUED)
        queued: list[str] = []
        over: list[tuple[str, str]] = []
        for eid, runs in by_experiment.items():
            owner = owners[eid]
            keep: list[str] = []
            for r in runs:
                if room <= 0:
                    over.append((r["run_id"], f"the queue cap (max_queued {self.max_queued})"))
                elif active.get(owner, 0) >= self.limits.max_runs_per_user:
                    over.append((r["run_id"], f"{owner or 'its owner'}'s run quota (AKP_MAX_RUNS_PER_USER "
                                              f"{self.limits.max_runs_per_user})"))
                else:
                    keep.append(r["run_id"])
                    room -= 1
                    active[owner] = active.get(owner, 0) + 1
            if keep:
                skip = live | {r["run_id"] for r in self.store.runs(eid) if r["run_id"] not in keep}
                try:
                    queued += self._queue(eid, owner, (QUEUED,), reset=False, exclude=skip,
                                          note=None if self.store.has_probe(eid) else PREPARING)
                except JobError as exc:
                    over += [(rid, str(exc)) for rid in keep]
        for rid, why in over:
            self.store.set_state(rid, INTERRUPTED, error=f"interrupted: left queued by an older version, and over "
                                                         f"{why} when a job manager started; resume it to queue it")
        if queued or over:
            log.info("repaired runs left queued: %d queued again, %d marked interrupted", len(queued), len(over))
        return queued, [rid for rid, _ in over]

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

    def _queue(self, experiment_id: str, owner: str | None, states: tuple[str, ...], *, reset: bool,
               exclude: set[str] | None = None, note: str | None = None) -> list[str]:
        record = self.store.experiment(experiment_id)
        owner = owner if owner is not None else record["owner"]
        spec = self.store.spec(experiment_id)
        runs = self.store.runs(experiment_id)
        live, _, _ = self._holder.scan()
        if not self.store.has_probe(experiment_id):
            note = note or PREPARING  # launched without its data, and not prepared yet: a worker builds it first
        jobs = self._reserve(experiment_id, owner, spec.epochs, runs, states, live | (exclude or set()))
        if not jobs:
            return []
        if note is not None:
            with self._cond:
                self._unprepared.add(experiment_id)
                for job in jobs:
                    job.note = note
        ids = [j.run_id for j in jobs]
        try:
            if reset:
                for rid in ids:
                    self.store.reset_run(rid, QUEUED)
            self._holder.add(ids)
        except BaseException:
            self._unreserve(jobs)
            raise
        self._enqueue(jobs)
        return ids

    def _reserve(self, experiment_id: str, owner: str | None, epochs: int, runs: list[RunRecord],
                 states: tuple[str, ...], live: set[str]) -> list[Job]:
        """Check the limits and take the runs to queue, in one step under the lock.

        The jobs count against the queue and quotas at once (so two submits cannot
        both fit in the last places) but reach the workers only in :meth:`_enqueue`,
        once the store says they are queued.

        Raises
        ------
        JobError, QueueFullError, QuotaError
            If the manager is shut down or the runs do not fit; nothing is taken.
        """
        with self._cond:
            if self._closing:
                raise JobError("manager: shut down; create a new JobManager to queue runs")
            todo = [r for r in runs if r["state"] in states and r["run_id"] not in live
                    and not (r["run_id"] in self._jobs and self._jobs[r["run_id"]].state in ACTIVE_STATES)]
            if not todo:
                return []
            queued = sum(1 for j in self._jobs.values() if j.state == QUEUED)
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
            by_condition: dict[str, list[RunRecord]] = {}
            for r in todo:
                by_condition.setdefault(r["condition"], []).append(r)
            jobs = []
            for condition, group in by_condition.items():
                together = use_vectorized(self.device, len(group), force=self.vectorized)
                jobs += [Job(r["run_id"], experiment_id, condition, r["seed"], epochs, owner, together)
                         for r in group]
            for job in jobs:
                self._jobs[job.run_id] = job
            self._experiment_runs[experiment_id] = [r["run_id"] for r in runs]
            self._epochs[experiment_id] = epochs
            return jobs

    def _unreserve(self, jobs: list[Job]) -> None:
        """Forget jobs taken by :meth:`_reserve` whose store or holder write failed."""
        with self._cond:
            for job in jobs:
                if self._jobs.get(job.run_id) is job:
                    del self._jobs[job.run_id]
            self._cond.notify_all()

    def _enqueue(self, jobs: list[Job]) -> None:
        """Hand reserved jobs to the workers: one task per run, or one per condition when vectorized."""
        writes: list[tuple[str, str, str | None]] = []
        with self._cond:
            ready: list[Job] = []
            for job in jobs:
                if job.state != QUEUED:
                    # Cancelled while reserved: write again, the reset above may have come after cancel()'s write.
                    writes.append((job.run_id, job.state, job.error))
                elif self._closing:
                    job.state, job.error = INTERRUPTED, _SHUTDOWN_ERROR
                    writes.append((job.run_id, job.state, job.error))
                else:
                    ready.append(job)
            groups: dict[str, list[Job]] = {}
            for job in ready:
                groups.setdefault(job.condition, []).append(job)
            for condition, group in groups.items():
                eid = group[0].experiment_id
                if group[0].vectorized:
                    self._tasks.append(Task(eid, condition, [j.run_id for j in group], True, group))
                else:
                    self._tasks.extend(Task(eid, condition, [j.run_id], False, [j]) for j in group)
            self._cond.notify_all()
        self._write_states(writes)

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
            epochs_done, test_acc, train_acc, gap, error) and the live ones (epoch,
            epochs, batch, n_batches, metrics, queue_position, owner, vectorized, managed).
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
            snaps = {rid: job_snapshot(self._jobs[rid], positions.get(rid)) for rid in order if rid in self._jobs}
        if runs is not None:
            epochs = self._epochs.get(experiment_id) or self.store.spec(experiment_id).epochs
            for r in runs:
                if r["run_id"] not in snaps:
                    snaps[r["run_id"]] = store_snapshot(self.store, r, epochs)
        return [snaps[rid] for rid in order]

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

    def _prepare_and_run(self, task: Task) -> None:
        """Train the task, building its experiment's data first if launch left that for later.

        One task per experiment builds the data while the others of that experiment
        wait (a lock per experiment). The thread executor builds it here and keeps it
        in this process's cache for its runs; other executors' workers build it with
        their first run (:func:`akp.runner.ensure_probe`), so the server never holds
        a copy. If it cannot be built, every waiting run of the experiment becomes
        ``failed`` with the reason.
        """
        eid = task.experiment_id
        with self._cond:
            lock = self._prep_locks.setdefault(eid, threading.Lock()) if eid in self._unprepared else None
        if lock is None:
            if self._start(task):
                self._run_task(task)
            return
        with lock:
            with self._cond:
                pending = eid in self._unprepared
                given_up = all(job.state == FAILED for job in task.jobs)
            if given_up:
                return  # another task could not build it while this one waited
            if not pending:
                pass  # another task built it while this one waited
            elif self.executor.name == "thread":
                try:
                    runner.prepare_data(self.store, eid, keep=True)
                except Exception as exc:  # noqa: BLE001 - bad data, out of memory or disk: fail the runs, say why
                    log.exception("could not prepare the data of experiment %s", eid)
                    self._fail_preparation(eid, f"failed: could not prepare the data: {type(exc).__name__}: {exc}")
                    return
            else:
                if not self._start(task):
                    return
                self._run_task(task)  # its worker builds the data for this first run
                if not self.store.has_probe(eid):
                    errors = [self.store.run(rid)["error"] for rid in task.run_ids]
                    why = next((e.splitlines()[0] for e in errors if e), "the worker did not store the probe set")
                    self._fail_preparation(eid, f"failed: could not prepare the data: {why}")
                    return
                self._prepared(eid)
                return
            self._prepared(eid)
        if self._start(task):
            self._run_task(task)

    def _start(self, task: Task) -> bool:
        """Mark running the task's jobs still queued (some may have been cancelled while its data was built).

        Returns False when none is left; the task then holds only the running ones.
        """
        with self._cond:
            for job in task.jobs:
                if job.state == QUEUED:
                    job.state = RUNNING
            task.jobs = [job for job in task.jobs if job.state == RUNNING]
            task.run_ids = [job.run_id for job in task.jobs]
            return bool(task.jobs)

    def _prepared(self, experiment_id: str) -> None:
        """The experiment's data is built: its runs lose the "preparing data" note."""
        with self._cond:
            self._unprepared.discard(experiment_id)
            self._prep_locks.pop(experiment_id, None)
            for job in self._jobs.values():
                if job.experiment_id == experiment_id and job.note == PREPARING:
                    job.note = None

    def _fail_preparation(self, experiment_id: str, reason: str) -> None:
        """Mark failed every run of the experiment that waits in this manager (and the task in hand)."""
        writes: list[tuple[str, str, str | None]] = []
        with self._cond:
            self._unprepared.discard(experiment_id)
            self._prep_locks.pop(experiment_id, None)
            for job in list(self._jobs.values()):
                if job.experiment_id == experiment_id and job.state in ACTIVE_STATES:
                    if job.state == QUEUED:
                        self._dequeue(job)
                    job.state, job.error, job.note = FAILED, reason, None
                    writes.append((job.run_id, FAILED, reason))
            self._cond.notify_all()
        self._write_states(writes)

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
        with self._cond:
            job.epoch, job.epochs, job.batch, job.n_batches = p.epoch, p.epochs, p.batch, p.n_batches
            if p.metrics is not None:
                job.metrics = dict(p.metrics)
                job.epochs_done = p.epoch + 1

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


def _check_dataset_exists(spec: ExperimentSpec, home) -> None:
    """Refuse a dataset that is not there, without reading it (its data is built later, off the caller).

    Raises
    ------
    DatasetError
        A registered id that is not registered, or a path that does not exist (``field`` is ``dataset``).
    """
    if spec.dataset == SYNTHETIC:
        return
    if is_dataset_id(spec.dataset):
        dataset_card(spec.dataset, home=home)  # raises: not registered
    elif not Path(spec.dataset).exists():
        raise DatasetError.at("dataset", f"no such folder or file {spec.dataset!r}")


def _refused(field: str, setting: str, problem: str) -> LaunchRefused:
    """``"FIELD (SETTING): PROBLEM"`` with ``field`` set: the limit, and the setting that changes it."""
    return LaunchRefused(f"{field} ({setting}): {problem}", field=field)


def _mb(n_bytes: int) -> str:
    """Bytes as whole MiB with thousands separators (at least 1 when positive)."""
    mb = n_bytes / MB
    return f"{max(1, round(mb)) if n_bytes > 0 else 0:,}"
