"""Launching and queueing experiments: limits checked before anything is written, data built off the request.

:class:`Launcher` is a part of :class:`akp.jobs.JobManager` (a mixin, so the
manager's module stays readable): :meth:`Launcher.launch` validates a spec,
checks the estimated peak memory (:mod:`akp.memory`), the user's quotas and the
queue cap (:mod:`akp.quotas`), and only then records the experiment and queues
its runs; the dataset and probe set are built by a worker before the first run
trains (:meth:`Launcher._prepare_and_run`). :meth:`Launcher.repair` queues again
the runs an older version left ``queued`` with no manager.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from akp import runner
from akp.access import check_user
from akp.datasets import SYNTHETIC, DatasetError, dataset_card, is_dataset_id
from akp.errors import JobError, QueueFullError, QuotaError
from akp.experiment import ExperimentSpec
from akp.job_state import Job, Task
from akp.memory import footprint
from akp.quotas import MB, LaunchRefused
from akp.runs import ACTIVE_STATES, FAILED, INTERRUPTED, QUEUED, RUNNING, RunRecord
from akp.vectorized import use_vectorized

log = logging.getLogger(__name__)

PREPARING = "preparing data"
_SHUTDOWN_ERROR = "interrupted: the job manager shut down"


class Launcher:
    """Launch, queueing, data preparation and repair: a part of :class:`akp.jobs.JobManager`.

    The manager provides the state these methods use (store, lock, jobs, tasks, limits, executor).
    """

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

    def _prepare_and_run(self, task: Task) -> None:
        """Train the task, building its experiment's data first if launch left that for later.

        One task per experiment builds the data while the others of that experiment
        wait (a lock per experiment). The thread executor builds it here and keeps it
        in this process's cache for its runs, as does ``ray`` (its driver loads the
        dataset and ships it with the probe set); ``process`` workers build it with
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
            elif self.executor.name != "process":  # thread: runs here; ray: the driver ships data and probe
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
