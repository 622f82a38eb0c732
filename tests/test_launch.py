"""JobManager.launch: limits that refuse before anything is written, data built off the caller, repair at start."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import akp.datasets
from akp.jobs import JobManager
from akp.quotas import LaunchLimits, LaunchRefused, LimitsError, resolve_limits
from akp.runs import DONE, FAILED, INTERRUPTED, QUEUED
from akp.store import RunStore
from tests.specs import small_smoke_spec

PROBE = np.zeros((16, 1, 32, 32), np.float32), np.zeros(16, np.int64)


def tiny(name: str = "t", seeds=(0,), **kw):
    return small_smoke_spec(name, epochs=1, seeds=seeds, n_train=64, n_test=32, conditions=slice(0, 1), **kw)


def files(home) -> set[str]:
    """Every file under the store's home (SQLite's own WAL files aside: readers touch them)."""
    return {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and "akp.sqlite" not in p.name}


def existing(store: RunStore, owner: str, spec=None) -> str:
    """An experiment of ``owner`` created with a probe set and left queued (it counts against quotas)."""
    return store.create_experiment(spec or tiny("old", seeds=(0, 1)), owner=owner,
                                   probe_images=PROBE[0], probe_labels=PROBE[1])


@pytest.mark.parametrize(("field", "limits", "before", "message"), [
    ("quota.runs", {"max_runs_per_user": 3}, 1,
     "quota.runs (AKP_MAX_RUNS_PER_USER): alice has 2 queued or running runs of at most 3; "
     "this experiment adds 2, 1 over"),
    ("quota.experiments", {"max_experiments_per_user": 1}, 1,
     "quota.experiments (AKP_MAX_EXPERIMENTS_PER_USER): alice has 1 experiments of at most 1; this one adds 1, 1 over"),
    ("quota.disk", {"max_disk_mb_per_user": 1}, 1,
     "quota.disk (AKP_MAX_DISK_MB_PER_USER): alice's experiments use 3 MB of at most 1 MB"),
    ("memory.dataset", {"max_memory_mb": 1}, 0,
     "memory.dataset (AKP_MAX_MEMORY_MB): building its dataset needs about 4 MB of at most 1 MB, 3 MB over"),
    ("memory.run", {"max_memory_mb": 20}, 0,
     "memory.run (AKP_MAX_MEMORY_MB): training one run needs about"),
])
def test_each_limit_refuses_with_its_message_and_writes_nothing(store, field, limits, before, message):
    if before:
        eid = existing(store, "alice")
        (store.experiment_dir(eid) / "big.bin").write_bytes(b"\0" * (3 * 2 ** 20))  # 3 MB on alice's disk
    with JobManager(store, cache_projections=False, limits=LaunchLimits(**limits)) as jm:
        rows, on_disk = store.experiments(), files(store.home)
        with pytest.raises(LaunchRefused) as err:
            jm.launch(tiny("new", seeds=(0, 1)), user="alice")
        assert err.value.field == field
        assert str(err.value).startswith(message)
        assert "nothing was created" in str(err.value)
        assert store.experiments() == rows  # no experiment row, no runs
        assert files(store.home) == on_disk  # no probe set, no experiment folder
        assert jm.status() == []


def test_queue_cap_counts_the_runs_queued_in_the_manager(store):
    with JobManager(store, cache_projections=False, max_queued=3) as jm:
        on_disk = files(store.home)
        with pytest.raises(LaunchRefused) as err:
            jm.launch(tiny("four", seeds=(0, 1, 2, 3)), user="bob")
        assert err.value.field == "queue"
        assert str(err.value).startswith("queue (max_queued): the queue holds 0 runs of at most 3; "
                                         "this experiment adds 4, 1 over")
        assert store.experiments() == [] and files(store.home) == on_disk


def test_other_users_runs_do_not_count_against_a_quota(store):
    existing(store, "alice")
    with JobManager(store, cache_projections=False, limits=LaunchLimits(max_runs_per_user=2)) as jm:
        eid = jm.launch(tiny("b", seeds=(0, 1)), user="bob")
        assert store.experiment(eid)["owner"] == "bob"
        assert jm.wait(eid, timeout=120)
    assert {r["state"] for r in store.runs(eid)} == {DONE}


def test_launch_returns_before_the_data_is_built_and_its_runs_finish(store, monkeypatch):
    """The dataset is built by a worker thread, never by the caller; the runs wait with a note until then."""
    release, builders = threading.Event(), []
    real = akp.datasets.synthetic_dataset

    def slow_build(**options):
        builders.append(threading.current_thread())
        assert release.wait(60)
        return real(**options)

    monkeypatch.setattr(akp.datasets, "synthetic_dataset", slow_build)
    with JobManager(store, cache_projections=False) as jm:
        eid = jm.launch(tiny("quick", seeds=(0, 1)), user="local")
        # Returned while the build is blocked: the experiment and its queued runs are recorded, no probe yet.
        assert store.experiment(eid)["owner"] == "local"
        assert [r["state"] for r in store.runs(eid)] == [QUEUED, QUEUED]
        assert not store.has_probe(eid)
        assert {s["note"] for s in jm.status(eid)} == {"preparing data"}
        release.set()
        assert jm.wait(eid, timeout=120)
        assert {s["note"] for s in jm.status(eid)} == {None}
    assert builders and threading.main_thread() not in builders
    assert {r["state"] for r in store.runs(eid)} == {DONE}
    assert store.probe_images(eid).shape == (16, 1, 32, 32)


def test_data_that_cannot_be_built_fails_every_run_with_the_reason(store, monkeypatch):
    def broken(**options):
        raise MemoryError("no room for the images")

    monkeypatch.setattr(akp.datasets, "synthetic_dataset", broken)
    with JobManager(store, cache_projections=False, vectorized=False) as jm:
        eid = jm.launch(tiny("broken", seeds=(0, 1, 2)), user="local")
        assert jm.wait(eid, timeout=60)
        snaps = jm.status(eid)
    for run in [*store.runs(eid), *snaps]:
        assert run["state"] == FAILED
        assert run["error"] == "failed: could not prepare the data: MemoryError: no room for the images"


@pytest.mark.slow
def test_process_executor_builds_the_data_in_its_worker(store, monkeypatch, tmp_path):
    def not_here(**options):
        raise AssertionError("the dataset was built in the manager's process")

    monkeypatch.setattr(akp.datasets, "synthetic_dataset", not_here)  # the spawned worker has the real one
    missing = tiny("empty", seeds=(0, 1))
    (tmp_path / "empty-folder").mkdir()  # there, so launch takes it; no images in it, so building fails
    missing.dataset, missing.dataset_options = str(tmp_path / "empty-folder"), {}
    with JobManager(store, cache_projections=False, executor="process", threads=1, vectorized=False) as jm:
        good = jm.launch(tiny("proc"), user="local")
        bad = jm.launch(missing, user="local")
        assert jm.wait(good, timeout=240) and jm.wait(bad, timeout=240)
    assert {r["state"] for r in store.runs(good)} == {DONE}
    assert store.has_probe(good) and not store.has_probe(bad)
    for run in store.runs(bad):
        assert run["state"] == FAILED
        assert run["error"].startswith("failed: could not prepare the data: DatasetError: ")
        assert "empty-folder" in run["error"]


def test_a_dataset_that_is_not_there_is_refused_before_anything_is_written(store, tmp_path):
    from akp.datasets import DatasetError

    with JobManager(store, cache_projections=False) as jm:
        for name, problem in (("ds-0123456789abcdef", "is not registered"),
                              (str(tmp_path / "nowhere"), "no such folder or file")):
            spec = tiny("gone")
            spec.dataset, spec.dataset_options = name, {}
            with pytest.raises(DatasetError, match=problem) as err:
                jm.launch(spec, user="local")
            assert err.value.field == "dataset"
        assert store.experiments() == [] and not (store.home / "experiments").exists()


def test_bad_limit_settings_name_the_variable(store, monkeypatch):
    for env, text, problem in (("AKP_MAX_MEMORY_MB", "lots", "must be a positive integer, got 'lots'"),
                               ("AKP_MAX_RUNS_PER_USER", "0", "must be an integer from 1 to 100000, got 0"),
                               ("AKP_MAX_DISK_MB_PER_USER", "9" * 5000, "must be a positive integer")):
        with pytest.raises(LimitsError) as err:
            resolve_limits({env: text})
        assert err.value.field == env
        assert str(err.value).startswith(f"{env}: {problem}")
    assert resolve_limits({"AKP_MAX_EXPERIMENTS_PER_USER": " 7 "}).max_experiments_per_user == 7
    monkeypatch.setenv("AKP_MAX_EXPERIMENTS_PER_USER", "-3")
    with pytest.raises(LimitsError, match="AKP_MAX_EXPERIMENTS_PER_USER: must be an integer from 1"):
        JobManager(store)
    assert not (store.home / "jobs").exists()  # refused before any holder or worker started


def test_defaults_launch_the_presets(store):
    """The default limits suit a small shared server and still take the product's own presets."""
    from akp.experiment import load_preset
    from akp.memory import footprint

    limits = resolve_limits({})
    for name in ("smoke", "teaching", "balanced"):
        spec = load_preset(name)
        need = footprint(spec)
        assert len(spec.conditions) * len(spec.seeds) <= limits.max_runs_per_user
        assert max(need.dataset_build, need.run) <= limits.max_memory_mb * 2 ** 20
        assert need.disk <= limits.max_disk_mb_per_user * 2 ** 20
    huge = load_preset("balanced")
    huge.dataset_options = {**huge.dataset_options, "n_train": 200_000, "size": 128}
    with JobManager(store, cache_projections=False, limits=limits) as jm, pytest.raises(LaunchRefused) as err:
        jm.launch(huge, user="local")
    assert err.value.field == "memory.dataset"
    assert "building its dataset needs about 12,596 MB of at most 2,048 MB, 10,548 MB over" in str(err.value)
    assert store.experiments() == []


def _as_an_old_version_left_it(home) -> None:
    """Drop what this version adds to a store (the launch era): its runs now predate launch."""
    import sqlite3

    with sqlite3.connect(home / "akp.sqlite") as conn:
        conn.execute("DROP TABLE meta")


def test_runs_left_queued_by_an_old_version_are_queued_again_or_interrupted(tmp_path):
    home = tmp_path / "old"
    old = RunStore(home)
    a = existing(old, "ann", tiny("a", seeds=(0, 1)))
    b = existing(old, "ann", tiny("b", seeds=(0, 1)))
    _as_an_old_version_left_it(home)
    store = RunStore(home)
    fresh = existing(store, "ann", tiny("fresh"))  # created by this version, not submitted: left to its caller
    with JobManager(store, cache_projections=False, max_queued=3, max_workers=1) as jm:
        a_runs, b_runs = [r["run_id"] for r in store.runs(a)], [r["run_id"] for r in store.runs(b)]
        assert jm.repaired == [*a_runs, b_runs[0]]
        assert jm.repair_interrupted == [b_runs[1]]
        # What the sidebar counts as queued is what this manager will train (and the one left to its caller).
        held = {s["run_id"] for s in jm.status() if s["state"] in (QUEUED, "running")}
        assert held == {*a_runs, b_runs[0]}
        assert jm.wait(a, timeout=120) and jm.wait(b, timeout=120)
    assert [r["state"] for r in store.runs(a)] == [DONE, DONE]
    states = store.runs(b)
    assert [r["state"] for r in states] == [DONE, INTERRUPTED]
    assert states[1]["error"].startswith("interrupted: left queued by an older version, and over the queue cap "
                                         "(max_queued 3)")
    assert [r["state"] for r in store.runs(fresh)] == [QUEUED]


def test_repair_respects_the_owners_run_quota_and_live_managers(tmp_path):
    home = tmp_path / "old"
    old = RunStore(home)
    a = existing(old, "ann", tiny("a", seeds=(0, 1)))
    _as_an_old_version_left_it(home)
    store = RunStore(home)
    with JobManager(store, cache_projections=False, limits=LaunchLimits(max_runs_per_user=1)) as jm:
        runs = [r["run_id"] for r in store.runs(a)]
        assert jm.repaired == runs[:1] and jm.repair_interrupted == runs[1:]
        assert "over ann's run quota (AKP_MAX_RUNS_PER_USER 1)" in store.run(runs[1])["error"]
        second = JobManager(store, cache_projections=False)  # the first one holds runs[0]: not repaired twice
        assert second.repaired == [] and second.repair_interrupted == []
        second.shutdown()
        assert jm.wait(a, timeout=120)
    assert store.run(runs[0])["state"] == DONE


def test_cli_refused_launch_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from akp.cli import main

    home = tmp_path / "cli"
    monkeypatch.setenv("AKP_MAX_RUNS_PER_USER", "3")
    assert main(["experiment", "smoke", "--home", str(home), "--quiet", "--user", "ann"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: quota.runs (AKP_MAX_RUNS_PER_USER): ann has 0 queued or running runs of at most 3; "
                   "this experiment adds 4, 1 over; wait for some to finish, or use fewer conditions or seeds "
                   "(nothing was created)")
    assert RunStore(home).experiments() == []
    assert not (home / "experiments").exists()
    monkeypatch.setenv("AKP_MAX_RUNS_PER_USER", "many")
    assert main(["experiment", "smoke", "--home", str(home), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: AKP_MAX_RUNS_PER_USER: must be a positive integer, got 'many'"
