"""The ray executor: the same results as the thread and process executors (through the command line), cancel
reaches a running task and resume continues from the checkpoint that came back, tasks never open the run
store, and a bad RAY_ADDRESS gives one message and creates nothing.

One local Ray (2 CPUs) is shared by the module. Its worker processes run
:func:`tests.ray_hooks.forbid_sqlite`: any task that opened the run store (or
any SQLite database) would fail its run with that message.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from akp.cli import main
from akp.executors import ExecutorError
from akp.jobs import JobManager
from akp.runner import resume_point
from akp.store import RunStore
from tests.ray_hooks import FORBIDDEN
from tests.specs import small_smoke_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_spec(name: str = "ray", *, epochs: int = 2, seeds=(0, 1), n_train: int = 96):
    """The smoke preset's steady condition, small."""
    return small_smoke_spec(name, epochs=epochs, seeds=seeds, n_train=n_train, conditions=slice(0, 1))


def wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module, whose workers refuse to open any SQLite database."""
    try:
        import ray
    except ImportError as exc:  # ray is a development requirement; the app does not need it
        pytest.skip(f"ray is not installed ({exc}); pip install -r requirements-dev.txt")
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"worker_process_setup_hook": "tests.ray_hooks.forbid_sqlite",
                          "env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread(monkeypatch):
    """One torch thread per worker under every executor (a Ray task asks for as many CPUs)."""
    monkeypatch.setenv("AKP_THREADS_PER_WORKER", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_the_ray_workers_refuse_sqlite(ray_local):
    """The guard the store test relies on is in place in the workers that train (else it could not fail)."""
    @ray_local.remote
    def try_open() -> str:
        import sqlite3

        try:
            sqlite3.connect(":memory:")
        except sqlite3.OperationalError as exc:
            return str(exc)
        return "opened"

    assert FORBIDDEN in ray_local.get(try_open.remote())


@pytest.mark.slow
def test_cli_experiment_gives_the_same_results_under_thread_process_and_ray(ray_local, one_thread, tmp_path,
                                                                           capsys):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(tiny_spec().to_dict()))
    results = {}
    for name in ("thread", "process", "ray"):
        home = tmp_path / name
        assert main(["experiment", str(spec_file), "--home", str(home), "--executor", name, "--quiet"]) == 0
        out = capsys.readouterr().out
        assert f"executor {name} 1x1" in out
        store = RunStore(home)
        (eid,) = [e["id"] for e in store.experiments()]
        runs = store.runs(eid)
        assert [r["state"] for r in runs] == ["done", "done"]
        results[name] = [(r["test_acc"], [m["test_acc"] for m in store.metrics(r["run_id"])],
                          [m["test_loss"] for m in store.metrics(r["run_id"])],
                          store.representations(r["run_id"], "embedding")) for r in runs]
        if name == "ray":  # the tasks never opened it, the driver wrote every epoch and the results
            assert all(r["epochs_done"] == 2 and r["error"] is None for r in runs)
    for name in ("process", "ray"):
        for (acc_t, accs_t, losses_t, rep_t), (acc, accs, losses, rep) in zip(results["thread"], results[name],
                                                                             strict=True):
            assert acc == acc_t and accs == accs_t, name
            assert losses == pytest.approx(losses_t, abs=1e-6), name
            assert rep == pytest.approx(rep_t, abs=1e-6), name


@pytest.mark.slow
def test_cancel_reaches_a_running_ray_task_and_resume_continues_from_its_checkpoint(ray_local, one_thread, store):
    eid = store.create_experiment(tiny_spec("cancel", epochs=20, seeds=(0,), n_train=480))
    run_id = store.runs(eid)[0]["run_id"]
    with JobManager(store, executor="ray", cache_projections=False) as manager:
        manager.submit(eid)
        # Live progress comes back from the task; cancel once an epoch (and its checkpoint) is in.
        snap = wait_for(lambda: next((s for s in manager.status(eid)
                                      if s["epochs_done"] >= 1 or s["state"] not in ("queued", "running")), None),
                        what="a finished epoch")
        assert snap["state"] == "running", snap["error"]
        assert manager.cancel(eid) == [run_id]
        assert manager.wait(eid, timeout=60)
        snap = manager.status(eid)[0]
        assert snap["state"] == "cancelled" and 1 <= snap["epochs_done"] < 20
        assert store.run(run_id)["state"] == "cancelled"
        start, problem = resume_point(store, run_id)
        assert problem is None and start == snap["epochs_done"]  # the task's checkpoint is on the driver's disk
        manager.resume(eid)
        assert manager.wait(eid, timeout=120)
    run = store.run(run_id)
    assert run["state"] == "done", run["error"]
    assert [m["epoch"] for m in store.metrics(run_id)] == list(range(20))
    assert resume_point(store, run_id) == (0, None)  # a finished run's checkpoint is deleted on the driver too


def _task_pids() -> list[int]:
    """Pids of the Ray workers executing a training task now (Ray titles them ``ray::_train_task``)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if fh.read().startswith(b"ray::_train_task"):
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the task's process in /proc")
def test_a_killed_ray_task_fails_its_run_with_the_reason_and_the_manager_goes_on(ray_local, one_thread, store):
    eid = store.create_experiment(tiny_spec("killed", epochs=20, seeds=(0, 1), n_train=480))
    with JobManager(store, executor="ray", cache_projections=False) as manager:
        manager.submit(eid)
        # The run that is training with an epoch done (its checkpoint has come back to the driver).
        victim = wait_for(lambda: next((s["run_id"] for s in manager.status(eid)
                                        if s["state"] == "running" and s["epochs_done"] >= 1), None),
                          what="a finished epoch")
        os.kill(wait_for(_task_pids, what="the task's process")[0], signal.SIGKILL)  # as the OOM killer would
        assert manager.wait(eid, timeout=120)
        snaps = {s["run_id"]: s for s in manager.status(eid)}
    other = next(r for r in snaps if r != victim)
    assert store.run(victim)["state"] == "failed"  # never left running
    assert snaps[victim]["error"].startswith("failed on Ray: WorkerCrashedError: ")
    assert resume_point(store, victim)[0] >= 1  # it can resume from the last epoch that came back
    assert store.run(other)["state"] == "done"  # the other task trained on a fresh worker


@pytest.mark.parametrize(("flags", "environ", "message"), [
    (["--executor", "warp"], {}, "error: executor: (AKP_EXECUTOR or --executor) unknown 'warp'; "
                                 "allowed: thread, process, ray"),
    (["--workers", "0"], {}, "error: workers: (AKP_WORKERS or --workers) must be an integer from 1 to 64, got 0"),
    (["--executor", "ray"], {"RAY_ADDRESS": "nowhere"},
     "error: RAY_ADDRESS: 'nowhere' is not host:port or ray://host:port; set it to the address `ray start --head` "
     "printed, or unset it to train on a local Ray"),
])
def test_cli_experiment_with_bad_executor_settings_gives_one_message_and_creates_nothing(
        tmp_path, capsys, monkeypatch, flags, environ, message):
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    assert main(["experiment", "smoke", "--home", str(home), *flags]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not home.exists()


def test_cli_experiment_with_an_unreachable_ray_address_gives_one_message_and_creates_nothing(tmp_path, capsys,
                                                                                             monkeypatch):
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    home = tmp_path / "home"
    assert main(["experiment", "smoke", "--home", str(home), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: RAY_ADDRESS: no Ray head node answers at {address!r} (Connection refused); start one "
                   "with `ray start --head`, or unset RAY_ADDRESS to train on a local Ray")
    assert not home.exists()


def test_an_unreachable_ray_address_stops_the_job_manager_before_it_starts(store, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{_closed_port()}")
    with pytest.raises(ExecutorError) as info:
        JobManager(store, executor="ray")
    assert info.value.field == "RAY_ADDRESS"
    assert not (store.home / "jobs").exists() or not list((store.home / "jobs").iterdir())  # no holder made


def test_nothing_but_the_ray_executor_imports_ray():
    """The app's and the CLI's default paths (a thread job manager, settings checks) never load Ray."""
    code = ("import sys, tempfile\n"
            "from akp.store import RunStore\n"
            "from akp.jobs import JobManager\n"
            "import akp.cli, akp.executors\n"
            "akp.executors.resolve_settings('process', 2)\n"
            "JobManager(RunStore(tempfile.mkdtemp()), executor='thread').shutdown()\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
