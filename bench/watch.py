"""Training throughput while a simulated Runs page watches, against not watched, per executor (issue 13).

The Runs page of the app polls once a second while runs train: it reads the
store's runs, the job manager's snapshots, builds the progress table and sends
it (as Arrow), and rebuilds the training-curve and final-accuracy figures when
a run's epochs change (sent as JSON on every poll). The simulated page here does
the same work, in a thread of the process that holds the job manager, which is
where a Streamlit server runs it. Each measurement trains the same experiment
with a fresh manager whose workers are warm (a one-epoch warm-up first, so
process start-up and dataset loading are not timed), watched or not; the
throughput is epochs trained per second of wall time. Repeats alternate the
order (not watched, watched, watched, not watched, ...), the executors take
turns within each repeat, and the ratio is the median of watched / not watched.

    .venv/bin/python bench/watch.py [--executors thread process] [--repeats 2] [--epochs 3] [--n-train 640]
                                    [--threads 1]

``--browser`` measures the real thing instead: it starts the app (``streamlit run app.py`` on a temporary
``$AKP_HOME``, as ``tests/e2e/test_browser.py`` does) and headless Debian ``chromium`` (Playwright). Each
measurement creates the experiment in the store, opens its Runs page and clicks Resume, which queues it in
the server's job manager; then either the tab is closed at once (not watched) or the page stays open until
every run is final (watched). The throughput is epochs per second from the first run seen running to the
last run final, read from the store by this process every 0.2 s in both cases. One warm-up experiment
trains first and the server must then be idle (imports, data, the UMAP warm-up's compile and the first
script runs are not timed); repeats alternate the order.

    .venv/bin/python bench/watch.py --browser [--executors thread] [--repeats 3] [--epochs 4] [--n-train 1920]

The target is a ratio >= 0.9: watching costs at most a tenth of the training.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POLL_SECONDS = 1.0  # the Runs page's fragment interval (pages/runs.py)


def bench_spec(epochs: int, n_train: int, seeds: int, conditions: int = 2):
    """The smoke preset's conditions on more images: a few seconds per run on a laptop CPU."""
    from akp.experiment import load_preset

    spec = load_preset("smoke")
    spec.name = "watch-bench"
    spec.epochs = epochs
    spec.seeds = list(range(seeds))
    spec.conditions = spec.conditions[:conditions]
    spec.dataset_options = {"n_train": n_train, "n_test": 320, "size": 32, "seed": 0}
    spec.validate()
    return spec


class SimulatedRunsPage(threading.Thread):
    """Polls like the Runs page's fragment: store reads, snapshots, table as Arrow, figures as JSON."""

    def __init__(self, store, manager, experiment_id: str, epochs: int) -> None:
        super().__init__(name="runs-page", daemon=True)
        self.store, self.manager, self.experiment_id, self.epochs = store, manager, experiment_id, epochs
        self.stop = threading.Event()
        self.polls = 0
        self._figures: dict[tuple, tuple[str, str]] = {}

    def poll(self) -> None:
        import pandas as pd  # imported (and so paid for) by preload(), before any timing
        import pyarrow as pa

        from akp.design import run_progress
        from akp.plots.training import final_accuracy_figure, metrics_table, training_curves

        runs = self.store.runs(self.experiment_id)
        snaps = self.manager.status(self.experiment_id)
        frame = pd.DataFrame(run_progress(runs, snaps, self.epochs))
        pa.Table.from_pandas(frame.astype({c: str for c in frame.columns if frame[c].dtype == object}))
        fingerprint = tuple((r["run_id"], int(r["epochs_done"] or 0), r["state"]) for r in runs)
        if fingerprint not in self._figures:  # the page caches figures by this fingerprint
            metrics = {r["run_id"]: self.store.metrics(r["run_id"]) for r in runs if r["epochs_done"]}
            events = {r["run_id"]: self.store.events(r["run_id"]) for r in runs if r["epochs_done"]}
            curves = training_curves(runs, metrics, events, metric="accuracy", epochs=self.epochs)
            metrics_table(runs, metrics)
            final = final_accuracy_figure(runs)
            self._figures = {fingerprint: (curves.to_json(), final.to_json())}
        curves_json, final_json = self._figures[fingerprint]
        len(curves_json) + len(final_json)  # re-sent on every poll, as Streamlit does
        self.polls += 1

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            self.poll()
            self.stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - started)))


def preload() -> None:
    """Import what the page uses and build one figure: a server has paid these costs before anyone watches."""
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    from akp.plots.training import final_accuracy_figure

    final_accuracy_figure([]).to_json()


def measure(home: Path, executor: str, spec, watched: bool, threads: int) -> tuple[float, int]:
    """Epochs per second training ``spec`` with a warm manager on ``executor``, watched or not."""
    from akp.jobs import JobManager
    from akp.store import RunStore

    store = RunStore(home)
    warm = bench_spec(1, spec.dataset_options["n_train"], 1, conditions=1)
    manager = JobManager(store, max_workers=1, executor=executor, threads=threads, cache_projections=False)
    try:
        warm_id = store.create_experiment(warm)
        manager.submit(warm_id)
        manager.wait(warm_id)
        eid = store.create_experiment(spec)
        page = SimulatedRunsPage(store, manager, eid, spec.epochs) if watched else None
        started = time.monotonic()
        if page is not None:
            page.start()
        manager.submit(eid)
        manager.wait(eid)
        elapsed = time.monotonic() - started
        if page is not None:
            page.stop.set()
            page.join()
        runs = store.runs(eid)
        assert all(r["state"] == "done" for r in runs), [r["state"] for r in runs]
        epochs = sum(r["epochs_done"] for r in runs)
        return epochs / elapsed, (page.polls if page is not None else 0)
    finally:
        manager.shutdown()


CHROMIUM = os.environ.get("AKP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
ROOT = Path(__file__).resolve().parents[1]


class AppServer:
    """``streamlit run app.py`` on a free port over the store at ``home`` (context manager; yields the URL)."""

    def __init__(self, home: Path, executor: str, threads: int, log: Path) -> None:
        self.home, self.executor, self.threads, self.log_path = home, executor, threads, log

    def __enter__(self) -> str:
        import socket
        import subprocess
        import urllib.request

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "AKP_HOME": str(self.home), "PYTHONPATH": str(ROOT), "AKP_EXECUTOR": self.executor,
               "AKP_THREADS_PER_WORKER": str(self.threads), "AKP_WORKERS": "1",
               "AKP_CALIBRATE": "0"}  # no background calibration competing with the timed training
        self.log = open(self.log_path, "w+")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        return url
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise SystemExit(f"streamlit did not start:\n{self.log.read()[-3000:]}")
            time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 300.0) -> float:
    """Wait until the server process is idle (under 5 % of a core for 2 s: the UMAP warm-up's compile is over)."""
    started = time.monotonic()
    quiet = 0
    last = cpu_seconds(pid)
    while quiet < 4 and time.monotonic() - started < timeout:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.025 else 0
        last = now
    return time.monotonic() - started


def browser_measure(store, browser, url: str, spec, watched: bool, timeout: float = 900.0) -> tuple[float, float]:
    """Queue ``spec`` in the app through its Runs page; epochs per second, and seconds the page stayed open."""
    eid = store.create_experiment(spec)  # queued in the store, held by no manager: the page offers Resume
    context = browser.new_context(viewport={"width": 1400, "height": 1700})
    page = context.new_page()
    page.set_default_timeout(120_000)
    opened = time.monotonic()
    try:
        page.goto(f"{url}/runs?experiment={eid}")
        page.locator(".st-key-runs-resume button").click()
        deadline = time.monotonic() + timeout
        while not any(r["state"] == "running" for r in store.runs(eid)):
            if all(r["state"] not in ("queued", "running") for r in store.runs(eid)):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the app did not start training the experiment")
            time.sleep(0.05)
        started = time.monotonic()
        if not watched:
            context.close()
            context = None
        while any(r["state"] in ("queued", "running") for r in store.runs(eid)):
            if time.monotonic() > deadline:
                raise SystemExit("the experiment did not finish in time")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        if context is not None and page.locator('[data-testid="stException"]').count():
            raise SystemExit("the Runs page showed an exception")
        open_seconds = time.monotonic() - opened
    finally:
        if context is not None:
            context.close()
    runs = store.runs(eid)
    assert all(r["state"] == "done" for r in runs), [r["state"] for r in runs]
    return sum(r["epochs_done"] for r in runs) / elapsed, (open_seconds if watched else 0.0)


def browser_main(args) -> int:
    """The real app and a real browser: watched / not watched throughput ratio per executor."""
    from playwright.sync_api import sync_playwright

    from akp.store import RunStore

    spec = bench_spec(args.epochs, args.n_train, args.seeds)
    warm = bench_spec(1, args.n_train, 1, conditions=1)
    print(f"real app + headless {CHROMIUM}: {len(spec.conditions)} conditions x {len(spec.seeds)} seeds x "
          f"{spec.epochs} epochs, {args.n_train} train images; 1 worker x {args.threads} torch threads; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    print(f"{'executor':<9} {'not watched ep/s':>16} {'watched ep/s':>13} {'watched s':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for executor in args.executors:
                home = Path(tmp) / executor
                quiet: list[float] = []
                busy: list[float] = []
                seen = 0.0
                server = AppServer(home, executor, args.threads, Path(tmp) / f"{executor}.log")
                with server as url:
                    store = RunStore(home)
                    browser_measure(store, browser, url, warm, watched=False)  # warm-up: not timed
                    waited = wait_idle(server.proc.pid)  # app start-up work (UMAP compile) must not overlap
                    print(f"  ({executor}: server idle after {waited:.0f} s more)", flush=True)
                    for i in range(args.repeats):
                        for watched in ((False, True) if i % 2 == 0 else (True, False)):
                            rate, open_s = browser_measure(store, browser, url, spec, watched)
                            (busy if watched else quiet).append(rate)
                            seen += open_s
                ratios = [b / q for b, q in zip(busy, quiet, strict=True)]
                print(f"{executor:<9} {statistics.median(quiet):>16.2f} {statistics.median(busy):>13.2f} "
                      f"{seen:>10.0f} {statistics.median(ratios):>6.2f}   "
                      f"(ratios {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
        finally:
            browser.close()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", nargs="+", default=["thread", "process"])
    parser.add_argument("--repeats", type=int, default=2, help="watched / not watched pairs per executor")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=640)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (on a shared machine 2 OpenMP threads stall on a busy core)")
    parser.add_argument("--browser", action="store_true",
                        help="the real app (streamlit run app.py) watched by headless chromium, not a simulation")
    args = parser.parse_args(argv)
    if args.browser:
        return browser_main(args)
    spec = bench_spec(args.epochs, args.n_train, args.seeds)
    preload()
    print(f"experiment: {len(spec.conditions)} conditions x {len(spec.seeds)} seeds x {spec.epochs} epochs, "
          f"{args.n_train} train images; 1 worker x {args.threads} torch threads; page polls every {POLL_SECONDS:g} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    print(f"{'executor':<9} {'not watched ep/s':>16} {'watched ep/s':>13} {'polls':>6} {'ratio':>6}")
    quiet: dict[str, list[float]] = {e: [] for e in args.executors}
    busy: dict[str, list[float]] = {e: [] for e in args.executors}
    polls = dict.fromkeys(args.executors, 0)
    with tempfile.TemporaryDirectory() as tmp:
        # Executors interleaved within each repeat, so a change of the machine's load hits them alike.
        for i in range(args.repeats):
            for executor in args.executors:
                for watched in ((False, True) if i % 2 == 0 else (True, False)):
                    rate, n = measure(Path(tmp) / f"{executor}-{i}-{watched}", executor, spec, watched, args.threads)
                    (busy if watched else quiet)[executor].append(rate)
                    polls[executor] += n
    for executor in args.executors:
        ratios = [b / q for b, q in zip(busy[executor], quiet[executor], strict=True)]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"{executor:<9} {statistics.median(quiet[executor]):>16.2f} {statistics.median(busy[executor]):>13.2f} "
              f"{polls[executor]:>6} {statistics.median(ratios):>6.2f}   (ratios {each})")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":  # required: the process executor's workers import this script when they start
    sys.exit(main())
