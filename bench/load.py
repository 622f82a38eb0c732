"""Load: N signed-in users at once launch a tiny experiment each and watch it finish (issue 14, item 9).

Starts a local OpenID Connect provider (oidc-provider-mock) and ``streamlit run
app.py`` with sign-in and one training worker over a temporary store, then runs
the scenario of ``tests/e2e/load.py`` in headless Chromium: one user alone
first (the baseline), then N users (browser contexts) at once. Prints p50/p95
page render times, their ratio to the lone user's, the server's RSS before and
after, and checks the store (every run finished, one experiment per user).

Usage::

    .venv/bin/python bench/load.py [--users 10]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from akp.store import RunStore  # noqa: E402
from tests.e2e.load import RUNS_PER_USER, run_load, summary  # noqa: E402
from tests.e2e.signin import app_server, oidc_provider  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10, help="concurrent users (browser contexts)")
    args = parser.parse_args()
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  load average: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}  cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        home = tmp_path / "store"
        with oidc_provider(tmp_path) as issuer, \
                app_server(tmp_path, issuer, home, {"AKP_WORKERS": "1"}) as (url, pid):
            result = run_load(url, args.users, pid)
        print(summary(result))
        everyone = [result.baseline, *result.users]
        errors = [e for u in everyone for e in u.errors]
        runs = [r for e in RunStore(home).experiments() for r in RunStore(home).runs(e["id"])]
        finished = sum(r["state"] in ("done", "diverged") for r in runs)
        print(f"store: {len(runs)} runs ({finished} finished; expected {RUNS_PER_USER * len(everyone)}), "
              f"{len({r['run_id'] for r in runs})} distinct ids; page errors: {len(errors)}")
        for e in errors[:10]:
            print("  error:", e)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if not errors and finished == RUNS_PER_USER * len(everyone) else 1


if __name__ == "__main__":
    raise SystemExit(main())
