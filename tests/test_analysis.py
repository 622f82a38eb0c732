"""Tests for akp.analysis: families, PERMDISP, the AKP test and convergence."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from scipy.stats import f_oneway

from akp import analysis as A
from akp.analysis import AnalysisError, akp_test, convergence, label_families, label_runs, permdisp
from akp.cka import cka_matrix

# ---- families ----------------------------------------------------------------


def test_label_families_splits_at_largest_gap():
    accs = [0.91, 0.55, 0.93, 0.50, 0.89, 0.52]
    assert A.largest_gap_threshold(accs) == pytest.approx((0.55 + 0.89) / 2)
    assert label_families(accs) == ["happy", "unhappy", "happy", "unhappy", "happy", "unhappy"]


def test_label_families_with_threshold_ties_and_degenerate_input():
    assert label_families([0.7, 0.8, 0.9], threshold=0.8) == ["unhappy", "happy", "happy"]
    assert label_families([0.5, 0.5, 0.5]) == ["happy"] * 3  # no gap: no split
    assert label_families([0.6, None, float("nan")], threshold=0.5) == ["happy", "unhappy", "unhappy"]
    # Equal gaps: the split goes between the higher values.
    assert label_families([0.1, 0.2, 0.3]) == ["unhappy", "unhappy", "happy"]
    with pytest.raises(AnalysisError, match="threshold"):
        label_families([0.5], threshold=float("inf"))


def run(rid, acc, state="done", gap=0.0, train=None, condition="c", seed=0):
    return {"run_id": rid, "experiment_id": "e", "condition": condition, "seed": seed, "state": state,
            "test_acc": acc, "train_acc": train if train is not None else (None if acc is None else acc + gap),
            "gap": gap, "epochs_done": 3, "error": None}


def test_label_runs_diverged_unhappy_unfinished_excluded():
    runs = [run("a", 0.9), run("b", 0.92), run("c", 0.5), run("d", 0.95, state="diverged"),
            run("e", None, state="queued"), run("f", 0.4, state="cancelled"), run("g", None, state="diverged")]
    fam = label_runs(runs)
    assert fam.run_ids == ["a", "b", "c", "d", "g"]
    assert fam.families == ["happy", "happy", "unhappy", "unhappy", "unhappy"]
    assert fam.threshold == pytest.approx((0.5 + 0.9) / 2)  # diverged runs do not move the split
    assert [e["run_id"] for e in fam.excluded] == ["e", "f"]
    assert "queued" in fam.excluded[0]["reason"]
    assert fam.records[2]["family"] == "unhappy"
    assert fam.counts() == {"happy": 2, "unhappy": 3}
    json.dumps(fam.to_dict(), allow_nan=False)
    # label_families on run records: aligned with the input, None for excluded runs.
    assert label_families(runs) == ["happy", "happy", "unhappy", "unhappy", None, None, "unhappy"]


def test_label_runs_gap_rule():
    runs = [run("a", 0.9, gap=0.02), run("b", 0.8, gap=0.3), run("c", 0.5, gap=0.0), run("d", 0.85, gap=0.05)]
    fam = label_runs(runs, rule="gap", max_gap=0.1)
    assert fam.families == ["happy", "unhappy", "happy", "happy"]
    fam = label_runs(runs, rule="gap", max_gap=0.1, threshold=0.6)  # and above chance
    assert fam.families == ["happy", "unhappy", "unhappy", "happy"]
    assert label_runs(runs, rule="gap").max_gap == 0.1
    with pytest.raises(AnalysisError, match="rule"):
        label_runs(runs, rule="vibes")
    with pytest.raises(AnalysisError, match="max_gap"):
        label_runs(runs, rule="gap", max_gap=-1)
    with pytest.raises(AnalysisError, match="run_id"):
        label_runs([{"state": "done"}])


# ---- PERMDISP -------------------------------------------------------------------


def two_groups(seed, n=(10, 10), spread=(1.0, 1.0), dim=5):
    r = np.random.default_rng(seed)
    pts = np.concatenate([r.normal(0, spread[0], (n[0], dim)), r.normal(3, spread[1], (n[1], dim))])
    groups = ["a"] * n[0] + ["b"] * n[1]
    return pts, cdist(pts, pts), groups


def test_permdisp_detects_a_more_dispersed_group():
    _, d, g = two_groups(0, spread=(0.3, 2.0))
    res = permdisp(d, g, permutations=999, seed=1)
    assert res.p_value < 0.01
    assert res.group_dispersion["b"] > 3 * res.group_dispersion["a"]
    assert res.df == (1, 18) and res.permutations == 999
    assert res.p_value >= 1 / 1000  # (count + 1) / (permutations + 1)


def test_permdisp_equal_dispersion_gives_roughly_uniform_p_values():
    ps = np.array([permdisp(two_groups(s)[1], two_groups(s)[2], permutations=199, seed=s).p_value
                   for s in range(60)])
    assert 0.35 < ps.mean() < 0.65
    assert np.mean(ps < 0.05) <= 0.15
    assert np.mean(ps < 0.5) == pytest.approx(0.5, abs=0.2)


def test_permdisp_f_matches_direct_euclidean_computation():
    pts, d, g = two_groups(3, n=(7, 12), spread=(1.0, 1.7))
    g = ["a"] * 7 + ["b"] * 6 + ["c"] * 6
    res = permdisp(d, g, permutations=99)
    direct = []
    for lab in ("a", "b", "c"):
        idx = [i for i, x in enumerate(g) if x == lab]
        direct.append(np.linalg.norm(pts[idx] - pts[idx].mean(0), axis=1))
    np.testing.assert_allclose(res.distances, np.concatenate(direct), atol=1e-9)
    assert res.statistic == pytest.approx(f_oneway(*direct).statistic, rel=1e-9)
    assert res.n_negative_axes == 0


def test_permdisp_non_euclidean_distances_use_imaginary_axes():
    # Random dissimilarities are not Euclidean: distances to the centroid must still follow
    # the distance-only identity z_i^2 = mean_j d_ij^2 - mean_jk d_jk^2 / 2 (within group).
    r = np.random.default_rng(4)
    d = r.uniform(0.2, 1.0, size=(12, 12))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0)
    g = ["x"] * 6 + ["y"] * 6
    res = permdisp(d, g, permutations=99)
    assert res.n_negative_axes > 0
    for idx in (np.arange(6), np.arange(6, 12)):
        sub = d[np.ix_(idx, idx)] ** 2
        z2 = sub.mean(axis=1) - sub.mean() / 2
        np.testing.assert_allclose(res.distances[idx], np.sqrt(np.abs(z2)), atol=1e-9)


def test_permdisp_is_invariant_to_relabelling_and_reproducible():
    _, d, g = two_groups(5, spread=(1.0, 1.6))
    a = permdisp(d, g, seed=7)
    b = permdisp(d, ["happy" if x == "b" else "unhappy" for x in g], seed=7)
    assert b.statistic == pytest.approx(a.statistic, rel=1e-12)
    assert b.p_value == a.p_value
    np.testing.assert_allclose(b.distances, a.distances)
    assert permdisp(d, g, seed=7).p_value == a.p_value
    # Reordering the items (with their labels) changes nothing but the order.
    perm = np.random.default_rng(0).permutation(len(g))
    c = permdisp(d[np.ix_(perm, perm)], [g[i] for i in perm], seed=7)
    assert c.statistic == pytest.approx(a.statistic, rel=1e-10)
    np.testing.assert_allclose(c.distances, a.distances[perm], atol=1e-10)


def test_permdisp_spatial_median():
    pts, d, g = two_groups(6, n=(9, 9), spread=(1.0, 1.0), dim=3)
    res = permdisp(d, g, center="median", permutations=99)
    for idx in (np.arange(9), np.arange(9, 18)):
        x = pts[idx]
        best = minimize(lambda m, x=x: np.linalg.norm(x - m, axis=1).sum(), x.mean(0), method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}).x
        np.testing.assert_allclose(res.distances[idx], np.linalg.norm(x - best, axis=1), atol=1e-4)
    assert res.center == "median"
    # A point that is the exact median (centre of a symmetric cross) is kept.
    cross = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float)
    np.testing.assert_allclose(A._spatial_median(cross), [0, 0], atol=1e-12)


def test_permdisp_errors():
    _, d, g = two_groups(0, n=(3, 3))
    with pytest.raises(AnalysisError, match="groups"):
        permdisp(d, ["a"] * 6)
    with pytest.raises(AnalysisError, match="groups"):
        permdisp(d, g[:5])
    with pytest.raises(AnalysisError, match="center"):
        permdisp(d, g, center="mode")
    with pytest.raises(AnalysisError, match="permutations"):
        permdisp(d, g, permutations=0)
    bad = d.copy()
    bad[0, 1] += 1
    with pytest.raises(AnalysisError, match="symmetric"):
        permdisp(bad, g)
    with pytest.raises(AnalysisError, match="square"):
        permdisp(d[:3], g)
    with pytest.raises(AnalysisError, match="more items"):
        permdisp(d[:2, :2], ["a", "b"])


# ---- the AKP test on a fake store ------------------------------------------------


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


def make_store(n_happy=5, n_unhappy=5, *, happy_noise=0.2, unhappy_noise=0.2, unhappy_shared=False, seed=0,
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


def test_akp_test_supported_when_unhappy_runs_scatter():
    res = akp_test(make_store(), "e", layer="embedding", permutations=499)
    assert res.verdict_code == "supported"
    assert res.verdict.startswith("Supported")
    assert res.families == ["happy"] * 5 + ["unhappy"] * 5
    assert res.dispersion["unhappy"] > res.dispersion["happy"]
    assert res.dispersion_difference == pytest.approx(res.dispersion["unhappy"] - res.dispersion["happy"])
    lo, hi = res.difference_ci
    assert 0 < lo <= res.dispersion_difference <= hi
    assert res.p_value < 0.05
    assert res.cka.shape == (10, 10) and res.distances.shape == (10, 10)
    np.testing.assert_allclose(res.distances, 1 - res.cka - np.diag(np.diag(1 - res.cka)))
    assert res.epochs == [0] * 10
    out = res.to_dict()
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text)["verdict_code"] == "supported"
    assert out["test"]["p_value"] == res.p_value


def test_akp_test_not_supported_when_families_equally_dispersed():
    store = make_store(unhappy_shared=True, happy_noise=0.5, unhappy_noise=0.5, seed=3)
    res = akp_test(store, "e", layer="embedding", permutations=499, distance="angular", debiased=True)
    assert res.verdict_code == "not_supported"
    assert res.verdict.startswith("Not supported: the data show no significant difference")
    assert res.p_value >= 0.05


def test_akp_test_not_supported_when_happy_runs_are_the_scattered_ones():
    store = make_store(unhappy_shared=True, happy_noise=3.0, unhappy_noise=0.1, seed=1)
    res = akp_test(store, "e", layer="embedding", permutations=499)
    assert res.verdict_code == "not_supported"
    assert "opposite" in res.verdict
    assert res.dispersion["happy"] > res.dispersion["unhappy"]


def test_akp_test_cannot_be_tested_with_one_family_or_too_few_runs():
    res = akp_test(make_store(n_happy=4, n_unhappy=0), "e", layer="embedding", threshold=0.1)
    assert res.verdict_code == "one_family"
    assert "only one family" in res.verdict
    assert res.test is None and res.p_value is None
    json.dumps(res.to_dict(), allow_nan=False)
    res = akp_test(make_store(n_happy=4, n_unhappy=1), "e", layer="embedding")
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
    assert len(res.run_ids) == 10


def test_akp_test_epoch_and_option_errors():
    store = make_store(epochs=(0, 1, 2))
    assert akp_test(store, "e", layer="embedding", epoch=1, permutations=99).epochs == [1] * 10
    assert akp_test(store, "e", layer="embedding", permutations=99).epochs == [2] * 10
    with pytest.raises(AnalysisError, match="distance"):
        akp_test(store, "e", layer="embedding", distance="euclid")
    with pytest.raises(AnalysisError, match="alpha"):
        akp_test(store, "e", layer="embedding", alpha=2)
    res = akp_test(store, "e", layer="embedding", epoch=7, permutations=99)
    assert res.verdict_code == "one_family" and len(res.excluded) == 10


def test_convergence_happy_family_converges():
    store = make_store(epochs=(0, 1, 2), happy_noise=1.0)
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


# ---- end to end on the smoke preset ------------------------------------------------

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


def test_permdisp_small_families_enumerate_all_labellings():
    # 3 + 3 runs have only C(6, 3) = 20 labellings: p cannot go below 1 / 21, however many draws are asked for.
    _, d, g = two_groups(0, spread=(0.1, 3.0), n=(3, 3))
    res = permdisp(d, g, permutations=999, seed=0)
    assert res.permutations == 20
    assert res.p_value >= 1 / 21 - 1e-12
    assert res.p_value == permdisp(d, g, permutations=999, seed=5).p_value  # no randomness left
    # With more labellings than requested permutations it samples as before.
    _, d, g = two_groups(0, spread=(0.1, 3.0), n=(10, 10))
    assert permdisp(d, g, permutations=99, seed=0).permutations == 99


def test_two_runs_per_family_are_too_few_for_permdisp():
    # Two runs always lie at the same distance from their centroid: no within-family spread to test.
    res = akp_test(make_store(n_happy=2, n_unhappy=2), "e", layer="embedding", threshold=0.7)
    assert res.verdict_code == "too_few_runs" and res.test is None


def test_automatic_split_needs_a_real_gap():
    close = [0.91, 0.92, 0.93, 0.925]
    assert A.largest_gap_threshold(close) is None  # differences of noise, not of generalization
    assert label_families(close) == ["happy"] * 4
    assert A.largest_gap_threshold(close, min_gap=0.0) == pytest.approx(0.915)
    assert A.largest_gap_threshold([0.5, 0.56, 0.9]) == pytest.approx(0.73)
    res = akp_test(FakeStore([run(f"r{i}", a) for i, a in enumerate(close)],
                             {(f"r{i}", "embedding", 0): np.random.default_rng(i).random((16, 3))
                              for i in range(4)}), "e", layer="embedding")
    assert res.verdict_code == "one_family"


def test_akp_test_compares_all_runs_at_one_epoch():
    store = make_store(n_happy=4, n_unhappy=4, epochs=(0, 1, 2))
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
