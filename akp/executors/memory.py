"""A store-like recorder for runs that train away from the store's disk (Ray tasks, maybe on other nodes).

SQLite must never be used over a network file system, so a Ray task does not
open the run store. It gives the runner a :class:`MemoryStore` instead: the
methods of :class:`akp.store.RunStore` that the runner calls, served from what
the driver shipped (the run records, the spec, the probe set, the runs'
checkpoints) and recording what the runner writes. Every finished epoch goes
back at once through ``sink``, with the checkpoint the runner has just written
for it; the results and final states are kept in :attr:`MemoryStore.outcomes`
and returned with the task. On the driver, :func:`write_epoch` and
:func:`replay_outcomes` write both to the real store.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from akp import checkpoints
from akp.experiment import ExperimentSpec
from akp.paths import atomic_write_bytes
from akp.runner import run_checkpoint
from akp.runs import FINISHED_STATES, QUEUED, RUN_STATES, RUNNING, RunRecord
from akp.store import RunStore

#: An item sent through ``sink`` per finished epoch: ``("epoch", run_id, row, event, checkpoint bytes or None)``.
EpochItem = tuple[str, str, dict, "dict | None", "bytes | None"]


class MemoryStore:
    """The part of :class:`akp.store.RunStore` the runner uses, in memory, with checkpoints in ``workdir``.

    Parameters
    ----------
    home : str
        The driver's store home: only the dataset cache's key (:func:`akp.runner.cached_dataset`), never opened.
    spec : dict
        ``ExperimentSpec.to_dict()`` of the task's experiment.
    runs : list of RunRecord
        The task's runs as the driver claimed them (taken as ``queued`` here, for the runner to claim).
    probe : ndarray
        The experiment's probe images.
    workdir : str or Path
        A directory local to the task, for the runs' checkpoints (the runner reads and writes them there).
    sink : callable
        Receives an :data:`EpochItem` for every finished epoch.
    checkpoints_in : dict, optional
        ``run_id -> bytes`` of the checkpoints the driver holds, written to ``workdir`` so the runs resume.

    Notes
    -----
    A store method the runner starts to call later is missing here until it
    is added, and fails loudly: the run is recorded ``failed`` with the
    AttributeError, never silently half-saved.
    """

    def __init__(self, home: str, spec: dict[str, Any], runs: list[RunRecord], probe: np.ndarray,
                 workdir: str | Path, sink: Callable[[tuple], None],
                 checkpoints_in: dict[str, bytes] | None = None) -> None:
        self.home = Path(home)
        self._spec = ExperimentSpec.from_dict(spec)
        self._runs = {r["run_id"]: {**r, "state": QUEUED} for r in runs}
        self._probe = probe
        self._workdir = Path(workdir)
        self._sink = sink
        self._sent: dict[str, tuple[int, int, int]] = {}  # run_id -> stamp of the checkpoint last sent
        #: ``("result", run_id, RunResult)`` and ``("state", run_id, state, error)``, in order.
        self.outcomes: list[tuple] = []
        for run_id, data in (checkpoints_in or {}).items():
            path = run_checkpoint(self, self._runs[run_id])  # type: ignore[arg-type]
            atomic_write_bytes(path, data)
            self._sent[run_id] = _stamp(path)  # the driver has this one already

    def experiment_dir(self, experiment_id: str) -> Path:
        return self._workdir / experiment_id

    def run(self, run_id: str) -> RunRecord:
        return dict(self._runs[run_id])  # type: ignore[return-value]

    def claim_run(self, run_id: str) -> bool:
        run = self._runs[run_id]
        if run["state"] != QUEUED:
            return False
        run["state"] = RUNNING
        return True

    def spec(self, experiment_id: str) -> ExperimentSpec:
        return self._spec

    def probe_images(self, experiment_id: str) -> np.ndarray:
        return self._probe

    def record_epoch(self, run_id: str, row: dict[str, Any], event: dict[str, Any] | None = None) -> None:
        # The runner saves an epoch's checkpoint before it reports the epoch: send the two together.
        path = run_checkpoint(self, self._runs[run_id])  # type: ignore[arg-type]
        data = None
        stamp = _stamp(path)
        if stamp is not None and stamp != self._sent.get(run_id):
            data = path.read_bytes()
            self._sent[run_id] = stamp
        self._sink(("epoch", run_id, dict(row), event, data))

    def save_result(self, run_id: str, result) -> None:
        self._runs[run_id]["state"] = result.state
        self.outcomes.append(("result", run_id, result))

    def set_state(self, run_id: str, state: str, *, error: str | None = None) -> None:
        if state not in RUN_STATES:
            raise ValueError(f"state: unknown {state!r}")
        self._runs[run_id]["state"] = state
        self.outcomes.append(("state", run_id, state, error))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def shipped_checkpoints(store: RunStore, runs: list[RunRecord]) -> dict[str, bytes]:
    """The checkpoints the driver holds for ``runs`` (``run_id -> bytes``), to resume them in a task."""
    found = {}
    for run in runs:
        path = run_checkpoint(store, run)
        if path.is_file():
            found[run["run_id"]] = path.read_bytes()
    return found


def write_epoch(store: RunStore, item: tuple) -> None:
    """Write one :data:`EpochItem` to the real store: the epoch's row, then its checkpoint (on the driver)."""
    _, run_id, row, event, data = item
    store.record_epoch(run_id, row, event)
    if data is not None:
        atomic_write_bytes(run_checkpoint(store, store.run(run_id)), data)


def replay_outcomes(store: RunStore, outcomes: list[tuple]) -> None:
    """Write a :class:`MemoryStore`'s outcomes to the real store, in order (on the driver).

    As :func:`akp.runner.execute_run` does with its own, the checkpoint of a run
    that finished (done or diverged) is deleted unless checkpoints are kept.
    """
    for outcome in outcomes:
        if outcome[0] == "result":
            run_id, result = outcome[1], outcome[2]
            store.save_result(run_id, result)
            if result.state in FINISHED_STATES and not checkpoints.keep_checkpoints():
                checkpoints.delete_checkpoint(run_checkpoint(store, store.run(run_id)))
        else:
            store.set_state(outcome[1], outcome[2], error=outcome[3])
