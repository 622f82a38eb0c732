"""End to end in Chromium: the Design form shows every problem at once, under its widget; fit to budget.

The teaching preset with Epochs lowered to 3, Seeds "abc", an empty name and more
probe images than test images: every message is visible at the same time, each
inside its widget's box and below the widget, with the widget's label. Launch
lists them all and queues nothing. Then one click on "Fit all conditions to 3
epochs" clears the schedule messages, while the others stay.

The server and browser fixtures are those of :mod:`tests.e2e.test_browser`
(a Streamlit server over a temporary ``$AKP_HOME``; Debian's Chromium driven by
Playwright). Screenshots go to ``test-artifacts/``.
"""
from __future__ import annotations

import pytest

from tests.e2e.test_browser import ARTIFACTS, _wait_app_idle, browser, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e

ALERT = '[data-testid="stAlert"]'
# widget box (class of the keyed container) -> the start of its message
EXPECTED = {
    "design-field-name": "Experiment name: must be non-empty text",
    "design-field-probe_size": "Probe images: at most the number of Test images (600), got 700",
    "design-cond-1": "gelu-swap · swap events, row 1: epoch 3 is past the training budget",
    "design-cond-2": "silu-swap · swap events, row 1: epoch 3 is past the training budget",
    "design-cond-7": "late-flip · swap events, row 2: epoch 7 is past the training budget",
    "design-field-seeds": "Seeds: cannot read 'abc'",
}
SCHEDULE_BOXES = ("design-cond-1", "design-cond-2", "design-cond-7")


def _type(page, label: str, text: str, role: str = "textbox") -> None:
    """Type into a text or number input (by its label) and commit it, as a user does with Enter."""
    field = page.get_by_role(role, name=label, exact=True)
    field.fill(text)
    field.press("Enter")
    _wait_app_idle(page)


def test_design_shows_all_errors_at_once_then_fits_to_budget(server: str, browser) -> None:  # noqa: F811
    from playwright.sync_api import expect

    # A shared machine can be slow: the first script run imports torch, and Chromium then draws eight editors.
    expect.set_options(timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1700})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{server}/design")
        expect(page.get_by_role("textbox", name="Experiment name")).to_have_value("teaching", timeout=180_000)
        _wait_app_idle(page)
        assert page.locator(ALERT).count() == 0  # the preset is valid as it comes

        _type(page, "Epochs", "3", role="spinbutton")
        _type(page, "Probe images", "700", role="spinbutton")
        _type(page, "Seeds", "abc")
        _type(page, "Experiment name", "")

        # Every message at once, each in its widget's box, below the widget, with the widget's label.
        for box, message in EXPECTED.items():
            alert = page.locator(f".st-key-{box} {ALERT}").filter(has_text=message)
            expect(alert).to_be_visible()
        for box, label in (("design-field-name", "Experiment name"), ("design-field-seeds", "Seeds"),
                           ("design-field-probe_size", "Probe images")):
            widget = page.locator(f".st-key-{box}").get_by_label(label, exact=True).bounding_box()
            alert = page.locator(f".st-key-{box} {ALERT}").bounding_box()
            assert alert["y"] >= widget["y"] + widget["height"] - 1, (box, widget, alert)
        texts = " ".join(page.locator(ALERT).all_inner_texts())
        for internal in ("probe_size", "n_test", "events[", "conditions["):
            assert internal not in texts
        # The Remove button's label is shown whole ("Remove condition", never "Remo...").
        remove = page.get_by_role("button", name="Remove condition").first
        assert remove.evaluate("b => [b, ...b.querySelectorAll('*')].every(e => e.scrollWidth <= e.clientWidth)")
        page.screenshot(path=str(ARTIFACTS / "design-errors.png"), full_page=True)

        # Launch lists them all and queues nothing.
        page.get_by_role("button", name="Launch").click()
        _wait_app_idle(page)
        listed = page.locator(ALERT).filter(has_text="Nothing was queued. Fix these first:")
        expect(listed).to_be_visible()
        for message in EXPECTED.values():
            expect(listed).to_contain_text(message)
        assert "/runs" not in page.url

        # Fit to budget: a preview of the fitted timeline, then one click.
        fit = page.locator(".st-key-design-fit")
        expect(fit).to_contain_text("3 condition(s) swap past the budget of 3 epochs")
        expect(fit.locator(".st-key-design-fit-preview")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "design-fit-preview.png"), full_page=True)
        fit.get_by_role("button", name="Fit all conditions to 3 epochs").click()
        _wait_app_idle(page)
        expect(page.locator(".st-key-design-fit")).to_have_count(0)
        for box in SCHEDULE_BOXES:
            expect(page.locator(f".st-key-{box} {ALERT}")).to_have_count(0)
        expect(page.locator(ALERT).filter(has_text="past the training budget")).to_have_count(0)
        # The other problems stay, under their widgets.
        expect(page.locator(f".st-key-design-field-seeds {ALERT}")).to_contain_text("Seeds: cannot read 'abc'")
        expect(page.locator(f".st-key-design-field-name {ALERT}")).to_be_visible()
        expect(page.locator(".st-key-design-timeline")).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "design-fitted.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "design-form-failure.png"), full_page=True)
        raise
    finally:
        context.close()
