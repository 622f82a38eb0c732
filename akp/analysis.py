"""Happy and unhappy families, PERMDISP, and the Anna Karenina test.

The Anna Karenina Principle (AKP) for deep learning says that models which
generalize ("happy") end up with similar internal representations while
models which fail ("unhappy") each fail in their own way. Here that becomes a
test of *homogeneity of multivariate dispersion* (Anderson 2006, PERMDISP):
distances between runs come from CKA (``1 - CKA`` or the angle
``arccos CKA``); each run's distance to its family centre is its dispersion;
the principle is *supported* when the unhappy family is significantly more
dispersed than the happy one, and *not supported* otherwise, including when
the data show no difference or the opposite one.

Public API
----------
* :func:`label_families`, :func:`label_runs` -- families from outcomes.
* :func:`permdisp` -> :class:`PermdispResult`.
* :func:`akp_test` -> :class:`AKPResult` (with ``to_dict`` for JSON).
* :func:`convergence` -> list of :class:`ConvergencePoint`;
  :func:`convergence_series` reshapes it for a plot.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from akp.cka import CKAError, cka_matrix

__all__ = [
    "AKPResult",
    "AnalysisError",
    "ConvergencePoint",
    "Families",
    "PermdispResult",
    "akp_test",
    "cka_distances",
    "convergence",
    "convergence_series",
    "label_families",
    "label_runs",
    "largest_gap_threshold",
    "permdisp",
]

FAMILIES = ("happy", "unhappy")
RULES = ("accuracy", "gap")
DISTANCES = ("1-cka", "angular")
CENTERS = ("centroid", "median")
# Runs that ended on their own; "diverged" ones count as unhappy, the rest of
# the run states (queued, running, failed, cancelled, interrupted) are excluded.
FINISHED_STATES = ("done", "diverged")
VERDICT_CODES = ("supported", "not_supported", "one_family", "too_few_runs")
# Smallest accuracy gap the automatic rule treats as a split between families (5 percentage points).
MIN_AUTO_GAP = 0.05
MIN_RUNS_PER_FAMILY = 3  # with 2 runs both lie at the same distance from their centre


class AnalysisError(ValueError):
    """Invalid input to an analysis function; the message names the field and what is allowed."""


# --------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


def largest_gap_threshold(values: Sequence[float], *, min_gap: float = MIN_AUTO_GAP) -> float | None:
    """Threshold that splits sorted values at their largest gap, if that gap is real.

    Parameters
    ----------
    values : sequence of float
        Test accuracies (non-finite values are ignored).
    min_gap : float, default=MIN_AUTO_GAP (0.05)
        The largest gap must be at least this wide to split: runs at 0.91,
        0.92 and 0.93 differ by noise, not by generalizing or not, and are
        all happy.

    Returns
    -------
    float or None
        The midpoint of the largest gap between consecutive sorted distinct
        values; ties go to the gap between the higher values. None when fewer
        than two distinct values exist or the largest gap is below ``min_gap``
        (no split: every run is happy).
    """
    v = np.unique(np.asarray([x for x in values if _finite(x)], dtype=np.float64))
    if v.size < 2:
        return None
    gaps = np.diff(v)
    if gaps.max() < min_gap:
        return None
    # Among equal gaps (up to rounding of the accuracies) prefer the higher split.
    k = int(np.flatnonzero(gaps >= gaps.max() - 1e-12)[-1])
    return float((v[k] + v[k + 1]) / 2.0)


def label_families(test_accuracies: Sequence[Any], *, threshold: float | None = None) -> list[str | None]:
    """Label runs happy or unhappy by test accuracy.

    Parameters
    ----------
    test_accuracies : sequence of float, or of run records (mappings)
        One test accuracy per run. Run records (dicts from
        :meth:`akp.store.RunStore.runs`) are also accepted: then runs whose
        ``state`` is ``"diverged"`` are unhappy and runs not finished get None
        (see :func:`label_runs`).
    threshold : float, optional
        Happy means ``test accuracy >= threshold``. When None, the accuracies
        are split at their largest gap (:func:`largest_gap_threshold`): the
        natural break between a high and a low cluster. With fewer than two
        distinct accuracies, or no gap of at least ``MIN_AUTO_GAP``, there is
        no split and every run is happy.

    Returns
    -------
    list of {"happy", "unhappy", None}
        Aligned with the input. A missing or non-finite accuracy is unhappy.

    Raises
    ------
    AnalysisError
        If ``threshold`` is not a finite number.
    """
    items = list(test_accuracies)
    if items and all(isinstance(x, Mapping) for x in items):
        fams = label_runs(items, threshold=threshold)
        by_id = dict(zip(fams.run_ids, fams.families, strict=True))
        return [by_id.get(str(r.get("run_id"))) for r in items]
    if threshold is not None and not _finite(threshold):
        raise AnalysisError(f"threshold: must be a finite number or None, got {threshold!r}")
    accs = [float(a) if _finite(a) else math.nan for a in items]
    cut = largest_gap_threshold(accs) if threshold is None else float(threshold)
    out: list[str | None] = []
    for a in accs:
        if not math.isfinite(a):
            out.append("unhappy")
        elif cut is None or a >= cut:
            out.append("happy")
        else:
            out.append("unhappy")
    return out


@dataclass
class Families:
    """Families of the finished runs of an experiment.

    Attributes
    ----------
    run_ids : list of str
        Finished runs (state ``done`` or ``diverged``), in store order.
    families : list of str
        ``"happy"`` or ``"unhappy"``, aligned with ``run_ids``.
    records : list of dict
        The run records of ``run_ids`` with a ``"family"`` key added.
    rule : {"accuracy", "gap"}
    threshold : float or None
        Accuracy threshold used (given, or found by the largest gap).
    max_gap : float or None
        Generalization-gap limit used by the ``"gap"`` rule.
    excluded : list of dict
        ``{"run_id", "reason"}`` for runs left out (not finished).
    """

    run_ids: list[str]
    families: list[str]
    records: list[dict[str, Any]]
    rule: str
    threshold: float | None
    max_gap: float | None
    excluded: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of runs per family."""
        return {f: self.families.count(f) for f in FAMILIES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return _jsonable(asdict(self))


def label_runs(
    runs: Sequence[Mapping[str, Any]],
    *,
    rule: str = "accuracy",
    threshold: float | None = None,
    max_gap: float | None = None,
) -> Families:
    """Sort the finished runs of an experiment into happy and unhappy families.

    Parameters
    ----------
    runs : sequence of mapping
        Run records as returned by :meth:`akp.store.RunStore.runs` (keys
        ``run_id``, ``state``, ``test_acc``, ``gap``, ...).
    rule : {"accuracy", "gap"}, default="accuracy"
        ``"accuracy"``: happy iff ``test_acc >= threshold`` (threshold None:
        largest-gap split of the finished, non-diverged runs' accuracies).
        ``"gap"``: happy iff the generalization gap (train - test accuracy) is
        at most ``max_gap`` and, when ``threshold`` is given, ``test_acc >=
        threshold`` too (a model that learned nothing has no gap either).
    threshold : float, optional
    max_gap : float, optional
        Required by the ``"gap"`` rule; default 0.1 there.

    Returns
    -------
    Families
        Runs in state ``diverged`` are unhappy whatever the rule; runs in any
        state other than ``done``/``diverged`` are excluded (listed with the
        reason); a finished run without a finite accuracy is unhappy.

    Raises
    ------
    AnalysisError
        Unknown rule, bad threshold or max_gap, or records without ``run_id``.
    """
    if rule not in RULES:
        raise AnalysisError(f"rule: must be one of {RULES}, got {rule!r}")
    if threshold is not None and not _finite(threshold):
        raise AnalysisError(f"threshold: must be a finite number or None, got {threshold!r}")
    if rule == "gap":
        max_gap = 0.1 if max_gap is None else max_gap
        if not _finite(max_gap) or max_gap < 0:
            raise AnalysisError(f"max_gap: must be a finite number >= 0, got {max_gap!r}")
    kept: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    for r in runs:
        if not isinstance(r, Mapping) or "run_id" not in r:
            raise AnalysisError("runs: each run must be a mapping with a 'run_id' key (see RunStore.runs)")
        state = r.get("state", "done")
        if state in FINISHED_STATES:
            kept.append(dict(r))
        else:
            excluded.append({"run_id": str(r["run_id"]), "reason": f"run not finished (state {state!r})"})
    cut = threshold
    if rule == "accuracy" and threshold is None:
        cut = largest_gap_threshold([r.get("test_acc") for r in kept if r.get("state") != "diverged"])
    fams: list[str] = []
    for r in kept:
        acc = r.get("test_acc")
        if r.get("state") == "diverged" or not _finite(acc):
            fam = "unhappy"
        elif rule == "accuracy":
            fam = "happy" if cut is None or acc >= cut else "unhappy"
        else:
            gap = r.get("gap")
            if not _finite(gap) and _finite(r.get("train_acc")):
                gap = r["train_acc"] - acc
            ok = _finite(gap) and gap <= max_gap and (cut is None or acc >= cut)
            fam = "happy" if ok else "unhappy"
        r["family"] = fam
        fams.append(fam)
    return Families(
        run_ids=[str(r["run_id"]) for r in kept],
        families=fams,
        records=kept,
        rule=rule,
        threshold=None if cut is None else float(cut),
        max_gap=None if rule == "accuracy" else float(max_gap),
        excluded=excluded,
    )


# --------------------------------------------------------------------------
# PERMDISP (Anderson 2006)
# --------------------------------------------------------------------------


@dataclass
class PermdispResult:
    """Result of :func:`permdisp`.

    Attributes
    ----------
    statistic : float
        One-way ANOVA F of the distances to group centres.
    p_value : float
        ``(#{F_perm >= F} + 1) / (permutations + 1)``.
    permutations : int
    groups : list
        Group labels in order of first appearance.
    group_dispersion : dict
        Mean distance to the group centre, per group.
    distances : ndarray of shape (n,)
        Each item's distance to its group centre.
    df : tuple of int
        ``(groups - 1, n - groups)``.
    center : {"centroid", "median"}
    n_negative_axes : int
        Principal coordinates with negative eigenvalues (non-Euclidean
        distances), treated as imaginary.
    """

    statistic: float
    p_value: float
    permutations: int
    groups: list[Any]
    group_dispersion: dict[Any, float]
    distances: np.ndarray
    df: tuple[int, int]
    center: str
    n_negative_axes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["group_dispersion"] = {str(k): v for k, v in self.group_dispersion.items()}
        d["groups"] = [str(g) for g in self.groups]
        return _jsonable(d)


def _pcoa(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal coordinates: (real axes, imaginary axes), each (n, k) float64.

    Gower centring of ``-D^2/2``; eigenvectors of positive eigenvalues scaled by
    ``sqrt(lambda)`` are real axes, of negative eigenvalues by ``sqrt(|lambda|)``
    imaginary ones (their squared contribution to a distance is subtracted).
    """
    n = d.shape[0]
    a = -0.5 * d * d
    h = np.eye(n) - 1.0 / n
    g = h @ a @ h
    g = (g + g.T) / 2.0
    vals, vecs = np.linalg.eigh(g)
    tol = max(np.abs(vals).max(), 1e-300) * 1e-10
    pos = vals > tol
    neg = vals < -tol
    real = vecs[:, pos] * np.sqrt(vals[pos])
    imag = vecs[:, neg] * np.sqrt(-vals[neg])
    return real, imag


def _spatial_median(x: np.ndarray, *, tol: float = 1e-10, max_iter: int = 1000) -> np.ndarray:
    """Weiszfeld iteration for the point minimising the sum of Euclidean distances."""
    if x.shape[1] == 0:
        return np.zeros(0)
    m = x.mean(axis=0)
    for _ in range(max_iter):
        dist = np.sqrt(((x - m) ** 2).sum(axis=1))
        if np.any(dist < tol):
            # The iterate sits on a data point; Weiszfeld's update is undefined
            # there. Keep the point if it is optimal (Vardi-Zhang condition).
            on = dist < tol
            others = ~on
            if not others.any():
                return m
            w = 1.0 / dist[others]
            r = ((x[others] - m) * w[:, None]).sum(axis=0)
            if np.linalg.norm(r) <= on.sum():
                return m
            dist = np.where(on, tol, dist)
        w = 1.0 / dist
        new = (x * w[:, None]).sum(axis=0) / w.sum()
        if np.linalg.norm(new - m) <= tol * max(1.0, np.linalg.norm(m)):
            return new
        m = new
    return m


def _exact_labellings(index: np.ndarray, g: int, permutations: int) -> np.ndarray | None:
    """All distinct two-group labellings as one-hot arrays (L, n, 2), when there are at most ``permutations``."""
    n = len(index)
    n0 = int((index == 0).sum())
    if g != 2 or math.comb(n, n0) > permutations:
        return None
    out = np.zeros((math.comb(n, n0), n, 2))
    for i, members in enumerate(itertools.combinations(range(n), n0)):
        out[i, :, 1] = 1.0
        out[i, list(members), 0] = 1.0
        out[i, list(members), 1] = 0.0
    return out


def _anova_f(z: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """One-way ANOVA F for each row of ``z`` (k, n) with groups given by ``onehot`` (n, g) or (k, n, g)."""
    n, g = onehot.shape[-2:]
    counts = onehot.sum(axis=-2)
    sums = np.einsum("kn,kng->kg", z, onehot) if onehot.ndim == 3 else z @ onehot  # (k, g)
    grand = z.sum(axis=1, keepdims=True) / n
    ssb = ((sums / counts) ** 2 * counts).sum(axis=1) - (grand[:, 0] ** 2) * n
    sst = (z * z).sum(axis=1) - (grand[:, 0] ** 2) * n
    ssw = sst - ssb
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ssb / (g - 1)) / (ssw / (n - g))
    # No spread within groups: F is infinite if groups differ, undefined (0 here) if not.
    f = np.where(ssw <= 1e-12 * np.maximum(sst, 1e-300), np.where(ssb > 1e-12 * np.maximum(sst, 1e-300),
                                                                   np.inf, 0.0), f)
    return f


def _check_distances(distances: Any) -> np.ndarray:
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise AnalysisError(f"distances: must be a square (n, n) matrix, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise AnalysisError("distances: must contain only finite values")
    scale = max(float(np.abs(d).max()), 1.0)
    if not np.allclose(d, d.T, atol=1e-10 * scale):
        raise AnalysisError("distances: must be symmetric")
    if (d < -1e-12 * scale).any():
        raise AnalysisError("distances: must be >= 0")
    if np.abs(np.diag(d)).max(initial=0.0) > 1e-10 * scale:
        raise AnalysisError("distances: the diagonal must be 0")
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    return d


def permdisp(
    distances: Any,
    groups: Sequence[Any],
    *,
    permutations: int = 999,
    seed: int = 0,
    center: str = "centroid",
) -> PermdispResult:
    """Test of homogeneity of multivariate dispersions (PERMDISP, Anderson 2006).

    The distance matrix is embedded by principal coordinates (axes of negative
    eigenvalues are kept as imaginary: their squared contribution to a distance
    is subtracted, as in vegan's ``betadisper``); each item's distance to its
    group's centre is computed; the statistic is the one-way ANOVA F of those
    distances; its p-value comes from permuting the residuals (distances minus
    their group mean) across items, ``(#{F_perm >= F} + 1) / (permutations + 1)``.

    Parameters
    ----------
    distances : array-like of shape (n, n)
        Symmetric, non-negative, zero diagonal (need not be Euclidean).
    groups : sequence of hashable, length n
        Group label of each item; at least two groups, and more items than groups.
    permutations : int, default=999
        Number of random permutations (>= 1).
    seed : int, default=0
        Seed of the permutations (results are reproducible).
    center : {"centroid", "median"}, default="centroid"
        Group centre: centroid, or spatial median (Weiszfeld iteration, on the
        real and on the imaginary coordinates separately, as vegan does).

    Returns
    -------
    PermdispResult

    Raises
    ------
    AnalysisError
        Bad matrix, wrong number of labels, fewer than two groups, no residual
        degrees of freedom, or bad ``permutations``/``center``.
    """
    d = _check_distances(distances)
    n = d.shape[0]
    labels = list(groups)
    if len(labels) != n:
        raise AnalysisError(f"groups: must have one label per row of distances ({n}), got {len(labels)}")
    if center not in CENTERS:
        raise AnalysisError(f"center: must be one of {CENTERS}, got {center!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 1:
        raise AnalysisError(f"permutations: must be an integer >= 1, got {permutations!r}")
    uniq = list(dict.fromkeys(labels))
    g = len(uniq)
    if g < 2:
        raise AnalysisError(f"groups: need at least 2 groups, got {g}")
    if n <= g:
        raise AnalysisError(f"groups: need more items ({n}) than groups ({g}) for the F test")
    index = np.array([uniq.index(x) for x in labels])
    onehot = np.zeros((n, g))
    onehot[np.arange(n), index] = 1.0

    real, imag = _pcoa(d)
    z = np.empty(n)
    for k in range(g):
        idx = np.flatnonzero(index == k)
        if center == "centroid":
            cr = real[idx].mean(axis=0)
            ci = imag[idx].mean(axis=0)
        else:
            cr = _spatial_median(real[idx])
            ci = _spatial_median(imag[idx])
        pos = ((real[idx] - cr) ** 2).sum(axis=1)
        neg = ((imag[idx] - ci) ** 2).sum(axis=1)
        # As betadisper: the magnitude when the imaginary part dominates.
        z[idx] = np.sqrt(np.abs(pos - neg))

    f_obs = float(_anova_f(z[None, :], onehot)[0])
    means = (z @ onehot) / onehot.sum(axis=0)
    resid = z - means[index]
    rng = np.random.default_rng(seed)
    count = 0
    done = 0
    chunk = 4096
    exact = _exact_labellings(index, g, permutations)
    if exact is not None:
        # Few distinct labellings (small families): use them all instead of random draws, so p cannot
        # fall below what the sample allows, 1 / (#labellings + 1).
        f_all = _anova_f(resid[None, :].repeat(len(exact), 0), exact)
        hits = (f_all >= f_obs * (1 - 1e-12)) if math.isfinite(f_obs) else np.isinf(f_all)
        permutations = len(exact)
        count, done = int(hits.sum()), permutations
    while done < permutations:
        k = min(chunk, permutations - done)
        perm = rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)
        f_perm = _anova_f(resid[perm], onehot)
        # A relative tolerance so that ties with the observed F count as ties.
        count += int((f_perm >= f_obs * (1 - 1e-12)).sum()) if math.isfinite(f_obs) else int(
            np.isinf(f_perm).sum())
        done += k
    p = (count + 1) / (permutations + 1)
    return PermdispResult(
        statistic=f_obs,
        p_value=float(p),
        permutations=int(permutations),
        groups=uniq,
        group_dispersion={u: float(means[k]) for k, u in enumerate(uniq)},
        distances=z,
        df=(g - 1, n - g),
        center=center,
        n_negative_axes=int(imag.shape[1]),
    )


# --------------------------------------------------------------------------
# The AKP test on a run store
# --------------------------------------------------------------------------


def cka_distances(cka: Any, distance: str = "1-cka") -> np.ndarray:
    """Distances between runs from a CKA matrix.

    Parameters
    ----------
    cka : array-like of shape (n, n)
    distance : {"1-cka", "angular"}, default="1-cka"
        ``1 - CKA``, or the angle ``arccos(CKA)`` in radians. For the angle,
        values past +-1 by rounding only are brought back to +-1 (arccos is
        undefined beyond).

    Returns
    -------
    ndarray of shape (n, n), zero diagonal
    """
    if distance not in DISTANCES:
        raise AnalysisError(f"distance: must be one of {DISTANCES}, got {distance!r}")
    c = np.asarray(cka, dtype=np.float64)
    c = (c + c.T) / 2.0
    if distance == "1-cka":
        d = 1.0 - c
    else:
        d = np.arccos(np.clip(c, -1.0, 1.0))
    np.fill_diagonal(d, 0.0)
    return d


@dataclass
class AKPResult:
    """Result of :func:`akp_test`.

    Attributes
    ----------
    verdict_code : {"supported", "not_supported", "one_family", "too_few_runs"}
    verdict : str
        One plain sentence.
    experiment_id, layer : str
    epoch : int or None
        Requested epoch (None: each run's last captured epoch).
    epochs : list of int
        Epoch actually used per run.
    run_ids, families : list of str
        Runs in the test and their family (aligned with ``cka``).
    records : list of dict
        Run records with ``family``.
    excluded : list of dict
        ``{"run_id", "reason"}`` for runs left out.
    cka, distances : ndarray of shape (n, n)
    distance : {"1-cka", "angular"}
    debiased : bool
    rule : str
    threshold : float or None
    dispersion : dict
        Mean distance to the family centre per family present.
    dispersion_difference : float or None
        Unhappy minus happy mean dispersion.
    difference_ci : tuple of float or None
        Bootstrap 95% percentile interval of that difference (runs resampled
        within each family, centres held fixed).
    test : PermdispResult or None
    alpha : float
    """

    verdict_code: str
    verdict: str
    experiment_id: str
    layer: str
    epoch: int | None
    epochs: list[int]
    run_ids: list[str]
    families: list[str]
    records: list[dict[str, Any]]
    excluded: list[dict[str, str]]
    cka: np.ndarray
    distances: np.ndarray
    distance: str
    debiased: bool
    rule: str
    threshold: float | None
    dispersion: dict[str, float]
    dispersion_difference: float | None
    difference_ci: tuple[float, float] | None
    test: PermdispResult | None
    alpha: float = 0.05

    @property
    def p_value(self) -> float | None:
        """PERMDISP p-value, None when the test could not run."""
        return None if self.test is None else self.test.p_value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists, NaN/inf as None)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "test"}
        d["test"] = None if self.test is None else self.test.to_dict()
        return _jsonable(d)


def _bootstrap_difference(
    z: np.ndarray, families: list[str], *, n_boot: int, seed: int
) -> tuple[float, float] | None:
    zh = z[[f == "happy" for f in families]]
    zu = z[[f == "unhappy" for f in families]]
    if zh.size == 0 or zu.size == 0:
        return None
    rng = np.random.default_rng(seed)
    bh = zh[rng.integers(0, zh.size, size=(n_boot, zh.size))].mean(axis=1)
    bu = zu[rng.integers(0, zu.size, size=(n_boot, zu.size))].mean(axis=1)
    lo, hi = np.percentile(bu - bh, [2.5, 97.5])
    return float(lo), float(hi)


def _common_last_epoch(store: Any, records: Sequence[Mapping[str, Any]], layer: str) -> int | None:
    """The last epoch at which every run that finished its budget captured ``layer``.

    Diverged runs do not set it (they stopped early); they are compared at it
    only if they reached it. None when no run captured the layer.
    """
    last: list[int] = []
    for rec in records:
        try:
            eps = store.representation_epochs(rec["run_id"], layer)
        except (KeyError, ValueError, OSError):
            continue
        if eps and rec.get("state") != "diverged":
            last.append(int(eps[-1]))
    return min(last) if last else None


def akp_test(
    store: Any,
    experiment_id: str,
    *,
    layer: str,
    epoch: int | None = None,
    threshold: float | None = None,
    distance: str = "1-cka",
    debiased: bool = False,
    permutations: int = 999,
    seed: int = 0,
    rule: str = "accuracy",
    max_gap: float | None = None,
    center: str = "centroid",
    alpha: float = 0.05,
    n_boot: int = 2000,
) -> AKPResult:
    """Test the Anna Karenina Principle on one experiment's runs.

    Gathers the finished runs, labels families (:func:`label_runs`), computes
    the CKA matrix of their representations at ``layer`` (same probe set for
    all runs), turns it into distances and runs :func:`permdisp` with the
    families as groups.

    The verdict is ``"supported"`` only when the PERMDISP p-value is below
    ``alpha`` *and* the unhappy family is the more dispersed one; otherwise
    ``"not_supported"`` (no significant difference, or the happy family is the
    more dispersed). ``"one_family"`` / ``"too_few_runs"`` when the test cannot
    run (fewer than 2 runs in a family).

    Parameters
    ----------
    store : RunStore-like
        Needs ``runs(experiment_id)`` and ``representations(run_id, layer, epoch)``.
    experiment_id : str
    layer : str
        Captured layer, e.g. ``"embedding"``.
    epoch : int, optional
        Captured epoch; None uses the last epoch that every run which finished
        its budget captured, so all runs are compared at the same epoch. Runs
        without it (e.g. diverged earlier) are excluded, listed with the reason.
    threshold : float, optional
        Accuracy threshold of the family rule (None: largest gap).
    distance : {"1-cka", "angular"}, default="1-cka"
    debiased : bool, default=False
        Debiased CKA (recommended when runs are few relative to features).
    permutations : int, default=999
    seed : int, default=0
        Seeds the permutations and the bootstrap.
    rule : {"accuracy", "gap"}, default="accuracy"
    max_gap : float, optional
        For ``rule="gap"``.
    center : {"centroid", "median"}, default="centroid"
    alpha : float, default=0.05
        Significance level of the verdict.
    n_boot : int, default=2000
        Bootstrap resamples for the interval of the dispersion difference.

    Returns
    -------
    AKPResult

    Raises
    ------
    AnalysisError
        Bad option. Store errors (unknown experiment) propagate.
    """
    if distance not in DISTANCES:
        raise AnalysisError(f"distance: must be one of {DISTANCES}, got {distance!r}")
    if not (_finite(alpha) and 0 < alpha < 1):
        raise AnalysisError(f"alpha: must be a number in (0, 1), got {alpha!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise AnalysisError(f"n_boot: must be an integer >= 1, got {n_boot!r}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer))):
        raise AnalysisError(f"epoch: must be an integer or None, got {epoch!r}")
    # Checked here too, so a bad value is reported even when too few runs let PERMDISP be skipped.
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 1:
        raise AnalysisError(f"permutations: must be an integer >= 1, got {permutations!r}")
    fams = label_runs(store.runs(experiment_id), rule=rule, threshold=threshold, max_gap=max_gap)
    excluded = list(fams.excluded)
    feats: list[np.ndarray] = []
    records: list[dict[str, Any]] = []
    epochs: list[int] = []
    shared_epoch = epoch
    if epoch is None and hasattr(store, "representation_epochs"):
        # Compare every run at one epoch: a run that stopped early (diverged) would otherwise be compared at an
        # earlier, less trained state, which by itself inflates its family's dispersion.
        shared_epoch = _common_last_epoch(store, fams.records, layer)
    for rec in fams.records:
        rid = rec["run_id"]
        try:
            rep = np.asarray(store.representations(rid, layer, shared_epoch))
        except (KeyError, ValueError, OSError) as exc:
            excluded.append({"run_id": rid, "reason": f"no representation: {exc}"})
            continue
        if rep.ndim != 2 or not np.isfinite(rep).all():
            excluded.append({"run_id": rid, "reason": "representation has non-finite values or a bad shape"})
            continue
        if not (rep != rep[:1]).any():
            excluded.append({"run_id": rid, "reason": "representation is constant (CKA undefined)"})
            continue
        feats.append(rep)
        records.append(rec)
        epochs.append(int(shared_epoch) if shared_epoch is not None else -1)
    if len({f.shape[0] for f in feats}) > 1:
        raise AnalysisError("layer: runs have representations of different probe sizes; they must share one probe set")

    families = [r["family"] for r in records]
    run_ids = [r["run_id"] for r in records]
    m = len(feats)
    if m >= 2:
        try:
            cka = cka_matrix(feats, debiased=debiased, device="cpu")
        except CKAError as exc:  # e.g. debiased with a probe set of fewer than 4 images
            raise AnalysisError(f"debiased: {exc}") from exc
    else:
        cka = np.eye(m)
    dist = cka_distances(cka, distance)
    counts = {f: families.count(f) for f in FAMILIES}
    base = dict(
        experiment_id=experiment_id, layer=layer, epoch=epoch, epochs=epochs, run_ids=run_ids,
        families=families, records=records, excluded=excluded, cka=cka, distances=dist, distance=distance,
        debiased=debiased, rule=fams.rule, threshold=fams.threshold, alpha=alpha,
    )
    present = [f for f in FAMILIES if counts[f] > 0]
    if len(present) < 2:
        only = present[0] if present else "no"
        verdict = (f"Cannot be tested: only one family ({only}: {m} runs); the principle compares happy with "
                   "unhappy runs, so change the family rule or train conditions that fail.")
        if not present:
            verdict = "Cannot be tested: no finished runs with representations at this layer."
        return AKPResult(verdict_code="one_family", verdict=verdict, dispersion={}, dispersion_difference=None,
                         difference_ci=None, test=None, **base)
    if min(counts.values()) < MIN_RUNS_PER_FAMILY:
        verdict = (f"Cannot be tested: too few runs (happy {counts['happy']}, unhappy {counts['unhappy']}); "
                   f"each family needs at least {MIN_RUNS_PER_FAMILY}.")
        return AKPResult(verdict_code="too_few_runs", verdict=verdict, dispersion={}, dispersion_difference=None,
                         difference_ci=None, test=None, **base)

    test = permdisp(dist, families, permutations=permutations, seed=seed, center=center)
    disp = {f: float(test.group_dispersion[f]) for f in FAMILIES}
    diff = disp["unhappy"] - disp["happy"]
    ci = _bootstrap_difference(test.distances, families, n_boot=n_boot, seed=seed)
    p = test.p_value
    if p < alpha and diff > 0:
        code = "supported"
        verdict = (f"Supported: unhappy runs are more dispersed than happy runs (mean distance to centre "
                   f"{disp['unhappy']:.3f} vs {disp['happy']:.3f}, PERMDISP p = {p:.3g} < {alpha:g}).")
    elif p < alpha:
        code = "not_supported"
        verdict = (f"Not supported: happy runs are more dispersed than unhappy runs, the opposite of the "
                   f"principle ({disp['happy']:.3f} vs {disp['unhappy']:.3f}, PERMDISP p = {p:.3g}).")
    else:
        code = "not_supported"
        verdict = (f"Not supported: the data show no significant difference in dispersion between unhappy and "
                   f"happy runs ({disp['unhappy']:.3f} vs {disp['happy']:.3f}, PERMDISP p = {p:.3g} >= "
                   f"{alpha:g}; {m} runs).")
    return AKPResult(verdict_code=code, verdict=verdict, dispersion=disp, dispersion_difference=float(diff),
                     difference_ci=ci, test=test, **base)


# --------------------------------------------------------------------------
# Convergence of representations over epochs
# --------------------------------------------------------------------------


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
        return _jsonable(asdict(self))


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
    (:func:`label_runs`); at every epoch captured for ``layer`` the CKA of all
    pairs of runs of the same family is averaged. If the principle holds,
    the happy family's curve rises towards 1 while the unhappy one's stays low.

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
    points: list[ConvergencePoint] = []
    for e in sorted(by_epoch):
        members = []
        feats = []
        for rid, fam in by_epoch[e]:
            rep = np.asarray(store.representations(rid, layer, e))
            if rep.ndim != 2 or not np.isfinite(rep).all():
                continue  # a diverged run's NaN activations have no CKA
            members.append(fam)
            feats.append(rep)
        cka = cka_matrix(feats, debiased=debiased, device="cpu") if len(feats) >= 2 else np.eye(len(feats))
        for fam in FAMILIES:
            idx = [i for i, f in enumerate(members) if f == fam]
            if not idx:
                continue
            vals = np.array([cka[i, j] for a, i in enumerate(idx) for j in idx[a + 1 :]], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            mean = float(vals.mean()) if vals.size else math.nan
            std = float(vals.std()) if vals.size else math.nan
            points.append(ConvergencePoint(epoch=e, family=fam, mean=mean, std=std, count=int(vals.size),
                                           n_runs=len(idx)))
    return points


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


def _jsonable(obj: Any) -> Any:
    """Arrays to lists, numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
