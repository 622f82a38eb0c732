"""At 390 px (a phone), the sidebar starts collapsed and the Families verdict fits the screen's width.

Chromium through Playwright, over a server whose store holds finished experiments
(``trained_app`` in ``tests/e2e/conftest.py``). The screenshot goes to
``test-artifacts/families-390.png``.
"""
from __future__ import annotations

import pytest

from tests.e2e.server import PHONE, ROOT, wait_app_idle

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"


def _sidebar_width(page) -> float:
    """The sidebar's visible width on screen (0 when it is collapsed off-screen)."""
    return page.evaluate("""() => {
        const s = document.querySelector('[data-testid="stSidebar"]');
        if (!s) return 0;
        const r = s.getBoundingClientRect();
        return Math.max(0, Math.min(r.right, window.innerWidth) - Math.max(r.left, 0));
    }""")


def test_families_at_390px_sidebar_collapsed_and_verdict_visible(trained_app, chromium_browser) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    context = chromium_browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{trained_app.url}/families?experiment={trained_app.alpha}")
        verdict = page.locator(".st-key-families-verdict")
        expect(verdict).to_be_visible(timeout=90_000)
        wait_app_idle(page, 60_000)
        # The sidebar does not cover the page: collapsed, with its open button shown.
        assert _sidebar_width(page) < 5, f"the sidebar covers {_sidebar_width(page)} px of a 390 px screen"
        expect(page.locator('[data-testid="stExpandSidebarButton"]')).to_be_visible()
        verdict.scroll_into_view_if_needed()
        box = verdict.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        assert verdict.inner_text().strip(), "the verdict box is empty"
        # Nothing on the page is wider than the screen: no scrolling sideways.
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow} px wider than the screen"
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "families-390.png"))
        # The sidebar still opens on demand.
        page.locator('[data-testid="stExpandSidebarButton"]').click()
        expect(page.get_by_text("Job queue")).to_be_visible()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "families-390-failure.png"), full_page=True)
        raise
    finally:
        context.close()
