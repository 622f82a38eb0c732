"""Compare two experiments in Chromium: both experiments' curves are drawn, and the specs' differences listed.

(Named ``test_compare_browser`` so that it does not clash with ``tests/test_compare.py`` under pytest's
default import mode.)
"""
from __future__ import annotations

import pytest

from tests.e2e.server import DESKTOP, ROOT, wait_app_idle

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"


def test_compare_two_experiments_overlays_both_curves(trained_app, chromium_browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    context = chromium_browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{trained_app.url}/compare?exp={trained_app.alpha}&exp={trained_app.beta}")
        chart = page.locator(".st-key-compare-curves")
        expect(chart).to_be_visible(timeout=90_000)
        wait_app_idle(page)
        # Plotly has drawn one legend entry per group: alpha's two conditions and beta's one.
        legend = chart.locator(".legendtext")
        expect(legend).to_have_count(3, timeout=60_000)
        names = sorted(legend.evaluate_all("els => els.map(e => e.textContent)"))  # SVG text
        assert names == ["alpha · sigmoid-shock (n=2)", "alpha · steady (n=2)", "beta · steady (n=2)"], names
        # Every group's mean line is drawn with points (a non-empty SVG path).
        traces = chart.evaluate("""el => [...el.querySelectorAll('.js-plotly-plot')].flatMap(p => p.data)
                                         .map(t => ({name: t.name, n: (t.x || []).length}))""")
        drawn = {t["name"]: t["n"] for t in traces if "(n=" in t["name"]}
        assert drawn == {"alpha · steady (n=2)": 2, "alpha · sigmoid-shock (n=2)": 2, "beta · steady (n=2)": 2}, drawn
        paths = chart.locator("g.scatterlayer path.js-line")
        assert paths.count() >= 3 + 6  # means and runs
        # The spec table lists only what differs: name, learning rate and beta's missing condition.
        diff = page.locator(".st-key-compare-spec-diff")
        expect(diff).to_be_visible()
        fields = diff.locator("tbody th").all_inner_texts()
        assert fields == ["name", "lr", "conditions[sigmoid-shock]"], fields
        assert "—" in diff.inner_text()  # beta has no sigmoid-shock condition
        page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "compare-failure.png"), full_page=True)
        raise
    finally:
        context.close()
