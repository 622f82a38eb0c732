"""Execute a stored run: load its data, train it, and write every result to the store.

This is the one bridge between ``akp.train`` (or ``akp.vectorized``) and
``akp.store``; the job manager and the command line both call :func:`execute_run`
(or :func:`execute_vectorized`).

Checkpoints (:mod:`akp.checkpoints`): :func:`execute_run` saves one after every
finished epoch and, when the run has one from an earlier attempt (cancelled,
interrupted, failed), continues after its epoch instead of epoch 0. A checkpoint
that cannot be used (corrupt, another run's) is deleted with a warning in the
log and the run trains from epoch 0: the result is the same, only slower.
Vectorized groups neither write nor read checkpoints (they train from epoch 0).
"""
from __future__ import annotations

import logging
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from akp import checkpoints
from akp.checkpoints import CheckpointError
from akp.datasets import Dataset, load_dataset
from akp.experiment import ExperimentSpec, experiment_probe
from akp.runs import FAILED, FINISHED_STATES, QUEUED, RunRecord
from akp.store import RunStore
from akp.train import Progress, RunResult, train_run
from akp.vectorized import train_vectorized

log = logging.getLogger(__name__)

_CACHE_SIZE = 2
_cache: "OrderedDict[str, Dataset]" = OrderedDict()
_cache_lock = threading.Lock()


def _dataset_key(spec: ExperimentSpec, home) -> str:
    return f"{spec.dataset}|{sorted(spec.dataset_options.items())}|{home}"


def prime_dataset(spec: ExperimentSpec, home, data: Dataset) -> None:
    """Put an already loaded dataset in this process's cache, so :func:`cached_dataset` never reads it.

    A Ray worker gets the dataset from the object store, not from ``home`` (which is the driver's disk).
    """
    with _cache_lock:
        _cache[_dataset_key(spec, home)] = data
        _cache.move_to_end(_dataset_key(spec, home))
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def cached_dataset(spec: ExperimentSpec, home) -> Dataset:
    """Load the spec's dataset once per process (small LRU), since all runs of an experiment share it."""
    key = _dataset_key(spec, home)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = load_dataset(spec.dataset, spec.dataset_options, home=home)
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def ensure_probe(store: RunStore, experiment_id: str, spec: ExperimentSpec, data: Dataset) -> np.ndarray:
    """The experiment's probe images, chosen from ``data`` and stored first if they are not yet.

    :meth:`akp.jobs.JobManager.launch` records an experiment without building its
    data; the first run to train (in any executor) builds the probe set here.
    Two workers racing write the same images (the choice is fixed by the spec),
    atomically, so either write is the one that stays.

    Returns
    -------
    ndarray of float32, shape (probe_size, C, H, W)
    """
    if not store.has_probe(experiment_id):
        idx = experiment_probe(spec, data)
        store.save_probe(experiment_id, data.x_test[idx], data.y_test[idx])
    return store.probe_images(experiment_id)


def prepare_data(store: RunStore, experiment_id: str, *, keep: bool = True) -> Dataset:
    """Build (or load) an experiment's dataset and store its probe set: what launch leaves for later.

    Parameters
    ----------
    store : RunStore
    experiment_id : str
    keep : bool, default=True
        Keep the dataset in this process's cache (:func:`cached_dataset`) for the
        runs that train here next; False when they train in other processes.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError, StoreError, MemoryError, OSError
        Whatever building the data raises; the caller records it on the runs.
    """
    spec = store.spec(experiment_id)
    data = cached_dataset(spec, store.home) if keep else load_dataset(spec.dataset, spec.dataset_options,
                                                                       home=store.home)
    ensure_probe(store, experiment_id, spec, data)
    return data


def run_checkpoint(store: RunStore, run: RunRecord) -> Path:
    """Where the checkpoint of a stored run lives (inside its experiment's directory)."""
    return checkpoints.checkpoint_path(store.experiment_dir(run["experiment_id"]), run["run_id"])


def _identity(spec: ExperimentSpec, run: RunRecord) -> dict:
    return checkpoints.run_identity(run["condition"], run["seed"], spec.run_seed(run["condition"], run["seed"]),
                                    spec.epochs)


def resume_point(store: RunStore, run_id: str) -> tuple[int, str | None]:
    """Where a run would continue if it trained now: the first epoch to train, and why not later.

    Parameters
    ----------
    store : RunStore
    run_id : str

    Returns
    -------
    start : int
        0 when there is no usable checkpoint, else the epoch after the checkpoint's.
    problem : str or None
        Why a checkpoint file that exists cannot be used (the run then starts at 0).
    """
    run = store.run(run_id)
    spec = store.spec(run["experiment_id"])
    try:
        state = checkpoints.load_checkpoint(run_checkpoint(store, run), _identity(spec, run))
    except CheckpointError as exc:
        return 0, str(exc)
    return (0 if state is None else state["epoch"] + 1), None


def execute_run(
    store: RunStore,
    run_id: str,
    *,
    device: str = "cpu",
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult | None:
    """Train the stored run ``run_id`` and record its outcome.

    The run is marked ``running``; each finished epoch is written at once and
    checkpointed (:mod:`akp.checkpoints`); at the end the representations and
    final state are saved, and the checkpoint of a done or diverged run is
    deleted (unless ``AKP_KEEP_CHECKPOINTS`` is set). A run with a checkpoint
    from an earlier attempt continues after its epoch; an unusable checkpoint is
    deleted with a logged warning and the run starts from epoch 0. An exception
    marks the run ``failed`` with its message and is not re-raised, so a
    worker can go on with the next run.

    Parameters
    ----------
    store : RunStore
    run_id : str
    device : str
    on_progress : callable, optional
        Receives every :class:`~akp.train.Progress`.
    should_stop : callable, optional
        Cancels the run when it returns True.

    Returns
    -------
    RunResult or None
        None if the run failed, or was not ``queued`` (another process claimed it).
    """
    run = store.run(run_id)
    if not store.claim_run(run_id):
        return None  # not queued: another process trains it, or it already finished
    try:
        spec = store.spec(run["experiment_id"])
        schedule = spec.condition(run["condition"])
        data = cached_dataset(spec, store.home)
        probe = ensure_probe(store, run["experiment_id"], spec, data)
        path = run_checkpoint(store, run)

        def progress(p: Progress) -> None:
            if p.metrics is not None:
                event = schedule.event_at(p.epoch)
                store.record_epoch(run_id, p.metrics, event.to_dict() if event else None)
            if on_progress is not None:
                on_progress(p)

        def train(resume: dict | None) -> RunResult:
            return train_run(spec, schedule, run["seed"], dataset=data, probe=probe, device=device,
                             on_progress=progress, should_stop=should_stop, resume=resume,
                             on_checkpoint=lambda state: checkpoints.save_checkpoint(path, state))

        try:
            # claim_run cleared the store's rows: the restored history is written again as train_run reports it.
            result = train(checkpoints.load_checkpoint(path, _identity(spec, run)))
        except CheckpointError as exc:  # raised before any training or report: start over, loudly
            log.warning("run %s: %s; it trains again from epoch 0", run_id, exc)
            checkpoints.delete_checkpoint(path)
            result = train(None)
        store.save_result(run_id, result)
        if result.state in FINISHED_STATES and not checkpoints.keep_checkpoints():
            checkpoints.delete_checkpoint(path)  # cancelled runs keep theirs for resume
        return result
    except Exception as exc:  # noqa: BLE001 - any failure of one run must not stop the worker
        message = f"{type(exc).__name__}: {exc}"
        store.set_state(run_id, FAILED, error=message + "\n" + traceback.format_exc(limit=5))
        return None


def execute_vectorized(
    store: RunStore,
    run_ids: list[str],
    *,
    device: str = "cpu",
    on_progress: Callable[[str, Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    member_should_stop: Callable[[int], bool] | None = None,
) -> list[RunResult] | None:
    """Train stored runs of one condition as one vectorized group and record each like :func:`execute_run`.

    Every run is marked ``running``; each member's finished epoch is written at
    once; at the end each run's representations and final state are saved. An
    exception marks every run of the group ``failed`` with its message and is
    not re-raised. If another process has claimed any of the runs, the ones
    claimed here are queued again untouched and nothing trains.

    Parameters
    ----------
    store : RunStore
    run_ids : list of str
        Runs of one experiment and one condition (different seeds).
    device : str
    on_progress : callable, optional
        Receives ``(run_id, Progress)`` for every member after every batch (at the end of
        an epoch, ``Progress.metrics`` is that member's epoch row, or None if it stopped).
    should_stop : callable, optional
        Cancels the whole group when it returns True.
    member_should_stop : callable, optional
        Called with an index into ``run_ids``; cancels that member when it returns True.

    Returns
    -------
    list of RunResult or None
        None if the group failed or could not claim all its runs.

    Raises
    ------
    ValueError
        If the runs are not of one experiment and one condition.
    """
    runs = [store.run(r) for r in run_ids]
    if len({(r["experiment_id"], r["condition"]) for r in runs}) != 1:
        raise ValueError("run_ids: a vectorized group must be runs of one experiment and one condition")
    claimed = [run_id for run_id in run_ids if store.claim_run(run_id)]
    if len(claimed) != len(run_ids):
        for run_id in claimed:  # someone else has part of the group: give the rest back untouched
            store.set_state(run_id, QUEUED)
        return None
    saved: set[str] = set()
    try:
        experiment_id = runs[0]["experiment_id"]
        spec = store.spec(experiment_id)
        schedule = spec.condition(runs[0]["condition"])
        data = cached_dataset(spec, store.home)
        probe = ensure_probe(store, experiment_id, spec, data)

        def progress(p: Progress) -> None:
            rows = p.metrics if isinstance(p.metrics, dict) else {}
            if p.metrics is not None:
                event = schedule.event_at(p.epoch)
                for m, row in rows.items():
                    store.record_epoch(run_ids[m], row, event.to_dict() if event else None)
            if on_progress is not None:
                # At the end of an epoch only members that finished it report (a stopped one keeps its last state).
                members = rows if p.metrics is not None else dict.fromkeys(range(len(run_ids)))
                for m, row in members.items():
                    on_progress(run_ids[m], Progress(p.epoch, p.epochs, p.batch, p.n_batches, row))

        results = train_vectorized(spec, schedule, [r["seed"] for r in runs], dataset=data, probe=probe,
                                   device=device, on_progress=progress, should_stop=should_stop,
                                   member_should_stop=member_should_stop)
        for run_id, run, result in zip(run_ids, runs, results, strict=True):
            store.save_result(run_id, result)
            saved.add(run_id)
            if result.state in FINISHED_STATES and not checkpoints.keep_checkpoints():
                checkpoints.delete_checkpoint(run_checkpoint(store, run))  # one from an earlier unvectorized try
        return results
    except Exception as exc:  # noqa: BLE001 - any failure of one group must not stop the worker
        message = f"{type(exc).__name__}: {exc}"
        error = message + "\n" + traceback.format_exc(limit=5)
        for run_id in run_ids:
            if run_id not in saved:
                store.set_state(run_id, FAILED, error=error)
        return None
