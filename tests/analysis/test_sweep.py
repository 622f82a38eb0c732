"""Tests for akp.analysis.sweep (the verdict over a grid of happy thresholds) and akp.analysis.ordination."""
from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_fakes import make_store, run

from akp import analysis as A


def sweep_store():
    """6 happy runs (acc 0.90-0.91), 6 unhappy (0.50-0.51) and a borderline happy run at 0.69."""
    r = np.random.default_rng(5)
    border = run("border", 0.69, condition="steady", seed=99)
    store = make_store(n_happy=6, n_unhappy=6, happy_noise=0.2, extra_runs=[(border, None)])
    store._reps[("border", "embedding", 0)] = (np.maximum(r.standard_normal((64, 12)), 0) + 20.0)
    for rec in store._runs:
        rec["majority_rate"] = 0.45
    return store


def test_sweep_rows_are_the_verdicts_at_each_threshold_and_mark_runs_near_it():
    store = sweep_store()
    rows = A.threshold_sweep(store, "e", [0.6, 0.7, 0.905, 0.95], layer="embedding", permutations=199)
    assert [r.threshold for r in rows] == [0.6, 0.7, 0.905, 0.95]
    for row in rows:
        res = A.akp_test(store, "e", layer="embedding", threshold=row.threshold, permutations=199, n_boot=1)
        assert (row.verdict_code, row.p_value, row.p_anti, row.unit) == (res.verdict_code, res.p_value,
                                                                       res.p_anti, res.unit)
        assert (row.n_happy, row.n_unhappy) == (res.families.count("happy"), res.families.count("unhappy"))
    accs = {r["run_id"]: r["test_acc"] for r in store.runs("e")}
    # At 0.6 the borderline run is happy, at 0.7 unhappy; only at 0.7 is it within 0.02.
    assert (rows[0].n_happy, rows[1].n_happy) == (7, 6)
    assert rows[0].near == [] and rows[1].near == ["border"]
    # At 0.905 the happy runs on either side of it are marked, exactly those within 0.02.
    assert rows[2].near == sorted(rid for rid, a in accs.items() if abs(a - 0.905) <= 0.02)
    assert len(rows[2].near) == 6 and "border" not in rows[2].near
    assert rows[3].verdict_code == "one_family" and rows[3].n_happy == 0
    assert rows[0].verdict_code == "supported"  # happy runs alike, unhappy independent
    json.dumps([r.to_dict() for r in rows], allow_nan=False)


def test_sweep_reports_a_refused_threshold_and_checks_its_options():
    store = sweep_store()
    (row,) = A.threshold_sweep(store, "e", [0.46], layer="embedding", permutations=99)
    assert row.verdict_code is None and "majority-class rate" in row.error and row.n_happy == 0
    with pytest.raises(A.AnalysisError) as err:
        A.threshold_sweep(store, "e", [0.6], margin=-1)
    assert err.value.field == "margin"
    with pytest.raises(A.AnalysisError) as err:
        A.threshold_sweep(store, "e", [float("nan")])
    assert err.value.field == "thresholds"


def test_default_thresholds_span_the_accuracies_above_the_majority_rate():
    runs = [{"run_id": "a", "state": "done", "test_acc": 0.52, "majority_rate": 0.5},
            {"run_id": "b", "state": "done", "test_acc": 0.61, "majority_rate": 0.5},
            {"run_id": "c", "state": "running", "test_acc": 0.99}]
    assert A.default_thresholds(runs) == [0.525, 0.55, 0.575, 0.6]
    assert A.default_thresholds([{"run_id": "a", "state": "done", "test_acc": 0.4, "majority_rate": 0.5},
                                 {"run_id": "b", "state": "done", "test_acc": 0.58}], step=0.05) == [0.55]
    assert A.default_thresholds([]) == []


def test_family_pcoa_recovers_euclidean_points_and_their_centres():
    r = np.random.default_rng(0)
    pts = np.vstack([r.normal(0, 0.1, (5, 2)), r.normal(3, 1.0, (4, 2))])
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    fams = ["happy"] * 5 + ["unhappy"] * 4
    o = A.family_pcoa(d, fams)
    got = np.linalg.norm(o.coords[:, None] - o.coords[None], axis=2)
    np.testing.assert_allclose(got, d, atol=1e-9)  # two axes hold planar points exactly
    for fam, sel in (("happy", slice(0, 5)), ("unhappy", slice(5, 9))):
        np.testing.assert_allclose(o.centres[fam], o.coords[sel].mean(axis=0), atol=1e-12)
    # Distances to the centre in the picture are the centroid distances PERMDISP uses (no bias adjustment here).
    z = np.linalg.norm(o.coords[5:] - np.array(o.centres["unhappy"]), axis=1)
    np.testing.assert_allclose(z, np.linalg.norm(pts[5:] - pts[5:].mean(axis=0), axis=1), atol=1e-9)
    assert sum(o.explained) == pytest.approx(1.0) and o.explained[0] >= o.explained[1]
    assert o.n_negative_axes == 0
    with pytest.raises(A.AnalysisError) as err:
        A.family_pcoa(d, fams[:3])
    assert err.value.field == "families"
