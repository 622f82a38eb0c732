"""Tests for the untrained CKA floor and convergence within routes (akp.analysis.convergence)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from analysis_fakes import FakeStore, run

from akp import analysis as A
from akp.analysis.convergence import _pair_means
from akp.cka import cka_matrix

N, P = 64, 12


def route_store(*, rising=6, flat=6, epochs=(-1, 0, 1, 2, 3), seed=0, untrained=True):
    """A "rise" route whose seeds share more of one signal each epoch, and a "flat" route that never changes."""
    r = np.random.default_rng(seed)
    shared = r.standard_normal((N, P))
    runs, reps = [], {}
    for k in range(rising + flat):
        happy = k < rising
        rid = f"r{k}"
        runs.append(run(rid, 0.9 if happy else 0.5, condition="rise" if happy else "flat", seed=k))
        for e in epochs:
            if e == -1 and not untrained:
                continue
            own = r.standard_normal((N, P))  # fresh noise every epoch: "flat" is noisy, not frozen
            weight = (e + 1) / 4 if happy else 0.5
            reps[(rid, "embedding", e)] = shared * weight + own
    return FakeStore(runs, reps)


def test_cka_floor_is_the_mean_pairwise_cka_of_the_untrained_networks():
    store = route_store()
    floor = A.cka_floor(store, "e", layer="embedding")
    feats = [store.representations(f"r{k}", "embedding", -1) for k in range(12)]
    pairs = cka_matrix(feats)[np.triu_indices(12, 1)]
    assert floor.epoch == -1 and floor.n_runs == 12 and floor.n_pairs == 66 and floor.n_identical == 0
    assert floor.mean == pytest.approx(pairs.mean(), abs=1e-12)
    assert (floor.min, floor.max) == pytest.approx((pairs.min(), pairs.max()), abs=1e-12)
    # The floor is of the untrained epoch, not the last one: the rising route ends far above it.
    last = cka_matrix([store.representations(f"r{k}", "embedding", 3) for k in range(6)])
    assert last[np.triu_indices(6, 1)].mean() > floor.mean + 0.15
    json.dumps(floor.to_dict(), allow_nan=False)


def test_cka_floor_leaves_out_pairs_of_one_network_and_stores_without_the_capture():
    store = route_store(rising=3, flat=0)
    # Paired seeds: a run of another condition that starts from r0's very weights.
    store._runs.append(run("twin", 0.9, condition="other", seed=0))
    store._reps[("twin", "embedding", -1)] = store._reps[("r0", "embedding", -1)].copy()
    floor = A.cka_floor(store, "e", layer="embedding")
    feats = [store.representations(f"r{k}", "embedding", -1) for k in range(3)]
    m = cka_matrix([*feats, feats[0]])
    kept = [m[i, j] for i in range(4) for j in range(i + 1, 4) if (i, j) != (0, 3)]
    assert floor.n_identical == 1 and floor.n_pairs == 5
    assert floor.mean == pytest.approx(np.mean(kept), abs=1e-12)
    none = A.cka_floor(route_store(untrained=False), "e", layer="embedding")
    assert none.n_pairs == 0 and math.isnan(none.mean) and none.n_runs == 0
    assert none.to_dict()["mean"] is None


def test_bootstrap_pair_means_never_pair_a_seed_with_itself():
    c = np.array([[[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]]])
    means = _pair_means(c, np.array([[1.0, 1, 1], [2, 0, 1], [3, 0, 0]]))
    assert means[0, 0] == pytest.approx((0.2 + 0.4 + 0.6) / 3)
    assert means[1, 0] == pytest.approx(0.4)  # seed 0 drawn twice: only its pairs with seed 2 count
    assert math.isnan(means[2, 0])  # one seed drawn three times: no pair at all


def test_route_convergence_rising_route_converges_and_flat_route_does_not():
    store = route_store()
    res = A.route_convergence(store, "e", layer="embedding", n_boot=1000)
    by = {t.condition: t for t in res.trends}
    rise, flat = by["rise"], by["flat"]
    assert (rise.family, flat.family) == ("happy", "unhappy")
    assert rise.epochs == [-1, 0, 1, 2, 3] and rise.n_seeds == 6
    assert rise.status == "converging" and rise.ci[0] > 0 and rise.change > 0.15
    assert flat.status == "not converging" and flat.ci[0] <= 0 <= flat.ci[1]
    assert rise.ci[0] <= rise.slope <= rise.ci[1]
    # Points are the mean CKA between the route's seeds, computed directly.
    for e in (-1, 2):
        feats = [store.representations(f"r{k}", "embedding", e) for k in range(6)]
        direct = cka_matrix(feats)[np.triu_indices(6, 1)].mean()
        point = next(p for p in res.points if p.condition == "rise" and p.epoch == e)
        assert point.mean == pytest.approx(direct, abs=1e-12) and point.count == 15 and point.n_runs == 6
    # The slope is the least-squares slope of those points on the epoch.
    ys = [p.mean for p in res.points if p.condition == "rise"]
    assert rise.slope == pytest.approx(np.polyfit([-1, 0, 1, 2, 3], ys, 1)[0], abs=1e-12)
    assert res.floor.n_pairs == 66
    epochs, by_route = A.route_series(res.points)
    assert epochs == [-1, 0, 1, 2, 3] and list(by_route) == ["rise (happy)", "flat (unhappy)"]
    assert by_route["rise (happy)"]["mean"] == pytest.approx(ys)
    json.dumps(res.to_dict(), allow_nan=False)


def test_route_trend_needs_three_seeds_and_two_epochs_and_checks_its_input():
    res = A.route_convergence(route_store(rising=2, flat=3, epochs=(-1, 0)), "e", layer="embedding", n_boot=200)
    by = {t.condition: t for t in res.trends}
    assert by["rise"].status == "too few seeds" and by["rise"].ci is None and math.isfinite(by["rise"].slope)
    assert by["flat"].status in ("converging", "not converging")
    assert A.route_trend(np.ones((3, 1, 1)), [-1, 0, 1]).status == "too few seeds"  # one seed: no pair at all
    lone = A.route_convergence(route_store(rising=1, flat=0, epochs=(-1, 0)), "e", layer="embedding")
    assert [(p.n_runs, p.count) for p in lone.points] == [(1, 0), (1, 0)] and lone.trends[0].status == "too few seeds"
    assert all(math.isnan(p.mean) for p in lone.points)
    one = A.route_trend(np.ones((1, 3, 3)), [0])
    assert one.status == "too few epochs" and math.isnan(one.slope)
    with pytest.raises(A.AnalysisError) as err:
        A.route_trend(np.ones((2, 3, 3)), [0])
    assert err.value.field == "cka"
    with pytest.raises(A.AnalysisError) as err:
        A.route_trend(np.ones((2, 3, 3)), [0, 1], level=1.5)
    assert err.value.field == "level"


def test_route_convergence_follows_a_diverged_seed_only_where_it_was_captured():
    store = route_store(rising=4, flat=0, epochs=(-1, 0, 1, 2))
    for e in (1, 2):
        del store._reps[("r3", "embedding", e)]  # stopped after epoch 0
    res = A.route_convergence(store, "e", layer="embedding", n_boot=200)
    counts = {p.epoch: (p.n_runs, p.count) for p in res.points}
    assert counts == {-1: (4, 6), 0: (4, 6), 1: (3, 3), 2: (3, 3)}
    feats = [store.representations(f"r{k}", "embedding", 2) for k in range(3)]
    assert next(p.mean for p in res.points if p.epoch == 2) == pytest.approx(
        cka_matrix(feats)[np.triu_indices(3, 1)].mean(), abs=1e-12)


def test_cka_floor_on_a_trained_store_matches_its_untrained_capture(smoke_store):
    store, experiment_id = smoke_store
    runs = store.runs(experiment_id)
    assert all(store.representation_epochs(r["run_id"], "embedding")[0] == -1 for r in runs)
    floor = A.cka_floor(store, experiment_id, layer="embedding")
    feats = [store.representations(r["run_id"], "embedding", -1) for r in runs]
    pairs = cka_matrix(feats)[np.triu_indices(len(feats), 1)]
    assert floor.n_pairs == len(pairs) and floor.mean == pytest.approx(pairs.mean(), abs=1e-12)
    res = A.route_convergence(store, experiment_id, layer="embedding", n_boot=200)
    assert res.floor.mean == floor.mean
    assert all(t.epochs[0] == -1 for t in res.trends if t.epochs)
