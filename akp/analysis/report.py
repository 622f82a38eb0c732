"""The verdict as one JSON object: the contract of ``akp verdict --json`` (and of the app's download)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from akp.analysis.common import FAMILIES, jsonable
from akp.analysis.verdict import AKPResult

__all__ = ["REPORT_KEYS", "verdict_report"]

REPORT_KEYS = ("verdict_code", "verdict", "caveats", "primary_layer", "distance", "debiased", "threshold",
               "threshold_source", "rule", "unit", "family_counts", "dispersion", "dispersion_difference",
               "difference_ci", "within_route", "p_value", "p_anti", "permutations", "exact", "units",
               "exploratory", "runs", "excluded")


def verdict_report(result: AKPResult, exploratory: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One JSON-ready object with the primary verdict, its diagnostics and the exploratory table.

    Parameters
    ----------
    result : AKPResult
        The primary test (:func:`akp.analysis.akp_test`).
    exploratory : sequence of dict
        Rows of :func:`akp.analysis.sensitivity_table` (layer, measure, p_value, p_holm, ...).

    Returns
    -------
    dict
        Keys :data:`REPORT_KEYS`; ``runs`` lists run_id, condition, seed, family, test_acc,
        effective_rank, total_variance, distance_to_centre, collapsed, collapsed_reason.
    """
    primary = result.primary
    report = {
        "verdict_code": result.verdict_code, "verdict": result.verdict, "caveats": list(result.caveats),
        "primary_layer": result.layer, "distance": result.distance, "debiased": result.debiased,
        "threshold": result.threshold, "threshold_source": result.threshold_source, "rule": result.rule,
        "unit": result.unit or ("condition" if primary is not None and primary.unit == "condition" else "run"),
        "family_counts": {f: result.families.count(f) for f in FAMILIES},
        "dispersion": dict(result.dispersion), "dispersion_difference": result.dispersion_difference,
        "difference_ci": result.difference_ci, "within_route": dict(result.within_route),
        "p_value": result.p_value, "p_anti": result.p_anti,
        "permutations": None if primary is None else primary.permutations,
        "exact": None if primary is None else primary.exact,
        "units": [] if primary is None else [{"unit": u, "family": f, "distance_to_centre": float(z)}
                                             for u, f, z in zip(primary.units, primary.families,
                                                                primary.distances, strict=True)],
        "exploratory": [dict(row) for row in exploratory],
        "runs": [dict(d) for d in result.diagnostics],
        "excluded": list(result.excluded),
    }
    return jsonable(report)
