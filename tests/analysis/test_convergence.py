"""Tests for akp.analysis.convergence: within-family CKA over epochs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_fakes import make_store

from akp import analysis as A
from akp.analysis import convergence
from akp.cka import cka_matrix


def test_convergence_happy_family_converges():
    store = make_store(n_happy=5, n_unhappy=5, epochs=(0, 1, 2), happy_noise=1.0)
    points = convergence(store, "e", layer="embedding")
    assert [(p.epoch, p.family) for p in points] == [(e, f) for e in (0, 1, 2) for f in ("happy", "unhappy")]
    happy = [p.mean for p in points if p.family == "happy"]
    assert happy[0] < happy[1] < happy[2]
    unhappy = [p for p in points if p.family == "unhappy"]
    assert all(p.mean < happy[2] for p in unhappy)
    assert all(p.count == 10 and p.n_runs == 5 for p in points)
    # Values are the mean of the within-family CKA pairs.
    feats = [store.representations(f"r{k}", "embedding", 1) for k in range(5)]
    m = cka_matrix(feats)
    pairs = m[np.triu_indices(5, 1)]
    p1 = next(p for p in points if p.epoch == 1 and p.family == "happy")
    assert p1.mean == pytest.approx(pairs.mean()) and p1.std == pytest.approx(pairs.std())
    epochs, series = A.convergence_series(points)
    assert epochs == [0, 1, 2]
    assert series["happy"]["mean"] == pytest.approx(happy)
    assert series["happy"]["hi"][1] == pytest.approx(p1.mean + p1.std)
    json.dumps([p.to_dict() for p in points], allow_nan=False)
