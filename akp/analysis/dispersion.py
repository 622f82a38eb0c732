"""The principle's own test: is the unhappy family more dispersed than the happy one, and at which unit?

PERMDISP (:mod:`akp.analysis.permdisp`) asks whether dispersions differ; the
Anna Karenina Principle says in which direction. :func:`directional_test`
takes the mean bias-adjusted distance to the family centre, unhappy minus
happy, and gets two one-sided p-values from one permutation distribution of
the family labels: ``p_akp`` (unhappy more dispersed, the principle) and
``p_anti`` (happy more dispersed, "anti-AKP" in ecology's words, Ma 2020).
Labels are permuted and centres recomputed for every labelling, which makes
the test exact under exchangeability at any family sizes.

**The unit.** Seeds of one condition share their schedule, so they are not
independent replicates of "a way to be unhappy": testing runs when a family
holds several conditions is pseudo-replication (Hurlbert 1984). When both
families hold at least two routes (a route = the runs of one condition in one
family), :func:`route_reduce` replaces each route by its centre in principal
coordinates and the test permutes family labels over routes, the units that
are exchangeable under the null (permutation at the level of the experimental
unit, Anderson & ter Braak 2003). The seeds' dispersion around their route's
centre is reported beside it, descriptively.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from akp.analysis.common import FAMILIES, AnalysisError, check_integer, jsonable
from akp.analysis.permdisp import centroid_distances, gower_centred, labellings
from akp.distances import check_distance_matrix

__all__ = ["MIN_LABELLINGS", "DirectionalTest", "RouteReduction", "bootstrap_difference", "directional_test",
           "n_labellings", "route_reduce"]

# With fewer distinct labellings the smallest attainable p-value exceeds 0.05: no test at that level.
MIN_LABELLINGS = 20
_TIE = 1e-12


@dataclass
class DirectionalTest:
    """Result of :func:`directional_test`.

    Attributes
    ----------
    unit : {"run", "condition"}
    units : list of str
        Run ids, or route names ``"condition (family)"``.
    families : list of str
        Family of each unit.
    distances : ndarray of shape (n_units,)
        Bias-adjusted distance of each unit to its family centre.
    dispersion : dict
        Mean of ``distances`` per family.
    difference : float
        Unhappy minus happy dispersion.
    p_akp, p_anti : float
        One-sided permutation p-values: unhappy more dispersed (the principle),
        happy more dispersed (anti-AKP).
    permutations : int
        Labellings used.
    exact : bool
        Every distinct labelling was enumerated (p = #{T >= T_obs} / #labellings).
    labellings : int
        Number of distinct labellings, ``C(n, n_unhappy)``.
    """

    unit: str
    units: list[str]
    families: list[str]
    distances: np.ndarray
    dispersion: dict[str, float]
    difference: float
    p_akp: float
    p_anti: float
    permutations: int
    exact: bool
    labellings: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable(asdict(self))


def n_labellings(families: Sequence[str]) -> int:
    """Distinct ways to choose which units are unhappy, ``C(n, n_unhappy)``."""
    fams = list(families)
    return math.comb(len(fams), fams.count("unhappy"))


def _family_index(families: Sequence[str]) -> np.ndarray:
    fams = list(families)
    bad = sorted({f for f in fams if f not in FAMILIES})
    if bad:
        raise AnalysisError.at("families", f"must be 'happy' or 'unhappy', got {bad}")
    index = np.array([FAMILIES.index(f) for f in fams])
    counts = np.bincount(index, minlength=2)
    if counts.min() < 2:
        got = dict(zip(FAMILIES, counts.tolist(), strict=True))
        raise AnalysisError.at("families", f"each family needs at least 2 units, got {got}")
    return index


def _mean_per_family(z: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Mean of ``z`` (k, n) per family of ``onehot`` (k, n, 2): (k, 2)."""
    return np.einsum("kn,kng->kg", z, onehot) / onehot.sum(axis=1)


def _upper_p(t: np.ndarray, t_obs: float, exact: bool) -> float:
    hits = int((t >= t_obs - _TIE * max(1.0, abs(t_obs))).sum())
    return hits / len(t) if exact else (hits + 1) / (len(t) + 1)


def directional_test(
    distances: Any,
    families: Sequence[str],
    *,
    units: Sequence[str] | None = None,
    unit: str = "run",
    permutations: int = 999,
    seed: int = 0,
    bias_adjust: bool = True,
) -> DirectionalTest:
    """One-sided dispersion tests of the principle (and of its reverse) by label permutation.

    Parameters
    ----------
    distances : array-like of shape (n, n)
        Distances between units (runs, or route centres from :func:`route_reduce`).
    families : sequence of {"happy", "unhappy"}, length n
        At least 2 units per family.
    units : sequence of str, optional
        Unit names (default ``"0"``, ``"1"``, ...).
    unit : {"run", "condition"}, default="run"
        What a unit is, reported in the result.
    permutations : int, default=999
        Random labellings; all distinct ones are enumerated when there are fewer.
    seed : int, default=0
    bias_adjust : bool, default=True
        ``sqrt(n_g / (n_g - 1))`` (vegan's ``bias.adjust``).

    Returns
    -------
    DirectionalTest

    Raises
    ------
    AnalysisError
        Bad matrix, labels or options (``field`` names it).
    """
    d = check_distance_matrix(distances, name="distances", error=AnalysisError)
    fams = list(families)
    if len(fams) != d.shape[0]:
        raise AnalysisError.at("families", f"need one family per row of distances ({d.shape[0]}), got {len(fams)}")
    permutations = check_integer("permutations", permutations, 1)
    index = _family_index(fams)
    b = gower_centred(d)
    observed = np.zeros((1, len(fams), 2))
    observed[0, np.arange(len(fams)), index] = 1.0
    z_obs = centroid_distances(b, observed, bias_adjust=bias_adjust)
    means = _mean_per_family(z_obs, observed)[0]
    t_obs = float(means[1] - means[0])
    labs, exact = labellings(index, 2, permutations, seed)
    t = np.concatenate([np.diff(_mean_per_family(centroid_distances(b, c, bias_adjust=bias_adjust), c), axis=1)[:, 0]
                        for c in np.array_split(labs, max(1, len(labs) // 512))])
    return DirectionalTest(
        unit=unit, units=[str(u) for u in (units if units is not None else range(len(fams)))], families=fams,
        distances=z_obs[0], dispersion={f: float(means[k]) for k, f in enumerate(FAMILIES)}, difference=t_obs,
        p_akp=_upper_p(t, t_obs, exact), p_anti=_upper_p(-t, -t_obs, exact), permutations=len(labs), exact=exact,
        labellings=n_labellings(fams),
    )


@dataclass
class RouteReduction:
    """Routes (runs of one condition within one family) reduced to their centres.

    Attributes
    ----------
    routes : list of str
        ``"condition (family)"``.
    families : list of str
        Family of each route.
    conditions : list of str
    distances : ndarray of shape (n_routes, n_routes)
        Distances between route centres in principal coordinates.
    sizes : list of int
        Runs per route.
    within : dict
        Mean bias-adjusted distance of the seeds to their route centre, per family
        (routes of one run add nothing).
    """

    routes: list[str]
    families: list[str]
    conditions: list[str]
    distances: np.ndarray
    sizes: list[int]
    within: dict[str, float]


def route_reduce(distances: Any, families: Sequence[str], conditions: Sequence[str]) -> RouteReduction:
    """Replace each route by its centre: ``|c_r - c_s|^2 = c_r.c_r + c_s.c_s - 2 c_r.c_s`` from Gower's matrix.

    Parameters
    ----------
    distances : array-like of shape (n, n)
        Distances between runs.
    families, conditions : sequence of str, length n

    Returns
    -------
    RouteReduction
    """
    d = check_distance_matrix(distances, name="distances", error=AnalysisError)
    keys = list(dict.fromkeys(zip(conditions, families, strict=True)))
    member = np.zeros((d.shape[0], len(keys)))
    for i, key in enumerate(zip(conditions, families, strict=True)):
        member[i, keys.index(key)] = 1.0
    b = gower_centred(d)
    sizes = member.sum(axis=0)
    w = member / sizes
    inner = w.T @ b @ w
    sq = np.diag(inner)[:, None] + np.diag(inner)[None, :] - 2.0 * inner
    dr = np.sqrt(np.abs((sq + sq.T) / 2.0))
    np.fill_diagonal(dr, 0.0)
    z = centroid_distances(b, member, bias_adjust=True)
    multi = sizes[member.argmax(axis=1)] > 1
    within = {}
    for fam in FAMILIES:
        sel = multi & (np.array(families) == fam)
        within[fam] = float(z[sel].mean()) if sel.any() else float("nan")
    return RouteReduction(routes=[f"{c} ({f})" for c, f in keys], families=[f for _, f in keys],
                          conditions=[c for c, _ in keys], distances=dr, sizes=[int(s) for s in sizes],
                          within=within)


def bootstrap_difference(distances: Any, families: Sequence[str], *, n_boot: int = 2000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Interval of unhappy − happy dispersion, units resampled within families, centres re-estimated.

    Each resample draws units with replacement within each family, recomputes
    each family's centroid from the drawn units (weights = draw counts) and the
    bias-adjusted distances to it, so the interval carries the uncertainty of
    the centres as the permutation test does. Duplicated draws shrink a
    family's spread, so the resampled differences are biased; the percentile
    interval is shifted by the bootstrap's estimate of that bias (mean of the
    resamples minus the estimate; Efron & Tibshirani 1993, sec. 10.6).

    Returns
    -------
    (low, high) : tuple of float
    """
    d = check_distance_matrix(distances, name="distances", error=AnalysisError)
    index = _family_index(families)
    b = gower_centred(d)
    rng = np.random.default_rng(seed)
    n = len(index)
    weights = np.zeros((n_boot, n))
    for g in (0, 1):
        members = np.flatnonzero(index == g)
        draws = rng.integers(0, len(members), size=(n_boot, len(members)))
        np.add.at(weights, (np.arange(n_boot)[:, None], members[draws]), 1.0)
    onehot = np.zeros((n, 2))
    onehot[np.arange(n), index] = 1.0
    wo = weights[:, :, None] * onehot[None]  # (k, n, 2): weighted membership
    tot = wo.sum(axis=1)
    bw = np.einsum("ij,kjg->kig", b, wo)
    cc = np.einsum("kig,kig->kg", wo, bw) / tot**2
    sq = np.diag(b)[None, :, None] - 2.0 * bw / tot[:, None, :] + cc[:, None, :]
    z = np.sqrt(np.abs((sq * onehot[None]).sum(axis=2)))
    sizes = onehot.sum(axis=0)
    z = z * np.sqrt(sizes / (sizes - 1.0))[index][None, :]
    means = np.einsum("kn,kng->kg", z, wo) / tot
    diff = means[:, 1] - means[:, 0]
    observed = centroid_distances(b, onehot, bias_adjust=True)
    estimate = float(np.diff((observed @ onehot) / sizes)[0])
    bias = float(diff.mean()) - estimate
    lo, hi = np.percentile(diff, [50 * (1 - level), 50 * (1 + level)])
    return float(lo - bias), float(hi - bias)
