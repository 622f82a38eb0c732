"""Executors: settings are checked before anything starts; the process executor trains in worker processes
with the same results as the thread executor, cancels within a batch, and survives a killed worker."""
from __future__ import annotations

import os
import signal
import time

import pytest

from akp.executors import ExecutorError, ExecutorSettings, resolve_settings
from akp.executors.process import ProcessExecutor, exit_reason
from akp.executors.thread import ThreadExecutor
from akp.jobs import JobManager
from akp.runner import resume_point
from akp.store import RunStore
from tests.specs import small_smoke_spec


def tiny_spec(name: str = "exec", *, epochs: int = 2, seeds=(0, 1), n_train: int = 96):
    """The smoke preset's steady condition, small."""
    return small_smoke_spec(name, epochs=epochs, seeds=seeds, n_train=n_train, conditions=slice(0, 1))


def wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


# -- settings ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "environ", "message"), [
    ({"executor": "gpu"}, {}, "executor: (AKP_EXECUTOR or --executor) unknown 'gpu'; allowed: thread, process, ray"),
    ({}, {"AKP_EXECUTOR": "warp"}, "executor: (AKP_EXECUTOR or --executor) unknown 'warp'; "
                                   "allowed: thread, process, ray"),
    ({"workers": 0}, {}, "workers: (AKP_WORKERS or --workers) must be an integer from 1 to 64, got 0"),
    ({}, {"AKP_WORKERS": "two"}, "workers: (AKP_WORKERS or --workers) must be an integer, got 'two'"),
    ({"threads": 0}, {}, "threads: (AKP_THREADS_PER_WORKER or --threads) must be an integer from 1 to 256, got 0"),
    ({"workers": True}, {}, "workers: (AKP_WORKERS or --workers) must be an integer from 1 to 64, got True"),
])
def test_bad_settings_name_the_setting_and_what_is_allowed(kwargs, environ, message):
    with pytest.raises(ExecutorError) as info:
        resolve_settings(**kwargs, environ=environ)
    assert str(info.value) == message
    assert info.value.field == message.split(":")[0]


def test_settings_explicit_values_win_over_the_environment_and_threads_share_the_cores():
    env = {"AKP_EXECUTOR": "process", "AKP_WORKERS": "3", "AKP_THREADS_PER_WORKER": "2"}
    assert resolve_settings(environ=env) == ExecutorSettings("process", 3, 2)
    assert resolve_settings("thread", 2, environ=env) == ExecutorSettings("thread", 2, 2)
    assert resolve_settings(environ={}, cores=8) == ExecutorSettings("thread", 1, 8)
    assert resolve_settings("process", 4, environ={}, cores=2) == ExecutorSettings("process", 4, 1)


def test_a_bad_executor_setting_starts_nothing(store, monkeypatch):
    monkeypatch.setenv("AKP_EXECUTOR", "nope")
    with pytest.raises(ExecutorError, match="executor: .*allowed: thread, process, ray"):
        JobManager(store)
    assert not (store.home / "jobs").exists() or not list((store.home / "jobs").iterdir())  # no holder made


def test_the_default_executor_is_the_thread_executor(store, monkeypatch):
    monkeypatch.delenv("AKP_EXECUTOR", raising=False)
    manager = JobManager(store, max_workers=2)
    manager.shutdown()
    assert isinstance(manager.executor, ThreadExecutor) and manager.executor.workers == 2


def test_exit_reason_says_how_a_worker_ended():
    assert exit_reason(12, -signal.SIGKILL) == ("the worker process (pid 12) was killed by SIGKILL "
                                                "(killed, or out of memory)")
    assert exit_reason(12, 1) == "the worker process (pid 12) exited with code 1"
    assert exit_reason(12, None) == "the worker process (pid 12) stopped answering"


# -- the process executor ------------------------------------------------------------------------------------
def test_process_executor_trains_in_a_worker_process_with_the_thread_executors_results(tmp_path):
    results = {}
    for name in ("thread", "process"):
        store = RunStore(tmp_path / name)
        eid = store.create_experiment(tiny_spec())
        with JobManager(store, executor=name, threads=1, cache_projections=False) as manager:
            assert manager.submit(eid)
            assert manager.wait(eid, timeout=120)
            snaps = manager.status(eid)
            if name == "process":
                pids = manager.executor.pids()
                assert pids and os.getpid() not in pids  # trained elsewhere, the worker stays for the next task
        assert [s["state"] for s in snaps] == ["done", "done"]
        assert all(s["epochs_done"] == 2 and s["metrics"]["epoch"] == 1 for s in snaps)  # live progress came back
        results[name] = [(store.metrics(r["run_id"]), store.representations(r["run_id"], "embedding"))
                         for r in store.runs(eid)]
    for (m_thread, rep_thread), (m_process, rep_process) in zip(results["thread"], results["process"], strict=True):
        assert [m["test_acc"] for m in m_thread] == [m["test_acc"] for m in m_process]
        assert [m["test_loss"] for m in m_thread] == pytest.approx([m["test_loss"] for m in m_process], abs=1e-6)
        assert rep_thread == pytest.approx(rep_process, abs=1e-5)
    assert manager.executor.pids() == []  # shutdown ended the worker processes


@pytest.mark.slow  # two worker-process starts' worth of imports on a loaded 2-core machine
def test_process_executor_cancel_reaches_the_worker_and_resume_continues(store):
    eid = store.create_experiment(tiny_spec(epochs=6, seeds=(0,), n_train=320))
    run_id = store.runs(eid)[0]["run_id"]
    with JobManager(store, executor="process", cache_projections=False) as manager:
        manager.submit(eid)
        wait_for(lambda: manager.status(eid)[0]["epochs_done"] >= 1, what="a finished epoch")
        assert manager.cancel(eid) == [run_id]
        assert manager.wait(eid, timeout=60)
        snap = manager.status(eid)[0]
        assert snap["state"] == "cancelled" and snap["epochs_done"] < 6
        start, problem = resume_point(store, run_id)
        assert problem is None and start >= 1  # the worker wrote its checkpoints
        manager.resume(eid)
        assert manager.wait(eid, timeout=120)
    run = store.run(run_id)
    assert run["state"] == "done" and [m["epoch"] for m in store.metrics(run_id)] == list(range(6))


@pytest.mark.slow
def test_a_killed_worker_fails_its_run_with_the_reason_and_the_manager_goes_on(store):
    eid = store.create_experiment(tiny_spec(epochs=6, seeds=(0, 1), n_train=320))
    first, second = (r["run_id"] for r in store.runs(eid))
    executor = ProcessExecutor(1, 1)
    with JobManager(store, executor=executor, cache_projections=False) as manager:
        manager.submit(eid)
        wait_for(lambda: manager.status(eid)[0]["epochs_done"] >= 1, what="a finished epoch")
        pid = wait_for(executor.busy_pids, what="a busy worker")[0]
        os.kill(pid, signal.SIGKILL)
        assert manager.wait(eid, timeout=120)
        snaps = manager.status(eid)
    assert snaps[0]["state"] == "failed" and "killed by SIGKILL" in snaps[0]["error"]
    assert store.run(first)["state"] == "failed"  # never left running
    assert snaps[1]["state"] == "done"  # a fresh worker took the next run
    assert resume_point(store, first)[0] >= 1  # and the failed run can resume from its checkpoint


@pytest.mark.parametrize(("flags", "message"), [
    (["--executor", "warp"], "error: executor: (AKP_EXECUTOR or --executor) unknown 'warp'; "
                             "allowed: thread, process, ray"),
    (["--workers", "0"], "error: workers: (AKP_WORKERS or --workers) must be an integer from 1 to 64, got 0"),
])
def test_cli_resume_with_bad_executor_settings_gives_one_message_and_creates_nothing(tmp_path, capsys, flags,
                                                                                       message):
    from akp.cli import main

    home = tmp_path / "home"
    assert main(["resume", "e-any", "--home", str(home), *flags]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not home.exists()


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_a_killed_manager_takes_its_worker_along_and_the_run_resumes_from_its_checkpoint(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    store = RunStore(tmp_path / "home")
    eid = store.create_experiment(tiny_spec(epochs=12, seeds=(0,), n_train=640))
    run_id = store.runs(eid)[0]["run_id"]
    pids = tmp_path / "pids"
    script = f"""
import time
from akp.jobs import JobManager
from akp.store import RunStore
manager = JobManager(RunStore({str(store.home)!r}), executor="process", cache_projections=False)
manager.submit({eid!r})
while not manager.executor.busy_pids():
    time.sleep(0.01)
open({str(pids)!r}, "w").write(str(manager.executor.busy_pids()[0]))
time.sleep(600)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: pids.exists() and pids.read_text(), what="a busy worker")
        wait_for(lambda: store.run(run_id)["epochs_done"] >= 2, what="two finished epochs")
        worker = int(pids.read_text())
        os.kill(proc.pid, signal.SIGKILL)  # the server dies; its worker must not train on unsupervised
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    wait_for(lambda: _gone(worker), timeout=60, what="the orphaned worker to exit")
    assert store.run(run_id)["state"] == "running" and store.run(run_id)["epochs_done"] < 12
    with JobManager(store, cache_projections=False) as manager:
        assert manager.recovered == [run_id]
        assert store.run(run_id)["state"] == "interrupted"
        start, problem = resume_point(store, run_id)
        assert problem is None and start >= 2
        manager.resume(eid)
        assert manager.wait(eid, timeout=120)
    assert store.run(run_id)["state"] == "done"
    assert [m["epoch"] for m in store.metrics(run_id)] == list(range(12))


def test_a_worker_whose_manager_closed_the_pipe_exits_without_failing_its_run(monkeypatch):
    # A progress report into a closed pipe means the manager died: exit (the manager's recovery marks the
    # run interrupted) instead of raising inside training, where the runner would record the run as failed.
    from multiprocessing import Pipe

    from akp.executors import worker
    from akp.train import Progress

    def exit_(code):
        raise SystemExit(code)

    monkeypatch.setattr(worker.os, "_exit", exit_)
    ours, theirs = Pipe()
    theirs.close()
    control = worker._Control(ours, 0, ["r"], os.getppid())
    with pytest.raises(SystemExit) as info:
        control.progress("r", Progress(0, 2, 2, 2, {"test_acc": 0.5}))
    assert info.value.code == worker.EXIT_ORPHANED
