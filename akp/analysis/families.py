"""Happy and unhappy families: which runs generalized, decided from their outcomes.

A run is *happy* when it generalizes (by default: its test accuracy is at or
above a threshold) and *unhappy* otherwise; a diverged run is always unhappy,
and a run that has not finished is left out. Without a given threshold the
accuracies are split at their largest gap, if that gap is a real one.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from akp.analysis.common import FAMILIES, AnalysisError, is_finite_number, jsonable
from akp.runs import DIVERGED, DONE, FINISHED_STATES

__all__ = ["COLLAPSE_MARGIN", "MIN_AUTO_GAP", "RULES", "Families", "collapse_reason", "describe_rule",
           "label_families", "label_runs", "largest_gap_threshold"]

RULES = ("accuracy", "gap")
# Smallest accuracy gap the automatic rule treats as a split between families (5 percentage points).
MIN_AUTO_GAP = 0.05
# Generalization-gap limit of the "gap" rule when none is given.
DEFAULT_MAX_GAP = 0.1
# A run must beat the test split's majority-class rate by this much, or it has collapsed (learned nothing).
COLLAPSE_MARGIN = 0.02


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
    v = np.unique(np.asarray([x for x in values if is_finite_number(x)], dtype=np.float64))
    if v.size < 2:
        return None
    gaps = np.diff(v)
    if gaps.max() < min_gap:
        return None
    # Among equal gaps (up to rounding of the accuracies) prefer the higher split.
    k = int(np.flatnonzero(gaps >= gaps.max() - 1e-12)[-1])
    return float((v[k] + v[k + 1]) / 2.0)


def describe_rule(rule: str, threshold: float | None, *, automatic: bool, max_gap: float | None = None,
                  min_gap: float = MIN_AUTO_GAP) -> str:
    """One phrase that says how the runs were sorted, true in every case (for "Rule: ..." on the pages).

    Parameters
    ----------
    rule : {"accuracy", "gap"}
    threshold : float or None
        The accuracy threshold used (:attr:`Families.threshold`).
    automatic : bool
        Whether it was chosen from the data (the largest gap) rather than given.
    max_gap : float, optional
        The ``"gap"`` rule's limit (default :data:`DEFAULT_MAX_GAP`).
    min_gap : float
        The narrowest gap the automatic rule splits at.

    Returns
    -------
    str
        E.g. ``"happy if test accuracy ≥ 0.712 (threshold at the largest accuracy gap, chosen from the data:
        exploratory)"``, or, when the automatic rule found no gap to split at, ``"no split: no gap of 0.05
        or more between test accuracies, so only diverged runs are unhappy"``.
    """
    parts = []
    if threshold is not None:
        parts.append(f"test accuracy ≥ {threshold:.3f}")
    if rule == "gap":
        parts.append(f"generalization gap ≤ {max_gap if max_gap is not None else DEFAULT_MAX_GAP:.2f}")
    if not parts:
        return (f"no split: no gap of {min_gap:.2f} or more between test accuracies, so only diverged runs are "
                "unhappy" if automatic else "every run that did not diverge is happy")
    text = "happy if " + " and ".join(parts)
    if automatic and threshold is not None:
        return text + " (threshold at the largest accuracy gap, chosen from the data: exploratory)"
    if automatic:
        return text + f" (no accuracy gap of {min_gap:.2f} or more to split at)"
    return text


def _check_threshold(threshold: Any) -> None:
    if threshold is not None and not is_finite_number(threshold):
        raise AnalysisError.at("threshold", f"must be a finite number or None, got {threshold!r}")


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
    _check_threshold(threshold)
    accs = [float(a) if is_finite_number(a) else math.nan for a in items]
    cut = largest_gap_threshold(accs) if threshold is None else float(threshold)
    return ["unhappy" if not math.isfinite(a) or (cut is not None and a < cut) else "happy" for a in accs]


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
        ``{"run_id", "reason"}`` for runs left out (not finished, or collapsed).
    collapsed : dict
        run_id -> why the run counts as collapsed (no better than predicting the majority class, or
        predicting one class only): never happy, left out of both families.
    """

    run_ids: list[str]
    families: list[str]
    records: list[dict[str, Any]]
    rule: str
    threshold: float | None
    max_gap: float | None
    excluded: list[dict[str, str]] = field(default_factory=list)
    collapsed: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Number of runs per family."""
        return {f: self.families.count(f) for f in FAMILIES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable(asdict(self))


def _check_rule(rule: Any, threshold: Any, max_gap: Any) -> float | None:
    """Validate the family rule's options; return the max_gap in force (None for "accuracy")."""
    if rule not in RULES:
        raise AnalysisError.at("rule", f"must be one of {RULES}, got {rule!r}")
    _check_threshold(threshold)
    if rule != "gap":
        return None
    max_gap = DEFAULT_MAX_GAP if max_gap is None else max_gap
    if not is_finite_number(max_gap) or max_gap < 0:
        raise AnalysisError.at("max_gap", f"must be a finite number >= 0, got {max_gap!r}")
    return float(max_gap)


def _finished(runs: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(copies of the finished run records, ``{"run_id", "reason"}`` of the others)."""
    kept: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    for r in runs:
        if not isinstance(r, Mapping) or "run_id" not in r:
            raise AnalysisError.at("runs", "each run must be a mapping with a 'run_id' key (see RunStore.runs)")
        state = r.get("state", DONE)
        if state in FINISHED_STATES:
            kept.append(dict(r))
        else:
            excluded.append({"run_id": str(r["run_id"]), "reason": f"run not finished (state {state!r})"})
    return kept, excluded


def collapse_reason(record: Mapping[str, Any], margin: float = COLLAPSE_MARGIN) -> str | None:
    """Why a finished run has collapsed, or None. Records without the fields (old stores) never have."""
    if record.get("state") != DONE:
        return None
    if record.get("pred_classes") == 1:
        return "collapsed: predicts one class only"
    acc, rate = record.get("test_acc"), record.get("majority_rate")
    if is_finite_number(acc) and is_finite_number(rate) and acc < rate + margin:
        return (f"collapsed: test accuracy {acc:.3f} does not beat the majority-class rate {rate:.3f} "
                f"by {margin:g}")
    return None


def _check_above_majority(threshold: float | None, records: Sequence[Mapping[str, Any]], margin: float) -> None:
    rates = [r["majority_rate"] for r in records if is_finite_number(r.get("majority_rate"))]
    if threshold is not None and rates and threshold < max(rates) + margin:
        raise AnalysisError.at("threshold", f"{threshold:g} does not beat the majority-class rate {max(rates):.3f} "
                                            f"by {margin:g}: a run that always answers the majority class would "
                                            "be happy; choose a threshold above it")


def _family_of(record: Mapping[str, Any], rule: str, cut: float | None, max_gap: float | None) -> str:
    """The family of one finished run under ``rule``."""
    acc = record.get("test_acc")
    if record.get("state") == DIVERGED or not is_finite_number(acc):
        return "unhappy"
    if rule == "accuracy":
        return "happy" if cut is None or acc >= cut else "unhappy"
    gap = record.get("gap")
    if not is_finite_number(gap) and is_finite_number(record.get("train_acc")):
        gap = record["train_acc"] - acc
    # A model that learned nothing has no gap either: the threshold, when given, still applies.
    ok = is_finite_number(gap) and gap <= max_gap and (cut is None or acc >= cut)
    return "happy" if ok else "unhappy"


def label_runs(
    runs: Sequence[Mapping[str, Any]],
    *,
    rule: str = "accuracy",
    threshold: float | None = None,
    max_gap: float | None = None,
    collapse_margin: float = COLLAPSE_MARGIN,
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
    collapse_margin : float, default=COLLAPSE_MARGIN (0.02)
        A finished run whose test accuracy does not beat its test split's
        majority-class rate by this margin, or that predicts one class only, is
        collapsed: left out of both families, with its reason.

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
    max_gap = _check_rule(rule, threshold, max_gap)
    kept, excluded = _finished(runs)
    _check_above_majority(threshold, kept, collapse_margin)
    collapsed = {str(r["run_id"]): why for r in kept if (why := collapse_reason(r, collapse_margin)) is not None}
    # A collapsed run keeps its condition, seed and accuracy: reports show which routes collapsed.
    excluded += [{"run_id": str(r["run_id"]), "reason": collapsed[str(r["run_id"])], "condition": r.get("condition"),
                  "seed": r.get("seed"), "test_acc": r.get("test_acc")} for r in kept if str(r["run_id"]) in collapsed]
    kept = [r for r in kept if str(r["run_id"]) not in collapsed]
    cut = threshold
    if rule == "accuracy" and threshold is None:
        cut = largest_gap_threshold([r.get("test_acc") for r in kept if r.get("state") != DIVERGED])
    for r in kept:
        r["family"] = _family_of(r, rule, cut, max_gap)
    return Families(
        run_ids=[str(r["run_id"]) for r in kept],
        families=[r["family"] for r in kept],
        records=kept,
        rule=rule,
        threshold=None if cut is None else float(cut),
        max_gap=max_gap,
        excluded=excluded,
        collapsed=collapsed,
    )
