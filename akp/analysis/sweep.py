"""How the verdict depends on the happy threshold: the AKP test over a grid of thresholds.

A threshold fixed before the runs train is the honest choice; the sweep shows
how much the verdict would have changed with another one, and which runs sit
so close to a threshold (within ``margin``) that a little noise in their test
accuracy would move them across it. Each row is exploratory.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from akp.analysis.common import AnalysisError, is_finite_number, jsonable
from akp.analysis.families import COLLAPSE_MARGIN
from akp.analysis.verdict import akp_test

__all__ = ["NEAR_MARGIN", "SweepRow", "default_thresholds", "threshold_sweep"]

# A run this close to a threshold could fall on either side with another test split of the same size.
NEAR_MARGIN = 0.02


@dataclass
class SweepRow:
    """The AKP test at one happy threshold.

    Attributes
    ----------
    threshold : float
    verdict_code : str or None
        None when the threshold is refused (``error`` says why).
    p_value, p_anti : float or None
        One-sided p-values (principle, reverse); None when untested.
    unit : str or None
    n_happy, n_unhappy : int
    near : list of str
        Run ids whose test accuracy lies within ``margin`` of the threshold.
    error : str or None
    """

    threshold: float
    verdict_code: str | None
    p_value: float | None
    p_anti: float | None
    unit: str | None
    n_happy: int
    n_unhappy: int
    near: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable(asdict(self))


class _CachedStore:
    """Reads each representation once across the sweep's tests (each read opens a file)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._reps: dict[tuple[str, str, int | None], Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def representations(self, run_id: str, layer: str, epoch: int | None = None) -> Any:
        key = (run_id, layer, epoch)
        if key not in self._reps:
            self._reps[key] = self._store.representations(run_id, layer, epoch)
        return self._reps[key]


def default_thresholds(runs: Sequence[dict[str, Any]], *, step: float = 0.025,
                       collapse_margin: float = COLLAPSE_MARGIN) -> list[float]:
    """A grid of thresholds across the finished runs' test accuracies, multiples of ``step``.

    From the first multiple above the lowest accuracy (and above the
    majority-class rate plus ``collapse_margin``, below which a threshold is
    refused) to the last multiple at or below the highest accuracy; empty with
    no finite accuracies.
    """
    accs = [float(r["test_acc"]) for r in runs if is_finite_number(r.get("test_acc"))
            and r.get("state") in ("done", "diverged")]
    if not accs:
        return []
    rates = [float(r["majority_rate"]) for r in runs if is_finite_number(r.get("majority_rate"))]
    lo = max(min(accs), max(rates) + collapse_margin if rates else -math.inf)
    first = math.floor(lo / step + 1e-9) + 1
    last = math.floor(max(accs) / step + 1e-9)
    return [round(k * step, 6) for k in range(first, last + 1)]


def threshold_sweep(
    store: Any,
    experiment_id: str,
    thresholds: Sequence[float] | None = None,
    *,
    margin: float = NEAR_MARGIN,
    permutations: int = 999,
    seed: int = 0,
    **options: Any,
) -> list[SweepRow]:
    """Run :func:`akp.analysis.akp_test` at each threshold and mark the runs near it.

    Parameters
    ----------
    store : RunStore-like
        As :func:`akp.analysis.akp_test` needs.
    experiment_id : str
    thresholds : sequence of float, optional
        Default :func:`default_thresholds` of the experiment's runs.
    margin : float, default=0.02
        Runs with ``|test_acc - threshold| <= margin`` are listed in ``near``.
    permutations, seed
        As in :func:`akp.analysis.akp_test`.
    **options
        Other arguments of :func:`akp.analysis.akp_test` (``layer``, ``rule``,
        ``max_gap``, ``distance``, ``debiased``, ``epoch``, ...).

    Returns
    -------
    list of SweepRow
        In the order of ``thresholds``; a threshold the family rule refuses
        (e.g. at the majority-class rate) gives a row with ``error`` set.

    Raises
    ------
    AnalysisError
        Bad ``margin`` or a non-finite threshold; bad options as :func:`akp_test` raises them.
    """
    if not (is_finite_number(margin) and margin >= 0):
        raise AnalysisError.at("margin", f"must be a number >= 0, got {margin!r}")
    if "threshold" in options:
        raise AnalysisError.at("threshold", "pass the grid as thresholds")
    runs = store.runs(experiment_id)
    grid = default_thresholds(runs) if thresholds is None else list(thresholds)
    if not all(is_finite_number(t) for t in grid):
        raise AnalysisError.at("thresholds", f"must be finite numbers, got {grid!r}")
    accs = {str(r["run_id"]): float(r["test_acc"]) for r in runs if is_finite_number(r.get("test_acc"))}
    cached = _CachedStore(store)
    rows = []
    for t in grid:
        near = sorted(rid for rid, a in accs.items() if abs(a - t) <= margin + 1e-12)
        try:
            res = akp_test(cached, experiment_id, threshold=float(t), permutations=permutations, seed=seed,
                           n_boot=1, **options)  # the bootstrap interval is not part of the sweep
        except AnalysisError as exc:
            if getattr(exc, "field", None) != "threshold":
                raise
            rows.append(SweepRow(threshold=float(t), verdict_code=None, p_value=None, p_anti=None, unit=None,
                                 n_happy=0, n_unhappy=0, near=near, error=str(exc)))
            continue
        fams = np.asarray(res.families)
        rows.append(SweepRow(threshold=float(t), verdict_code=res.verdict_code, p_value=res.p_value,
                             p_anti=res.p_anti, unit=res.unit, n_happy=int((fams == "happy").sum()),
                             n_unhappy=int((fams == "unhappy").sum()), near=near))
    return rows
