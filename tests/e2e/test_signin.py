"""End to end: two users sign in through a real OpenID Connect provider; one cannot act on the other's experiment.

A local ``oidc-provider-mock`` signs users in; the app runs with ``[auth]`` in
a temporary secrets file (``tests/e2e/signin.py``). Alice launches an
experiment from Design (many epochs, so it is still training) and cancels it
on Runs; Bob, in another browser context, sees it but its Resume button is
disabled and says who owns it; the library refuses Bob's delete and rename.
Skipped when Chromium or Playwright is missing, unless ``AKP_REQUIRE_BROWSER=1``.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.signin import (
    ARTIFACTS,
    app_server,
    chromium,
    exceptions,
    oidc_provider,
    sign_in,
    sign_out,
    wait_app_idle,
)

# Pending: it passed alone on its branch, failed in the merged e2e run (the "belongs to" text); issue 14.
pytestmark = [pytest.mark.e2e, pytest.mark.pending]

ALICE = "alice@example.org"
BOB = "bob@example.org"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A provider and an app server with sign-in over an empty store; yields (app URL, store home)."""
    tmp = tmp_path_factory.mktemp("signin")
    home = tmp / "store"
    with oidc_provider(tmp) as issuer, app_server(tmp, issuer, home) as (url, _):
        yield url, home


def test_two_users_sign_in_and_only_the_owner_may_act(instance: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    from akp.errors import AccessError
    from akp.store import RunStore

    url, home = instance
    expect.set_options(timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        alice_ctx = browser.new_context(viewport={"width": 1400, "height": 1400})
        bob_ctx = browser.new_context(viewport={"width": 1400, "height": 1400})
        alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
        for page in (alice, bob):
            page.set_default_timeout(60_000)
        try:
            # Not signed in: a shared link shows the sign-in screen, not the page.
            alice.goto(f"{url}/runs")
            expect(alice.get_by_role("button", name="Sign in")).to_be_visible()
            expect(alice.get_by_text("Job queue")).to_have_count(0)

            sign_in(alice, url, ALICE)
            alice.screenshot(path=str(ARTIFACTS / "signin-alice.png"))

            # Alice launches the smoke preset with many epochs (it is still training when she cancels).
            alice.goto(f"{url}/design")
            expect(alice.get_by_text("Design an experiment")).to_be_visible()
            wait_app_idle(alice)
            alice.locator('[data-testid="stSelectbox"]').filter(has_text="Start from a preset").click()
            alice.get_by_role("option", name="smoke").click()
            expect(alice.get_by_role("textbox", name="Experiment name")).to_have_value("smoke")
            epochs = alice.get_by_role("spinbutton", name="Epochs")
            epochs.fill("40")
            epochs.press("Tab")
            wait_app_idle(alice)
            alice.get_by_role("button", name="Launch").click()
            alice.wait_for_url(re.compile(r"/runs\?experiment=e"), timeout=60_000)
            experiment_id = re.search(r"experiment=([A-Za-z0-9_-]+)", alice.url).group(1)
            store = RunStore(home)
            assert store.experiment(experiment_id)["owner"] == ALICE  # attributed to the signed-in user
            assert store.experiment(experiment_id)["spec"]["epochs"] == 40

            # The owner may cancel.
            cancel = alice.get_by_role("button", name=re.compile(r"^Cancel \d+ active"))
            expect(cancel).to_be_enabled()
            cancel.click()
            expect(alice.get_by_role("button", name=re.compile(r"^Resume \d+"))).to_be_enabled()
            assert exceptions(alice) == 0

            # Bob signs in elsewhere, sees the experiment, and may not act on it.
            sign_in(bob, url, BOB)
            bob.goto(f"{url}/runs?experiment={experiment_id}")
            expect(bob.get_by_role("heading", name="Runs")).to_be_visible()
            resume = bob.get_by_role("button", name=re.compile(r"^Resume \d+"))
            expect(resume).to_be_disabled()
            resume.hover(force=True)  # the reason is the button's tooltip
            expect(bob.get_by_text(re.compile(f"belongs to .{re.escape(ALICE)}."))).to_be_visible()
            expect(bob.get_by_role("button", name=re.compile(r"^Cancel \d+ active"))).to_be_disabled()
            bob.get_by_text("Manage experiment").click()  # rename, notes, tags, delete: read-only for Bob
            expect(bob.get_by_text(re.compile(f"Only its owner .{re.escape(ALICE)}. or an admin"))).to_be_visible()
            expect(bob.get_by_role("button", name=re.compile("^Delete experiment"))).to_be_disabled()
            assert exceptions(bob) == 0
            bob.screenshot(path=str(ARTIFACTS / "signin-bob-runs.png"), full_page=True)

            # The library refuses Bob too, and nothing changed.
            with pytest.raises(AccessError, match=re.escape(ALICE)):
                store.delete_experiment(experiment_id, user=BOB)
            with pytest.raises(AccessError, match=re.escape(ALICE)):
                store.rename_experiment(experiment_id, "bobs now", user=BOB)
            assert store.experiment(experiment_id)["name"] == "smoke"

            # Signing out ends Alice's session: the sign-in screen again.
            sign_out(alice)
            alice.goto(f"{url}/runs")
            expect(alice.get_by_role("button", name="Sign in")).to_be_visible()
        except Exception:
            alice.screenshot(path=str(ARTIFACTS / "signin-failure-alice.png"), full_page=True)
            bob.screenshot(path=str(ARTIFACTS / "signin-failure-bob.png"), full_page=True)
            raise
        finally:
            alice_ctx.close()
            bob_ctx.close()
