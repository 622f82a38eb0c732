"""Load: 10 signed-in users at once each launch a tiny experiment from Design and watch it finish on Runs.

One app server (sign-in through a local OpenID Connect provider, one training
worker) and one headless Chromium with a browser context per user
(``tests/e2e/load.py``). Every run must finish, none be lost or duplicated
(checked in the store), and no page show an error. The p50/p95 render times and
the server's RSS are printed (``-s`` shows them; ``bench/load.py`` records them in
``bench/README.md``); they are reported, not asserted (no wall-clock asserts).
Loopback only; every wait is bounded.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.load import RUNS_PER_USER, run_load, summary
from tests.e2e.signin import app_server, chromium, oidc_provider

# Pending: it timed out on this 2-core machine (Design did not render for every user within 240 s); issue 14.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.pending]

N_USERS = 10


def test_ten_signed_in_users_launch_and_watch(tmp_path: Path) -> None:
    from akp.store import RunStore

    with chromium():  # skips (or fails under AKP_REQUIRE_BROWSER=1) when Chromium or Playwright is missing
        pass
    home = tmp_path / "store"
    with oidc_provider(tmp_path) as issuer, app_server(tmp_path, issuer, home, {"AKP_WORKERS": "1"}) as (url, pid):
        result = run_load(url, N_USERS, pid)
    print("\n" + summary(result))

    everyone = [result.baseline, *result.users]
    assert [u.errors for u in everyone] == [[] for _ in everyone]  # no page showed an error
    assert all(u.finished == RUNS_PER_USER for u in everyone), [(u.user, u.finished) for u in everyone]

    # The store holds exactly one experiment per user, owned by that user, each with all its runs finished.
    store = RunStore(home)
    experiments = store.experiments()
    assert sorted(e["owner"] for e in experiments) == sorted(u.user for u in everyone)
    assert {e["id"] for e in experiments} == {u.experiment_id for u in everyone}
    run_ids = []
    for e in experiments:
        runs = store.runs(e["id"])
        assert len(runs) == RUNS_PER_USER, (e["name"], len(runs))
        assert Counter(r["state"] for r in runs).keys() <= {"done", "diverged"}, (e["name"], [r["state"] for r in runs])
        run_ids += [r["run_id"] for r in runs]
    assert len(run_ids) == len(set(run_ids)) == RUNS_PER_USER * (N_USERS + 1)  # none duplicated, none lost
    assert len(result.renders()) >= 4 * N_USERS  # every user's pages were timed
