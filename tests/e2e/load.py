"""The load scenario shared by ``tests/e2e/test_load.py`` and ``bench/load.py``: many signed-in users at once.

One headless Chromium, one browser context per user (its own cookies, so its
own sign-in), driven concurrently with Playwright's async API against one app
server with sign-in through a local OpenID Connect provider. Each user signs
in, launches a tiny experiment from Design and watches its Runs page until
every run has finished. Page render time is measured from the navigation (or
click) to the page's heading being visible with Streamlit's script run over.

First one user alone (the baseline), then ``n_users`` at once; the figures are
p50/p95 of render times, the server's RSS before and after, and what the store
holds (checked by the caller). Loopback only; every wait is bounded.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.signin import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

# A tiny experiment per user: the smoke preset's two conditions, one seed, few images (2 runs, seconds each).
TINY = {"Training images": "256", "Test images": "64", "Seeds": "0", "Epochs": "2"}
RUNS_PER_USER = 2
SIGNED_IN = lambda page: page.locator('[data-testid="stSidebar"]').get_by_text("Signed in as", exact=True)  # noqa: E731
DESIGN_HEADING = lambda page: page.get_by_text("Design an experiment")  # noqa: E731
RUNS_HEADING = lambda page: page.get_by_role("heading", name="Runs")  # noqa: E731
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'


@dataclass
class UserResult:
    """What one simulated user saw."""

    user: str
    experiment_id: str | None = None
    renders: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    finished: int = 0


@dataclass
class LoadResult:
    """The whole run: the baseline user, the concurrent users, and the server's memory."""

    baseline: UserResult
    users: list[UserResult]
    rss_before_mb: float
    rss_after_mb: float
    wall_s: float

    def renders(self, users: list[UserResult] | None = None) -> list[float]:
        """All render times (seconds) of ``users`` (default: the concurrent ones)."""
        return [t for u in (self.users if users is None else users) for ts in u.renders.values() for t in ts]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, by linear interpolation."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q * 100) - 1))]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MB), from /proc."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


async def _idle(page, timeout_ms: int) -> None:
    try:
        await page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                                     timeout=timeout_ms)
    except Exception:  # noqa: BLE001 - a polling fragment may keep it up; the heading decides
        pass


async def _timed(result: UserResult, name: str, page, shown, action, timeout_ms: int) -> None:
    """Run ``action`` (a navigation or click); record how long until ``shown(page)`` is visible and the run is over."""
    from playwright.async_api import expect

    t0 = time.perf_counter()
    await action()
    await expect(shown(page).first).to_be_visible(timeout=timeout_ms)
    await _idle(page, timeout_ms)
    result.renders.setdefault(name, []).append(time.perf_counter() - t0)
    await _check_errors(result, page, name)


async def _check_errors(result: UserResult, page, where: str) -> None:
    for text in await page.locator(ERRORS).all_inner_texts():
        result.errors.append(f"{where}: {text.strip()[:300]}")


async def _metric(page, label: str) -> int:
    box = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True)).first
    value = await box.locator('[data-testid="stMetricValue"]').inner_text(timeout=30_000)
    return int(re.sub(r"[^0-9]", "", value) or 0)


async def one_user(browser, url: str, user: str, name: str, *, train_timeout_s: float,
                   timeout_ms: int = 240_000) -> UserResult:
    """Sign in, launch the tiny experiment ``name`` from Design, watch Runs until its runs finish."""
    result = UserResult(user)
    context = await browser.new_context(viewport={"width": 1300, "height": 1100})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        await page.goto(url)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(r"/oauth2/authorize"))
        await page.locator('input[name="sub"]').fill(user)
        await _timed(result, "home (after sign-in)", page, SIGNED_IN,
                     lambda: page.get_by_role("button", name="Authorize").click(), timeout_ms)

        await _timed(result, "design", page, DESIGN_HEADING, lambda: page.goto(f"{url}/design"), timeout_ms)
        await _idle(page, timeout_ms)
        await page.locator('[data-testid="stSelectbox"]').filter(has_text="Start from a preset").click()
        await page.get_by_role("option", name="smoke").click()
        name_box = page.get_by_role("textbox", name="Experiment name")
        await name_box.fill(name)
        await name_box.press("Tab")
        for label, value in TINY.items():
            box = page.get_by_role("textbox" if label == "Seeds" else "spinbutton", name=label)
            await box.fill(value)
            await box.press("Tab")
            await _idle(page, timeout_ms)
        await _check_errors(result, page, "design form")
        await _timed(result, "runs (after launch)", page, RUNS_HEADING,
                     lambda: page.get_by_role("button", name="Launch").click(), timeout_ms)
        await page.wait_for_url(re.compile(r"/runs\?experiment=e"))
        result.experiment_id = re.search(r"experiment=([A-Za-z0-9_-]+)", page.url).group(1)

        deadline = time.monotonic() + train_timeout_s
        while True:
            done = await _metric(page, "Done") + await _metric(page, "Diverged")
            failed = await _metric(page, "Failed")
            if done + failed >= RUNS_PER_USER or time.monotonic() > deadline:
                break
            await page.wait_for_timeout(1000)
        result.finished = done
        if done + failed < RUNS_PER_USER:
            result.errors.append(f"runs: {done} of {RUNS_PER_USER} finished within {train_timeout_s:.0f} s")
        if failed:
            result.errors.append(f"runs: {failed} failed")
        await _check_errors(result, page, "runs (watching)")
        await _timed(result, "runs (reload)", page, RUNS_HEADING, lambda: page.reload(), timeout_ms)
    except Exception as exc:  # noqa: BLE001 - one user's failure is a finding, not the end of the others
        result.errors.append(f"after {list(result.renders) or 'nothing'}: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:400]}")
        if ARTIFACTS.is_dir():
            await page.screenshot(path=str(ARTIFACTS / f"load-failure-{user.split('@')[0]}.png"), full_page=True)
    finally:
        await context.close()
    return result


async def _scenario(url: str, n_users: int, server_pid: int, train_timeout_s: float) -> LoadResult:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            baseline = await one_user(browser, url, "baseline@example.org", "load-baseline",
                                      train_timeout_s=train_timeout_s)
            rss_before = rss_mb(server_pid)
            t0 = time.monotonic()
            users = await asyncio.gather(*[
                one_user(browser, url, f"user{i:02d}@example.org", f"load-{i:02d}", train_timeout_s=train_timeout_s)
                for i in range(n_users)])
            wall = time.monotonic() - t0
            rss_after = rss_mb(server_pid)
        finally:
            await browser.close()
    return LoadResult(baseline, list(users), rss_before, rss_after, wall)


def run_load(url: str, n_users: int, server_pid: int, train_timeout_s: float = 300) -> LoadResult:
    """Run the scenario: one baseline user alone, then ``n_users`` at once.

    Parameters
    ----------
    url : str
        The app server (with sign-in configured).
    n_users : int
        Concurrent users (browser contexts).
    server_pid : int
        The server's process id, for its RSS.
    train_timeout_s : float
        How long each user watches Runs at most.

    Returns
    -------
    LoadResult
    """
    # In a thread of its own: the other browser tests' sync Playwright keeps an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _scenario(url, n_users, server_pid, train_timeout_s)).result()


def summary(result: LoadResult) -> str:
    """The figures as text: p50/p95 render times (concurrent and baseline, with their ratio), RSS, wall time."""
    conc, base = result.renders(), result.renders([result.baseline])
    p50, p95, b50 = percentile(conc, 0.5), percentile(conc, 0.95), percentile(base, 0.5)
    lines = [f"users: {len(result.users)}  renders: {len(conc)}  wall: {result.wall_s:.1f} s",
             f"render p50 {p50:.2f} s  p95 {p95:.2f} s  (one user alone: p50 {b50:.2f} s; ratio {p50 / b50:.1f}x)",
             f"server RSS before {result.rss_before_mb:.0f} MB  after {result.rss_after_mb:.0f} MB  "
             f"(+{result.rss_after_mb - result.rss_before_mb:.0f} MB)"]
    for name in sorted({n for u in result.users for n in u.renders}):
        ts = [t for u in result.users for t in u.renders.get(name, [])]
        lines.append(f"  {name:<22} n={len(ts):>2}  p50 {percentile(ts, 0.5):.2f} s  p95 {percentile(ts, 0.95):.2f} s")
    return "\n".join(lines)
