"""Convergence of representations over training, and the untrained floor of CKA.

:func:`route_convergence` follows the CKA between the seeds of each route
(condition within family) from the untrained network (epoch -1) on, with a
trend test per route: the theorem's statement, that models which generalize
come to represent the data alike. :func:`cka_floor` is the CKA between untrained
networks, the level any similarity is to be read against. :func:`convergence`
(mean within-family CKA, routes pooled) is kept for comparison.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from akp.analysis.common import FAMILIES, AnalysisError, check_integer, is_finite_number, jsonable
from akp.analysis.families import label_runs
from akp.cka import cka_matrix

__all__ = ["TREND_STATUSES", "UNTRAINED_EPOCH", "CKAFloor", "ConvergencePoint", "RouteConvergence", "RoutePoint",
           "RouteTrend", "cka_floor", "convergence", "convergence_series", "route_convergence", "route_series",
           "route_trend"]


@dataclass
class ConvergencePoint:
    """Mean within-family CKA at one captured epoch.

    Attributes
    ----------
    epoch : int
    family : {"happy", "unhappy"}
    mean, std : float
        Over the distinct pairs of runs of the family (std with ddof=0;
        NaN when there are no pairs).
    count : int
        Number of pairs.
    n_runs : int
        Runs of the family captured at this epoch.
    """

    epoch: int
    family: str
    mean: float
    std: float
    count: int
    n_runs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable(asdict(self))


def _epoch_points(store: Any, layer: str, epoch: int, members: Sequence[tuple[str, str]],
                  debiased: bool) -> list[ConvergencePoint]:
    """The points of one epoch: ``members`` are the (run_id, family) captured there."""
    families, feats = [], []
    for rid, fam in members:
        rep = np.asarray(store.representations(rid, layer, epoch))
        if rep.ndim != 2 or not np.isfinite(rep).all():
            continue  # a diverged run's NaN activations have no CKA
        families.append(fam)
        feats.append(rep)
    cka = cka_matrix(feats, debiased=debiased, device="cpu") if len(feats) >= 2 else np.eye(len(feats))
    points = []
    for fam in FAMILIES:
        idx = [i for i, f in enumerate(families) if f == fam]
        if not idx:
            continue
        vals = np.array([cka[i, j] for a, i in enumerate(idx) for j in idx[a + 1 :]], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        mean = float(vals.mean()) if vals.size else math.nan
        std = float(vals.std()) if vals.size else math.nan
        points.append(ConvergencePoint(epoch=epoch, family=fam, mean=mean, std=std, count=int(vals.size),
                                       n_runs=len(idx)))
    return points


def convergence(
    store: Any,
    experiment_id: str,
    *,
    layer: str,
    threshold: float | None = None,
    debiased: bool = False,
    rule: str = "accuracy",
    max_gap: float | None = None,
) -> list[ConvergencePoint]:
    """Mean within-family CKA per captured epoch and family.

    Families are decided once, from each run's final outcome
    (:func:`akp.analysis.families.label_runs`); at every epoch captured for
    ``layer`` the CKA of all pairs of runs of the same family is averaged.

    Parameters
    ----------
    store : RunStore-like
        Needs ``runs``, ``representation_epochs`` and ``representations``.
    experiment_id : str
    layer : str
    threshold : float, optional
    debiased : bool, default=False
    rule : {"accuracy", "gap"}, default="accuracy"
    max_gap : float, optional

    Returns
    -------
    list of ConvergencePoint
        Sorted by epoch then family (happy first); a family appears at an
        epoch when it has at least one run captured there.
    """
    fams = label_runs(store.runs(experiment_id), rule=rule, threshold=threshold, max_gap=max_gap)
    by_epoch: dict[int, list[tuple[str, str]]] = {}
    for rid, fam in zip(fams.run_ids, fams.families, strict=True):
        for e in store.representation_epochs(rid, layer):
            by_epoch.setdefault(int(e), []).append((rid, fam))
    return [p for e in sorted(by_epoch) for p in _epoch_points(store, layer, e, by_epoch[e], debiased)]


def convergence_series(points: Sequence[ConvergencePoint]) -> tuple[list[int], dict[str, dict[str, list[float]]]]:
    """Reshape :func:`convergence` output for :func:`akp.plots.analysis.convergence_figure`.

    Returns
    -------
    epochs : list of int
    by_family : dict
        family -> ``{"mean", "lo", "hi"}`` (mean -+ std), one value per epoch,
        NaN where the family has no pair at that epoch.
    """
    epochs = sorted({p.epoch for p in points})
    pos = {e: k for k, e in enumerate(epochs)}
    out: dict[str, dict[str, list[float]]] = {}
    for p in points:
        series = out.setdefault(p.family, {k: [math.nan] * len(epochs) for k in ("mean", "lo", "hi")})
        k = pos[p.epoch]
        series["mean"][k] = p.mean
        series["lo"][k] = p.mean - p.std
        series["hi"][k] = p.mean + p.std
    return epochs, out


# ---- the untrained floor and convergence within routes (the theorem's statement) -------------------

# The epoch at which akp.train stores the untrained network (analysis may not import akp.train).
UNTRAINED_EPOCH = -1
TREND_STATUSES = ("converging", "not converging", "too few seeds", "too few epochs")
# A bootstrap over two seeds has a single distinct pair: no spread to estimate.
MIN_TREND_SEEDS = 3
# Errors a store raises for a run, layer or epoch it does not have (StoreError is a ValueError).
_MISSING = (KeyError, ValueError, OSError)


@dataclass
class CKAFloor:
    """CKA between untrained networks of one experiment at one layer: the level similarity starts from.

    Attributes
    ----------
    layer : str
    epoch : int
        The untrained epoch (-1).
    mean, min, max, std : float
        Over the distinct pairs of runs (NaN without pairs; std with ddof=0).
    n_pairs : int
    n_runs : int
        Runs with a usable untrained representation.
    n_identical : int
        Pairs left out because both runs started from the same weights (paired
        seeds give conditions with the same first activation one network).
    debiased : bool
    """

    layer: str
    epoch: int
    mean: float
    min: float
    max: float
    std: float
    n_pairs: int
    n_runs: int
    n_identical: int
    debiased: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable(asdict(self))


def _read(store: Any, run_id: str, layer: str, epoch: int) -> np.ndarray | None:
    """A usable representation (2-D, finite, not constant) or None."""
    try:
        rep = np.asarray(store.representations(run_id, layer, epoch))
    except _MISSING:
        return None
    if rep.ndim != 2 or not np.isfinite(rep).all() or not (rep != rep[:1]).any():
        return None
    return rep


def cka_floor(store: Any, experiment_id: str, *, layer: str, debiased: bool = False,
              epoch: int = UNTRAINED_EPOCH) -> CKAFloor:
    """Mean, min and max CKA between the untrained networks (epoch -1) of an experiment's runs.

    Untrained networks of different seeds already share much of their
    representation of the probe set (the input's own structure passes through
    random weights), so CKA has a floor that depends on width and probe size.
    A similarity between trained runs means something only above it.

    Parameters
    ----------
    store : RunStore-like
        Needs ``runs`` and ``representations(run_id, layer, epoch)``.
    experiment_id, layer : str
    debiased : bool, default=False
        Match the CKA estimator of the comparison it is drawn beside.
    epoch : int, default=-1
        The captured untrained epoch.

    Returns
    -------
    CKAFloor
        ``n_pairs == 0`` (values NaN) when fewer than two runs captured the
        untrained network (stores that predate the capture).
    """
    ids, feats = [], []
    for rec in store.runs(experiment_id):
        rep = _read(store, str(rec["run_id"]), layer, epoch)
        if rep is not None:
            ids.append(str(rec["run_id"]))
            feats.append(rep)
    vals: list[float] = []
    identical = 0
    if len(feats) >= 2:
        cka = cka_matrix(feats, debiased=debiased, device="cpu")
        for i in range(len(feats)):
            for j in range(i + 1, len(feats)):
                if feats[i].shape == feats[j].shape and np.array_equal(feats[i], feats[j]):
                    identical += 1  # one network seen twice is no pair of untrained networks
                elif np.isfinite(cka[i, j]):
                    vals.append(float(cka[i, j]))
    v = np.asarray(vals, dtype=np.float64)
    nan = math.nan
    return CKAFloor(layer=layer, epoch=int(epoch), mean=float(v.mean()) if v.size else nan,
                    min=float(v.min()) if v.size else nan, max=float(v.max()) if v.size else nan,
                    std=float(v.std()) if v.size else nan, n_pairs=int(v.size), n_runs=len(feats),
                    n_identical=identical, debiased=debiased)


@dataclass
class RoutePoint:
    """Mean CKA between the seeds of one route (condition within family) at one epoch.

    Attributes
    ----------
    epoch : int
        -1 is the untrained network.
    condition, family : str
    mean : float
        Over the distinct pairs of seeds captured at this epoch (NaN without pairs).
    count : int
        Pairs.
    n_runs : int
        Seeds captured at this epoch.
    """

    epoch: int
    condition: str
    family: str
    mean: float
    count: int
    n_runs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable(asdict(self))


@dataclass
class RouteTrend:
    """Trend test of one route: does the CKA between its seeds rise over training?

    Attributes
    ----------
    condition, family : str
    n_seeds : int
    epochs : list of int
        Epochs in the fit (from -1 when the untrained network was captured).
    slope : float
        Least-squares slope of the route's mean within-route CKA on the epoch (per epoch).
    ci : tuple of float or None
        Bootstrap percentile interval of the slope, seeds resampled with replacement.
    change : float
        Mean CKA at the last epoch minus at the first.
    status : {"converging", "not converging", "too few seeds", "too few epochs"}
        Converging when the whole interval lies above 0.
    level : float
    n_boot : int
    """

    condition: str
    family: str
    n_seeds: int
    epochs: list[int]
    slope: float
    ci: tuple[float, float] | None
    change: float
    status: str
    level: float
    n_boot: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable(asdict(self))


@dataclass
class RouteConvergence:
    """Result of :func:`route_convergence`: per-route points, trend tests and the untrained floor."""

    layer: str
    points: list[RoutePoint]
    trends: list[RouteTrend]
    floor: CKAFloor

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"layer": self.layer, "points": [p.to_dict() for p in self.points],
                "trends": [t.to_dict() for t in self.trends], "floor": self.floor.to_dict()}


def _pair_means(cka: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean off-diagonal CKA per epoch and per weighting: ``cka`` (E, n, n), ``counts`` (B, n) -> (B, E).

    A seed drawn twice contributes pairs with the other drawn seeds, never with
    itself (its CKA with itself is 1 and says nothing about convergence).
    """
    finite = np.isfinite(cka)
    off = ~np.eye(cka.shape[1], dtype=bool)[None]
    vals = np.where(finite & off, cka, 0.0)
    mask = (finite & off).astype(np.float64)
    num = np.einsum("bi,eij,bj->be", counts, vals, counts)
    den = np.einsum("bi,eij,bj->be", counts, mask, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``y`` (B, E) on ``x`` (E,), ignoring NaN; NaN with < 2 points."""
    w = np.isfinite(y).astype(np.float64)
    yv = np.where(w > 0, y, 0.0)
    n = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = (w * x).sum(axis=1) / n
        ybar = (w * yv).sum(axis=1) / n
        dx = (x[None, :] - xbar[:, None]) * w
        sxx = (dx * dx).sum(axis=1)
        s = (dx * (yv - ybar[:, None])).sum(axis=1) / sxx
    return np.where((n >= 2) & (sxx > 0), s, np.nan)


def _epochs(store: Any, run_id: str, layer: str) -> list[int]:
    """Captured epochs of ``layer`` for a run; none when the run lacks the layer."""
    try:
        return [int(e) for e in store.representation_epochs(run_id, layer)]
    except _MISSING:
        return []


def _route_cka(store: Any, layer: str, run_ids: Sequence[str], epochs: Sequence[int],
               debiased: bool) -> np.ndarray:
    """(E, n, n) CKA between the route's seeds per epoch; NaN where a seed was not captured (e.g. diverged)."""
    out = np.full((len(epochs), len(run_ids), len(run_ids)), np.nan)
    for k, e in enumerate(epochs):
        reps = [(i, r) for i, rid in enumerate(run_ids) if (r := _read(store, rid, layer, e)) is not None]
        if len(reps) >= 2:
            idx = [i for i, _ in reps]
            out[k][np.ix_(idx, idx)] = cka_matrix([r for _, r in reps], debiased=debiased, device="cpu")
        elif reps:  # a lone seed: captured (its diagonal says so), but without a pair
            out[k][reps[0][0], reps[0][0]] = 1.0
    return out


def route_trend(cka: np.ndarray, epochs: Sequence[int], *, condition: str = "", family: str = "",
                n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> RouteTrend:
    """Slope of a route's mean within-route CKA over epochs, with a bootstrap-over-seeds interval.

    The seeds of a route are its independent replicates; the pairs between
    them are not (each seed is in several), so the interval resamples seeds
    with replacement and recomputes the mean over the pairs of distinct drawn
    seeds at every epoch, then the slope (Efron & Tibshirani 1993, ch. 13).

    Parameters
    ----------
    cka : ndarray of shape (n_epochs, n_seeds, n_seeds)
        CKA between the route's seeds per epoch, NaN where not captured.
    epochs : sequence of int
    condition, family : str
        Labels copied into the result.
    n_boot : int, default=2000
    seed : int, default=0
    level : float, default=0.95

    Returns
    -------
    RouteTrend
        Status ``"converging"`` when the interval's low end is above 0, ``"not
        converging"`` otherwise; ``"too few seeds"`` below 3 seeds, else ``"too
        few epochs"`` below 2 epochs with pairs (no interval then).

    Raises
    ------
    AnalysisError
        Bad ``n_boot`` or ``level``, or ``cka`` not (n_epochs, n, n).
    """
    check_integer("n_boot", n_boot, 1)
    if not (is_finite_number(level) and 0 < level < 1):
        raise AnalysisError.at("level", f"must be a number in (0, 1), got {level!r}")
    c = np.asarray(cka, dtype=np.float64)
    x = np.asarray([int(e) for e in epochs], dtype=np.float64)
    if c.ndim != 3 or c.shape[0] != len(x) or c.shape[1] != c.shape[2]:
        raise AnalysisError.at("cka", f"must be (n_epochs={len(x)}, n, n), got shape {c.shape}")
    n = c.shape[1]
    observed = _pair_means(c, np.ones((1, n)))
    slope = float(_slopes(x, observed)[0])
    finite = np.flatnonzero(np.isfinite(observed[0]))
    change = float(observed[0, finite[-1]] - observed[0, finite[0]]) if finite.size else math.nan
    ci = None
    if n < MIN_TREND_SEEDS:
        status = "too few seeds"
    elif finite.size < 2:
        status = "too few epochs"
    else:
        rng = np.random.default_rng(seed)
        counts = np.zeros((n_boot, n))
        np.add.at(counts, (np.arange(n_boot)[:, None], rng.integers(0, n, size=(n_boot, n))), 1.0)
        boot = _slopes(x, _pair_means(c, counts))
        boot = boot[np.isfinite(boot)]  # a resample of one seed drawn n times has no pair
        lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
        ci = (float(lo), float(hi))
        status = "converging" if lo > 0 else "not converging"
    return RouteTrend(condition=condition, family=family, n_seeds=n, epochs=[int(e) for e in x], slope=slope,
                      ci=ci, change=change, status=status, level=float(level), n_boot=int(n_boot))


def route_convergence(
    store: Any,
    experiment_id: str,
    *,
    layer: str,
    threshold: float | None = None,
    debiased: bool = False,
    rule: str = "accuracy",
    max_gap: float | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> RouteConvergence:
    """Convergence as the theorem states it: CKA between the seeds of each route, per epoch from -1.

    The paper's claim is that models which generalize come to represent data
    alike as training proceeds. Pooling every happy run (:func:`convergence`)
    mixes that with differences between routes (a tanh route joining the
    family lowers the mean without any route diverging); here each route
    (condition within family, families from the runs' final outcomes) is
    followed alone, from its untrained networks on, with a trend test
    (:func:`route_trend`) and the experiment's untrained floor (:func:`cka_floor`).

    Parameters
    ----------
    store : RunStore-like
        Needs ``runs``, ``representation_epochs`` and ``representations``.
    experiment_id, layer : str
    threshold, rule, max_gap
        The family rule (:func:`akp.analysis.families.label_runs`).
    debiased : bool, default=False
    n_boot, seed, level
        Of the bootstrap in :func:`route_trend`.

    Returns
    -------
    RouteConvergence
        ``points`` sorted by route (happy first, then condition) then epoch;
        one trend per route.
    """
    fams = label_runs(store.runs(experiment_id), rule=rule, threshold=threshold, max_gap=max_gap)
    routes: dict[tuple[str, str], list[tuple[Any, str]]] = {}
    for rec in fams.records:
        routes.setdefault((str(rec.get("condition")), rec["family"]), []).append((rec.get("seed"), rec["run_id"]))
    points, trends = [], []
    order = sorted(routes, key=lambda k: (FAMILIES.index(k[1]), k[0]))
    for cond, fam in order:
        run_ids = [rid for _, rid in sorted(routes[(cond, fam)], key=lambda t: str(t[0]))]
        epochs = sorted({int(e) for rid in run_ids for e in _epochs(store, rid, layer)})
        cka = _route_cka(store, layer, run_ids, epochs, debiased)
        means = _pair_means(cka, np.ones((1, len(run_ids))))[0]
        for k, e in enumerate(epochs):
            captured = np.isfinite(np.diagonal(cka[k]))
            m = int(captured.sum())
            points.append(RoutePoint(epoch=e, condition=cond, family=fam, mean=float(means[k]),
                                     count=m * (m - 1) // 2, n_runs=m))
        trends.append(route_trend(cka, epochs, condition=cond, family=fam, n_boot=n_boot, seed=seed, level=level))
    return RouteConvergence(layer=layer, points=points, trends=trends,
                            floor=cka_floor(store, experiment_id, layer=layer, debiased=debiased))


def route_series(points: Sequence[RoutePoint]) -> tuple[list[int], dict[str, dict[str, Any]]]:
    """Reshape :attr:`RouteConvergence.points` for :func:`akp.plots.dispersion.route_convergence_figure`.

    Returns
    -------
    epochs : list of int
    by_route : dict
        ``"condition (family)"`` -> ``{"family", "condition", "mean"}``, one
        mean per epoch (NaN where the route has no pair), in route order.
    """
    epochs = sorted({p.epoch for p in points})
    pos = {e: k for k, e in enumerate(epochs)}
    out: dict[str, dict[str, Any]] = {}
    for p in points:
        s = out.setdefault(f"{p.condition} ({p.family})",
                           {"family": p.family, "condition": p.condition, "mean": [math.nan] * len(epochs)})
        s["mean"][pos[p.epoch]] = p.mean
    return epochs, out
