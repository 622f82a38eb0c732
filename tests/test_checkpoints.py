"""Checkpoints: a killed, cancelled or failed run resumes after its last finished epoch, never from a bad file."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import akp.runner
from akp import checkpoints
from akp.checkpoints import CheckpointError
from akp.cli import main
from akp.jobs import JobManager
from akp.runner import execute_run, resume_point, run_checkpoint
from akp.store import RunStore
from akp.train import train_run
from tests.specs import small_smoke_spec

ROOT = Path(__file__).resolve().parents[1]


def tiny_spec(name: str = "ckpt", *, epochs: int = 4, seeds=(0,), n_train: int = 96):
    """The smoke preset's shock condition (a swap at epoch 1), small and with every epoch captured."""
    return small_smoke_spec(name, epochs=epochs, seeds=seeds, n_train=n_train, conditions=slice(1, None))




@pytest.fixture
def starts(monkeypatch) -> list:
    """Record the epoch each training attempt starts from (0: no checkpoint used)."""
    seen: list[int] = []
    real = akp.runner.train_run

    def spy(*args, **kwargs):
        resume = kwargs.get("resume")
        seen.append(0 if resume is None else resume["epoch"] + 1)
        return real(*args, **kwargs)

    monkeypatch.setattr(akp.runner, "train_run", spy)
    return seen


def uninterrupted(store: RunStore, eid: str):
    """The same run trained in one go, in this process."""
    spec = store.spec(eid)
    run = store.runs(eid)[0]
    return train_run(spec, spec.condition(run["condition"]), run["seed"], probe=store.probe_images(eid))


def assert_same_as_uninterrupted(store: RunStore, run_id: str, reference) -> None:
    metrics = store.metrics(run_id)
    assert [m["epoch"] for m in metrics] == list(range(store.spec(store.run(run_id)["experiment_id"]).epochs))
    for got, want in zip(metrics, reference.metrics, strict=True):
        assert got["activation"] == want["activation"] and got["loss"] == want["loss"]
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert got[key] == pytest.approx(want[key], abs=1e-5), (got["epoch"], key)
    assert store.events(run_id) == reference.events
    for layer, by_epoch in reference.representations.items():
        assert store.representation_epochs(run_id, layer) == sorted(by_epoch)
        for epoch, feats in by_epoch.items():
            np.testing.assert_allclose(store.representations(run_id, layer, epoch), feats, atol=1e-5)


def cancel_after(epoch: int):
    """A should_stop and on_progress pair that cancels a run once ``epoch`` has finished."""
    done = {"stop": False}

    def progress(p):
        if p.metrics is not None and p.epoch == epoch:
            done["stop"] = True

    return progress, (lambda: done["stop"])


def test_sigkill_after_epoch_3_of_6_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path, starts):
    home = tmp_path / "home"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(tiny_spec("killed", epochs=6).to_dict()))
    ready = tmp_path / "epoch3"
    # The real CLI, paused after epoch 3 of 6 (its checkpoint written) so the kill lands mid-training.
    script = f"""
import sys, time
import akp.runner
real = akp.runner.train_run
def paused(*args, **kwargs):
    report = kwargs["on_progress"]
    def progress(p):
        report(p)
        if p.metrics is not None and p.epoch == 2:
            open({str(ready)!r}, "w").close()
            time.sleep(600)
    kwargs["on_progress"] = progress
    return real(*args, **kwargs)
akp.runner.train_run = paused
from akp.cli import main
sys.exit(main(["experiment", {str(spec_file)!r}, "--home", {str(home)!r}, "--quiet"]))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "epoch 3 never finished"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = RunStore(home)
    eid = store.experiments()[0]["id"]
    run_id = store.runs(eid)[0]["run_id"]
    assert store.run(run_id)["state"] == "running"  # left behind by the killed process
    assert resume_point(store, run_id) == (3, None)

    assert main(["resume", eid, "--home", str(home), "--quiet"]) == 0
    assert starts == [3]  # continued after epoch 3, not from epoch 0
    run = store.run(run_id)
    assert run["state"] == "done" and run["epochs_done"] == 6
    assert_same_as_uninterrupted(store, run_id, uninterrupted(store, eid))
    assert not run_checkpoint(store, run).exists()  # finished runs do not keep their checkpoint


def test_cancelled_run_resumes_after_its_last_epoch_through_the_manager(store, starts):
    eid = store.create_experiment(tiny_spec(epochs=4))
    run_id = store.runs(eid)[0]["run_id"]
    progress, stop = cancel_after(1)
    assert execute_run(store, run_id, on_progress=progress, should_stop=stop).state == "cancelled"
    assert store.run(run_id)["state"] == "cancelled"
    assert resume_point(store, run_id) == (2, None)  # cancelled runs keep their checkpoint
    with JobManager(store, cache_projections=False) as manager:
        assert manager.resume(eid) == [run_id]
        assert manager.wait(eid, timeout=120)
        snap = manager.status(eid)[0]
    assert starts == [0, 2]
    assert snap["state"] == "done" and snap["epochs_done"] == 4 and snap["metrics"]["epoch"] == 3
    assert_same_as_uninterrupted(store, run_id, uninterrupted(store, eid))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-run", "code", "wrong-shapes"])
def test_an_unusable_checkpoint_restarts_the_run_from_epoch_0_with_a_warning(store, starts, caplog, damage):
    eid = store.create_experiment(tiny_spec(epochs=3))
    run = store.runs(eid)[0]
    path = run_checkpoint(store, run)
    progress, stop = cancel_after(0)
    execute_run(store, run["run_id"], on_progress=progress, should_stop=stop)
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        state = torch.load(path, weights_only=True)
        if damage == "other-run":
            state["identity"]["seed"] = 7
        elif damage == "code":
            state["model"] = logging.getLogger("x")  # an arbitrary object: weights_only refuses to unpickle it
        else:
            state["model"] = {k: torch.zeros(1) for k in state["model"]}
        torch.save(state, path)
    start, problem = resume_point(store, run["run_id"])
    if damage != "wrong-shapes":  # shapes are only checked against the model, when training starts
        assert start == 0 and problem.startswith("checkpoint: ")
    store.set_state(run["run_id"], "queued")
    with caplog.at_level(logging.WARNING, logger="akp.runner"):
        result = execute_run(store, run["run_id"])
    assert result is not None and result.state == "done"  # no traceback, no failed run
    assert starts == [0, 0] if damage != "wrong-shapes" else starts == [0, 1, 0]
    assert "it trains again from epoch 0" in caplog.text and "checkpoint: " in caplog.text
    assert [m["epoch"] for m in store.metrics(run["run_id"])] == [0, 1, 2]
    assert store.run(run["run_id"])["error"] is None
    assert not path.exists()


def test_checkpoints_hold_tensors_and_plain_values_only(store):
    eid = store.create_experiment(tiny_spec(epochs=3))
    run = store.runs(eid)[0]
    progress, stop = cancel_after(1)
    execute_run(store, run["run_id"], on_progress=progress, should_stop=stop)
    state = torch.load(run_checkpoint(store, run), weights_only=True)  # refuses anything else
    assert state["epoch"] == 1 and state["version"] == checkpoints.CHECKPOINT_VERSION
    assert [m["epoch"] for m in state["metrics"]] == [0, 1]
    assert state["activation"] == "sigmoid" and state["loss"] == "mse"  # the swap at epoch 1 happened
    assert sorted(state["representations"]["embedding"]) == [-1, 0, 1]
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    assert not list(run_checkpoint(store, run).parent.glob(".tmp-*"))  # written atomically


def test_keep_checkpoints_setting_keeps_finished_runs_checkpoints(store, monkeypatch):
    monkeypatch.setenv(checkpoints.KEEP_ENV, "1")
    eid = store.create_experiment(tiny_spec(epochs=2))
    run = store.runs(eid)[0]
    assert execute_run(store, run["run_id"]).state == "done"
    assert torch.load(run_checkpoint(store, run), weights_only=True)["epoch"] == 1
    store.delete_experiment(eid)  # the checkpoints go with their experiment
    assert not run_checkpoint(store, run).exists()


def test_load_checkpoint_names_the_problem():
    identity = checkpoints.run_identity("c", 0, 1, 3)
    assert checkpoints.load_checkpoint("/nonexistent/x.pt", identity) is None
    with pytest.raises(CheckpointError, match="checkpoint: conftest.py is unreadable"):
        checkpoints.load_checkpoint(__file__.replace("test_checkpoints.py", "conftest.py"), identity)


def test_cli_resume_of_a_finished_or_unknown_experiment_changes_nothing(store, capsys):
    eid = store.create_experiment(tiny_spec(epochs=2))
    execute_run(store, store.runs(eid)[0]["run_id"])
    assert main(["resume", eid, "--home", str(store.home)]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert store.runs(eid)[0]["state"] == "done"
    assert main(["resume", "e-nope", "--home", str(store.home)]) == 2
    assert "error: experiment_id: no experiment 'e-nope'" in capsys.readouterr().err
