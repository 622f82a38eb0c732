"""Tests for akp.analysis.permdisp: PERMDISP (Anderson 2006)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from scipy.stats import f_oneway

from akp.analysis import AnalysisError, permdisp
from akp.analysis.permdisp import spatial_median


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
    res = permdisp(d, g, permutations=99, bias_adjust=False)
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
    res = permdisp(d, g, permutations=99, bias_adjust=False)
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
    res = permdisp(d, g, center="median", permutations=99, bias_adjust=False)
    for idx in (np.arange(9), np.arange(9, 18)):
        x = pts[idx]
        best = minimize(lambda m, x=x: np.linalg.norm(x - m, axis=1).sum(), x.mean(0), method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}).x
        np.testing.assert_allclose(res.distances[idx], np.linalg.norm(x - best, axis=1), atol=1e-4)
    assert res.center == "median"
    # A point that is the exact median (centre of a symmetric cross) is kept.
    cross = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float)
    np.testing.assert_allclose(spatial_median(cross), [0, 0], atol=1e-12)


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


def test_permdisp_small_families_enumerate_all_labellings():
    # 3 + 3 runs have only C(6, 3) = 20 labellings: p cannot go below 1 / 21, however many draws are asked for.
    _, d, g = two_groups(0, spread=(0.1, 3.0), n=(3, 3))
    res = permdisp(d, g, permutations=999, seed=0)
    assert res.permutations == 20
    assert res.p_value >= 1 / 20 - 1e-12  # exact: #{F >= F_obs} / 20, the observed labelling included
    assert res.p_value == permdisp(d, g, permutations=999, seed=5).p_value  # no randomness left
    # With more labellings than requested permutations it samples as before.
    _, d, g = two_groups(0, spread=(0.1, 3.0), n=(10, 10))
    assert permdisp(d, g, permutations=99, seed=0).permutations == 99


def test_bias_adjustment_is_vegans_factor_per_group():
    _, d, g = two_groups(8, n=(4, 9))
    raw = permdisp(d, g, permutations=9, bias_adjust=False).distances
    adj = permdisp(d, g, permutations=9).distances
    factor = np.where(np.array(g) == "a", np.sqrt(4 / 3), np.sqrt(9 / 8))
    np.testing.assert_allclose(adj, raw * factor, rtol=1e-12)


def test_centroid_distances_from_gower_matrix_equal_principal_coordinates():
    from akp.analysis.permdisp import centroid_distances, gower_centred
    r = np.random.default_rng(4)
    d = r.uniform(0.2, 1.0, size=(10, 10))  # not Euclidean: imaginary axes matter
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0)
    g = ["x"] * 4 + ["y"] * 6
    onehot = np.zeros((10, 2))
    onehot[np.arange(10), [0] * 4 + [1] * 6] = 1
    expected = permdisp(d, g, permutations=9, bias_adjust=False).distances
    np.testing.assert_allclose(centroid_distances(gower_centred(d), onehot, bias_adjust=False), expected, atol=1e-10)


def test_residual_permutation_reproduces_vegans_scheme():
    # 3 + 3 with residual permutation: p = (count + 1) / (20 + 1), as vegan's permutest with all labellings.
    _, d, g = two_groups(0, spread=(0.1, 3.0), n=(3, 3))
    res = permdisp(d, g, permutations=999, permute="residuals", bias_adjust=False)
    assert res.permutations == 20 and res.p_value >= 1 / 21 - 1e-12
    with pytest.raises(AnalysisError, match="permute"):
        permdisp(d, g, permute="rows")
