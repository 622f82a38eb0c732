"""Execute a stored run: load its data, train it, and write every result to the store.

This is the one bridge between ``akp.train`` (or ``akp.vectorized``) and
``akp.store``; the job manager and the command line both call :func:`execute_run`
(or :func:`execute_vectorized`).
"""
from __future__ import annotations

import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable

from akp.datasets import Dataset, load_dataset
from akp.experiment import ExperimentSpec
from akp.runs import FAILED, QUEUED
from akp.store import RunStore
from akp.train import Progress, RunResult, train_run
from akp.vectorized import train_vectorized

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


def execute_run(
    store: RunStore,
    run_id: str,
    *,
    device: str = "cpu",
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult | None:
    """Train the stored run ``run_id`` and record its outcome.

    The run is marked ``running``; each finished epoch is written at once;
    at the end the representations and final state are saved. An exception
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
        probe = store.probe_images(run["experiment_id"])

        def progress(p: Progress) -> None:
            if p.metrics is not None:
                event = schedule.event_at(p.epoch)
                store.record_epoch(run_id, p.metrics, event.to_dict() if event else None)
            if on_progress is not None:
                on_progress(p)

        result = train_run(spec, schedule, run["seed"], dataset=data, probe=probe, device=device,
                           on_progress=progress, should_stop=should_stop)
        store.save_result(run_id, result)
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
        probe = store.probe_images(experiment_id)

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
        for run_id, result in zip(run_ids, results, strict=True):
            store.save_result(run_id, result)
            saved.add(run_id)
        return results
    except Exception as exc:  # noqa: BLE001 - any failure of one group must not stop the worker
        message = f"{type(exc).__name__}: {exc}"
        error = message + "\n" + traceback.format_exc(limit=5)
        for run_id in run_ids:
            if run_id not in saved:
                store.set_state(run_id, FAILED, error=error)
        return None
