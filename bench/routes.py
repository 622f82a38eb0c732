"""Failure and working routes on the default synthetic cells: accuracy over seeds and embedding rank.

For each route (a swap schedule preset, see the table in ``akp.schedule``),
trains ``--seeds`` runs at the teaching preset's budget and prints test
accuracy (mean [min, max]), the effective rank (participation ratio) and total
variance of the embedding on the probe set at the last epoch, and seconds per
run. The baseline in the same run is the ``steady`` route.

    .venv/bin/python bench/routes.py --seeds 2
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from akp.analysis.diagnostics import effective_rank  # noqa: E402
from akp.datasets import load_dataset  # noqa: E402
from akp.experiment import experiment_probe, load_preset  # noqa: E402
from akp.schedule import FAILURE_ROUTES, PRESETS, WORKING_ROUTES  # noqa: E402
from akp.train import train_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--routes", nargs="*", default=list(WORKING_ROUTES + FAILURE_ROUTES))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = dataclasses.replace(load_preset("teaching"), conditions=[PRESETS["steady"]])
    data = load_dataset(spec.dataset, spec.dataset_options)
    probe = data.x_test[experiment_probe(spec, data)]
    print(f"teaching budget: {spec.epochs} epochs, {len(data.y_train)} train / {len(data.y_test)} test images; "
          f"{args.seeds} seeds per route")
    print(f"{'route':<15} {'kind':<8} {'test acc mean [min, max]':<26} {'eff. rank':>9} {'total var':>10} {'s/run':>6}")
    for name in args.routes:
        accs, ranks, tvars, secs = [], [], [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            res = train_run(spec, PRESETS[name], seed, dataset=data, probe=probe)
            secs.append(time.perf_counter() - t0)
            accs.append(res.test_acc if res.test_acc is not None else float("nan"))
            last = max(res.representations["embedding"])
            rank, total = effective_rank(res.representations["embedding"][last])
            ranks.append(rank)
            tvars.append(total)
        kind = "working" if name in WORKING_ROUTES else "failure" if name in FAILURE_ROUTES else "-"
        acc = f"{np.mean(accs):.3f} [{np.min(accs):.3f}, {np.max(accs):.3f}]"
        print(f"{name:<15} {kind:<8} {acc:<26} {np.mean(ranks):>9.2f} {np.mean(tvars):>10.3g} {np.mean(secs):>6.1f}",
              flush=True)


if __name__ == "__main__":
    main()
