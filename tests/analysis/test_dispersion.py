"""Tests for akp.analysis.dispersion: the directional test, route reduction, the bootstrap."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from akp.analysis import AnalysisError
from akp.analysis.dispersion import bootstrap_difference, directional_test, n_labellings, route_reduce


def points(seed=0, sizes=(6, 6), spread=(1.0, 1.0)):
    r = np.random.default_rng(seed)
    x = np.concatenate([spread[0] * r.normal(size=(sizes[0], 4)), 5 + spread[1] * r.normal(size=(sizes[1], 4))])
    return x, ["happy"] * sizes[0] + ["unhappy"] * sizes[1]


def test_statistic_is_the_difference_of_bias_adjusted_mean_distances_to_the_centroid():
    x, fam = points(1, sizes=(4, 7))
    res = directional_test(cdist(x, x), fam, permutations=99)
    expected = {}
    for f, idx, n in (("happy", slice(0, 4), 4), ("unhappy", slice(4, 11), 7)):
        z = np.linalg.norm(x[idx] - x[idx].mean(0), axis=1) * math.sqrt(n / (n - 1))
        expected[f] = z.mean()
    assert res.dispersion == pytest.approx(expected, rel=1e-10)
    assert res.difference == pytest.approx(expected["unhappy"] - expected["happy"], rel=1e-10)
    assert res.labellings == math.comb(11, 7) == n_labellings(fam)


def test_the_two_one_sided_p_values_point_opposite_ways_and_are_exact_when_enumerated():
    x, fam = points(2, sizes=(4, 4), spread=(0.2, 2.0))
    res = directional_test(cdist(x, x), fam, permutations=999)
    assert res.exact and res.permutations == 70
    assert res.p_akp == pytest.approx(1 / 70) and res.p_anti == 1.0
    flipped = directional_test(cdist(x, x), ["unhappy"] * 4 + ["happy"] * 4, permutations=999)
    assert flipped.p_anti == pytest.approx(1 / 70) and flipped.difference == pytest.approx(-res.difference)


def test_route_reduce_gives_distances_between_route_means():
    x, fam = points(3, sizes=(6, 6))
    conds = ["a", "a", "b", "b", "b", "c", "d", "d", "e", "e", "f", "f"]
    red = route_reduce(cdist(x, x), fam, conds)
    assert red.routes == ["a (happy)", "b (happy)", "c (happy)", "d (unhappy)", "e (unhappy)", "f (unhappy)"]
    assert red.sizes == [2, 3, 1, 2, 2, 2]
    means = np.array([x[[i for i, c in enumerate(conds) if c == k]].mean(0) for k in "abcdef"])
    np.testing.assert_allclose(red.distances, cdist(means, means), atol=1e-9)
    assert red.within["happy"] > 0 and red.within["unhappy"] > 0


def test_bootstrap_interval_re_estimates_centres_and_covers_the_estimate():
    x, fam = points(4, sizes=(8, 8), spread=(0.5, 2.0))
    res = directional_test(cdist(x, x), fam, permutations=9)
    lo, hi = bootstrap_difference(cdist(x, x), fam, n_boot=2000, seed=1)
    assert 0 < lo <= res.difference <= hi


def test_bad_input_names_the_field():
    x, fam = points(0)
    with pytest.raises(AnalysisError) as info:
        directional_test(cdist(x, x), fam[:-1])
    assert info.value.field == "families"
    with pytest.raises(AnalysisError) as info:
        directional_test(cdist(x, x), ["happy"] * 11 + ["unhappy"])
    assert info.value.field == "families"
    with pytest.raises(AnalysisError) as info:
        directional_test(cdist(x, x), fam, permutations=0)
    assert info.value.field == "permutations"


def test_holm_matches_a_hand_computation():
    from akp.analysis.sensitivity import holm

    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone), 0.5; None is not a test.
    assert holm([0.03, 0.01, None, 0.5, 0.02]) == pytest.approx([0.06, 0.04, None, 0.5, 0.06])
    assert holm([0.9, 0.8]) == [1.0, 1.0]
