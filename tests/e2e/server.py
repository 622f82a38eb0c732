"""Helpers to drive the app in a real browser: start ``streamlit run app.py`` over a store, launch Chromium.

Used by the end-to-end tests (through ``tests/e2e/conftest.py``) and by
``docs/screenshots/make.py``; nothing here depends on pytest.
"""
from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("AKP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-14 in CSS pixels


class ServerError(RuntimeError):
    """The Streamlit server did not come up; the message holds the end of its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(home: str | os.PathLike[str], log_path: str | os.PathLike[str], *,
                     startup_s: float = 60) -> Iterator[str]:
    """Run ``streamlit run app.py`` over the store at ``home`` on a free port; yield its URL.

    Parameters
    ----------
    home : path-like
        The ``$AKP_HOME`` the app serves.
    log_path : path-like
        Where the server's output goes.
    startup_s : float
        How long to wait for ``/_stcore/health``.

    Raises
    ------
    ServerError
        If the server exits or is not healthy in time.
    """
    port = free_port()
    env = {**os.environ, "AKP_HOME": str(home), "PYTHONPATH": str(ROOT)}
    with open(log_path, "w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_s
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                        if resp.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise ServerError(f"streamlit did not start:\n{log.read()[-3000:]}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


_PLAYWRIGHT: Any = None  # one Playwright per test process: a second sync_playwright() in the same thread fails


def playwright() -> Any:
    """The process's Playwright (sync API), started on first use and stopped at exit.

    Every browser test module launches its browsers from this one instance: Playwright's
    sync API refuses to start while another instance's event loop runs in the thread.

    Raises
    ------
    ImportError
        If Playwright is not installed.
    """
    global _PLAYWRIGHT
    if _PLAYWRIGHT is None:
        from playwright.sync_api import sync_playwright

        _PLAYWRIGHT = sync_playwright().start()
        atexit.register(_PLAYWRIGHT.stop)
    return _PLAYWRIGHT


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (headless); yields the Playwright browser.

    Raises
    ------
    FileNotFoundError
        If Chromium is not at :data:`CHROMIUM`.
    ImportError
        If Playwright is not installed.
    """
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is absent (apt-get install chromium)")
    browser = playwright().chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


def wait_app_idle(page: Any, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished running the script (its status widget is gone); best effort."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                               timeout=timeout_ms)
    except PlaywrightTimeout:
        pass  # a polling fragment may keep it up; the callers' assertions decide


def train_experiments(home: str | os.PathLike[str], specs: list[Any]) -> list[str]:
    """Create and train ``specs`` in the store at ``home`` (in this process); return their ids."""
    from akp.runner import execute_run
    from akp.store import RunStore

    store = RunStore(home)
    ids = []
    for spec in specs:
        experiment_id = store.create_experiment(spec)
        for run in store.runs(experiment_id):
            execute_run(store, run["run_id"])
        ids.append(experiment_id)
    store.close()
    return ids
