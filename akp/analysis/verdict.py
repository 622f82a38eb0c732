"""The Anna Karenina test on one experiment: gather the runs, test their dispersion, say the verdict.

The Anna Karenina Principle (AKP) for deep learning says that models which
generalize ("happy") end up with similar internal representations while
models which fail ("unhappy") each fail in their own way. Here that becomes a
test of *homogeneity of multivariate dispersion* (PERMDISP): distances between
runs come from CKA; each run's distance to its family centre is its
dispersion; the principle is *supported* when the unhappy family is
significantly more dispersed than the happy one, and *not supported*
otherwise, including when the data show no difference or the opposite one.

:func:`akp_test` runs three steps, each its own function:

1. :func:`gather_runs` reads the runs and their representations from the
   store-like object, at one epoch shared by all runs;
2. :func:`compare_dispersion` runs PERMDISP and a bootstrap (pure, no store);
3. :func:`verdict_sentence` turns the outcome into a verdict code and prose.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from akp.analysis.common import FAMILIES, AnalysisError, check_integer, is_finite_number, jsonable
from akp.analysis.families import label_runs
from akp.analysis.permdisp import DISTANCES, PermdispResult, cka_distances, permdisp
from akp.cka import CKAError, cka_matrix
from akp.runs import DIVERGED

__all__ = [
    "MIN_RUNS_PER_FAMILY", "VERDICT_CODES", "AKPResult", "DispersionComparison", "RunSample", "akp_test",
    "compare_dispersion", "gather_runs", "run_distances", "untestable", "verdict_sentence",
]

VERDICT_CODES = ("supported", "not_supported", "one_family", "too_few_runs")
MIN_RUNS_PER_FAMILY = 3  # with 2 runs both lie at the same distance from their centre
# Errors a store raises for a run, layer or epoch it does not have (StoreError is a ValueError).
_MISSING = (KeyError, ValueError, OSError)


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
        Requested epoch (None: the last epoch shared by the runs).
    epochs : list of int
        Epoch actually used per run (-1 when the store chose it).
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
        return jsonable(d)


# ---- step 1: gather ----------------------------------------------------------------------------


@dataclass
class RunSample:
    """The runs that take part in the test, with their representations at one epoch.

    Attributes
    ----------
    run_ids, families : list of str
        Aligned with ``features``.
    records : list of dict
        Run records with ``family``.
    features : list of ndarray of shape (n_probe, n_features)
    epochs : list of int
        Epoch used per run (-1 when the store chose its last one).
    excluded : list of dict
        ``{"run_id", "reason"}`` for runs left out.
    rule : str
    threshold : float or None
        Of the family rule.
    """

    run_ids: list[str]
    families: list[str]
    records: list[dict[str, Any]]
    features: list[np.ndarray]
    epochs: list[int]
    excluded: list[dict[str, str]]
    rule: str
    threshold: float | None


def _common_last_epoch(store: Any, records: Sequence[Mapping[str, Any]], layer: str) -> int | None:
    """The last epoch at which every run that finished its budget captured ``layer``.

    Diverged runs do not set it (they stopped early); they are compared at it
    only if they reached it. None when no run captured the layer.
    """
    last: list[int] = []
    for rec in records:
        try:
            eps = store.representation_epochs(rec["run_id"], layer)
        except _MISSING:
            continue
        if eps and rec.get("state") != DIVERGED:
            last.append(int(eps[-1]))
    return min(last) if last else None


def _read_representation(store: Any, run_id: str, layer: str, epoch: int | None) -> tuple[np.ndarray | None, str]:
    """(representation, "") when usable, else (None, why it is not)."""
    try:
        rep = np.asarray(store.representations(run_id, layer, epoch))
    except _MISSING as exc:
        return None, f"no representation: {exc}"
    if rep.ndim != 2 or not np.isfinite(rep).all():
        return None, "representation has non-finite values or a bad shape"
    if not (rep != rep[:1]).any():
        return None, "representation is constant (CKA undefined)"
    return rep, ""


def gather_runs(
    store: Any,
    experiment_id: str,
    *,
    layer: str,
    epoch: int | None = None,
    rule: str = "accuracy",
    threshold: float | None = None,
    max_gap: float | None = None,
) -> RunSample:
    """Label the finished runs and read their representations at ``layer``, all at one epoch.

    Parameters
    ----------
    store : RunStore-like
        Needs ``runs(experiment_id)`` and ``representations(run_id, layer, epoch)``;
        ``representation_epochs(run_id, layer)`` when ``epoch`` is None.
    experiment_id, layer : str
    epoch : int, optional
        None: the last epoch that every run which finished its budget captured.
    rule, threshold, max_gap
        The family rule (:func:`akp.analysis.families.label_runs`).

    Returns
    -------
    RunSample
        Runs without a usable representation are in ``excluded`` with the reason.

    Raises
    ------
    AnalysisError
        Runs with representations of different probe sizes (field ``layer``).
    """
    fams = label_runs(store.runs(experiment_id), rule=rule, threshold=threshold, max_gap=max_gap)
    shared = epoch
    if epoch is None and hasattr(store, "representation_epochs"):
        # Compare every run at one epoch: a run that stopped early (diverged) would otherwise be compared at an
        # earlier, less trained state, which by itself inflates its family's dispersion.
        shared = _common_last_epoch(store, fams.records, layer)
    excluded = list(fams.excluded)
    records, features = [], []
    for rec in fams.records:
        rep, reason = _read_representation(store, rec["run_id"], layer, shared)
        if rep is None:
            excluded.append({"run_id": rec["run_id"], "reason": reason})
            continue
        records.append(rec)
        features.append(rep)
    if len({f.shape[0] for f in features}) > 1:
        raise AnalysisError.at("layer", "runs have representations of different probe sizes; "
                                        "they must share one probe set")
    return RunSample(
        run_ids=[r["run_id"] for r in records], families=[r["family"] for r in records], records=records,
        features=features, epochs=[int(shared) if shared is not None else -1] * len(records),
        excluded=excluded, rule=fams.rule, threshold=fams.threshold,
    )


def run_distances(features: Sequence[np.ndarray], *, distance: str, debiased: bool) -> tuple[np.ndarray, np.ndarray]:
    """(CKA matrix, distance matrix) of the runs' representations; identity CKA for fewer than 2 runs."""
    m = len(features)
    if m < 2:
        cka = np.eye(m)
    else:
        try:
            cka = cka_matrix(list(features), debiased=debiased, device="cpu")
        except CKAError as exc:  # e.g. debiased with a probe set of fewer than 4 images
            raise AnalysisError.at("debiased", str(exc)) from exc
    return cka, cka_distances(cka, distance)


# ---- step 2: test (pure) -----------------------------------------------------------------------


@dataclass
class DispersionComparison:
    """Outcome of :func:`compare_dispersion`.

    Attributes
    ----------
    test : PermdispResult
    dispersion : dict
        Mean distance to the family centre, ``{"happy", "unhappy"}``.
    difference : float
        Unhappy minus happy.
    ci : tuple of float or None
        Bootstrap 95% percentile interval of ``difference``.
    """

    test: PermdispResult
    dispersion: dict[str, float]
    difference: float
    ci: tuple[float, float] | None


def untestable(families: Sequence[str]) -> str | None:
    """``"one_family"`` or ``"too_few_runs"`` when the test cannot run on these families, else None."""
    counts = {f: list(families).count(f) for f in FAMILIES}
    if sum(c > 0 for c in counts.values()) < 2:
        return "one_family"
    if min(counts.values()) < MIN_RUNS_PER_FAMILY:
        return "too_few_runs"
    return None


def _bootstrap_difference(
    z: np.ndarray, families: Sequence[str], *, n_boot: int, seed: int
) -> tuple[float, float] | None:
    """95% percentile interval of mean unhappy minus mean happy ``z``, runs resampled within each family."""
    zh = z[[f == "happy" for f in families]]
    zu = z[[f == "unhappy" for f in families]]
    if zh.size == 0 or zu.size == 0:
        return None
    rng = np.random.default_rng(seed)
    bh = zh[rng.integers(0, zh.size, size=(n_boot, zh.size))].mean(axis=1)
    bu = zu[rng.integers(0, zu.size, size=(n_boot, zu.size))].mean(axis=1)
    lo, hi = np.percentile(bu - bh, [2.5, 97.5])
    return float(lo), float(hi)


def compare_dispersion(
    distances: np.ndarray,
    families: Sequence[str],
    *,
    permutations: int = 999,
    seed: int = 0,
    center: str = "centroid",
    n_boot: int = 2000,
) -> DispersionComparison | None:
    """PERMDISP of the two families and a bootstrap interval of their dispersion difference.

    Returns None when :func:`untestable` says the families cannot be compared.
    ``seed`` seeds both the permutations and the bootstrap.
    """
    if untestable(families) is not None:
        return None
    test = permdisp(distances, list(families), permutations=permutations, seed=seed, center=center)
    disp = {f: float(test.group_dispersion[f]) for f in FAMILIES}
    ci = _bootstrap_difference(test.distances, families, n_boot=n_boot, seed=seed)
    return DispersionComparison(test=test, dispersion=disp, difference=disp["unhappy"] - disp["happy"], ci=ci)


# ---- step 3: sentence --------------------------------------------------------------------------


def verdict_sentence(
    families: Sequence[str], comparison: DispersionComparison | None, *, alpha: float
) -> tuple[str, str]:
    """The verdict code (one of ``VERDICT_CODES``) and one plain sentence that says it."""
    counts = {f: list(families).count(f) for f in FAMILIES}
    m = len(families)
    reason = untestable(families)
    if reason == "one_family":
        present = [f for f in FAMILIES if counts[f] > 0]
        if not present:
            return reason, "Cannot be tested: no finished runs with representations at this layer."
        return reason, (f"Cannot be tested: only one family ({present[0]}: {m} runs); the principle compares "
                        "happy with unhappy runs, so change the family rule or train conditions that fail.")
    if reason == "too_few_runs" or comparison is None:
        return "too_few_runs", (f"Cannot be tested: too few runs (happy {counts['happy']}, unhappy "
                                f"{counts['unhappy']}); each family needs at least {MIN_RUNS_PER_FAMILY}.")
    disp, p = comparison.dispersion, comparison.test.p_value
    if p < alpha and comparison.difference > 0:
        return "supported", (f"Supported: unhappy runs are more dispersed than happy runs (mean distance to centre "
                             f"{disp['unhappy']:.3f} vs {disp['happy']:.3f}, PERMDISP p = {p:.3g} < {alpha:g}).")
    if p < alpha:
        return "not_supported", (f"Not supported: happy runs are more dispersed than unhappy runs, the opposite of "
                                 f"the principle ({disp['happy']:.3f} vs {disp['unhappy']:.3f}, PERMDISP p = "
                                 f"{p:.3g}).")
    return "not_supported", (f"Not supported: the data show no significant difference in dispersion between "
                             f"unhappy and happy runs ({disp['unhappy']:.3f} vs {disp['happy']:.3f}, PERMDISP p = "
                             f"{p:.3g} >= {alpha:g}; {m} runs).")


# ---- the test ------------------------------------------------------------------------------------


def _check_options(distance: Any, alpha: Any, n_boot: Any, epoch: Any, permutations: Any) -> None:
    if distance not in DISTANCES:
        raise AnalysisError.at("distance", f"must be one of {DISTANCES}, got {distance!r}")
    if not (is_finite_number(alpha) and 0 < alpha < 1):
        raise AnalysisError.at("alpha", f"must be a number in (0, 1), got {alpha!r}")
    check_integer("n_boot", n_boot, 1)
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer))):
        raise AnalysisError.at("epoch", f"must be an integer or None, got {epoch!r}")
    # Checked here too, so a bad value is reported even when too few runs let PERMDISP be skipped.
    check_integer("permutations", permutations, 1)


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
    more dispersed). The test cannot run, and the verdict says why, when only
    one family has runs (``"one_family"``) or a family has fewer than
    ``MIN_RUNS_PER_FAMILY`` = 3 runs (``"too_few_runs"``).

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
        Bad option (``field`` names it). Store errors (unknown experiment) propagate.
    """
    _check_options(distance, alpha, n_boot, epoch, permutations)
    sample = gather_runs(store, experiment_id, layer=layer, epoch=epoch, rule=rule, threshold=threshold,
                         max_gap=max_gap)
    cka, dist = run_distances(sample.features, distance=distance, debiased=debiased)
    comparison = compare_dispersion(dist, sample.families, permutations=permutations, seed=seed, center=center,
                                    n_boot=n_boot)
    code, verdict = verdict_sentence(sample.families, comparison, alpha=alpha)
    return AKPResult(
        verdict_code=code, verdict=verdict, experiment_id=experiment_id, layer=layer, epoch=epoch,
        epochs=sample.epochs, run_ids=sample.run_ids, families=sample.families, records=sample.records,
        excluded=sample.excluded, cka=cka, distances=dist, distance=distance, debiased=debiased,
        rule=sample.rule, threshold=sample.threshold, alpha=alpha,
        dispersion={} if comparison is None else comparison.dispersion,
        dispersion_difference=None if comparison is None else float(comparison.difference),
        difference_ci=None if comparison is None else comparison.ci,
        test=None if comparison is None else comparison.test,
    )
