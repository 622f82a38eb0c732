"""The Anna Karenina test on one experiment: gather the runs, test their dispersion, say the verdict.

The Anna Karenina Principle (AKP) for deep learning says that models which
generalize ("happy") end up with similar internal representations while
models which fail ("unhappy") each fail in their own way. Here that becomes a
test of *homogeneity of multivariate dispersion* (PERMDISP): distances between
runs come from CKA; each run's distance to its family centre is its
dispersion; the principle is *supported* when the unhappy family is
significantly more dispersed than the happy one (one-sided), *reversed*
(anti-AKP) when the happy family is, and *no difference* otherwise. The unit
of the test is the route (condition within a family) when both families hold
at least two routes, else the run (see :mod:`akp.analysis.dispersion`).

:func:`akp_test` runs three steps, each its own function:

1. :func:`gather_runs` reads the runs and their representations from the
   store-like object, at one epoch shared by all runs;
2. :func:`compare_dispersion` runs the directional test at the right unit, PERMDISP and a bootstrap (pure);
3. :func:`verdict_sentence` turns the outcome into a verdict code and prose.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from akp.analysis.common import FAMILIES, AnalysisError, check_integer, is_finite_number, jsonable
from akp.analysis.diagnostics import run_diagnostics
from akp.analysis.dispersion import (
    MIN_LABELLINGS,
    DirectionalTest,
    bootstrap_difference,
    directional_test,
    n_labellings,
    route_reduce,
)
from akp.analysis.families import label_runs
from akp.analysis.permdisp import DISTANCES, PermdispResult, cka_distances, permdisp
from akp.cka import CKAError, cka_matrix
from akp.runs import DIVERGED

__all__ = [
    "MIN_RUNS_PER_FAMILY", "THRESHOLD_SOURCES", "VERDICT_CODES", "AKPResult", "DispersionComparison", "RunSample",
    "akp_test", "compare_dispersion", "gather_runs", "run_distances", "unit_of", "untestable",
    "verdict_caveats", "verdict_sentence",
]

VERDICT_CODES = ("supported", "reversed", "no_difference", "too_few_runs", "one_family")
# Fewer runs per family than this: too few to say anything about how a family's runs spread.
MIN_RUNS_PER_FAMILY = 6
THRESHOLD_SOURCES = ("spec", "largest_gap", "option")
# Errors a store raises for a run, layer or epoch it does not have (StoreError is a ValueError).
_MISSING = (KeyError, ValueError, OSError)


@dataclass
class AKPResult:
    """Result of :func:`akp_test`.

    Attributes
    ----------
    verdict_code : {"supported", "reversed", "no_difference", "too_few_runs", "one_family"}
    verdict : str
        One plain sentence.
    caveats : list of str
        What limits the verdict (collapsed runs excluded, threshold chosen from the data, few routes, ...).
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
        Bootstrap 95% percentile interval of that difference, units resampled
        within each family and centres re-estimated (consistent with the test).
    test : PermdispResult or None
        Two-sided PERMDISP of the runs (bias-adjusted, label permutation); its
        ``distances`` are each run's distance to its family centre.
    primary : DirectionalTest or None
        The headline one-sided test, at ``unit``.
    unit : {"run", "condition"} or None
    within_route : dict
        Mean distance of seeds to their route centre, per family.
    threshold_source : {"spec", "largest_gap", "option"}
    diagnostics : list of dict
        Per run: run_id, condition, seed, family, test_acc, effective_rank,
        total_variance, distance_to_centre, collapsed, collapsed_reason.
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
    primary: DirectionalTest | None = None
    unit: str | None = None
    within_route: dict[str, float] = field(default_factory=dict)
    threshold_source: str = "largest_gap"
    caveats: list[str] = field(default_factory=list)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    alpha: float = 0.05

    @property
    def p_value(self) -> float | None:
        """One-sided p-value in the principle's direction (unhappy more dispersed); None when untested."""
        return None if self.primary is None else self.primary.p_akp

    @property
    def p_anti(self) -> float | None:
        """One-sided p-value of the reverse (happy more dispersed, anti-AKP); None when untested."""
        return None if self.primary is None else self.primary.p_anti

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists, NaN/inf as None)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("test", "primary")}
        d["test"] = None if self.test is None else self.test.to_dict()
        d["primary"] = None if self.primary is None else self.primary.to_dict()
        d["p_value"], d["p_anti"] = self.p_value, self.p_anti
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
    primary : DirectionalTest
        The one-sided tests at ``primary.unit``.
    test : PermdispResult
        Two-sided PERMDISP of the runs (for the per-run distances to the centre).
    dispersion : dict
        Mean distance to the family centre of the primary units, ``{"happy", "unhappy"}``.
    difference : float
        Unhappy minus happy.
    ci : tuple of float or None
        Bootstrap 95% percentile interval of ``difference``.
    within_route : dict
        Seeds' mean distance to their route centre per family (NaN where no route has 2 seeds).
    """

    primary: DirectionalTest
    test: PermdispResult
    dispersion: dict[str, float]
    difference: float
    ci: tuple[float, float] | None
    within_route: dict[str, float]


def untestable(families: Sequence[str], conditions: Sequence[str] | None = None) -> str | None:
    """``"one_family"`` or ``"too_few_runs"`` when the test cannot run on these families, else None.

    Too few: a family has fewer than ``MIN_RUNS_PER_FAMILY`` runs, or the test
    is at the route level and the routes allow fewer than ``MIN_LABELLINGS``
    labellings (so no p-value can reach 0.05).
    """
    counts = {f: list(families).count(f) for f in FAMILIES}
    if sum(c > 0 for c in counts.values()) < 2:
        return "one_family"
    if min(counts.values()) < MIN_RUNS_PER_FAMILY:
        return "too_few_runs"
    if conditions is not None and unit_of(families, conditions) == "condition":
        routes = route_families(families, conditions)
        if n_labellings(routes) < MIN_LABELLINGS:
            return "too_few_runs"
    return None


def route_families(families: Sequence[str], conditions: Sequence[str]) -> list[str]:
    """The family of each route (condition within family), in order of first appearance."""
    return [f for _, f in dict.fromkeys(zip(conditions, families, strict=True))]


def unit_of(families: Sequence[str], conditions: Sequence[str]) -> str:
    """``"condition"`` when both families hold at least two routes, else ``"run"``."""
    routes = route_families(families, conditions)
    return "condition" if min(routes.count(f) for f in FAMILIES) >= 2 else "run"


def compare_dispersion(
    distances: np.ndarray,
    families: Sequence[str],
    *,
    conditions: Sequence[str] | None = None,
    permutations: int = 999,
    seed: int = 0,
    center: str = "centroid",
    n_boot: int = 2000,
) -> DispersionComparison | None:
    """The one-sided tests at the right unit, PERMDISP of the runs, and a bootstrap interval.

    Returns None when :func:`untestable` says the families cannot be compared.
    ``seed`` seeds the permutations and the bootstrap.
    """
    if untestable(families, conditions) is not None:
        return None
    conds = list(conditions) if conditions is not None else [f"run{i}" for i in range(len(families))]
    test = permdisp(distances, list(families), permutations=permutations, seed=seed, center=center)
    routes = route_reduce(distances, families, conds)
    if unit_of(families, conds) == "condition":
        primary = directional_test(routes.distances, routes.families, units=routes.routes, unit="condition",
                                   permutations=permutations, seed=seed)
        ci = bootstrap_difference(routes.distances, routes.families, n_boot=n_boot, seed=seed)
    else:
        primary = directional_test(distances, families, unit="run", permutations=permutations, seed=seed)
        ci = bootstrap_difference(distances, families, n_boot=n_boot, seed=seed)
    return DispersionComparison(primary=primary, test=test, dispersion=dict(primary.dispersion),
                                difference=primary.difference, ci=ci, within_route=routes.within)


# ---- step 3: sentence --------------------------------------------------------------------------


def _untested_sentence(reason: str, counts: dict[str, int], m: int, routes: list[str] | None) -> str:
    if reason == "one_family":
        present = [f for f in FAMILIES if counts[f] > 0]
        if not present:
            return "Cannot be tested: no finished runs with representations at this layer."
        return (f"Cannot be tested: only one family ({present[0]}: {m} runs); the principle compares "
                "happy with unhappy runs, so change the family rule or train conditions that fail.")
    if min(counts.values()) < MIN_RUNS_PER_FAMILY:
        return (f"Cannot be tested: too few runs (happy {counts['happy']}, unhappy {counts['unhappy']}); "
                f"each family needs at least {MIN_RUNS_PER_FAMILY}.")
    r = {f: (routes or []).count(f) for f in FAMILIES}
    return (f"Cannot be tested: too few routes (happy {r['happy']}, unhappy {r['unhappy']}) for a test at the "
            f"level of conditions: {n_labellings(routes or [])} ways to label them, fewer than the "
            f"{MIN_LABELLINGS} a p-value of 0.05 needs; train more conditions.")


def verdict_sentence(
    families: Sequence[str], comparison: DispersionComparison | None, *, alpha: float,
    conditions: Sequence[str] | None = None,
) -> tuple[str, str]:
    """The verdict code (one of ``VERDICT_CODES``) and one plain sentence a student can read."""
    counts = {f: list(families).count(f) for f in FAMILIES}
    reason = untestable(families, conditions)
    if reason is not None or comparison is None:
        routes = route_families(families, conditions) if conditions is not None else None
        return reason or "too_few_runs", _untested_sentence(reason or "too_few_runs", counts, len(families), routes)
    t = comparison.primary
    what = "routes" if t.unit == "condition" else "runs"
    disp = f"mean distance to centre {t.dispersion['unhappy']:.3f} vs {t.dispersion['happy']:.3f}"
    if t.p_akp <= alpha:
        return "supported", (f"Supported: unhappy {what} are more dispersed than happy {what}, as the principle says "
                             f"({disp}, one-sided p = {t.p_akp:.3g} <= {alpha:g}).")
    if t.p_anti <= alpha:
        return "reversed", (f"Reversed (anti-AKP): happy {what} are more dispersed than unhappy {what}, the "
                            f"opposite of the principle ({disp}, one-sided p = {t.p_anti:.3g} <= {alpha:g}).")
    return "no_difference", (f"No difference: the data show no significant difference in dispersion between "
                             f"unhappy and happy {what} ({disp}; p = {t.p_akp:.3g} for the principle, "
                             f"{t.p_anti:.3g} for its reverse).")


def verdict_caveats(sample: RunSample, comparison: DispersionComparison | None, threshold_source: str,
                    conditions: Sequence[str]) -> list[str]:
    """What limits the verdict, in plain words."""
    out = []
    collapsed = [e for e in sample.excluded if str(e.get("reason", "")).startswith("collapsed")]
    if collapsed:
        out.append(f"{len(collapsed)} collapsed run(s) excluded (no better than the majority class).")
    if threshold_source == "largest_gap":
        out.append("Exploratory: the happy threshold was chosen from the data (largest gap), not fixed in advance.")
    if comparison is not None and comparison.primary.unit == "run":
        routes = route_families(sample.families, conditions)
        single = [f for f in FAMILIES if routes.count(f) < 2]
        out.append(f"The unit is the run: the {' and '.join(single)} family has one route, so the test compares "
                   "seeds of one schedule and cannot speak of different ways to fail.")
    if comparison is not None and comparison.primary.unit == "condition" and comparison.primary.labellings < 100:
        out.append(f"Few routes: {comparison.primary.labellings} possible labellings limit the test's power.")
    return out


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


def _spec_defaults(store: Any, experiment_id: str) -> tuple[dict[str, Any], str]:
    """(the spec's family rule, its primary layer), with the defaults of specs that predate them."""
    spec = store.spec(experiment_id) if hasattr(store, "spec") else None
    rule = dict(getattr(spec, "family_rule", None) or {})
    rule = {"rule": rule.get("rule") or "accuracy", "threshold": rule.get("threshold"),
            "max_gap": rule.get("max_gap")}
    return rule, getattr(spec, "primary_layer", None) or "embedding"


def akp_test(
    store: Any,
    experiment_id: str,
    *,
    layer: str | None = None,
    epoch: int | None = None,
    threshold: float | None = None,
    distance: str = "1-cka",
    debiased: bool = False,
    permutations: int = 999,
    seed: int = 0,
    rule: str | None = None,
    max_gap: float | None = None,
    center: str = "centroid",
    alpha: float = 0.05,
    n_boot: int = 2000,
) -> AKPResult:
    """Test the Anna Karenina Principle on one experiment's runs.

    Gathers the finished runs, labels families with the experiment's family
    rule (fixed before training; arguments override it and the result says
    so), computes the CKA matrix of their representations at the primary layer
    (same probe set for all runs), turns it into distances, and tests in one
    direction whether unhappy units are more dispersed than happy ones
    (``"supported"``), and in the other (``"reversed"``, anti-AKP); else
    ``"no_difference"``. Each direction is tested at level ``alpha``. The unit
    is the route (condition within family) when both families have at least
    two routes, else the run (:mod:`akp.analysis.dispersion`). The test cannot
    run, and the verdict says why, with one family (``"one_family"``) or with
    fewer than ``MIN_RUNS_PER_FAMILY`` = 6 runs, or too few routes, per family
    (``"too_few_runs"``).

    Parameters
    ----------
    store : RunStore-like
        Needs ``runs(experiment_id)`` and ``representations(run_id, layer, epoch)``;
        ``spec(experiment_id)`` for the family rule and primary layer.
    experiment_id : str
    layer : str, optional
        Captured layer (default: the spec's ``primary_layer``, else ``"embedding"``).
    epoch : int, optional
        Captured epoch; None uses the last trained epoch every run that
        finished its budget captured (never -1, the untrained network).
    threshold : float, optional
        Overrides the spec's happy threshold (``threshold_source="option"``).
    distance : {"1-cka", "angular"}, default="1-cka"
    debiased : bool, default=False
    permutations : int, default=999
    seed : int, default=0
        Seeds the permutations and the bootstrap.
    rule : {"accuracy", "gap"}, optional
        Overrides the spec's rule.
    max_gap : float, optional
        Overrides the spec's ``max_gap`` (for ``rule="gap"``).
    center : {"centroid", "median"}, default="centroid"
        Centre of the two-sided PERMDISP reported beside the primary test.
    alpha : float, default=0.05
    n_boot : int, default=2000

    Returns
    -------
    AKPResult

    Raises
    ------
    AnalysisError
        Bad option (``field`` names it). Store errors (unknown experiment) propagate.
    """
    _check_options(distance, alpha, n_boot, epoch, permutations)
    spec_rule, primary_layer = _spec_defaults(store, experiment_id)
    layer = layer or primary_layer
    if threshold is not None:
        source = "option"
    elif spec_rule["threshold"] is not None and rule in (None, spec_rule["rule"]):
        threshold, source = spec_rule["threshold"], "spec"
    else:
        source = "largest_gap"
    rule = rule or spec_rule["rule"]
    max_gap = max_gap if max_gap is not None else spec_rule["max_gap"]
    sample = gather_runs(store, experiment_id, layer=layer, epoch=epoch, rule=rule, threshold=threshold,
                         max_gap=max_gap)
    conditions = [str(r.get("condition")) for r in sample.records]
    cka, dist = run_distances(sample.features, distance=distance, debiased=debiased)
    comparison = compare_dispersion(dist, sample.families, conditions=conditions, permutations=permutations,
                                    seed=seed, center=center, n_boot=n_boot)
    code, verdict = verdict_sentence(sample.families, comparison, alpha=alpha, conditions=conditions)
    return AKPResult(
        verdict_code=code, verdict=verdict, experiment_id=experiment_id, layer=layer, epoch=epoch,
        epochs=sample.epochs, run_ids=sample.run_ids, families=sample.families, records=sample.records,
        excluded=sample.excluded, cka=cka, distances=dist, distance=distance, debiased=debiased,
        rule=sample.rule, threshold=sample.threshold, alpha=alpha,
        dispersion={} if comparison is None else comparison.dispersion,
        dispersion_difference=None if comparison is None else float(comparison.difference),
        difference_ci=None if comparison is None else comparison.ci,
        test=None if comparison is None else comparison.test,
        primary=None if comparison is None else comparison.primary,
        unit=None if comparison is None else comparison.primary.unit,
        within_route={} if comparison is None else comparison.within_route,
        threshold_source=source,
        caveats=verdict_caveats(sample, comparison, source, conditions),
        diagnostics=run_diagnostics(sample, comparison),
    )
