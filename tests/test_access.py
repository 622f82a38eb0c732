"""Owners: who may cancel, resume, delete, rename, annotate an experiment; and old stores that had no owner."""
from __future__ import annotations

import json
import sqlite3
import threading
import time

import numpy as np
import pytest

import akp
import akp.runner
from akp.access import LOCAL_USER, admins_from_env, can_manage, check_can_manage, owner_of
from akp.annotations import MAX_NOTES_CHARS, MAX_TAG_CHARS, MAX_TAGS, check_tags
from akp.errors import AccessError, AKPError
from akp.experiment import load_preset
from akp.jobs import JobError, JobManager
from akp.store import RunStore, StoreError
from tests.specs import small_smoke_spec

PROBE = (np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 0, 1]))


def make(store: RunStore, owner: str | None = "ann", name: str = "exp") -> str:
    """An experiment recorded without training or building a dataset (the probe set is given)."""
    spec = load_preset("smoke")
    spec.name = name
    return store.create_experiment(spec, owner=owner, probe_images=PROBE[0], probe_labels=PROBE[1])


def snapshot(store: RunStore, eid: str) -> tuple:
    """Everything a management call could change: the record, the run states, the files."""
    record, runs = store.experiment(eid), store.runs(eid)
    files = sorted(p.relative_to(store.home).as_posix() for p in store.experiment_dir(eid).rglob("*"))
    files += [r["run_id"] for r in runs if store.run_file(r["run_id"]).exists()]
    return record, [(r["run_id"], r["state"]) for r in runs], files


def test_access_error_is_a_permission_error_naming_owner_and_user():
    exc = AccessError("e1", "ann@lab.org", "bob@lab.org", "delete")
    assert isinstance(exc, PermissionError) and akp.AccessError is AccessError
    assert (exc.owner, exc.user, exc.experiment_id) == ("ann@lab.org", "bob@lab.org", "e1")
    assert str(exc) == ("experiment e1 belongs to 'ann@lab.org': only its owner or an admin may delete it "
                        "('bob@lab.org' is neither)")


def test_admins_come_from_the_environment_and_none_is_a_trusted_caller(monkeypatch):
    assert admins_from_env({"AKP_ADMINS": " root@lab.org, ,eve "}) == frozenset({"root@lab.org", "eve"})
    assert admins_from_env({}) == frozenset()
    monkeypatch.setenv("AKP_ADMINS", "eve")
    record = {"id": "e1", "owner": "ann"}
    assert can_manage(record, "eve") and not can_manage(record, "bob")  # admins read from the environment
    assert can_manage(record, None) and can_manage(record, "ann")
    assert owner_of({"id": "e0", "owner": None}) == LOCAL_USER  # stored by an older version
    with pytest.raises(AccessError, match="belongs to 'local'"):
        check_can_manage({"id": "e0", "owner": None}, "bob", frozenset())


def test_every_experiment_records_an_owner(store):
    assert store.experiment(make(store, owner=None))["owner"] == LOCAL_USER
    eid = make(store, owner=" ann@lab.org ")
    listed = {e["id"]: e for e in store.experiments()}
    assert listed[eid]["owner"] == "ann@lab.org" and listed[eid]["notes"] == "" and listed[eid]["tags"] == []
    before = len(store.experiments())
    for bad in ("", "a\x00b", "x" * 300, 5):
        with pytest.raises(AKPError) as info:
            make(store, owner=bad)
        assert info.value.field == "owner"
    assert len(store.experiments()) == before  # nothing written


def test_another_user_can_change_nothing_the_owner_and_admins_can(store):
    eid = make(store)
    before = snapshot(store, eid)
    attempts = {
        "rename": lambda **kw: store.rename_experiment(eid, "new", **kw),
        "annotate": lambda **kw: store.set_notes(eid, "mine now", **kw),
        "tag": lambda **kw: store.set_tags(eid, ["x"], **kw),
        "delete": lambda **kw: store.delete_experiment(eid, **kw),
    }
    for action, attempt in attempts.items():
        with pytest.raises(AccessError, match=f"belongs to 'ann': only its owner or an admin may {action} it") as info:
            attempt(user="bob", admins=frozenset({"eve"}))
        assert info.value.owner == "ann" and info.value.user == "bob"
        assert snapshot(store, eid) == before, action
    assert store.rename_experiment(eid, " ann's run ", user="ann", admins=frozenset()) == "ann's run"
    assert store.set_notes(eid, "two seeds\n\tsee the gap  ", user="eve", admins=frozenset({"eve"})) == \
        "two seeds\n\tsee the gap"
    assert store.set_tags(eid, ["class", " demo", "class"], user=None) == ["class", "demo"]
    record = store.experiment(eid)
    assert (record["name"], record["spec"]["name"], store.spec(eid).name) == ("ann's run",) * 3
    assert (record["notes"], record["tags"]) == ("two seeds\n\tsee the gap", ["class", "demo"])
    (listed,) = store.experiments()
    assert (listed["name"], listed["notes"], listed["tags"]) == ("ann's run", "two seeds\n\tsee the gap",
                                                                  ["class", "demo"])
    store.set_tags(eid, [], user="ann")
    store.set_notes(eid, "", user="ann")
    assert (store.experiment(eid)["tags"], store.experiment(eid)["notes"]) == ([], "")


def test_bad_names_notes_and_tags_are_refused_naming_the_field(store):
    eid = make(store)
    before = snapshot(store, eid)
    cases = [
        (lambda: store.rename_experiment(eid, "   "), "name", "name: must be non-empty text of at most 200"),
        (lambda: store.rename_experiment(eid, "x" * 201), "name", "name: at most 200 characters, got 201"),
        (lambda: store.rename_experiment(eid, None), "name", "name: must be non-empty text"),
        (lambda: store.set_notes(eid, "x" * (MAX_NOTES_CHARS + 1)), "notes",
         f"notes: at most {MAX_NOTES_CHARS} characters, got {MAX_NOTES_CHARS + 1}"),
        (lambda: store.set_notes(eid, "bell\x07"), "notes", "notes: must not contain control characters"),
        (lambda: store.set_notes(eid, ["a"]), "notes", "notes: must be text"),
        (lambda: store.set_tags(eid, "abc"), "tags", "tags: must be a list of tags"),
        (lambda: store.set_tags(eid, ["ok", ""]), "tags[1]", "tags[1]: must be non-empty text"),
        (lambda: store.set_tags(eid, ["t" * (MAX_TAG_CHARS + 1)]), "tags[0]",
         f"tags[0]: at most {MAX_TAG_CHARS} characters"),
        (lambda: store.set_tags(eid, ["a,b"]), "tags[0]", "tags[0]: must not contain commas or control"),
        (lambda: store.set_tags(eid, ["new\nline"]), "tags[0]", "tags[0]: must not contain commas or control"),
        (lambda: store.set_tags(eid, [f"t{i}" for i in range(MAX_TAGS + 1)]), "tags", f"tags: at most {MAX_TAGS}"),
    ]
    for call, field, message in cases:
        with pytest.raises(AKPError) as info:
            call()
        assert info.value.field == field and str(info.value).startswith(message), str(info.value)
    assert snapshot(store, eid) == before
    assert check_tags([f"t{i}" for i in range(MAX_TAGS)] + ["t0"]) == [f"t{i}" for i in range(MAX_TAGS)]
    with pytest.raises(StoreError, match="no experiment"):
        store.set_notes("e-none", "x")


def test_delete_removes_rows_and_every_file_and_leaves_other_experiments(store):
    keep, gone = make(store, name="keep"), make(store, name="gone")
    runs = [r["run_id"] for r in store.runs(gone)]
    for rid in runs + [store.runs(keep)[0]["run_id"]]:
        store.set_state(rid, "done")
    store.run_file(runs[0]).parent.mkdir(parents=True, exist_ok=True)
    store.run_file(runs[0]).write_bytes(b"representations")
    checkpoint = store.experiment_dir(gone) / "checkpoints" / f"{runs[1]}.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"checkpoint")
    cached = store.run_cache_dir(runs[0], "umap") / "umap-abc.npy"
    cached.write_bytes(b"umap")
    store.record_epoch(runs[0], {"epoch": 0, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0,
                                 "test_acc": 0.5, "gap": 0.0, "activation": "relu", "loss": "ce"},
                       {"epoch": 0, "activation": "relu", "loss": "ce"})
    kept_files = snapshot(store, keep)[2]

    with pytest.raises(AccessError):
        store.delete_experiment(gone, user="bob", admins=frozenset())
    assert checkpoint.exists() and cached.exists()
    store.delete_experiment(gone, user="root", admins=frozenset({"root"}))  # an admin may

    assert [e["id"] for e in store.experiments()] == [keep]
    assert not store.experiment_dir(gone).exists() and not store.run_file(runs[0]).exists()
    assert not checkpoint.exists() and not cached.exists()
    conn = sqlite3.connect(store.db_path)
    for table in ("runs", "metrics", "events"):
        column = "experiment_id" if table == "runs" else "run_id"
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} LIKE ?", (f"{gone}%",)).fetchone()[0] == 0
    conn.close()
    assert snapshot(store, keep)[2] == kept_files
    with pytest.raises(StoreError, match="no experiment"):
        store.delete_experiment(gone)


def test_delete_refuses_while_runs_are_queued_or_running(store):
    eid = make(store)
    first, second = (r["run_id"] for r in store.runs(eid)[:2])
    store.set_state(first, "done")
    store.set_state(second, "running")
    before = snapshot(store, eid)
    with pytest.raises(StoreError, match=r"has \d+ queued or running runs; cancel them first") as info:
        store.delete_experiment(eid, user="ann")
    assert info.value.field == "experiment_id"
    assert snapshot(store, eid) == before
    for r in store.runs(eid):
        if r["state"] in ("queued", "running"):
            store.set_state(r["run_id"], "cancelled")
    store.delete_experiment(eid, user="ann")
    assert store.experiments() == []
    undone = make(store)  # a refused launch undoes its creation, queued runs and all
    store.delete_experiment(undone, force=True)
    assert store.experiments() == [] and not store.experiment_dir(undone).exists()


def test_a_store_made_before_owners_notes_and_tags_opens_and_is_migrated(tmp_path):
    conn = sqlite3.connect(tmp_path / "akp.sqlite")
    conn.executescript("""
        CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL,
                                  owner TEXT, spec TEXT NOT NULL);
        CREATE TABLE runs (id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, condition TEXT NOT NULL,
                           seed INTEGER NOT NULL, state TEXT NOT NULL, error TEXT,
                           epochs_done INTEGER NOT NULL DEFAULT 0, test_acc REAL, train_acc REAL, gap REAL,
                           updated REAL NOT NULL, majority_rate REAL, pred_classes INTEGER);
    """)
    conn.execute("INSERT INTO experiments VALUES ('e1', 'old', 0, NULL, ?)", (load_preset("smoke").to_json(),))
    conn.execute("INSERT INTO runs VALUES ('e1-r0', 'e1', 'steady', 0, 'done', NULL, 2, 0.9, 0.95, 0.05, 0, "
                 "NULL, NULL)")
    conn.commit()
    conn.close()

    store = RunStore(tmp_path)
    (old,) = store.experiments()
    assert (old["owner"], old["notes"], old["tags"], old["n_runs"]) == (LOCAL_USER, "", [], 1)
    with pytest.raises(AccessError, match="belongs to 'local'"):
        store.set_tags("e1", ["legacy"], user="bob", admins=frozenset())
    store.set_tags("e1", ["legacy"], user=LOCAL_USER)
    store.set_notes("e1", "from before owners")
    assert RunStore(tmp_path).experiment("e1")["tags"] == ["legacy"]  # reopening migrates nothing twice
    columns = {row[1] for row in sqlite3.connect(tmp_path / "akp.sqlite").execute("PRAGMA table_info(experiments)")}
    assert {"notes", "tags"} <= columns
    assert json.loads(sqlite3.connect(tmp_path / "akp.sqlite").execute(
        "SELECT tags FROM experiments").fetchone()[0]) == ["legacy"]
    new = make(store)  # an old store takes new experiments
    assert store.experiment(new)["owner"] == "ann"


@pytest.fixture
def gate(monkeypatch):
    """Make every run wait inside training until ``gate.set()``."""
    event = threading.Event()
    real = akp.runner.train_run

    def waiting(*args, **kwargs):
        assert event.wait(60), "gate never opened"
        return real(*args, **kwargs)

    monkeypatch.setattr(akp.runner, "train_run", waiting)
    yield event
    event.set()


def test_cancel_and_resume_check_the_owner_before_changing_anything(store, gate):
    spec = small_smoke_spec("mine", epochs=1, seeds=(0, 1), n_train=64, n_test=48, conditions=slice(0, 1))
    eid = store.create_experiment(spec, owner="ann")
    unsubmitted = store.create_experiment(spec, owner="ann")
    manager = JobManager(store, max_workers=1, admins=frozenset({"root"}), cache_projections=False)
    try:
        ids = manager.submit(eid)
        states = lambda e: [r["state"] for r in store.runs(e)]  # noqa: E731
        deadline = time.monotonic() + 60
        while manager.status(eid)[0]["state"] != "running":  # the first run waits at the gate, inside training
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.02)
        before = [(s["run_id"], s["state"]) for s in manager.status(eid)]
        for target in (eid, ids[0], ids[1], unsubmitted):  # experiment, running run, queued run, never submitted
            with pytest.raises(AccessError, match="belongs to 'ann': only its owner or an admin may cancel it"):
                manager.cancel(target, user="bob")
        assert [(s["run_id"], s["state"]) for s in manager.status(eid)] == before
        assert states(unsubmitted) == ["queued", "queued"]
        with pytest.raises(JobError, match="no run or experiment"):
            manager.cancel("nope", user="bob")

        assert manager.cancel(ids[1], user="ann") == [ids[1]]  # the owner
        assert len(manager.cancel(unsubmitted, user="root")) == 2  # an admin
        with pytest.raises(AccessError, match="may resume it"):
            manager.resume(unsubmitted, user="bob")
        assert states(unsubmitted) == ["cancelled", "cancelled"]
        assert manager.cancel(eid) == [ids[0]]  # a trusted local caller (user=None)
        gate.set()
        assert manager.wait(eid, timeout=120)
        assert set(states(eid)) == {"cancelled"}
        assert sorted(manager.resume(eid, user="root")) == sorted(ids)
        assert manager.wait(eid, timeout=120)
        assert states(eid) == ["done", "done"]
    finally:
        gate.set()
        manager.shutdown()


def test_the_manager_reads_admins_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("AKP_ADMINS", "root@lab.org,eve")
    eid = make(store)
    with JobManager(store, cache_projections=False) as manager:
        assert manager.admins == frozenset({"root@lab.org", "eve"})
        assert len(manager.cancel(eid, user="eve")) == len(store.runs(eid))
        assert {r["state"] for r in store.runs(eid)} == {"cancelled"}


def test_a_launch_refused_after_its_rows_were_written_removes_them_despite_queued_runs(store, monkeypatch):
    """The owners rule refuses to delete an experiment with queued runs; undoing a refused launch must not be."""
    from akp.jobs import QueueFullError
    from akp.quotas import LaunchRefused

    def lost_race(self, *args, **kwargs):  # another submit took the last queue places after launch's check
        raise QueueFullError("max_queued: the queue holds 64 of at most 64 runs; 2 more do not fit")

    monkeypatch.setattr(JobManager, "_queue", lost_race)
    spec = small_smoke_spec("raced", epochs=1, seeds=(0, 1), n_train=64, n_test=48, conditions=slice(0, 1))
    with JobManager(store, cache_projections=False, repair=False) as manager:
        with pytest.raises(LaunchRefused, match="max_queued"):
            manager.launch(spec, user="ann")
    assert store.experiments() == []
    assert list(store.home.glob("experiments/*")) == []  # no folder of it left either
