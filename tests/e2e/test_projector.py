"""End to end in Chromium: the Representations projector answers clicks, boxes and typed ids.

A Streamlit server runs app.py over a temporary ``$AKP_HOME`` holding one
finished ``smoke`` experiment (trained in this process before the server
starts). The test reads a rendered point's screen position from Plotly's own
axes (``_fullLayout.xaxis.l2p``), clicks it with the mouse, and checks what a
user sees: the probe image and its details, ``?probe=ID`` in the URL (kept on
reload), the same image ringed in the other run's plot. It also checks that a
page's ``epoch`` does not follow the user to Representations. Skipped without
Chromium or Playwright unless ``AKP_REQUIRE_BROWSER=1``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.test_browser import ARTIFACTS, ROOT, _free_port, _wait_app_idle, browser  # noqa: F401 - fixture

# Pending: it has not passed here yet (waits on the UMAP plots timed out); issue 15.
pytestmark = [pytest.mark.e2e, pytest.mark.pending]

CHARTS = '[data-testid="stPlotlyChart"] .js-plotly-plot'
# The most isolated probe point of the first chart, and where it is on screen (page pixels).
PICK_POINT = """() => {
  const gd = document.querySelectorAll('CHARTS')[0];
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const pts = [];
  gd._fullData.forEach(t => {
    if (!t.customdata || t.hoverinfo === 'skip') return;
    t.x.forEach((x, i) => pts.push({probe: t.customdata[i], x: box.left + xa._offset + xa.l2p(x),
                                    y: box.top + ya._offset + ya.l2p(t.y[i])}));
  });
  let best = null, room = -1;
  for (const p of pts) {
    let d = Infinity;
    for (const q of pts) if (q !== p) d = Math.min(d, Math.hypot(p.x - q.x, p.y - q.y));
    if (d > room) { room = d; best = p; }
  }
  return best;
}""".replace("CHARTS", CHARTS)
# The probe each UMAP plot rings (the trace named "selected" carries it in ``meta``), left then right.
RINGED = """() => [...document.querySelectorAll('CHARTS')].slice(0, 2).map(gd => {
  const ring = gd._fullData.find(t => t.name === 'selected');
  return ring ? ring.meta.probe : null;
})""".replace("CHARTS", CHARTS)
UMAPS_DRAWN = """() => {
  const gds = document.querySelectorAll('CHARTS');
  return gds.length >= 2
    && [...gds].slice(0, 2).every(gd => gd._fullLayout && gd.querySelector('.scatterlayer .point'));
}""".replace("CHARTS", CHARTS)


@pytest.fixture(scope="module")
def trained_server(tmp_path_factory: pytest.TempPathFactory, browser) -> Iterator[tuple[str, str]]:  # noqa: F811
    """A server of app.py over a store with one finished smoke experiment: (url, experiment id)."""
    from akp.experiment import load_preset
    from akp.runner import execute_run
    from akp.store import RunStore

    home = tmp_path_factory.mktemp("projector-store")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("projector-log") / "streamlit.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ, "AKP_HOME": str(home), "PYTHONPATH": str(ROOT)}, stdout=log,
        stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start:\n{log.read()[-3000:]}")
            time.sleep(0.3)
        # A first session runs app.py, which starts UMAP's warm-up (20-30 s of compilation on a quiet
        # machine): let it run while the experiment trains here.
        page = browser.new_page()
        page.goto(url)
        store = RunStore(home)
        experiment_id = store.create_experiment(load_preset("smoke"))
        for run in store.runs(experiment_id):
            execute_run(store, run["run_id"])
        page.close()
        yield url, experiment_id
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _probe_in_url(page) -> str | None:
    found = re.search(r"[?&]probe=(\d+)", page.url)
    return found.group(1) if found else None


def test_click_a_point_shows_its_image_in_both_plots_and_the_url(trained_server, browser) -> None:  # noqa: F811
    from playwright.sync_api import expect

    url, experiment_id = trained_server
    expect.set_options(timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        # A page's own "epoch" stays there: Layers at epoch -1, then Representations opens at its last epoch.
        page.goto(f"{url}/layers?experiment={experiment_id}&epoch=-1")
        expect(page.get_by_role("heading", name="Layers: compare two runs layer by layer")).to_be_visible()
        _wait_app_idle(page)
        page.locator('[data-testid="stSidebarNavLink"]', has_text="Representations").click()
        page.wait_for_url(re.compile(r"/representations"))
        # The first projection in a fresh server waits for UMAP's compilation (the page polls by itself).
        page.wait_for_function(UMAPS_DRAWN, timeout=240_000)  # generous: CI machines are shared
        _wait_app_idle(page)
        assert "epoch=" not in page.url, page.url
        assert page.locator('[data-testid="stSlider"]').filter(has_text="Epoch").inner_text().split()[1] == "1"

        point = page.evaluate(PICK_POINT)
        probe = str(point["probe"])
        page.mouse.move(point["x"], point["y"])
        page.mouse.click(point["x"], point["y"])
        page.wait_for_url(re.compile(rf"[?&]probe={probe}(&|$)"))
        details = page.locator(".st-key-probe-details")
        expect(details.get_by_text(f"Probe #{probe}", exact=False)).to_be_visible()
        # One row per run: prediction, confidence, distance to class centre.
        expect(details.locator('[data-testid="stDataFrame"]')).to_be_visible()
        page.wait_for_function(f"() => [...document.querySelectorAll('{CHARTS}')].some("
                               f"gd => (gd._fullLayout.title.text || '').startsWith('probe #{probe} '))")
        page.wait_for_function(f"() => ({RINGED})().every(p => p === {probe})")
        assert page.evaluate(RINGED) == [int(probe), int(probe)]
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "projector-click.png"), full_page=True)

        # The selection is a link: a reload (a new session) shows the same image, ringed in both plots.
        page.reload()
        page.wait_for_function(UMAPS_DRAWN)
        assert _probe_in_url(page) == probe
        page.wait_for_function(f"() => ({RINGED})().every(p => p === {probe})")
        expect(page.locator(".st-key-probe-details").get_by_text(f"Probe #{probe}")).to_be_visible()

        # Search by id moves the selection; a bad id says what is allowed and changes nothing.
        other = "0" if probe != "0" else "1"
        box = page.get_by_role("textbox", name="Probe id")
        box.fill(other)
        box.press("Enter")
        page.wait_for_url(re.compile(rf"[?&]probe={other}(&|$)"))
        page.wait_for_function(f"() => ({RINGED})().every(p => p === {other})")
        box.fill("abc")
        box.press("Enter")
        expect(page.get_by_text("Probe id: a whole number from 0 to")).to_be_visible()
        expect(page.locator(".st-key-probe-details").get_by_text(f"Probe #{other}")).to_be_visible()

        # A box drawn on the left plot lists the images inside it, with thumbnails.
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        chart.hover()
        chart.locator('[data-attr="dragmode"][data-val="select"]').click()
        area = chart.locator(".nsewdrag").first.bounding_box()
        page.mouse.move(area["x"] + 2, area["y"] + 2)
        page.mouse.down()
        page.mouse.move(area["x"] + area["width"] - 2, area["y"] + area["height"] - 2, steps=10)
        page.mouse.up()
        expect(page.get_by_role("heading", name=re.compile(r"Listed by box or lasso: \d+ images"))).to_be_visible()
        # The thumbnails are one figure (a mosaic), captioned "#id · class".
        page.wait_for_function(f"() => [...document.querySelectorAll('{CHARTS}')].some("
                               "gd => gd._fullData.some(t => t.type === 'image') && "
                               "(gd._fullLayout.annotations || []).some(a => /^#\\d+ · /.test(a.text)))")
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "projector-box.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "projector-failure.png"), full_page=True)
        raise
    finally:
        context.close()
