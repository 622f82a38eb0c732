import os
import threading

import numpy as np
import pytest

from akp.experiment import load_preset
from akp.paths import atomic_save_npz
from akp.store import RunStore, StoreError
from akp.train import RunResult


def fake_result(condition="steady", seed=0, state="done", epochs=2, n=64):
    rng = np.random.default_rng(seed)
    metrics = [{"epoch": e, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.6, "test_acc": 0.7 + e / 100,
                "gap": 0.1 - e / 100, "activation": "relu", "loss": "cross_entropy"} for e in range(epochs)]
    reps = {"embedding": {e: rng.random((n, 16), dtype=np.float32) for e in range(epochs)}}
    return RunResult(condition, seed, state, metrics, [{"epoch": 1, "activation": "tanh", "loss": None}], reps)



def test_create_experiment_makes_queued_runs_and_a_probe_set(store):
    spec = load_preset("smoke")
    eid = store.create_experiment(spec)
    runs = store.runs(eid)
    assert [(r["condition"], r["seed"], r["state"]) for r in runs] == [
        ("steady", 0, "queued"), ("steady", 1, "queued"), ("sigmoid-shock", 0, "queued"),
        ("sigmoid-shock", 1, "queued")]
    assert store.spec(eid) == spec
    labels = store.probe_labels(eid)
    assert labels.shape == (64,) and labels.dtype == np.int64 and labels.sum() == 32
    assert store.probe_images(eid).shape == (64, 1, 16, 16)  # the smoke preset: 16 px
    assert store.experiments()[0]["id"] == eid and store.experiments()[0]["states"] == {"queued": 4}


def test_result_round_trip_and_reopen(store):
    eid = store.create_experiment(load_preset("smoke"))
    rid = store.runs(eid)[0]["run_id"]
    result = fake_result()
    store.save_result(rid, result)
    again = RunStore(store.home)  # a new process would see the same
    run = again.run(rid)
    assert run["state"] == "done" and run["test_acc"] == pytest.approx(0.71) and run["epochs_done"] == 2
    assert again.metrics(rid) == result.metrics
    assert again.events(rid) == [{"epoch": 1, "activation": "tanh", "loss": None}]
    assert again.layers(rid) == ["embedding"] and again.representation_epochs(rid, "embedding") == [0, 1]
    assert np.array_equal(again.representations(rid, "embedding"), result.representations["embedding"][1])
    assert np.array_equal(again.representations(rid, "embedding", 0), result.representations["embedding"][0])
    with pytest.raises(StoreError, match="captured at epochs \\[0, 1\\], not 5"):
        again.representations(rid, "embedding", 5)
    with pytest.raises(StoreError, match="no representations for 'conv1'; available: embedding"):
        again.representations(rid, "conv1")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 200, "..", "a b"])
def test_ids_are_validated_against_path_traversal(store, bad):
    with pytest.raises(StoreError, match="invalid id"):
        store.run(bad)
    with pytest.raises(StoreError, match="invalid id"):
        store.runs(bad)


def test_unknown_ids_and_states_are_clear_errors(store):
    with pytest.raises(StoreError, match="no experiment 'e-nope'"):
        store.spec("e-nope")
    eid = store.create_experiment(load_preset("smoke"))
    with pytest.raises(StoreError, match="state: unknown 'paused'; allowed: queued"):
        store.set_state(store.runs(eid)[0]["run_id"], "paused")


def test_atomic_write_leaves_old_file_intact_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "r.npz"
    atomic_save_npz(path, {"a": np.arange(3)})

    def broken_savez(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        atomic_save_npz(path, {"a": np.arange(5)})
    monkeypatch.undo()
    with np.load(path) as z:
        assert z["a"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["r.npz"]  # no temp file left behind


def test_many_threads_write_safely(store):
    spec = load_preset("smoke").with_overrides(seeds=8)
    eid = store.create_experiment(spec)
    run_ids = [r["run_id"] for r in store.runs(eid)]
    errors = []

    def work(rid, seed):
        try:
            for e in range(5):
                store.record_epoch(rid, fake_result(seed=seed, epochs=5).metrics[e])
            store.save_result(rid, fake_result(seed=seed, epochs=5))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(rid, i)) for i, rid in enumerate(run_ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(r["state"] == "done" and r["epochs_done"] == 5 for r in store.runs(eid))
    assert all(len(store.metrics(rid)) == 5 for rid in run_ids)


def test_delete_experiment_removes_rows_and_files(store):
    eid = store.create_experiment(load_preset("smoke"))
    rid = store.runs(eid)[0]["run_id"]
    store.save_result(rid, fake_result())
    assert store.run_file(rid).exists()
    for other in store.runs(eid)[1:]:  # queued runs must be cancelled first (tests/test_access.py)
        store.set_state(other["run_id"], "cancelled")
    store.delete_experiment(eid)
    assert store.experiments() == []
    assert not store.run_file(rid).exists() and not store.experiment_dir(eid).exists()
    with pytest.raises(StoreError):
        store.run(rid)


def test_reset_run_forgets_results(store):
    eid = store.create_experiment(load_preset("smoke"))
    rid = store.runs(eid)[0]["run_id"]
    store.save_result(rid, fake_result())
    store.reset_run(rid)
    assert store.run(rid)["state"] == "queued" and store.metrics(rid) == [] and store.layers(rid) == []


def test_default_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AKP_HOME", str(tmp_path / "elsewhere"))
    assert RunStore().home == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / "akp.sqlite").exists()


def test_a_run_is_claimed_for_training_only_once(store):
    eid = store.create_experiment(load_preset("smoke"))
    rid = store.runs(eid)[0]["run_id"]
    store.record_epoch(rid, fake_result().metrics[0])
    assert store.claim_run(rid) is True
    assert store.run(rid)["state"] == "running" and store.metrics(rid) == []  # old partial results cleared
    assert store.claim_run(rid) is False  # e.g. the CLI and the app on one store
    store.save_result(rid, fake_result())
    assert store.claim_run(rid) is False and store.run(rid)["state"] == "done"
    with pytest.raises(StoreError, match="no run"):
        store.reset_run(f"{eid}-c9-s9")


def test_a_failed_commit_leaves_the_connection_usable(store, monkeypatch):
    eid = store.create_experiment(load_preset("smoke"))
    rid = store.runs(eid)[0]["run_id"]
    with pytest.raises(RuntimeError):
        with store._tx() as conn:
            conn.execute("UPDATE runs SET state = 'failed' WHERE id = ?", (rid,))
            raise RuntimeError("boom")
    assert store.run(rid)["state"] == "queued"  # rolled back
    store.set_state(rid, "cancelled")  # and the next transaction on this thread works
    assert store.run(rid)["state"] == "cancelled"


def test_a_store_made_before_the_collapse_columns_opens_and_reads(tmp_path):
    import sqlite3

    conn = sqlite3.connect(tmp_path / "akp.sqlite")
    conn.executescript("""
        CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL,
                                  owner TEXT, spec TEXT NOT NULL);
        CREATE TABLE runs (id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, condition TEXT NOT NULL,
                           seed INTEGER NOT NULL, state TEXT NOT NULL, error TEXT,
                           epochs_done INTEGER NOT NULL DEFAULT 0, test_acc REAL, train_acc REAL, gap REAL,
                           updated REAL NOT NULL);
    """)
    conn.execute("INSERT INTO experiments VALUES ('e1', 'old', 0, NULL, ?)", (load_preset("smoke").to_json(),))
    conn.execute("INSERT INTO runs VALUES ('e1-r0', 'e1', 'steady', 0, 'done', NULL, 2, 0.9, 0.95, 0.05, 0)")
    conn.commit()
    conn.close()
    run = RunStore(tmp_path).runs("e1")[0]
    assert run["test_acc"] == 0.9 and run["majority_rate"] is None and run["pred_classes"] is None
