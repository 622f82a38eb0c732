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
* :mod:`akp.analysis.convergence` -- :func:`convergence` -> list of
  :class:`ConvergencePoint`; :func:`convergence_series` reshapes it for a plot.
* :mod:`akp.analysis.layers` -- :func:`layer_cka` -> :class:`LayerCKA`,
  :func:`common_epochs`.
"""
from akp.analysis.common import FAMILIES, AnalysisError
from akp.analysis.convergence import ConvergencePoint, convergence, convergence_series
from akp.analysis.diagnostics import effective_rank
from akp.analysis.dispersion import DirectionalTest, directional_test, route_reduce
from akp.analysis.families import MIN_AUTO_GAP, RULES, Families, label_families, label_runs, largest_gap_threshold
from akp.analysis.layers import LayerCKA, common_epochs, layer_cka
from akp.analysis.permdisp import CENTERS, DISTANCES, PermdispResult, cka_distances, permdisp
from akp.analysis.sensitivity import holm, sensitivity_table
from akp.analysis.verdict import MIN_RUNS_PER_FAMILY, VERDICT_CODES, AKPResult, akp_test

__all__ = [
    "CENTERS",
    "DISTANCES",
    "FAMILIES",
    "MIN_AUTO_GAP",
    "MIN_RUNS_PER_FAMILY",
    "RULES",
    "VERDICT_CODES",
    "AKPResult",
    "AnalysisError",
    "DirectionalTest",
    "ConvergencePoint",
    "Families",
    "LayerCKA",
    "PermdispResult",
    "akp_test",
    "directional_test",
    "effective_rank",
    "holm",
    "route_reduce",
    "sensitivity_table",
    "cka_distances",
    "common_epochs",
    "convergence",
    "convergence_series",
    "label_families",
    "label_runs",
    "largest_gap_threshold",
    "layer_cka",
    "permdisp",
]
