"""Type-I rate and power of the AKP tests, by simulation, against vegan's scheme in the same run.

Null: both families from one Gaussian (dimension 8), Euclidean distances.
Rows: run-level family sizes, then a design with route structure (each route a
random offset shared by its 3 seeds), where the run level is pseudo-replication.
Columns: rejection rate at nominal 0.05 of the one-sided AKP test
(``directional_test``), its reverse, akp's PERMDISP with its defaults (bias-
adjusted, label permutation) and vegan's scheme (no bias adjustment, residual
permutation) -- the baseline -- and the ratio akp / vegan of the two-sided rates.
Power: unhappy standard deviation 1.5x the happy one.

    .venv/bin/python bench/calibration.py --sims 1000
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from akp.analysis.dispersion import directional_test, route_reduce  # noqa: E402
from akp.analysis.permdisp import permdisp  # noqa: E402

SIZES = [(3, 3), (5, 5), (13, 5), (12, 6), (4, 14), (20, 4)]


def rates(sizes, sims, perms, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    fam = ["happy"] * sizes[0] + ["unhappy"] * sizes[1]
    hits = np.zeros(4)
    for s in range(sims):
        x = np.concatenate([rng.normal(size=(sizes[0], 8)), scale * rng.normal(size=(sizes[1], 8))])
        d = cdist(x, x)
        t = directional_test(d, fam, permutations=perms, seed=s)
        hits += [t.p_akp <= 0.05, t.p_anti <= 0.05,
                 permdisp(d, fam, permutations=perms, seed=s).p_value <= 0.05,
                 permdisp(d, fam, permutations=perms, seed=s, bias_adjust=False, permute="residuals").p_value <= 0.05]
    return hits / sims


def route_rates(sims, perms, routes=(5, 4), seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    hits = np.zeros(2)
    for s in range(sims):
        rows, fams, conds = [], [], []
        for fam, k in zip(("happy", "unhappy"), routes, strict=True):
            for c in range(k):
                centre = rng.normal(size=8)
                for _ in range(seeds):
                    rows.append(centre + 0.3 * rng.normal(size=8))
                    fams.append(fam)
                    conds.append(f"{fam}{c}")
        x = np.array(rows)
        d = cdist(x, x)
        red = route_reduce(d, fams, conds)
        hits += [directional_test(red.distances, red.families, permutations=perms, seed=s).p_akp <= 0.05,
                 directional_test(d, fams, permutations=perms, seed=s).p_akp <= 0.05]
    return hits / sims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--permutations", type=int, default=199)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"null, {args.sims} simulations, {args.permutations} permutations, nominal 0.05")
    print(f"{'sizes (h, u)':>13} {'AKP 1-sided':>11} {'anti 1-sided':>12} {'akp PERMDISP':>12} {'vegan scheme':>12}"
          f" {'ratio':>6}")
    for sizes in SIZES:
        r = rates(sizes, args.sims, args.permutations, seed=sum(sizes))
        ratio = r[2] / r[3] if r[3] else float("nan")
        print(f"{str(sizes):>13} {r[0]:>11.3f} {r[1]:>12.3f} {r[2]:>12.3f} {r[3]:>12.3f} {ratio:>6.2f}")
    route, run = route_rates(args.sims, args.permutations)
    print(f"routes 5 v 4 x 3 seeds (random route offsets): condition level {route:.3f}, run level {run:.3f}")
    print("power, unhappy sd 1.5x:")
    for sizes in [(6, 6), (12, 12), (20, 20)]:
        r = rates(sizes, args.sims // 2, args.permutations, scale=1.5, seed=7 + sum(sizes))
        print(f"{str(sizes):>13} {r[0]:>11.3f} (anti {r[1]:.3f}, akp PERMDISP {r[2]:.3f}, vegan {r[3]:.3f})")
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
