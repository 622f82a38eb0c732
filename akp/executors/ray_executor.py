"""The ``ray`` executor: each task (a run, or a vectorized group) is a Ray task, on a local Ray or a cluster.

Ray is imported here only, and this module only when the ``ray`` executor is
chosen (:func:`akp.executors.make_executor`). What goes where:

- the dataset is loaded once on the driver and put in Ray's object store
  (``ray.put``); every task gets the same reference, so each node fetches it
  once and the tasks there read it from shared memory;
- each task gets its runs' records, the spec, the probe set and the runs'
  checkpoints (small); it trains against a
  :class:`~akp.executors.memory.MemoryStore` (the run store is never opened in
  a task: SQLite must not be used over a network file system), sends every
  finished epoch (its row and checkpoint) and its progress back through a
  small channel actor as they come, and returns the results (metrics, events,
  representations) when it ends;
- the driver, in the job manager's thread, writes all of it to the store and
  forwards cancels, which the task reads before every batch.

A task that is lost (its worker killed, out of memory, its node gone) has its
runs marked ``failed`` with Ray's reason; they resume from the last epoch whose
checkpoint came back.
"""
from __future__ import annotations

import logging
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any

from akp import runner
from akp.executors.base import Executor, ProgressFn, StopFn, fail_unfinished
from akp.executors.memory import MemoryStore, replay_outcomes, shipped_checkpoints, write_epoch
from akp.executors.settings import ExecutorError, check_ray_address
from akp.runs import ACTIVE_STATES, CANCELLED, QUEUED
from akp.store import RunStore
from akp.train import Progress

log = logging.getLogger(__name__)

#: How often the driver collects progress and forwards cancels.
POLL_S = 0.1
#: How often a task asks the channel for cancels, and sends batch progress.
TASK_POLL_S = 0.05
#: After a cancel, how long a task that has not ended (still waiting for a CPU, say) is given before Ray cancels it.
STOP_GRACE_S = 30.0
#: Datasets kept in the object store at once (the least recently used is released).
DATASETS_KEPT = 2

_RAY_LOCK = threading.Lock()
_RAY_USERS = 0  # executors of this process using Ray
_RAY_STARTED = False  # True when one of them started or joined it (then the last one to close shuts it down)


class _Channel:
    """A Ray actor: items from tasks to the driver, cancels from the driver to tasks (both keyed per task)."""

    def __init__(self) -> None:
        self.items: dict[str, list] = {}
        self.stops: dict[str, set[str]] = {}

    def put(self, key: str, item: tuple) -> None:
        self.items.setdefault(key, []).append(item)

    def take(self, key: str) -> list:
        return self.items.pop(key, [])

    def stop(self, key: str, run_ids: list[str]) -> None:
        self.stops.setdefault(key, set()).update(run_ids)

    def stopped(self, key: str) -> list[str]:
        return sorted(self.stops.get(key, ()))

    def forget(self, key: str) -> None:
        self.items.pop(key, None)
        self.stops.pop(key, None)


class _TaskControl:
    """Inside a task: asks the channel for cancels without blocking the batch, and sends items (progress throttled)."""

    def __init__(self, ray, channel, key: str, run_ids: list[str]) -> None:
        self.ray, self.channel, self.key, self.run_ids = ray, channel, key, run_ids
        self.stopped: set[str] = set()
        self._pending = None  # the answer to the last "stopped?" question, when it comes
        self._asked = 0.0
        self._last: dict[str, float] = {}

    def should_stop(self) -> bool:
        if self._pending is not None and self.ray.wait([self._pending], timeout=0)[0]:
            self.stopped.update(self.ray.get(self._pending))
            self._pending = None
        now = time.monotonic()
        if self._pending is None and now - self._asked >= TASK_POLL_S:
            self._pending, self._asked = self.channel.stopped.remote(self.key), now
        return all(r in self.stopped for r in self.run_ids)

    def member_should_stop(self, member: int) -> bool:
        return self.run_ids[member] in self.stopped  # should_stop has just asked

    def progress(self, run_id: str, p: Progress) -> None:
        now = time.monotonic()
        if p.metrics is None and now - self._last.get(run_id, 0.0) < TASK_POLL_S:
            return  # a message per batch would cost more than the batch on small models
        self._last[run_id] = now
        self.send(("progress", run_id, p.epoch, p.epochs, p.batch, p.n_batches, p.metrics))

    def send(self, item: tuple) -> None:
        self.channel.put.remote(self.key, item)  # one caller's calls to an actor run in order

    def flush(self) -> None:
        """Wait until every item sent so far is in the channel."""
        self.ray.get(self.channel.put.remote(self.key, ("flushed",)))


def _train_task(payload: dict[str, Any], data, channel) -> list[tuple]:
    """The Ray task: train with a :class:`MemoryStore` and return its outcomes (runs on a Ray worker).

    Parameters
    ----------
    payload : dict
        What :meth:`RayExecutor._payload` built.
    data : Dataset
        From the object store (Ray resolves the reference; its arrays are read-only shared memory).
    channel : ActorHandle
        The executor's :class:`_Channel`.

    Returns
    -------
    list of tuple
        :attr:`MemoryStore.outcomes`.
    """
    import ray
    import torch

    torch.set_num_threads(payload["threads"])
    run_ids = payload["run_ids"]
    control = _TaskControl(ray, channel, payload["key"], run_ids)
    with tempfile.TemporaryDirectory(prefix="akp-ray-") as workdir:
        store = MemoryStore(payload["home"], payload["spec"], payload["runs"], payload["probe"], workdir,
                            control.send, payload["checkpoints"])
        runner.prime_dataset(store.spec(""), store.home, data)  # the object store's copy: never read from disk
        with warnings.catch_warnings():
            # torch.from_numpy on the object store's read-only arrays warns; training never writes to them.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            if payload["vectorized"]:
                runner.execute_vectorized(store, run_ids, device=payload["device"], on_progress=control.progress,
                                          should_stop=control.should_stop,
                                          member_should_stop=control.member_should_stop)
            else:
                run_id = run_ids[0]
                runner.execute_run(store, run_id, device=payload["device"],
                                   on_progress=lambda p: control.progress(run_id, p),
                                   should_stop=control.should_stop)
    control.flush()
    return store.outcomes


def _connect(ray, address: str | None, cpus: int) -> None:
    """Join ``address`` (or start a local Ray with ``cpus`` CPUs) unless this process is connected already."""
    global _RAY_USERS, _RAY_STARTED
    with _RAY_LOCK:
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": logging.WARNING, "configure_logging": True}
            if address:
                check_ray_address(address)  # seconds, where ray.init would retry for a minute
                import akp  # ship this code to the cluster, so its workers run what the driver runs

                kwargs["runtime_env"] = {"py_modules": [akp]}
            else:
                kwargs["num_cpus"] = cpus
            # A new local Ray turns on token authentication and says so at WARNING: the secure default
            # needs no words; every other warning (and the cluster's own) still shows.
            auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
            level = auth_log.level
            if not address:
                auth_log.setLevel(logging.ERROR)
            try:
                ray.init(address=address or "local", **kwargs)
            except Exception as exc:  # noqa: BLE001 - ray raises many kinds; a person needs one message
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                if address:
                    raise ExecutorError.at("RAY_ADDRESS", f"could not join the Ray cluster at {address!r} "
                                           f"({reason}); check that its head node runs the same Ray version and, "
                                           "if it uses token authentication, set RAY_AUTH_MODE=token with its "
                                           "token here; or unset RAY_ADDRESS to train on a local Ray") from None
                raise ExecutorError.at("executor", f"(AKP_EXECUTOR or --executor) could not start a local Ray "
                                       f"({reason}); choose thread or process") from None
            finally:
                auth_log.setLevel(level)
            _RAY_STARTED = True
        _RAY_USERS += 1


def _disconnect(ray) -> None:
    global _RAY_USERS, _RAY_STARTED
    with _RAY_LOCK:
        _RAY_USERS = max(0, _RAY_USERS - 1)
        if _RAY_USERS == 0 and _RAY_STARTED:
            ray.shutdown()
            _RAY_STARTED = False


def _check_node_cpus(ray, threads: int) -> None:
    """A task asks for ``threads`` CPUs on one node: refuse at once what no node can give (it would wait forever)."""
    largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if largest < threads:
        raise ExecutorError.at("threads", f"(AKP_THREADS_PER_WORKER or --threads) each Ray task asks for {threads} "
                               f"CPUs, but the largest Ray node has {largest:g}; ask for at most {int(largest)}")


class RayExecutor(Executor):
    """Train tasks as Ray tasks, up to ``workers`` at once, each asking for ``threads`` CPUs (its torch threads).

    Parameters
    ----------
    workers, threads : int
    address : str, optional
        The cluster (``RAY_ADDRESS``); None starts a local Ray with ``workers * threads`` CPUs. When this
        process is connected to Ray already (``ray.init`` was called), that Ray is used and left running.

    Raises
    ------
    ExecutorError
        Ray is not installed or cannot start (``field="executor"``), or the cluster does not answer
        (``field="RAY_ADDRESS"``).
    """

    name = "ray"

    def __init__(self, workers: int, threads: int, *, address: str | None = None) -> None:
        super().__init__(workers, threads)
        try:
            import ray
        except ImportError:
            raise ExecutorError.at("executor", "(AKP_EXECUTOR or --executor) ray is not installed; "
                                   "pip install 'ray>=2.40,<3', or choose thread or process") from None
        self._ray = ray
        self.address = address
        _connect(ray, address, workers * threads)
        try:
            _check_node_cpus(ray, threads)
        except ExecutorError:
            _disconnect(ray)
            raise
        self._closed = False
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Any] = OrderedDict()  # dataset key -> ObjectRef, put once
        self._remote = ray.remote(num_cpus=threads, max_retries=0)(_train_task)
        self._channel = ray.remote(num_cpus=0)(_Channel).remote()
        self._tasks = 0

    def run(self, store: RunStore, run_ids: list[str], *, vectorized: bool, device: str,
            on_progress: ProgressFn, should_stop: StopFn) -> None:
        """Claim the runs here, train them in a Ray task, write what comes back; see :meth:`Executor.run`."""
        claimed = [r for r in run_ids if store.claim_run(r)]
        if len(claimed) != len(run_ids):
            for run_id in claimed:  # another process has part of the task: give the rest back untouched
                store.set_state(run_id, QUEUED)
            return
        with self._lock:
            self._tasks += 1
            key = f"task-{self._tasks}"
        ref = None
        try:
            ref = self._remote.remote(self._payload(store, run_ids, vectorized, device, key),
                                      self._dataset_ref(store, run_ids[0]), self._channel)
            outcomes = self._supervise(store, key, ref, run_ids, on_progress, should_stop)
            if outcomes is not None:
                replay_outcomes(store, outcomes)
        except Exception as exc:  # noqa: BLE001 - a lost task (worker killed, node gone) fails its runs only
            reason = (str(exc).strip().splitlines() or [""])[-1]
            log.warning("runs %s: the Ray task failed or was lost: %s", run_ids, reason)
            if ref is not None:
                try:  # the driver failed (its store, say) while the task trains on: stop it
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - it ended already, or Ray is down
                    pass
            fail_unfinished(store, run_ids, f"failed on Ray: {type(exc).__name__}: {reason}")
        finally:
            try:
                self._channel.forget.remote(key)
            except Exception:  # noqa: BLE001 - Ray already down: nothing to forget
                pass

    def _payload(self, store: RunStore, run_ids: list[str], vectorized: bool, device: str,
                 key: str) -> dict[str, Any]:
        runs = [store.run(r) for r in run_ids]
        experiment_id = runs[0]["experiment_id"]
        return {"key": key, "home": str(store.home), "spec": store.spec(experiment_id).to_dict(),
                "runs": runs, "probe": store.probe_images(experiment_id), "run_ids": list(run_ids),
                "checkpoints": {} if vectorized else shipped_checkpoints(store, runs),
                "vectorized": vectorized, "device": device, "threads": self.threads}

    def _dataset_ref(self, store: RunStore, run_id: str):
        """The dataset's object-store reference: loaded and put once per dataset (a few kept)."""
        spec = store.spec(store.run(run_id)["experiment_id"])
        key = f"{spec.dataset}|{sorted(spec.dataset_options.items())}|{store.home}"
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        ref = self._ray.put(runner.cached_dataset(spec, store.home))
        with self._lock:
            self._data[key] = ref
            while len(self._data) > DATASETS_KEPT:
                self._data.popitem(last=False)  # dropping the last reference frees it in the object store
        return ref

    def _supervise(self, store: RunStore, key: str, ref, run_ids: list[str], on_progress: ProgressFn,
                   should_stop: StopFn) -> list[tuple] | None:
        """Write epochs and progress, forward cancels, until the task ends; return its outcomes.

        Returns None when the task did not end within :data:`STOP_GRACE_S` of a
        cancel for all its runs: Ray cancels it, and its runs still active are marked ``cancelled``.
        """
        ray, asked, all_stopped_at = self._ray, set(), None
        while True:
            done, _ = ray.wait([ref], timeout=POLL_S)
            self._apply(store, ray.get(self._channel.take.remote(key)), on_progress)
            stop = {r for r in run_ids if should_stop(r)} - asked
            if stop:
                self._channel.stop.remote(key, sorted(stop))
                asked |= stop
            if done:
                break
            if all_stopped_at is None and len(asked) == len(run_ids):
                all_stopped_at = time.monotonic()
            if all_stopped_at is not None and time.monotonic() - all_stopped_at > STOP_GRACE_S:
                ray.cancel(ref, force=True)
                for run_id in run_ids:
                    if store.run(run_id)["state"] in ACTIVE_STATES:
                        store.set_state(run_id, CANCELLED, error="cancelled before its Ray task ended")
                return None
        outcomes = ray.get(ref)  # raises if the task was lost
        self._apply(store, ray.get(self._channel.take.remote(key)), on_progress)  # flushed before it returned
        return outcomes

    @staticmethod
    def _apply(store: RunStore, items: list, on_progress: ProgressFn) -> None:
        for item in items:
            if item[0] == "epoch":
                write_epoch(store, item)
            elif item[0] == "progress":
                on_progress(item[1], Progress(*item[2:]))

    def describe(self) -> str:
        """E.g. ``"ray 2x1 (local)"`` or ``"ray 2x1 (10.0.0.5:6379)"``."""
        return f"{super().describe()} ({self.address or 'local'})"

    def close(self) -> None:
        """Stop the channel and, if this executor's process started Ray and nobody else uses it, shut it down."""
        if self._closed:
            return
        self._closed = True
        try:
            self._ray.kill(self._channel)
        except Exception:  # noqa: BLE001 - Ray may already be down
            log.debug("could not stop the channel actor", exc_info=True)
        self._data.clear()
        _disconnect(self._ray)
