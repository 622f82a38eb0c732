"""Fakes shared by the analysis tests: run records and the part of RunStore that akp.analysis reads."""
from __future__ import annotations

import numpy as np


def run(rid, acc, state="done", gap=0.0, train=None, condition="c", seed=0):
    return {"run_id": rid, "experiment_id": "e", "condition": condition, "seed": seed, "state": state,
            "test_acc": acc, "train_acc": train if train is not None else (None if acc is None else acc + gap),
            "gap": gap, "epochs_done": 3, "error": None}


class FakeStore:
    """The part of RunStore that akp.analysis uses, in memory."""

    def __init__(self, runs, reps):
        self._runs = runs
        self._reps = reps  # (run_id, layer, epoch) -> array

    def runs(self, experiment_id):
        return [dict(r) for r in self._runs]

    def representation_epochs(self, run_id, layer):
        return sorted(e for (rid, lay, e) in self._reps if rid == run_id and lay == layer)

    def representations(self, run_id, layer, epoch=None):
        eps = self.representation_epochs(run_id, layer)
        if not eps:
            raise KeyError(f"layer: no {layer!r} for {run_id!r}")
        e = eps[-1] if epoch is None else epoch
        if e not in eps:
            raise ValueError(f"epoch: {e} not captured")
        return self._reps[(run_id, layer, e)]


def make_store(n_happy=6, n_unhappy=6, *, happy_noise=0.2, unhappy_noise=0.2, unhappy_shared=False, seed=0,
               epochs=(0,), extra_runs=()):
    """Happy runs: a shared representation plus noise; unhappy: independent ones (or shared, if asked)."""
    r = np.random.default_rng(seed)
    n, p = 64, 12
    shared = r.standard_normal((n, p))
    runs, reps = [], {}
    for k in range(n_happy + n_unhappy):
        happy = k < n_happy
        rid = f"r{k}"
        runs.append(run(rid, 0.9 + 0.01 * r.random() if happy else 0.5 + 0.01 * r.random(),
                        condition="steady" if happy else "shock", seed=k))
        own = r.standard_normal((n, p))
        for e in epochs:
            weight = (e + 1) / len(epochs)  # later epochs: closer to the family's shared solution
            if happy or unhappy_shared:
                base = shared + own * (happy_noise if happy else unhappy_noise) / weight
            else:
                base = own
            reps[(rid, "embedding", e)] = (np.maximum(base, 0) + 20.0).astype(np.float32)
    for rec, arr in extra_runs:
        runs.append(rec)
        if arr is not None:
            reps[(rec["run_id"], "embedding", epochs[-1])] = arr
    return FakeStore(runs, reps)
