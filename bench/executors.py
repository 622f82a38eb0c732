"""Training throughput per executor and per split of the cores: thread vs process, 1 worker x N threads vs N x 1.

Each measurement trains the same experiment with a fresh job manager whose
workers are warm (a warm-up experiment with one run per worker first, so
process start-up, imports and dataset loading are not in the timed part; they
are printed apart as "start"). Throughput is epochs trained per second of wall
time. The configurations take turns within each repeat, in reversed order every
other repeat, so a change of the machine's load hits them alike; each ratio is
the median throughput of a configuration over that of the baseline, today's
default (thread, 1 worker x all cores' threads).

    .venv/bin/python bench/executors.py [--repeats 3] [--epochs 3] [--n-train 960] [--seeds 2] [--ray]

With ``--ray`` a local Ray (ray 2 x 1) is measured too. Every configuration
must give the same test accuracies (checked, printed as "same results").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_spec(epochs: int, n_train: int, seeds: int, conditions: int = 2):
    """The smoke preset's conditions on more images."""
    from akp.experiment import load_preset

    spec = load_preset("smoke")
    spec.name = "executors-bench"
    spec.epochs = epochs
    spec.seeds = list(range(seeds))
    spec.conditions = spec.conditions[:conditions]
    spec.dataset_options = {"n_train": n_train, "n_test": 320, "size": 32, "seed": 0}
    spec.validate()
    return spec


def measure(home: Path, executor: str, workers: int, threads: int, spec) -> tuple[float, float, list[float]]:
    """(start seconds, epochs per second, test accuracies) training ``spec`` on a warm manager."""
    from akp.jobs import JobManager
    from akp.store import RunStore

    store = RunStore(home)
    started = time.monotonic()
    manager = JobManager(store, max_workers=workers, executor=executor, threads=threads, vectorized=False,
                         cache_projections=False)
    try:
        warm = bench_spec(1, 64, workers, conditions=1)  # one tiny run per worker: every worker starts and loads
        warm_id = store.create_experiment(warm)
        manager.submit(warm_id)
        manager.wait(warm_id)
        start = time.monotonic() - started
        eid = store.create_experiment(spec)
        began = time.monotonic()
        manager.submit(eid)
        manager.wait(eid)
        elapsed = time.monotonic() - began
        runs = store.runs(eid)
        assert all(r["state"] == "done" for r in runs), [(r["state"], r["error"]) for r in runs]
        return start, sum(r["epochs_done"] for r in runs) / elapsed, [r["test_acc"] for r in runs]
    finally:
        manager.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=960)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2, help="cores to split (N): 1 x N threads vs N x 1")
    parser.add_argument("--ray", action="store_true", help="also measure the ray executor (local Ray)")
    args = parser.parse_args(argv)
    n = args.cores
    configs = [("thread", 1, n), ("thread", n, 1), ("process", 1, n), ("process", n, 1)]
    if args.ray:
        configs.append(("ray", n, 1))
    spec = bench_spec(args.epochs, args.n_train, args.seeds)
    print(f"experiment: {len(spec.conditions)} conditions x {len(spec.seeds)} seeds x {spec.epochs} epochs, "
          f"{args.n_train} train images, {args.repeats} repeats; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs", flush=True)
    rates: dict[tuple, list[float]] = {c: [] for c in configs}
    starts: dict[tuple, list[float]] = {c: [] for c in configs}
    accs: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for c in (configs if i % 2 == 0 else configs[::-1]):
                start, rate, acc = measure(Path(tmp) / f"{'-'.join(map(str, c))}-{i}", *c, spec)
                rates[c].append(rate)
                starts[c].append(start)
                accs.setdefault(c, acc)
                print(f"  repeat {i + 1}: {c[0]} {c[1]}x{c[2]}: {rate:.2f} epochs/s (start {start:.1f} s)",
                      flush=True)
    base = statistics.median(rates[configs[0]])
    print(f"{'executor':<8} {'workers x threads':>17} {'epochs/s':>9} {'ratio':>6} {'start s':>8}")
    for c in configs:
        each = ", ".join(f"{r:.2f}" for r in rates[c])
        print(f"{c[0]:<8} {f'{c[1]} x {c[2]}':>17} {statistics.median(rates[c]):>9.2f} "
              f"{statistics.median(rates[c]) / base:>6.2f} {statistics.median(starts[c]):>8.1f}   ({each})")
    same = all(a == accs[configs[0]] for a in accs.values())
    print(f"same results: {same}; load average at the end {os.getloadavg()[0]:.1f}")
    return 0 if same else 1


if __name__ == "__main__":  # required: the process executor's workers import this script when they start
    sys.exit(main())
