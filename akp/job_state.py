"""What the job manager keeps about each run it holds, and the snapshots it reports.

:class:`Job` is the live, mutable state of one run in a manager (guarded by the
manager's lock); :class:`Task` is what a worker takes from the queue: one run,
or all queued seeds of one condition as one vectorized group. A
:class:`JobSnapshot` is an immutable-by-convention copy that any thread may read.

Timing: :meth:`Job.record` notes when each epoch ends (on the manager's
monotonic clock), so a snapshot carries the measured seconds per epoch and the
run's remaining time; :func:`fill_eta` estimates queued runs from the measured
ones, and :func:`experiment_eta` the remaining time of a whole experiment over
the workers. All take the time as an argument, so tests use fixed clocks.
"""
from __future__ import annotations

import heapq
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from akp.runs import ACTIVE_STATES, QUEUED, RUNNING, RunRecord
from akp.store import RunStore


class JobSnapshot(RunRecord):
    """A run as :meth:`akp.jobs.JobManager.status` reports it: the store's record plus the live progress.

    Keys
    ----
    (those of :class:`akp.runs.RunRecord`), and:
    epoch : int
        0-based epoch in progress, or the last finished one.
    epochs : int
        The experiment's training budget.
    batch, n_batches : int
        Batches done in the epoch in progress, of how many (0 when unknown).
    metrics : dict or None
        The latest finished epoch's row.
    queue_position : int or None
        Runs ahead of it in the manager's queue (0 = next); None when not queued there.
    owner : str or None
        Who submitted it (None for runs the manager does not know).
    vectorized : bool
        Trained with the other seeds of its condition as one vectorized group.
    managed : bool
        Known to the manager (False: read from the store).
    note : str or None
        What a queued run waits for besides a worker, e.g. ``"preparing data"``.
    seconds_per_epoch : float or None
        Measured mean wall time of this run's epochs (while the first one trains: its pace so far); for
        queued runs, the mean of the experiment's measured runs (:func:`fill_eta`). None until measured.
    eta_seconds : float or None
        Remaining wall time of this run once it trains: 0 when it is final, None when not yet measurable.
    """

    epoch: int
    epochs: int
    batch: int
    n_batches: int
    metrics: dict[str, Any] | None
    queue_position: int | None
    owner: str | None
    vectorized: bool
    managed: bool
    note: str | None
    seconds_per_epoch: float | None
    eta_seconds: float | None


@dataclass
class Job:
    """One run held by a manager: where it is in the queue or in training."""

    run_id: str
    experiment_id: str
    condition: str
    seed: int
    epochs: int
    owner: str | None
    vectorized: bool = False
    state: str = QUEUED
    epoch: int = 0
    batch: int = 0
    n_batches: int = 0
    epochs_done: int = 0
    metrics: dict | None = None
    error: str | None = None
    stop_reason: str | None = None  # "cancel" or "shutdown" once asked to stop
    note: str | None = None  # e.g. "preparing data": its experiment's dataset is not built yet
    outcome: dict = field(default_factory=dict)  # majority_rate, pred_classes once the store has the result
    epoch_seconds: list[float] = field(default_factory=list)  # measured durations of epochs trained here
    mark: float | None = None  # clock time of the last epoch boundary (or first batch) seen live
    mark_epoch: int = 0  # the epoch that mark belongs to
    mark_batch: int = 0  # batches of mark_epoch already done at mark (0: mark is the epoch's start)

    def record(self, epoch: int, epochs: int, batch: int, n_batches: int, metrics: dict | None,
               now: float) -> None:
        """Take a progress report (called under the manager's lock) and time the epochs.

        Parameters
        ----------
        epoch, epochs, batch, n_batches : int
            As in :class:`akp.train.Progress`.
        metrics : dict or None
            Set on the report that ends an epoch.
        now : float
            The manager's monotonic clock.

        Notes
        -----
        An epoch is timed from the end of the previous one (exactly), or, for the first epoch trained
        here, from its first batch report, scaled up to the whole epoch. Restored epochs of a resumed
        run (metrics reported without batches) are not timed.
        """
        self.epoch, self.epochs, self.batch, self.n_batches = epoch, epochs, batch, n_batches
        if metrics is None:
            if self.mark is None or self.mark_epoch != epoch:
                self.mark, self.mark_epoch, self.mark_batch = now, epoch, batch
            return
        self.metrics = dict(metrics)
        self.epochs_done = epoch + 1
        if self.mark is not None and self.mark_epoch == epoch and n_batches > self.mark_batch:
            self.epoch_seconds.append((now - self.mark) * n_batches / (n_batches - self.mark_batch))
        self.mark, self.mark_epoch, self.mark_batch = now, epoch + 1, 0

    def seconds_per_epoch(self, now: float) -> float | None:
        """Mean measured epoch time; while the first epoch trains, its pace so far; None before any batch.

        Parameters
        ----------
        now : float
            The manager's monotonic clock.

        Returns
        -------
        float or None
        """
        if self.epoch_seconds:
            return statistics.fmean(self.epoch_seconds)
        if (self.state == RUNNING and self.mark is not None and self.mark_epoch == self.epoch
                and self.batch > self.mark_batch and self.n_batches and now > self.mark):
            return (now - self.mark) / (self.batch - self.mark_batch) * self.n_batches
        return None


@dataclass
class Task:
    """What one worker trains in one go: one run, or the runs of one condition as one vectorized group."""

    experiment_id: str
    condition: str
    run_ids: list[str]
    vectorized: bool
    jobs: list[Job] = field(default_factory=list)


def remaining_epochs(state: str, epoch: int, epochs: int, batch: int, n_batches: int, epochs_done: int) -> float:
    """Epochs a run still has to train: fractional while it runs, all of them while queued, 0 when final.

    Returns
    -------
    float
    """
    if state == RUNNING:
        done = max(float(epochs_done), epoch + (batch / n_batches if n_batches else 0.0))
        return max(0.0, epochs - done)
    if state == QUEUED:
        return float(max(0, epochs - epochs_done))
    return 0.0


def job_snapshot(job: Job, position: int | None, now: float | None = None) -> JobSnapshot:
    """A copy of a held run's state; ``position`` is its place in the queue (None if not queued).

    Parameters
    ----------
    job : Job
    position : int or None
    now : float, optional
        The manager's monotonic clock, for the live pace of a first epoch (None: measured epochs only).

    Returns
    -------
    JobSnapshot
    """
    spe = job.seconds_per_epoch(now if now is not None else float("-inf"))
    left = remaining_epochs(job.state, job.epoch, job.epochs, job.batch, job.n_batches, job.epochs_done)
    eta = 0.0 if job.state not in ACTIVE_STATES else (left * spe if spe is not None else None)
    metrics = dict(job.metrics) if job.metrics is not None else None
    latest = metrics or {}
    return {
        "run_id": job.run_id, "experiment_id": job.experiment_id, "condition": job.condition,
        "seed": job.seed, "state": job.state, "epochs_done": job.epochs_done,
        "test_acc": latest.get("test_acc"), "train_acc": latest.get("train_acc"), "gap": latest.get("gap"),
        "error": job.error, "majority_rate": job.outcome.get("majority_rate"),
        "pred_classes": job.outcome.get("pred_classes"),
        "epoch": job.epoch, "epochs": job.epochs, "batch": job.batch, "n_batches": job.n_batches,
        "metrics": metrics, "queue_position": position if job.state == QUEUED else None,
        "owner": job.owner, "vectorized": job.vectorized, "managed": True,
        "note": job.note if job.state == QUEUED else None,
        "seconds_per_epoch": spe, "eta_seconds": eta,
    }


def store_snapshot(store: RunStore, run: RunRecord, epochs: int) -> JobSnapshot:
    """The snapshot of a run no manager here holds, from its store record (reads the store)."""
    done = run["epochs_done"] or 0
    metrics = store.metrics(run["run_id"]) if done else []
    return {
        **run, "epochs_done": done,
        "epoch": max(0, done - 1), "epochs": epochs, "batch": 0, "n_batches": 0,
        "metrics": metrics[-1] if metrics else None, "queue_position": None,
        "owner": None, "vectorized": False, "managed": False, "note": None,
        "seconds_per_epoch": None, "eta_seconds": None if run["state"] in ACTIVE_STATES else 0.0,
    }


def fill_eta(snapshots: list[JobSnapshot]) -> list[JobSnapshot]:
    """Give runs without a measured pace (queued ones, mostly) the mean pace of their experiment's measured runs.

    Parameters
    ----------
    snapshots : list of JobSnapshot
        Changed in place (``seconds_per_epoch`` and ``eta_seconds`` of active runs that had none).

    Returns
    -------
    list of JobSnapshot
        The same list.
    """
    paces: dict[str, list[float]] = {}
    for s in snapshots:
        if s.get("seconds_per_epoch") is not None:
            paces.setdefault(s["experiment_id"], []).append(s["seconds_per_epoch"])
    for s in snapshots:
        pace = paces.get(s["experiment_id"])
        if s.get("seconds_per_epoch") is None and pace and s["state"] in ACTIVE_STATES:
            s["seconds_per_epoch"] = statistics.fmean(pace)
            s["eta_seconds"] = s["seconds_per_epoch"] * remaining_epochs(
                s["state"], s.get("epoch") or 0, s.get("epochs") or 0, s.get("batch") or 0,
                s.get("n_batches") or 0, s.get("epochs_done") or 0)
    return snapshots


def experiment_eta(snapshots: Sequence[JobSnapshot], workers: int) -> float | None:
    """Remaining wall time of an experiment: running runs finish, queued ones take the next free worker.

    A list schedule over ``workers``: each running run holds a worker for its ``eta_seconds``; queued
    runs, in queue order, start on the worker that frees first. Runs of other experiments queued ahead
    are not counted.

    Parameters
    ----------
    snapshots : sequence of JobSnapshot
        The experiment's runs (e.g. ``JobManager.status(experiment_id)`` after :func:`fill_eta`).
    workers : int
        The manager's concurrent jobs.

    Returns
    -------
    float or None
        Seconds until the last run ends; 0.0 when none is active; None while an active run has no
        estimate yet (nothing measured).
    """
    running = [s for s in snapshots if s["state"] == RUNNING]
    queued = sorted((s for s in snapshots if s["state"] == QUEUED),
                    key=lambda s: (s.get("queue_position") is None, s.get("queue_position") or 0))
    if not running and not queued:
        return 0.0
    if any(s.get("eta_seconds") is None for s in (*running, *queued)):
        return None
    free = sorted(float(s["eta_seconds"]) for s in running)
    slots = max(1, workers)
    free = free[-slots:] if len(free) > slots else free  # more running than workers: keep the longest
    heap = free + [0.0] * (slots - len(free))
    heapq.heapify(heap)
    end = max(heap)
    for s in queued:
        start = heapq.heappop(heap)
        finish = start + float(s["eta_seconds"])
        end = max(end, finish)
        heapq.heappush(heap, finish)
    return end
