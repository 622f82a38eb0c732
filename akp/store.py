"""The run store: experiments, runs, per-epoch metrics, swap events and representations.

SQLite (WAL mode, one connection per thread) holds everything tabular; arrays
live in per-run ``.npz`` files written atomically (temp file + rename), so a
crash never leaves a half-written file behind. The same store serves the app,
``import akp`` and ``python -m akp``.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from akp.access import LOCAL_USER, check_user, owner_of
from akp.datasets import load_dataset
from akp.errors import StoreError
from akp.experiment import ExperimentSpec, experiment_probe
from akp.experiment_admin import ExperimentAdmin
from akp.paths import atomic_save_npz, default_home, sweep_temp_files
from akp.runs import FINISHED_STATES, RUN_STATES, RunRecord

__all__ = ["FINISHED_STATES", "RUN_STATES", "RunStore", "StoreError", "check_id"]
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL,
    owner TEXT, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    condition TEXT NOT NULL, seed INTEGER NOT NULL, state TEXT NOT NULL, error TEXT,
    epochs_done INTEGER NOT NULL DEFAULT 0, test_acc REAL, train_acc REAL, gap REAL,
    updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment_id);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, test_loss REAL, test_acc REAL, gap REAL,
    activation TEXT, loss TEXT, PRIMARY KEY (run_id, epoch));
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
    activation TEXT, loss TEXT, PRIMARY KEY (run_id, epoch));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns added after the first version, per table: (name, SQL type). Old stores get them on open.
RUN_COLUMNS_ADDED = (("majority_rate", "REAL"), ("pred_classes", "INTEGER"))
EXPERIMENT_COLUMNS_ADDED = (("notes", "TEXT"), ("tags", "TEXT"))  # tags: a JSON list of strings
COLUMNS_ADDED = {"runs": RUN_COLUMNS_ADDED, "experiments": EXPERIMENT_COLUMNS_ADDED}
METRIC_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "gap", "activation", "loss")


def check_id(value: str, field: str = "id") -> str:
    """Validate an experiment or run id (letters, digits, ``-`` and ``_``; no paths).

    Raises
    ------
    StoreError
    """
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise StoreError.at(field, f"invalid id {value!r}; ids use letters, digits, '-' and '_' only")
    return value


class RunStore(ExperimentAdmin):
    """Persistent store of experiments and runs under ``home``.

    The owner-checked changes (delete, rename, notes, tags) come from
    :class:`akp.experiment_admin.ExperimentAdmin`.

    Parameters
    ----------
    home : path, optional
        Directory of the store; default ``$AKP_HOME`` or ``./akp-data``.
        Created if missing.
    """

    def __init__(self, home: str | os.PathLike | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(self.home)  # leftovers of writers killed mid-write (never a live writer's)
        self.db_path = self.home / "akp.sqlite"
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._write_lock:
            self._conn().executescript(SCHEMA)  # idempotent; executescript manages its own transaction
            self._migrate()
            self.launch_era = self._launch_era()

    def _launch_era(self) -> float:
        """When this store was first opened by a version that launches atomically (``JobManager.launch``).

        Runs left ``queued`` (and held by no live manager) whose last update is older
        were left by an older version, which created runs it never queued; a job
        manager repairs them when it starts (:meth:`akp.jobs.JobManager.repair`).
        """
        conn = self._conn()
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('launch_era', ?)", (repr(time.time()),))
        return float(conn.execute("SELECT value FROM meta WHERE key = 'launch_era'").fetchone()[0])

    def _migrate(self) -> None:
        """Add the columns of newer versions to a store made by an older one (existing rows get NULL)."""
        conn = self._conn()
        # In one write transaction: two processes opening an old store at once add each column once.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, columns in COLUMNS_ADDED.items():
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for column, kind in columns:
                    if column not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- plumbing -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; one writer per process at a time, SQLite locks across processes."""
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (busy, disk full): never leave this connection inside a transaction.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, args).fetchall()

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def experiment_dir(self, experiment_id: str) -> Path:
        """Directory of an experiment's files."""
        return self.home / "experiments" / check_id(experiment_id, "experiment_id")

    def run_file(self, run_id: str) -> Path:
        """Path of a run's representations file."""
        return self.home / "runs" / f"{check_id(run_id, 'run_id')}.npz"

    def cache_dir(self, kind: str) -> Path:
        """A cache directory under the store's home (created)."""
        path = self.home / "cache" / check_id(kind, "kind")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_cache_dir(self, run_id: str, kind: str) -> Path:
        """A cache directory for views of one run (created), inside its experiment's directory,
        so that deleting the experiment deletes its caches.

        Raises
        ------
        StoreError
            If there is no such run.
        """
        path = self.experiment_dir(self.run(run_id)["experiment_id"]) / "cache" / check_id(kind, "kind")
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- experiments ----------------------------------------------------------
    def create_experiment(self, spec: ExperimentSpec, *, owner: str | None = None,
                          probe_images: np.ndarray | None = None,
                          probe_labels: np.ndarray | None = None, build_data: bool = True) -> str:
        """Record an experiment and one ``queued`` run per condition and seed.

        Parameters
        ----------
        spec : ExperimentSpec
            Validated before anything is written.
        owner : str, optional
            Who launched it: only they (or an admin) may change it later
            (:mod:`akp.access`). Default :data:`akp.access.LOCAL_USER`.
        probe_images, probe_labels : ndarray, optional
            The fixed probe set; computed from the dataset when omitted.
        build_data : bool, default=True
            False: write only the rows, not the probe set; the dataset is built later,
            off the caller's thread (:func:`akp.runner.ensure_probe`, as
            :meth:`akp.jobs.JobManager.launch` does). Until then :meth:`has_probe` is False.

        Returns
        -------
        str
            The new experiment id.

        Raises
        ------
        ExperimentError
            If the spec is invalid (nothing is written).
        AKPError
            If ``owner`` is not a valid user name (field ``owner``; nothing is written).
        """
        spec.validate()
        owner = LOCAL_USER if owner is None else check_user(owner, "owner")
        if build_data and (probe_images is None or probe_labels is None):
            data = load_dataset(spec.dataset, spec.dataset_options, home=self.home)
            idx = experiment_probe(spec, data)
            probe_images, probe_labels = data.x_test[idx], data.y_test[idx]
        experiment_id = time.strftime("e%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        if build_data:
            self.save_probe(experiment_id, probe_images, probe_labels)
        now = time.time()
        with self._tx() as conn:
            conn.execute("INSERT INTO experiments (id, name, created, owner, spec) VALUES (?, ?, ?, ?, ?)",
                         (experiment_id, spec.name, now, owner, spec.to_json()))
            for ci, cond in enumerate(spec.conditions):
                for seed in spec.seeds:
                    run_id = f"{experiment_id}-c{ci}-s{seed}"
                    conn.execute(
                        "INSERT INTO runs (id, experiment_id, condition, seed, state, updated) "
                        "VALUES (?, ?, ?, ?, 'queued', ?)", (run_id, experiment_id, cond.name, seed, now))
        return experiment_id

    def experiments(self) -> list[dict[str, Any]]:
        """All experiments, newest first: id, name, created, owner, notes, tags, n_runs, states (counts per state).

        ``owner`` is :data:`akp.access.LOCAL_USER` for experiments older versions stored without one;
        ``notes`` is ``""`` and ``tags`` ``[]`` when none were set.
        """
        rows = self._query("SELECT id, name, created, owner, notes, tags FROM experiments ORDER BY created DESC")
        counts: dict[str, dict[str, int]] = {}
        for r in self._query("SELECT experiment_id, state, COUNT(*) AS n FROM runs GROUP BY experiment_id, state"):
            counts.setdefault(r["experiment_id"], {})[r["state"]] = r["n"]
        return [{**_experiment_dict(r), "n_runs": sum(counts.get(r["id"], {}).values()),
                 "states": counts.get(r["id"], {})} for r in rows]

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        """One experiment's record: id, name, created, owner, notes, tags, spec (as a dict).

        Raises
        ------
        StoreError
            If there is no such experiment.
        """
        rows = self._query("SELECT * FROM experiments WHERE id = ?", (check_id(experiment_id, "experiment_id"),))
        if not rows:
            raise StoreError(f"experiment_id: no experiment {experiment_id!r} in {self.home}")
        return {**_experiment_dict(rows[0]), "spec": json.loads(rows[0]["spec"])}

    def spec(self, experiment_id: str) -> ExperimentSpec:
        """The experiment's spec."""
        return ExperimentSpec.from_dict(self.experiment(experiment_id)["spec"])

    def save_probe(self, experiment_id: str, images: np.ndarray, labels: np.ndarray) -> None:
        """Write the experiment's probe set (atomically: readers see all of it or none)."""
        atomic_save_npz(self.experiment_dir(experiment_id) / "probe.npz",
                        {"images": np.asarray(images, np.float32), "labels": np.asarray(labels, np.int64)})

    def has_probe(self, experiment_id: str) -> bool:
        """True once the experiment's probe set is stored (False while its data is being prepared)."""
        return (self.experiment_dir(experiment_id) / "probe.npz").exists()

    def owner_usage(self, owner: str) -> dict[str, int]:
        """What one owner uses now: experiments, queued or running runs, bytes on disk.

        Returns
        -------
        dict
            ``experiments``, ``active_runs`` (queued or running, held or not) and
            ``disk_bytes`` (their experiment folders and run files).
        """
        ids = [r["id"] for r in self._query("SELECT id FROM experiments WHERE owner = ?", (owner,))]
        active = self._query("SELECT COUNT(*) AS n FROM runs JOIN experiments ON runs.experiment_id = experiments.id "
                             "WHERE experiments.owner = ? AND runs.state IN ('queued', 'running')", (owner,))[0]["n"]
        disk = 0
        for eid in ids:
            for root, _, files in os.walk(self.experiment_dir(eid)):
                disk += sum(_size(Path(root) / f) for f in files)
            for r in self._query("SELECT id FROM runs WHERE experiment_id = ?", (eid,)):
                disk += _size(self.run_file(r["id"]))
        return {"experiments": len(ids), "active_runs": int(active), "disk_bytes": disk}

    def probe_labels(self, experiment_id: str) -> np.ndarray:
        """Labels of the experiment's probe set, int64 (n_probe,)."""
        return self._load_probe(experiment_id)["labels"]

    def probe_images(self, experiment_id: str) -> np.ndarray:
        """Images of the experiment's probe set, float32 (n_probe, C, H, W)."""
        return self._load_probe(experiment_id)["images"]

    def _load_probe(self, experiment_id: str) -> dict[str, np.ndarray]:
        path = self.experiment_dir(experiment_id) / "probe.npz"
        if not path.exists():
            raise StoreError(f"experiment_id: no probe set stored for {experiment_id!r}")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    # -- runs -----------------------------------------------------------------
    def runs(self, experiment_id: str) -> list[RunRecord]:
        """The experiment's runs: run_id, experiment_id, condition, seed, state, test_acc, ...

        Raises
        ------
        StoreError
            If there is no such experiment.
        """
        self.experiment(experiment_id)
        rows = self._query("SELECT * FROM runs WHERE experiment_id = ? ORDER BY rowid", (experiment_id,))
        return [_run_dict(r) for r in rows]

    def run(self, run_id: str) -> RunRecord:
        """One run's record.

        Raises
        ------
        StoreError
            If there is no such run.
        """
        rows = self._query("SELECT * FROM runs WHERE id = ?", (check_id(run_id, "run_id"),))
        if not rows:
            raise StoreError(f"run_id: no run {run_id!r}")
        return _run_dict(rows[0])

    def runs_in_state(self, *states: str) -> list[RunRecord]:
        """All runs, in any experiment, whose state is one of ``states``."""
        marks = ",".join("?" * len(states))
        return [_run_dict(r) for r in self._query(f"SELECT * FROM runs WHERE state IN ({marks})", states)]

    def queued_before(self, when: float) -> list[RunRecord]:
        """Runs ``queued`` since before ``when`` (a time.time()), in creation order; see :attr:`launch_era`."""
        return [_run_dict(r) for r in self._query("SELECT * FROM runs WHERE state = 'queued' AND updated < ? "
                                                  "ORDER BY rowid", (when,))]

    def set_state(self, run_id: str, state: str, *, error: str | None = None) -> None:
        """Set a run's state (and error message).

        Raises
        ------
        StoreError
            If the state is unknown or the run does not exist.
        """
        if state not in RUN_STATES:
            raise StoreError.at("state", f"unknown {state!r}; allowed: {', '.join(RUN_STATES)}")
        with self._tx() as conn:
            cur = conn.execute("UPDATE runs SET state = ?, error = ?, updated = ? WHERE id = ?",
                               (state, error, time.time(), check_id(run_id, "run_id")))
            if cur.rowcount == 0:
                raise StoreError(f"run_id: no run {run_id!r}")

    def claim_run(self, run_id: str) -> bool:
        """Atomically take a ``queued`` run for training: mark it ``running`` and clear old results.

        Two processes sharing a store (the app and the command line, say) can
        both try to train a run; only the one whose claim succeeds does.

        Returns
        -------
        bool
            False if the run was not ``queued`` (someone else has it, or it finished).
        """
        with self._tx() as conn:
            cur = conn.execute("UPDATE runs SET state = 'running', error = NULL, epochs_done = 0, test_acc = NULL, "
                               "train_acc = NULL, gap = NULL, updated = ? WHERE id = ? AND state = 'queued'",
                               (time.time(), check_id(run_id, "run_id")))
            if cur.rowcount == 0:
                return False
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
        self.run_file(run_id).unlink(missing_ok=True)
        return True

    def reset_run(self, run_id: str, state: str = "queued") -> None:
        """Forget a run's results (to train it again) and set its state.

        Raises
        ------
        StoreError
            If the state is unknown or there is no such run.
        """
        if state not in RUN_STATES:
            raise StoreError.at("state", f"unknown {state!r}; allowed: {', '.join(RUN_STATES)}")
        self.run(run_id)
        with self._tx() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            conn.execute("UPDATE runs SET state = ?, error = NULL, epochs_done = 0, test_acc = NULL, "
                         "train_acc = NULL, gap = NULL, updated = ? WHERE id = ?", (state, time.time(), run_id))
        self.run_file(run_id).unlink(missing_ok=True)

    def record_epoch(self, run_id: str, row: dict[str, Any], event: dict[str, Any] | None = None) -> None:
        """Append one epoch's metrics (and the swap event of that epoch) as it finishes.

        Written as they come so that a crash loses at most the epoch in progress.
        """
        with self._tx() as conn:
            _insert_epoch(conn, run_id, row, event)

    def save_result(self, run_id: str, result) -> None:
        """Store a finished run: representations file first, then metrics, events, state.

        Parameters
        ----------
        run_id : str
        result : akp.train.RunResult
        """
        arrays = {f"{layer}@{epoch}": feats
                  for layer, by_epoch in result.representations.items() for epoch, feats in by_epoch.items()}
        if arrays:
            atomic_save_npz(self.run_file(run_id), arrays)
        events = {e["epoch"]: e for e in result.events}
        last = result.metrics[-1] if result.metrics else {}
        with self._tx() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            for row in result.metrics:
                _insert_epoch(conn, run_id, row, events.pop(row["epoch"], None))
            for event in events.values():  # an event of an epoch that did not finish
                conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                             (run_id, event["epoch"], event.get("activation"), event.get("loss")))
            conn.execute(
                "UPDATE runs SET state = ?, error = NULL, epochs_done = ?, test_acc = ?, train_acc = ?, "
                "gap = ?, majority_rate = ?, pred_classes = ?, updated = ? WHERE id = ?",
                (result.state, len(result.metrics), last.get("test_acc"), last.get("train_acc"),
                 last.get("gap"), getattr(result, "majority_rate", None), getattr(result, "pred_classes", None),
                 time.time(), run_id))

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        """Per-epoch metrics of a run, in epoch order."""
        rows = self._query("SELECT * FROM metrics WHERE run_id = ? ORDER BY epoch", (check_id(run_id, "run_id"),))
        return [{k: r[k] for k in METRIC_KEYS} for r in rows]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Swap events of a run as they took effect: epoch, activation, loss."""
        rows = self._query("SELECT epoch, activation, loss FROM events WHERE run_id = ? ORDER BY epoch",
                           (check_id(run_id, "run_id"),))
        return [dict(r) for r in rows]

    # -- representations ------------------------------------------------------
    def _rep_keys(self, run_id: str) -> list[tuple[str, int]]:
        path = self.run_file(run_id)
        if not path.exists():
            return []
        with np.load(path, allow_pickle=False) as z:
            return [(k.split("@")[0], int(k.split("@")[1])) for k in z.files]

    def layers(self, run_id: str) -> list[str]:
        """Layers with captured representations for a run."""
        return list(dict.fromkeys(layer for layer, _ in self._rep_keys(run_id)))

    def representation_epochs(self, run_id: str, layer: str) -> list[int]:
        """Epochs at which ``layer`` was captured for a run, sorted."""
        return sorted(e for lay, e in self._rep_keys(run_id) if lay == layer)

    def representations(self, run_id: str, layer: str, epoch: int | None = None) -> np.ndarray:
        """Probe-set representations of a run at a layer, float32 (n_probe, features).

        Parameters
        ----------
        run_id : str
        layer : str
        epoch : int, optional
            Captured epoch; default the last one.

        Raises
        ------
        StoreError
            If the run has no such layer or epoch.
        """
        epochs = self.representation_epochs(run_id, layer)
        if not epochs:
            raise StoreError(f"layer: run {run_id!r} has no representations for {layer!r}; "
                             f"available: {', '.join(self.layers(run_id)) or 'none'}")
        if epoch is None:
            epoch = epochs[-1]
        if epoch not in epochs:
            raise StoreError(f"epoch: {layer!r} of run {run_id!r} was captured at epochs {epochs}, not {epoch}")
        with np.load(self.run_file(run_id), allow_pickle=False) as z:
            return z[f"{layer}@{epoch}"]


def _insert_epoch(conn: sqlite3.Connection, run_id: str, row: dict[str, Any], event: dict | None) -> None:
    conn.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (run_id, *(row[k] for k in METRIC_KEYS)))
    if event is not None:
        conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                     (run_id, event["epoch"], event.get("activation"), event.get("loss")))
    conn.execute("UPDATE runs SET epochs_done = ?, test_acc = ?, train_acc = ?, gap = ?, updated = ? "
                 "WHERE id = ?", (row["epoch"] + 1, row["test_acc"], row["train_acc"], row["gap"],
                                  time.time(), run_id))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # removed meanwhile, or never written
        return 0

def _experiment_dict(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": r["id"], "name": r["name"], "created": r["created"], "owner": owner_of({"owner": r["owner"]}),
            "notes": r["notes"] or "", "tags": json.loads(r["tags"]) if r["tags"] else []}


def _run_dict(r: sqlite3.Row) -> RunRecord:
    return {"run_id": r["id"], "experiment_id": r["experiment_id"], "condition": r["condition"],
            "seed": r["seed"], "state": r["state"], "test_acc": r["test_acc"], "train_acc": r["train_acc"],
            "gap": r["gap"], "epochs_done": r["epochs_done"], "error": r["error"],
            "majority_rate": r["majority_rate"], "pred_classes": r["pred_classes"]}
