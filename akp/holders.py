"""Which process holds which runs: holder files that vanish with their process, and recovery of orphans.

Each job manager keeps a *holder* file under ``home/jobs/`` listing the runs it
took, next to a lock file locked (``fcntl.flock``) for as long as its process
lives; the lock goes with the process, even on SIGKILL. A new manager marks
``interrupted`` every run left ``running`` that no live manager holds, and every
``queued`` run that a dead manager held (runs that were created but never
submitted stay ``queued``).
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

from akp.paths import atomic_write_bytes
from akp.runs import INTERRUPTED, QUEUED, RUNNING
from akp.store import RunStore

try:  # POSIX: liveness of other managers through advisory locks
    import fcntl
except ImportError:  # pragma: no cover - Windows: other managers' holders count as dead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

ORPHAN_ERROR = "interrupted: the process running it stopped before it finished"


class Holder:
    """One manager's claim on its runs: ``home/jobs/<token>.runs``, alive while ``<token>.lock`` is locked.

    Parameters
    ----------
    home : Path
        The run store's home.
    """

    def __init__(self, home: Path) -> None:
        self.dir = home / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.lock_path = self.dir / f"{self.token}.lock"
        self.runs_path = self.dir / f"{self.token}.runs"
        self.runs: set[str] = set()
        # Submits write the file outside the manager's lock; this one keeps their writes in order.
        self._write_lock = threading.Lock()
        self._closed = False
        # Lock under a temporary name, then rename: a scanner never sees an unlocked live holder.
        tmp = self.dir / f".{self.token}.tmp"
        self._fh = open(tmp, "w")  # noqa: SIM115 - held open for the manager's lifetime
        if fcntl is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, self.lock_path)

    def add(self, run_ids: list[str]) -> None:
        """Add runs to the holder file (ignored once closed)."""
        with self._write_lock:
            if self._closed:
                return  # the manager shut down meanwhile: its queue gives these runs up anyway
            self.runs.update(run_ids)
            atomic_write_bytes(self.runs_path, "\n".join(sorted(self.runs)).encode())

    def scan(self) -> tuple[set[str], set[str], list[Path]]:
        """Runs held by live managers (other than this one), runs held by dead ones, and dead lock files."""
        live: set[str] = set()
        dead: set[str] = set()
        dead_locks: list[Path] = []
        for lock in self.dir.glob("*.lock"):
            if lock == self.lock_path:
                continue
            runs_file = lock.with_suffix(".runs")
            try:
                runs = set(runs_file.read_text().split()) if runs_file.exists() else set()
            except OSError:
                runs = set()
            if is_live(lock):
                live |= runs
            else:
                dead |= runs
                dead_locks.append(lock)
        return live, dead, dead_locks

    def close(self) -> None:
        """Give up every run: remove the holder and lock files, release the lock."""
        with self._write_lock:
            self._closed = True
            self.runs_path.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)
            if not self._fh.closed:
                self._fh.close()


def is_live(lock: Path) -> bool:
    """True if a process still holds ``lock`` (a lock we can take belongs to a dead process)."""
    if fcntl is None:
        return False
    try:
        with open(lock) as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return True  # its owner just closed it: not ours to clean


def recover_orphans(store: RunStore, holder: Holder) -> list[str]:
    """Mark ``interrupted`` the runs that a stopped process left behind, and remove dead holders' files.

    Parameters
    ----------
    store : RunStore
    holder : Holder
        The new manager's own holder (never counted as another's).

    Returns
    -------
    list of str
        The runs marked interrupted: ``running`` ones no live manager holds, and
        ``queued`` ones a dead manager held.
    """
    live, dead, dead_locks = holder.scan()
    marked = []
    for run in store.runs_in_state(RUNNING, QUEUED):
        rid = run["run_id"]
        if rid in live:
            continue
        if run["state"] == RUNNING or rid in dead:
            store.set_state(rid, INTERRUPTED, error=ORPHAN_ERROR)
            marked.append(rid)
    for lock in dead_locks:
        lock.with_suffix(".runs").unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
    if marked:
        log.info("marked %d runs interrupted", len(marked))
    return marked
