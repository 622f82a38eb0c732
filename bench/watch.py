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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", nargs="+", default=["thread", "process"])
    parser.add_argument("--repeats", type=int, default=2, help="watched / not watched pairs per executor")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=640)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (on a shared machine 2 OpenMP threads stall on a busy core)")
    args = parser.parse_args(argv)
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
