"""Happy and unhappy families, PERMDISP, the Anna Karenina test, convergence and layer-by-layer CKA.

Every function here reads runs through a store-like object (duck typing) or
takes plain arrays; none trains, stores or imports Streamlit.

Modules
-------
* :mod:`akp.analysis.families` -- :func:`label_families`, :func:`label_runs`
  -> :class:`Families`, :func:`largest_gap_threshold`.
* :mod:`akp.analysis.permdisp` -- :func:`permdisp` -> :class:`PermdispResult`,
  :func:`cka_distances` (pure statistics).
* :mod:`akp.analysis.dispersion` -- :func:`directional_test` (one-sided, the
  principle and its reverse), :func:`route_reduce` (routes as units),
  :func:`bootstrap_difference`.
* :mod:`akp.analysis.verdict` -- :func:`akp_test` -> :class:`AKPResult`
  (with ``to_dict`` for JSON): gather, test, sentence.
* :mod:`akp.analysis.diagnostics` -- per-run effective rank and total variance.
* :mod:`akp.analysis.sensitivity` -- exploratory layers and measures, Holm-corrected.
* :mod:`akp.analysis.convergence` -- :func:`route_convergence` -> :class:`RouteConvergence`
  (CKA between the seeds of each route from epoch -1, a trend test per route:
  :func:`route_trend`), :func:`cka_floor` -> :class:`CKAFloor` (CKA between
  untrained networks); :func:`convergence` (routes pooled per family) and
  :func:`convergence_series`, :func:`route_series` reshape them for plots.
* :mod:`akp.analysis.ordination` -- :func:`family_pcoa` -> :class:`Ordination`.
* :mod:`akp.analysis.sweep` -- :func:`threshold_sweep` -> list of :class:`SweepRow`.
* :mod:`akp.analysis.layers` -- :func:`layer_cka` -> :class:`LayerCKA`,
  :func:`common_epochs`.
"""
from akp.analysis.common import FAMILIES, AnalysisError
from akp.analysis.convergence import (
    TREND_STATUSES,
    CKAFloor,
    ConvergencePoint,
    RouteConvergence,
    RoutePoint,
    RouteTrend,
    cka_floor,
    convergence,
    convergence_series,
    route_convergence,
    route_series,
    route_trend,
)
from akp.analysis.diagnostics import effective_rank
from akp.analysis.dispersion import DirectionalTest, directional_test, route_reduce
from akp.analysis.families import (
    MIN_AUTO_GAP,
    RULES,
    Families,
    describe_rule,
    label_families,
    label_runs,
    largest_gap_threshold,
)
from akp.analysis.layers import LayerCKA, common_epochs, layer_cka
from akp.analysis.ordination import Ordination, family_pcoa
from akp.analysis.permdisp import CENTERS, DISTANCES, PermdispResult, cka_distances, permdisp
from akp.analysis.sensitivity import holm, sensitivity_table
from akp.analysis.sweep import NEAR_MARGIN, SweepRow, default_thresholds, threshold_sweep
from akp.analysis.verdict import MIN_RUNS_PER_FAMILY, VERDICT_CODES, AKPResult, akp_test

__all__ = [
    "CENTERS",
    "DISTANCES",
    "FAMILIES",
    "MIN_AUTO_GAP",
    "MIN_RUNS_PER_FAMILY",
    "NEAR_MARGIN",
    "RULES",
    "TREND_STATUSES",
    "VERDICT_CODES",
    "AKPResult",
    "AnalysisError",
    "CKAFloor",
    "DirectionalTest",
    "ConvergencePoint",
    "Families",
    "LayerCKA",
    "Ordination",
    "PermdispResult",
    "RouteConvergence",
    "RoutePoint",
    "RouteTrend",
    "SweepRow",
    "akp_test",
    "directional_test",
    "effective_rank",
    "holm",
    "route_reduce",
    "sensitivity_table",
    "cka_distances",
    "cka_floor",
    "common_epochs",
    "convergence",
    "convergence_series",
    "default_thresholds",
    "family_pcoa",
    "describe_rule",
    "label_families",
    "label_runs",
    "largest_gap_threshold",
    "layer_cka",
    "permdisp",
    "route_convergence",
    "route_series",
    "route_trend",
    "threshold_sweep",
]
