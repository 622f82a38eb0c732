"""What the job manager keeps about each run it holds, and the snapshots it reports.

:class:`Job` is the live, mutable state of one run in a manager (guarded by the
manager's lock); :class:`Task` is what a worker takes from the queue: one run,
or all queued seeds of one condition as one vectorized group. A
:class:`JobSnapshot` is an immutable-by-convention copy that any thread may read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from akp.runs import QUEUED, RunRecord
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


@dataclass
class Task:
    """What one worker trains in one go: one run, or the runs of one condition as one vectorized group."""

    experiment_id: str
    condition: str
    run_ids: list[str]
    vectorized: bool
    jobs: list[Job] = field(default_factory=list)


def job_snapshot(job: Job, position: int | None) -> JobSnapshot:
    """A copy of a held run's state; ``position`` is its place in the queue (None if not queued)."""
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
    }
