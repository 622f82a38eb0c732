"""Execute a stored run: load its data, train it, and write every result to the store.

This is the one bridge between ``akp.train`` and ``akp.store``; the job manager
and the command line both call :func:`execute_run`.
"""
from __future__ import annotations

import threading
import traceback
from collections import OrderedDict
from typing import Callable

from akp.data import Dataset, load_dataset
from akp.experiment import ExperimentSpec
from akp.store import RunStore
from akp.train import Progress, RunResult, train_run

_CACHE_SIZE = 2
_cache: "OrderedDict[str, Dataset]" = OrderedDict()
_cache_lock = threading.Lock()


def cached_dataset(spec: ExperimentSpec, home) -> Dataset:
    """Load the spec's dataset once per process (small LRU), since all runs of an experiment share it."""
    key = f"{spec.dataset}|{sorted(spec.dataset_options.items())}|{home}"
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = load_dataset(spec, home)
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
        None if the run failed.
    """
    run = store.run(run_id)
    store.reset_run(run_id, "running")
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
        store.set_state(run_id, "failed", error=message + "\n" + traceback.format_exc(limit=5))
        return None
