"""Runs: their states and the one record shape that the store returns and everyone reads.

A run is one model trained under one condition with one seed. Its state moves
``queued`` → ``running`` → one of the final states; ``interrupted``, ``failed``
and ``cancelled`` runs can be queued again (resumed).
"""
from __future__ import annotations

from typing import TypedDict

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
DIVERGED = "diverged"
FAILED = "failed"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"

RUN_STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, DIVERGED, INTERRUPTED)
ACTIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (DONE, FAILED, CANCELLED, DIVERGED, INTERRUPTED)
# Runs that ended on their own and have results; diverged ones count as unhappy.
FINISHED_STATES = (DONE, DIVERGED)
RESUMABLE_STATES = (INTERRUPTED, FAILED, CANCELLED)


class RunRecord(TypedDict):
    """One run as the store returns it (and the job manager's snapshot extends it).

    Keys
    ----
    run_id, experiment_id, condition : str
    seed : int
    state : str
        One of :data:`RUN_STATES`.
    epochs_done : int
        Finished epochs (0 before the first).
    test_acc, train_acc, gap : float or None
        Of the last finished epoch.
    error : str or None
        Why the run failed, was cancelled or interrupted.
    majority_rate : float or None
        The test split's majority-class rate (None before the run finished, or in old stores).
    pred_classes : int or None
        Distinct classes the final model predicts on the test split.
    """

    run_id: str
    experiment_id: str
    condition: str
    seed: int
    state: str
    epochs_done: int
    test_acc: float | None
    train_acc: float | None
    gap: float | None
    error: str | None
    majority_rate: float | None
    pred_classes: int | None
