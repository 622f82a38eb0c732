"""Fresh screenshots of every page of the app, for the README: ``python docs/screenshots/make.py``.

Starts ``streamlit run app.py`` over the store at ``$AKP_HOME`` (or ``--home``),
drives Debian's Chromium through Playwright and writes, into this folder, one
PNG per page at 1280 px wide (``home.png``, ``design.png``, ``runs.png``,
``families.png``, ``representations.png``, ``layers.png``, ``compare.png``,
``learn.png``) and the Families page on a 390 px phone (``families-390.png``).

The pages show the experiment with the most finished runs (or ``--experiment``);
Compare shows it next to the newest other one. A store without a finished
experiment is first filled by training ``--preset`` (default ``smoke``, about a
minute; ``teaching`` gives a real verdict in a few minutes). Run from the
repository root::

    AKP_HOME=/path/to/store .venv/bin/python docs/screenshots/make.py
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import PHONE, chromium, streamlit_server, train_experiments, wait_app_idle  # noqa: E402

OUT = Path(__file__).resolve().parent
DESKTOP = {"width": 1280, "height": 1000}
# (file, path, what must be on the page before the picture is taken)
PAGES = [
    ("home", "/?experiment={e}", '[data-testid="stDataFrame"]'),
    ("design", "/design", ".st-key-design-timeline"),
    ("runs", "/runs?experiment={e}", '[data-testid="stPlotlyChart"]'),
    ("families", "/families?experiment={e}", ".st-key-families-verdict"),
    ("layers", "/layers?experiment={e}", '[data-testid="stPlotlyChart"]'),
    ("compare", "/compare?exp={e}{other}", ".st-key-compare-curves .legendtext"),
    ("learn", "/learn", "h1"),
    # Last: a fresh server compiles UMAP's kernels in the background, which takes a while on a busy machine.
    ("representations", "/representations?experiment={e}", '[data-testid="stPlotlyChart"]'),
]


def pick_experiments(home: Path, wanted: str | None) -> tuple[str, str | None]:
    """The experiment to show (``wanted``, else the one with most finished runs) and another one to compare."""
    from akp.runs import FINISHED_STATES
    from akp.store import RunStore

    store = RunStore(home)
    exps = store.experiments()
    store.close()
    finished = {e["id"]: sum(n for s, n in (e["states"] or {}).items() if s in FINISHED_STATES) for e in exps}
    if not any(finished.values()):
        raise ValueError("no finished experiment")
    if wanted is not None and wanted not in finished:
        raise SystemExit(f"--experiment: no experiment {wanted!r} in {home}")
    main = wanted or max(finished, key=lambda i: (finished[i], i))
    others = [e["id"] for e in exps if e["id"] != main and finished[e["id"]]]
    return main, (others[0] if others else None)


def shoot(page, url: str, selector: str, path: Path, *, full_page: bool = False, timeout_ms: int = 240_000,
          scroll_to: str | None = None) -> None:
    """Open ``url``, wait for ``selector`` and for the script to finish, scroll to ``scroll_to``, save a picture."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url)
    try:
        page.locator(selector).first.wait_for(state="visible", timeout=timeout_ms)
    except PlaywrightTimeout:
        print(f"warning: {selector} did not appear on {url} within {timeout_ms / 1000:.0f} s; "
              "the picture shows the page as it was", flush=True)
    wait_app_idle(page, 120_000)
    page.wait_for_timeout(1500)  # charts and canvas tables finish drawing after they appear
    if scroll_to:
        page.locator(scroll_to).first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("AKP_HOME"), help="the store (default $AKP_HOME)")
    parser.add_argument("--experiment", help="experiment id to show (default: the one with most finished runs)")
    parser.add_argument("--preset", default="smoke", help="trained first when the store has no finished run")
    parser.add_argument("--out", default=str(OUT), help="folder for the PNGs (default docs/screenshots)")
    args = parser.parse_args(argv)
    if not args.home:
        parser.error("--home: give a store (or set AKP_HOME)")
    home, out = Path(args.home).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        experiment, other = pick_experiments(home, args.experiment)
    except ValueError:  # no finished experiment
        from akp.experiment import load_preset

        print(f"training the {args.preset} preset into {home} first", flush=True)
        train_experiments(home, [load_preset(args.preset)])
        experiment, other = pick_experiments(home, args.experiment)
    log = Path(tempfile.mkdtemp()) / "streamlit.log"
    started = time.monotonic()
    with streamlit_server(home, log) as url, chromium() as browser:
        desktop = browser.new_context(viewport=DESKTOP)
        page = desktop.new_page()
        for name, path, selector in PAGES:
            if name == "compare" and other is None:
                print("skipped compare.png: the store holds one finished experiment")
                continue
            target = url + path.format(e=experiment, other=f"&exp={other}" if other else "")
            shoot(page, target, selector, out / f"{name}.png")
        desktop.close()
        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        shoot(phone.new_page(), f"{url}/families?experiment={experiment}", ".st-key-families-verdict",
              out / "families-390.png", scroll_to=".st-key-families-verdict")
        phone.close()
    print(f"done in {time.monotonic() - started:.0f} s (server log: {log})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
