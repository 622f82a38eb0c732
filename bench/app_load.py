"""Server-side page-load time of the app with 100 finished runs in the store.

Fills a temporary store with one experiment of 10 conditions x 10 seeds x 8 epochs
(fake but complete finished runs: metrics, swap events, representations), then
times Streamlit AppTest runs of app.py (navigation, sidebar and page) on its Home
and Runs pages (and Design, for reference). The first load of a page in the process builds its cached figures;
later loads (new sessions, as a reload or a second tab) reuse them.

Baseline: the same AppTest run of a one-line page, so the figure is the page's
own cost beyond Streamlit's fixed per-run cost.

Usage::

    .venv/bin/python bench/app_load.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from akp.experiment import ExperimentSpec  # noqa: E402
from akp.models import ModelSpec  # noqa: E402
from akp.schedule import random_stress  # noqa: E402
from akp.store import RunStore  # noqa: E402
from akp.train import RunResult  # noqa: E402

EPOCHS = 8
N_PROBE = 64


def fill_store(home: Path, n_conditions: int = 10, n_seeds: int = 10) -> str:
    """One experiment of ``n_conditions`` x ``n_seeds`` finished fake runs; returns its id."""
    conditions = [random_stress(EPOCHS, n_events=3, seed=i, name=f"stress-{i}") for i in range(n_conditions)]
    spec = ExperimentSpec(name="bench-100", dataset_options={"n_train": 320, "n_test": 160},
                          model=ModelSpec(8, 2, 16), epochs=EPOCHS, seeds=list(range(n_seeds)),
                          conditions=conditions, probe_size=N_PROBE)
    store = RunStore(home)
    rng = np.random.default_rng(0)
    experiment_id = store.create_experiment(spec, probe_images=rng.random((N_PROBE, 1, 32, 32), np.float32),
                                            probe_labels=np.arange(N_PROBE) % 2)
    layers = spec.model.layer_names()
    dims = {"conv1": 8, "conv2": 16, "embedding": 16, "logits": 2}
    for run in store.runs(experiment_id):
        cond = spec.condition(run["condition"])
        metrics = []
        for e in range(EPOCHS):
            act, loss = cond.active_at(e)
            test_acc = float(0.5 + 0.4 * (1 - np.exp(-e / 3)) + rng.normal(0, 0.02))
            train_acc = test_acc + abs(float(rng.normal(0.03, 0.01)))
            metrics.append({"epoch": e, "train_loss": 1 / (e + 1), "train_acc": train_acc,
                            "test_loss": 1.1 / (e + 1), "test_acc": test_acc, "gap": train_acc - test_acc,
                            "activation": act, "loss": loss})
        reps = {layer: {EPOCHS - 1: rng.standard_normal((N_PROBE, dims[layer])).astype(np.float32)}
                for layer in layers}
        store.save_result(run["run_id"], RunResult(run["condition"], run["seed"], "done", metrics,
                                                   [e.to_dict() for e in cond.events], reps))
    return experiment_id


def time_page(page: str | None, query: dict, repeats: int) -> list[float]:
    """Seconds per AppTest run of ``page`` (None: a trivial baseline script), each a new session."""
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(repeats):
        if page is None:
            at = AppTest.from_string("import streamlit as st\nst.write('baseline')", default_timeout=60)
        elif page.startswith("app.py:"):  # the whole app, navigated to a page
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
            at.query_params.update(query)
            at.run()
            at.switch_page(page.split(":", 1)[1])
        else:
            at = AppTest.from_file(str(ROOT / page), default_timeout=60)
        at.query_params.update(query)
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, [e.value for e in at.exception]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "store"
        os.environ["AKP_HOME"] = str(home)
        t0 = time.perf_counter()
        experiment_id = fill_store(home)
        n_runs = len(RunStore(home).runs(experiment_id))
        print(f"store: {n_runs} finished runs (10 conditions x 10 seeds x {EPOCHS} epochs), "
              f"filled in {time.perf_counter() - t0:.1f} s")
        # Warm the process (imports of streamlit, torch, plotly) so the figures are the pages' own.
        time_page("pages/learn.py", {}, 1)
        query = {"experiment": experiment_id}
        base = time_page(None, {}, args.repeats)
        print(f"{'page':<22}{'first load':>12}{'median later':>14}{'max later':>11}   (seconds, AppTest, server side)")
        print(f"{'baseline (1 line)':<22}{base[0]:>12.3f}{statistics.median(base[1:] or base):>14.3f}"
              f"{max(base[1:] or base):>11.3f}")
        # The whole app (navigation + sidebar + the page), as a browser's request runs it.
        for page, label in (("app.py", "app.py -> Home"), ("app.py:pages/runs.py", "app.py -> Runs"),
                            ("app.py:pages/design.py", "app.py -> Design")):
            times = time_page(page, query, args.repeats)
            later = times[1:] or times
            print(f"{label:<22}{times[0]:>12.3f}{statistics.median(later):>14.3f}{max(later):>11.3f}")
        from ui import shutdown_managers

        shutdown_managers()


if __name__ == "__main__":
    main()
