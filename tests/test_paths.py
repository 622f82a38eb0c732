"""Atomic writes name their writer, and a store sweeps what dead writers left behind (never a live one's)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from akp.paths import STALE_SECONDS, atomic_save_npz, sweep_temp_files
from akp.store import RunStore


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_write_leaves_only_the_target(tmp_path):
    atomic_save_npz(tmp_path / "a.npz", {"x": np.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_sweep_removes_dead_writers_files_and_keeps_live_ones(tmp_path):
    dead = tmp_path / "runs" / f".tmp-{dead_pid()}-abc.npz"
    live = tmp_path / "runs" / f".tmp-{os.getpid()}-def.npz"
    old = tmp_path / ".tmp-legacy.npz"
    young = tmp_path / ".tmp-fresh.npz"
    dead.parent.mkdir()
    for p in (dead, live, old, young):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 2 * STALE_SECONDS,) * 2)
    RunStore(tmp_path)  # opening the store sweeps
    assert not dead.exists() and not old.exists()
    assert live.exists() and young.exists()
    assert sweep_temp_files(tmp_path) == 0


def test_a_writer_killed_mid_write_leaves_a_file_the_next_store_removes(tmp_path):
    # The child blocks inside atomic_save_npz, after writing the temp file and before the rename.
    child = textwrap.dedent(f"""
        import os, time, numpy as np
        import akp.paths as paths
        def stall(src, dst):
            open({str(tmp_path / 'ready')!r}, 'w').close()
            time.sleep(600)
        os.replace = stall
        paths.atomic_save_npz({str(tmp_path / 'big.npz')!r}, {{"x": np.zeros(1_000_000)}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.time() + 120
    while not (tmp_path / "ready").exists() and time.time() < deadline:
        time.sleep(0.05)
    leftovers = list(tmp_path.glob(".tmp-*.npz"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 1_000_000
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    RunStore(tmp_path)
    assert list(tmp_path.glob(".tmp-*")) == [] and not (tmp_path / "big.npz").exists()
