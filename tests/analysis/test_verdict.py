"""Tests for akp.analysis.verdict: the AKP test on a (fake or real) run store."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from analysis_fakes import make_store, run

from akp import analysis as A
from akp.analysis import AnalysisError, akp_test, convergence


def test_akp_test_supported_when_unhappy_runs_scatter():
    res = akp_test(make_store(), "e", layer="embedding", permutations=499)
    assert res.verdict_code == "supported"
    assert res.verdict.startswith("Supported")
    assert res.families == ["happy"] * 6 + ["unhappy"] * 6
    assert res.dispersion["unhappy"] > res.dispersion["happy"]
    assert res.dispersion_difference == pytest.approx(res.dispersion["unhappy"] - res.dispersion["happy"])
    lo, hi = res.difference_ci
    assert 0 < lo <= res.dispersion_difference <= hi
    assert res.p_value < 0.05
    assert res.cka.shape == (12, 12) and res.distances.shape == (12, 12)
    np.testing.assert_allclose(res.distances, 1 - res.cka - np.diag(np.diag(1 - res.cka)))
    assert res.epochs == [0] * 12
    assert res.unit == "run" and res.primary.p_akp == res.p_value and res.p_anti > 0.5
    assert any("one route" in c for c in res.caveats) and any("Exploratory" in c for c in res.caveats)
    out = res.to_dict()
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text)["verdict_code"] == "supported"
    assert out["p_value"] == res.p_value and out["threshold_source"] == "largest_gap"


def test_akp_test_not_supported_when_families_equally_dispersed():
    store = make_store(unhappy_shared=True, happy_noise=0.5, unhappy_noise=0.5, seed=3)
    res = akp_test(store, "e", layer="embedding", permutations=499, distance="angular", debiased=True)
    assert res.verdict_code == "no_difference"
    assert res.verdict.startswith("No difference: the data show no significant difference")
    assert res.p_value >= 0.05


def test_akp_test_not_supported_when_happy_runs_are_the_scattered_ones():
    store = make_store(unhappy_shared=True, happy_noise=3.0, unhappy_noise=0.1, seed=1)
    res = akp_test(store, "e", layer="embedding", permutations=499)
    assert res.verdict_code == "reversed"
    assert res.verdict.startswith("Reversed (anti-AKP)") and "opposite" in res.verdict
    assert res.p_anti <= 0.05 < res.p_value
    assert res.dispersion["happy"] > res.dispersion["unhappy"]


def test_akp_test_cannot_be_tested_with_one_family_or_too_few_runs():
    res = akp_test(make_store(n_happy=4, n_unhappy=0), "e", layer="embedding", threshold=0.1)
    assert res.verdict_code == "one_family"
    assert "only one family" in res.verdict
    assert res.test is None and res.p_value is None
    json.dumps(res.to_dict(), allow_nan=False)
    res = akp_test(make_store(n_happy=6, n_unhappy=5), "e", layer="embedding")
    assert res.verdict_code == "too_few_runs"
    assert "too few runs" in res.verdict


def test_akp_test_excludes_unfinished_broken_and_missing_runs():
    nan_rep = np.full((64, 12), np.nan, dtype=np.float32)
    const_rep = np.ones((64, 12), dtype=np.float32)
    extra = [(run("q", None, state="running"), None),
             (run("nan", 0.5, state="diverged"), nan_rep),
             (run("flat", 0.5, state="diverged"), const_rep),
             (run("missing", 0.9), None)]
    res = akp_test(make_store(extra_runs=extra), "e", layer="embedding", permutations=99)
    reasons = {e["run_id"]: e["reason"] for e in res.excluded}
    assert set(reasons) == {"q", "nan", "flat", "missing"}
    assert "not finished" in reasons["q"] and "non-finite" in reasons["nan"] and "constant" in reasons["flat"]
    assert "no representation" in reasons["missing"]
    assert len(res.run_ids) == 12


def test_akp_test_epoch_and_option_errors():
    store = make_store(epochs=(0, 1, 2))
    assert akp_test(store, "e", layer="embedding", epoch=1, permutations=99).epochs == [1] * 12
    assert akp_test(store, "e", layer="embedding", permutations=99).epochs == [2] * 12
    with pytest.raises(AnalysisError, match="distance"):
        akp_test(store, "e", layer="embedding", distance="euclid")
    with pytest.raises(AnalysisError, match="alpha"):
        akp_test(store, "e", layer="embedding", alpha=2)
    res = akp_test(store, "e", layer="embedding", epoch=7, permutations=99)
    assert res.verdict_code == "one_family" and len(res.excluded) == 12


try:
    import akp.store  # noqa: F401

    HAVE_STORE = True
except ImportError:  # pragma: no cover - only while the foundation is being written
    HAVE_STORE = False


@pytest.mark.skipif(not HAVE_STORE, reason="akp.store (the foundation) cannot be imported yet")
def test_akp_test_end_to_end_on_smoke_preset(smoke_store):
    store, eid = smoke_store
    runs = store.runs(eid)
    assert len(runs) == 4
    res = akp_test(store, eid, layer="embedding", permutations=199)
    assert res.verdict_code in A.VERDICT_CODES
    finished = [r["run_id"] for r in runs if r["state"] in ("done", "diverged")]
    assert sorted(res.run_ids + [e["run_id"] for e in res.excluded]) == sorted(r["run_id"] for r in runs)
    assert set(res.run_ids) <= set(finished)
    assert res.cka.shape == (len(res.run_ids),) * 2
    assert np.allclose(np.diag(res.cka), 1.0)
    if res.test is not None:
        assert 0 < res.test.p_value <= 1
        assert set(res.dispersion) == {"happy", "unhappy"}
    json.dumps(res.to_dict(), allow_nan=False)
    # A threshold above every accuracy makes one family: the verdict says so.
    one = akp_test(store, eid, layer="embedding", threshold=1.01, permutations=9)
    assert one.verdict_code == "one_family"
    points = convergence(store, eid, layer="embedding")
    assert points and all(math.isnan(p.mean) or -1 <= p.mean <= 1 + 1e-9 for p in points)


def test_two_runs_per_family_are_too_few_for_permdisp():
    # Far below the six runs per family the verdict needs.
    res = akp_test(make_store(n_happy=2, n_unhappy=2), "e", layer="embedding", threshold=0.7)
    assert res.verdict_code == "too_few_runs" and res.test is None


def test_akp_test_compares_all_runs_at_one_epoch():
    store = make_store(epochs=(0, 1, 2))
    # A diverged run that stopped after epoch 0 must not be compared with the others' epoch 2.
    early = np.random.default_rng(9).random((64, 12)).astype(np.float32) + 20
    store._runs.append(run("early", 0.5, state="diverged"))
    store._reps[("early", "embedding", 0)] = early
    res = akp_test(store, "e", layer="embedding", permutations=99)
    assert set(res.epochs) == {2}
    assert "early" not in res.run_ids
    assert any(e["run_id"] == "early" and "epoch" in e["reason"] for e in res.excluded)
    at0 = akp_test(store, "e", layer="embedding", epoch=0, permutations=99)
    assert "early" in at0.run_ids and set(at0.epochs) == {0}


def test_analysis_errors_are_akp_errors_naming_the_argument():
    from akp.errors import AKPError

    for kwargs, field in [({"distance": "euclid"}, "distance"), ({"alpha": 2}, "alpha"), ({"n_boot": 0}, "n_boot"),
                          ({"epoch": 1.5}, "epoch"), ({"permutations": 0}, "permutations"), ({"rule": "x"}, "rule")]:
        with pytest.raises(AnalysisError) as info:
            akp_test(make_store(), "e", layer="embedding", **kwargs)
        assert isinstance(info.value, AKPError) and info.value.field == field


def test_the_three_steps_gather_test_sentence():
    from akp.analysis.verdict import compare_dispersion, gather_runs, run_distances, verdict_sentence

    sample = gather_runs(make_store(epochs=(0, 1)), "e", layer="embedding")
    assert sample.epochs == [1] * 12 and sample.families == ["happy"] * 6 + ["unhappy"] * 6
    _, dist = run_distances(sample.features, distance="1-cka", debiased=False)
    comparison = compare_dispersion(dist, sample.families, permutations=99)
    assert comparison is not None and comparison.difference > 0
    assert verdict_sentence(sample.families, comparison, alpha=0.05)[0] == "supported"
    # Six runs per family are needed: five are too few, and the test step does not run.
    few = ["happy"] * 5 + ["unhappy"] * 5
    assert compare_dispersion(dist[1:11, 1:11], few) is None
    assert verdict_sentence(few, None, alpha=0.05)[0] == "too_few_runs"
    assert verdict_sentence(["happy"] * 4, None, alpha=0.05)[0] == "one_family"
    assert verdict_sentence([], None, alpha=0.05)[0] == "one_family"


def route_store(n_routes=(4, 4), seeds=3, *, route_spread=(0.2, 0.2), seed=0):
    """Happy and unhappy routes (conditions), each with ``seeds`` runs near their route's own representation."""
    from analysis_fakes import FakeStore
    r = np.random.default_rng(seed)
    shared = r.standard_normal((64, 12))
    runs, reps, k = [], {}, 0
    for fam, n_r, spread in (("happy", n_routes[0], route_spread[0]), ("unhappy", n_routes[1], route_spread[1])):
        for c in range(n_r):
            centre = shared + spread * r.standard_normal((64, 12))
            for _ in range(seeds):
                rid = f"r{k}"
                runs.append(run(rid, 0.9 if fam == "happy" else 0.5, condition=f"{fam}{c}", seed=k))
                reps[(rid, "embedding", 0)] = (np.maximum(centre + 0.05 * r.standard_normal((64, 12)), 0)
                                               + 20).astype(np.float32)
                k += 1
    return FakeStore(runs, reps)


def test_with_several_routes_per_family_the_unit_is_the_condition():
    res = akp_test(route_store(route_spread=(0.1, 1.5)), "e", permutations=999)
    assert res.unit == "condition" and res.primary.units[0] == "happy0 (happy)"
    assert len(res.primary.units) == 8 and res.primary.exact and res.primary.labellings == 70
    assert res.verdict_code == "supported" and "routes" in res.verdict
    assert res.within_route["happy"] < res.dispersion["unhappy"]
    assert len(res.diagnostics) == 24 and all(d["effective_rank"] >= 1 for d in res.diagnostics)


def test_too_few_routes_for_a_condition_level_p_value():
    # 2 + 2 routes: C(4, 2) = 6 labellings, so no p-value can reach 0.05.
    res = akp_test(route_store(n_routes=(2, 2)), "e", permutations=99)
    assert res.verdict_code == "too_few_runs" and "too few routes" in res.verdict
