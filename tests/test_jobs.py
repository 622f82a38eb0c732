"""Job manager: queueing, cancelling, failures, quotas, restart recovery and crash safety."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import akp.runner
from akp.jobs import JobError, JobManager, JobSnapshot, QueueFullError, QuotaError, worker_threads
from akp.runs import CANCELLED, FINAL_STATES, INTERRUPTED, QUEUED, RunRecord
from akp.store import RunStore
from tests.specs import small_smoke_spec

ROOT = Path(__file__).resolve().parents[1]


def tiny_spec(name: str = "tiny", *, epochs: int = 2, seeds=(0, 1), n_train: int = 160, both: bool = False):
    """The smoke preset made smaller: 1 (or both) conditions, few images, a small probe set."""
    return small_smoke_spec(name, epochs=epochs, seeds=seeds, n_train=n_train, n_test=80,
                            conditions=slice(None) if both else slice(0, 1))




@pytest.fixture
def gate(monkeypatch):
    """Make every run wait until ``gate.set()``: deterministic queue states."""
    event = threading.Event()
    real = akp.runner.train_run

    def waiting(*args, **kwargs):
        assert event.wait(60), "gate never opened"
        return real(*args, **kwargs)

    monkeypatch.setattr(akp.runner, "train_run", waiting)
    yield event
    event.set()


def assert_matches_store(store: RunStore, snaps: list[dict]) -> None:
    for s in snaps:
        run = store.run(s["run_id"])
        assert {k: s[k] for k in run} == run, s["run_id"]  # a snapshot extends the store's record
        metrics = store.metrics(s["run_id"])
        assert s["epochs_done"] == run["epochs_done"] == len(metrics)
        assert s["metrics"] == (metrics[-1] if metrics else None)


def test_experiments_run_one_is_cancelled_mid_run_the_others_finish(store):
    ids = [store.create_experiment(tiny_spec("a")),
           store.create_experiment(tiny_spec("b", epochs=4, n_train=480)),
           store.create_experiment(tiny_spec("c"))]
    manager = JobManager(store, max_workers=1)
    try:
        for eid in ids:
            assert len(manager.submit(eid)) == 2
        # Queue order and positions: runs ahead of each queued run.
        positions = [s["queue_position"] for s in manager.status() if s["state"] == "queued"]
        assert positions == sorted(positions) and positions[0] >= 0
        deadline = time.monotonic() + 240  # generous: a loaded 2-core CI machine
        while True:  # cancel b once its first run has trained a batch
            snap = manager.status(ids[1])[0]
            if snap["state"] == "running" and snap["batch"] >= 1:
                break
            assert snap["state"] in ("queued", "running") and time.monotonic() < deadline, snap
            time.sleep(0.01)
        assert set(manager.cancel(ids[1])) == {r["run_id"] for r in store.runs(ids[1])}
        # The queued run of b is cancelled at once; the running one stops within a batch.
        assert manager.status(ids[1])[1]["state"] == "cancelled"
        for eid in ids:
            assert manager.wait(eid, timeout=60)
    finally:
        manager.shutdown()
    for eid in (ids[0], ids[2]):
        snaps = manager.status(eid)
        assert [s["state"] for s in snaps] == ["done", "done"]
        assert all(s["epochs_done"] == 2 and s["metrics"]["epoch"] == 1 for s in snaps)
        assert_matches_store(store, snaps)
        assert store.representations(snaps[0]["run_id"], "logits").shape == (16, 2)
    snaps = manager.status(ids[1])
    assert [s["state"] for s in snaps] == ["cancelled", "cancelled"]
    assert snaps[0]["epochs_done"] < 4  # stopped before the end
    assert_matches_store(store, snaps)
    assert manager.cancel(ids[0]) == []  # finished runs are left alone


def test_a_run_that_raises_is_failed_and_the_worker_goes_on(store, monkeypatch):
    real = akp.runner.train_run

    def flaky(spec, schedule, seed, **kwargs):
        if seed == 0:
            raise RuntimeError("boom in seed 0")
        return real(spec, schedule, seed, **kwargs)

    monkeypatch.setattr(akp.runner, "train_run", flaky)
    eid = store.create_experiment(tiny_spec(epochs=1, seeds=(0, 1, 2)))
    with JobManager(store) as manager:
        manager.submit(eid)
        assert manager.wait(eid, timeout=60)
        snaps = manager.status(eid)
    assert [s["state"] for s in snaps] == ["failed", "done", "done"]
    assert snaps[0]["error"].startswith("RuntimeError: boom in seed 0")
    assert store.run(snaps[0]["run_id"])["error"] == snaps[0]["error"]
    assert_matches_store(store, snaps)


def test_restart_marks_orphans_interrupted_and_resume_completes_them(store):
    eid = store.create_experiment(tiny_spec(epochs=1, seeds=(0, 1, 2)))
    runs = [r["run_id"] for r in store.runs(eid)]
    store.set_state(runs[0], "running")  # a process died while training it
    # A dead manager (its lock is free) had taken runs[1]; runs[2] was never submitted.
    jobs_dir = store.home / "jobs"
    jobs_dir.mkdir()
    (jobs_dir / "999-dead.lock").write_text("")
    (jobs_dir / "999-dead.runs").write_text(runs[1])

    manager = JobManager(store)
    try:
        assert sorted(manager.recovered) == sorted(runs[:2])
        assert [r["state"] for r in store.runs(eid)] == ["interrupted", "interrupted", "queued"]
        assert "interrupted" in store.run(runs[0])["error"]
        assert not (jobs_dir / "999-dead.lock").exists()
        # Store snapshots for runs the manager does not hold.
        assert [(s["state"], s["managed"]) for s in manager.status(eid)] == [
            ("interrupted", False), ("interrupted", False), ("queued", False)]
        assert manager.wait(eid, timeout=0.2) is False  # a queued run is not final
        assert sorted(manager.resume(eid)) == sorted(runs)
        assert manager.wait(eid, timeout=60)
    finally:
        manager.shutdown()
    assert [r["state"] for r in store.runs(eid)] == ["done"] * 3
    assert all(r["error"] is None for r in store.runs(eid))


def test_a_live_manager_keeps_its_runs(store, gate):
    eid = store.create_experiment(tiny_spec(epochs=1))
    first = JobManager(store)
    try:
        first.submit(eid)
        deadline = time.monotonic() + 30
        while first.status(eid)[0]["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = JobManager(store)  # e.g. the CLI started while the app trains
        assert second.recovered == []
        assert [r["state"] for r in store.runs(eid)] == ["running", "queued"]
        assert second.submit(eid) == []  # held by the first manager
        second.shutdown()
        gate.set()
        assert first.wait(eid, timeout=60)
    finally:
        gate.set()
        first.shutdown()
    assert [r["state"] for r in store.runs(eid)] == ["done", "done"]


def test_shutdown_without_wait_marks_unfinished_runs_interrupted(store, gate):
    eid = store.create_experiment(tiny_spec(epochs=1))
    manager = JobManager(store)
    manager.submit(eid)
    deadline = time.monotonic() + 30
    while manager.status(eid)[0]["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    manager.shutdown(wait=False)
    assert store.runs(eid)[1]["state"] == "interrupted"
    gate.set()
    assert manager.wait(eid, timeout=60)
    assert [r["state"] for r in store.runs(eid)] == ["interrupted", "interrupted"]
    with pytest.raises(JobError, match="shut down"):
        manager.submit(eid)


def test_queue_full_and_quota_errors_queue_nothing(store, gate):
    small = store.create_experiment(tiny_spec("small", epochs=1))                     # 2 runs
    big = store.create_experiment(tiny_spec("big", epochs=1, seeds=(0, 1, 2, 3)))    # 4 runs
    with pytest.raises(ValueError, match="max_queued"):
        JobManager(store, max_queued=0)
    manager = JobManager(store, max_workers=1, max_queued=3, max_per_owner=3)
    try:
        with pytest.raises(QueueFullError, match="max_queued: the queue holds 0 of at most 3 runs; 4 more"):
            manager.submit(big)
        assert manager.status() == []
        assert [r["state"] for r in store.runs(big)] == ["queued"] * 4

        assert len(manager.submit(small, owner="ann")) == 2
        other = store.create_experiment(tiny_spec("other", epochs=1), owner="ann")
        with pytest.raises(QuotaError, match="max_per_owner: 'ann' has 2 queued or running runs of at most 3"):
            manager.submit(other)  # the experiment's stored owner counts
        assert {s["experiment_id"] for s in manager.status()} == {small}
        assert issubclass(QuotaError, ValueError) and issubclass(QueueFullError, ValueError)
        with pytest.raises(JobError, match="no run or experiment"):
            manager.cancel("nope")
        # Cancelling a never-submitted experiment cancels its queued runs in the store.
        assert len(manager.cancel(big)) == 4
        assert [r["state"] for r in store.runs(big)] == ["cancelled"] * 4
        gate.set()
        assert manager.wait(small, timeout=60)
        assert len(manager.submit(other, owner="bob")) == 2  # quota freed, other owner
        assert manager.wait(other, timeout=60)
    finally:
        gate.set()
        manager.shutdown()


def test_worker_threads_share_the_cores():
    assert worker_threads(1, cores=16) == 16
    assert worker_threads(3, cores=16) == 5
    assert worker_threads(4, cores=2) == 1


def test_manager_sets_torch_threads(store):
    manager = JobManager(store, max_workers=2)
    manager.shutdown()
    assert torch.get_num_threads() == manager.threads == worker_threads(2)


def test_sigkill_during_training_leaves_a_consistent_store(tmp_path):
    home = tmp_path / "home"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(tiny_spec("killed", epochs=2, seeds=(0, 1, 2, 3), n_train=320).to_dict()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "akp", "experiment", str(spec_file), "--home", str(home),
                             "--quiet"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        eid = None
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no run finished in time"
            if (home / "akp.sqlite").exists():
                probe = RunStore(home)
                exps = probe.experiments()
                if exps:
                    eid = exps[0]["id"]
                    if any(r["state"] == "done" for r in probe.runs(eid)):
                        break
                probe.close()
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = RunStore(home)
    runs = store.runs(eid)
    done = [r for r in runs if r["state"] == "done"]
    assert done and len(done) < 4
    for r in done:
        metrics = store.metrics(r["run_id"])
        assert [m["epoch"] for m in metrics] == [0, 1] and r["test_acc"] == metrics[-1]["test_acc"]
        assert store.representation_epochs(r["run_id"], "embedding") == [-1, 0, 1]
        assert np.isfinite(store.representations(r["run_id"], "embedding")).all()
    assert not list((home / "runs").glob(".tmp-*"))
    manager = JobManager(store)
    try:
        states = {r["run_id"]: r["state"] for r in store.runs(eid)}
        assert set(states.values()) <= {"done", "interrupted", "queued"}
        assert "interrupted" in states.values()  # the run in training when killed
        manager.resume(eid)
        assert manager.wait(eid, timeout=90)
    finally:
        manager.shutdown()
    assert [r["state"] for r in store.runs(eid)] == ["done"] * 4
    for r in done:  # finished runs were not trained again
        assert store.run(r["run_id"])["test_acc"] == r["test_acc"]


def test_status_is_a_copy_and_final_states_are_known(store):
    eid = store.create_experiment(tiny_spec(epochs=1, seeds=(0,)))
    with JobManager(store) as manager:
        manager.submit(eid)
        assert manager.wait(eid, timeout=60)
        snap = manager.status(eid)[0]
        snap["metrics"]["test_acc"] = -1.0
        snap["state"] = "queued"
        assert manager.status(eid)[0]["state"] == "done"
        assert manager.status(eid)[0]["metrics"]["test_acc"] >= 0
    assert "done" in FINAL_STATES and "interrupted" in FINAL_STATES


def test_snapshots_extend_the_run_record_with_the_same_types(store):
    eid = store.create_experiment(tiny_spec(epochs=1, seeds=(0, 1)))
    with JobManager(store) as manager:
        (first, _) = manager.submit(eid)
        assert manager.wait(eid, timeout=60)
        managed = manager.status(eid)
    unmanaged = JobManager(store)
    try:
        from_store = unmanaged.status(eid)
    finally:
        unmanaged.shutdown()
    keys = set(RunRecord.__annotations__)
    assert set(JobSnapshot.__annotations__) == keys | {
        "epoch", "epochs", "batch", "n_batches", "metrics", "queue_position", "owner", "vectorized", "managed",
        "note"}
    for snaps, is_managed in ((managed, True), (from_store, False)):
        for s in snaps:
            assert set(s) == set(JobSnapshot.__annotations__)
            assert s["managed"] is is_managed and s["vectorized"] is False
            assert type(s["epoch"]) is int and type(s["epochs_done"]) is int and type(s["seed"]) is int
            assert s["test_acc"] == s["metrics"]["test_acc"] and s["gap"] == s["metrics"]["gap"]
        assert_matches_store(store, snaps)
    assert [s["epoch"] for s in managed] == [s["epoch"] for s in from_store] == [0, 0]


class _BlockingStore(RunStore):
    """A store whose chosen write waits until the test lets it go, to catch a manager holding its lock meanwhile."""

    block: str = ""  # the method to hold: "set_state" or "reset_run"

    def __init__(self, home) -> None:
        super().__init__(home)
        self.entered = threading.Event()
        self.release = threading.Event()

    def _hold(self, method: str) -> None:
        if method == self.block:
            self.entered.set()
            assert self.release.wait(60), "the test never released the write"

    def set_state(self, run_id, state, *, error=None):
        if state in (CANCELLED, INTERRUPTED):
            self._hold("set_state")
        return super().set_state(run_id, state, error=error)

    def reset_run(self, run_id, state=QUEUED):
        self._hold("reset_run")
        return super().reset_run(run_id, state)


def _returns_while_blocked(store: _BlockingStore, action, check) -> list[dict]:
    """Run ``action`` in a thread until it is inside the slow write, then ``check()`` must still return."""
    worker = threading.Thread(target=action, daemon=True)
    worker.start()
    try:
        assert store.entered.wait(60), "the action never reached the store write"
        answered = threading.Event()
        result: list = []

        def ask() -> None:
            result.append(check())
            answered.set()

        threading.Thread(target=ask, daemon=True).start()
        assert answered.wait(60), "status() waited for another thread's store write"
        assert worker.is_alive()  # the write was still in progress while status() answered
        return result[0]
    finally:
        store.release.set()
        worker.join(60)


@pytest.mark.parametrize("write", ["set_state", "reset_run"])
def test_a_slow_store_write_does_not_block_status(tmp_path, gate, write):
    store = _BlockingStore(tmp_path / "home")
    eid = store.create_experiment(tiny_spec(epochs=1, seeds=(0, 1)))
    first, second = (r["run_id"] for r in store.runs(eid))
    manager = JobManager(store, max_workers=1)
    try:
        if write == "set_state":  # cancel() writes the queued run's new state
            manager.submit(eid)
            store.block = "set_state"
            snaps = _returns_while_blocked(store, lambda: manager.cancel(second), lambda: manager.status(eid))
            assert [s["state"] for s in snaps] == ["running", "cancelled"]
        else:  # resume() resets the runs it takes
            store.set_state(first, INTERRUPTED)
            store.set_state(second, INTERRUPTED)
            store.block = "reset_run"
            snaps = _returns_while_blocked(store, lambda: manager.resume(eid), lambda: manager.status())
            assert [s["state"] for s in snaps] == ["queued", "queued"]  # counted against the queue at once
        gate.set()
        assert manager.wait(eid, timeout=60)
    finally:
        gate.set()
        store.release.set()
        manager.shutdown()
    states = [r["state"] for r in store.runs(eid)]
    assert states == (["done", "cancelled"] if write == "set_state" else ["done", "done"])


def test_finished_runs_get_their_embedding_view_cached(tmp_path, monkeypatch):
    import akp.projection as projection

    store = RunStore(tmp_path / "home")
    eid = store.create_experiment(tiny_spec(seeds=(0,)))
    with JobManager(store) as manager:
        manager.submit(eid)
        assert manager.wait(eid, timeout=300)
    (run,) = store.runs(eid)
    assert run["state"] == "done"
    cached = list(store.run_cache_dir(run["run_id"], "umap").glob("*.npy"))  # deleted with the experiment
    assert len(cached) == 1
    # The view is now served from the cache: no fit happens.
    monkeypatch.setattr("akp.projection.umap._fit_umap", lambda *a, **k: pytest.fail("the view refitted UMAP"))
    view = projection.run_embedding(store, run["run_id"])
    assert view.shape == (len(store.probe_labels(eid)), 2)
    assert np.array_equal(view, np.load(cached[0]))


def test_a_run_claimed_elsewhere_is_not_trained_twice_and_wait_returns(tmp_path):
    store = RunStore(tmp_path / "home")
    busy = store.create_experiment(tiny_spec("busy", seeds=(0,)))
    eid = store.create_experiment(tiny_spec(seeds=(0, 1)))
    first, second = (r["run_id"] for r in store.runs(eid))
    with JobManager(store, max_workers=1) as manager:
        manager.submit(busy)  # keeps the only worker busy for a few seconds
        manager.submit(eid)
        assert store.claim_run(first)  # meanwhile another process sharing the store takes this run
        assert manager.wait(eid, timeout=300)
        snaps = {s["run_id"]: s for s in manager.status(eid)}
    assert store.run(first)["state"] == "running" and store.metrics(first) == []  # untouched here
    assert snaps[first]["state"] == "failed" and "not trained here" in snaps[first]["error"]
    assert store.run(second)["state"] == "done"
