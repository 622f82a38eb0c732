"""Helpers of the sign-in e2e tests: a real OpenID Connect provider and an app server that signs in through it.

The provider is ``oidc-provider-mock`` (``python -m oidc_provider_mock``), a
small Flask app on a free loopback port: any client id and secret are
accepted, and its authorization form signs in whatever subject is typed (the
subject is also the e-mail claim). The app server is ``streamlit run app.py``
with a temporary secrets file (``--secrets.files``) holding ``[auth]``, so
nothing is written into the repository. Everything stays on 127.0.0.1.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("AKP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def missing(reason: str) -> None:
    """Skip (or fail, under ``AKP_REQUIRE_BROWSER=1``) for a missing browser or package."""
    if os.environ.get("AKP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and AKP_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(reason)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log, timeout_s: float, ok=lambda body: True) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if ok(resp.read()):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"{url} did not come up:\n{log.read()[-3000:]}")
        time.sleep(0.2)


@contextmanager
def _process(args: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> Iterator[tuple]:
    log = open(log_path, "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@contextmanager
def oidc_provider(tmp: Path) -> Iterator[str]:
    """Run ``oidc-provider-mock`` on a free loopback port; yield its issuer URL."""
    try:
        import oidc_provider_mock  # noqa: F401
    except ImportError:
        missing("the oidc-provider-mock package is not installed (requirements-dev.txt)")
    port = free_port()
    args = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    with _process(args, tmp / "oidc.log", dict(os.environ), tmp) as (proc, log):
        issuer = f"http://127.0.0.1:{port}"
        _wait_http(f"{issuer}/.well-known/openid-configuration", proc, log, 30)
        yield issuer


def write_secrets(path: Path, app_url: str, issuer: str) -> Path:
    """Write a secrets file whose ``[auth]`` signs in through ``issuer``; return its path."""
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "{app_url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "akp-e2e"\n'
        'client_secret = "akp-e2e-secret"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n')
    return path


@contextmanager
def app_server(tmp: Path, issuer: str, home: Path, extra_env: dict[str, str] | None = None) -> Iterator[tuple]:
    """Run ``streamlit run app.py`` with sign-in through ``issuer`` over the store at ``home``.

    Yields
    ------
    (str, int)
        The app's URL and the server's process id.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secrets_file = write_secrets(tmp / "secrets.toml", url, issuer)
    env = {**os.environ, "AKP_HOME": str(home), "PYTHONPATH": str(ROOT), **(extra_env or {})}
    args = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
            "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--secrets.files", str(secrets_file)]
    with _process(args, tmp / "streamlit.log", env, ROOT) as (proc, log):
        _wait_http(f"{url}/_stcore/health", proc, log, 60, ok=lambda body: body.strip() == b"ok")
        yield url, proc.pid


@contextmanager
def chromium() -> Iterator:
    """Headless Debian Chromium through the process's one Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is absent (apt-get install chromium)")
    try:
        from tests.e2e.server import playwright

        pw = playwright()
    except ImportError:
        missing("the playwright package is not installed")
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


def sign_in(page, app_url: str, user: str, timeout_ms: int = 60_000) -> None:
    """Sign ``user`` in through the provider's form: the app's sign-in screen, the provider, back to the app."""
    from playwright.sync_api import expect

    page.goto(app_url)
    page.get_by_role("button", name="Sign in").click(timeout=timeout_ms)
    page.wait_for_url(re.compile(r"/oauth2/authorize"), timeout=timeout_ms)
    page.locator('input[name="sub"]').fill(user)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(re.escape(app_url) + r"/?(\?.*)?$"), timeout=timeout_ms)
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("Signed in as", exact=True)).to_be_visible(timeout=timeout_ms)
    expect(sidebar.get_by_text(user)).to_be_visible()


def sign_out(page, timeout_ms: int = 60_000) -> None:
    """Click the sidebar's Sign out; confirm at the provider's end-session page; back on the app's sign-in screen."""
    from playwright.sync_api import expect

    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/oauth2/end_session"), timeout=timeout_ms)  # the provider ends its session too
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=timeout_ms)


def wait_app_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished running the script (its status widget is gone); best effort."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                               timeout=timeout_ms)
    except PlaywrightTimeout:
        pass  # a polling fragment may keep it up; the assertions decide


def exceptions(page) -> int:
    """How many Streamlit exception boxes or error alerts the page shows."""
    return page.locator('[data-testid="stException"]').count()
