"""Exploratory analyses beside the primary verdict: other layers and measures, Holm-corrected.

The primary layer and distance are fixed before the data; everything here is
labelled exploratory, and its p-values (one-sided, in the principle's
direction) are adjusted for the number of analyses by Holm's step-down method
(Holm 1979), which controls the family-wise error rate without assumptions
about the dependence between analyses.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from akp.analysis.verdict import akp_test

__all__ = ["MEASURES", "holm", "sensitivity_table"]

#: Measures of the exploratory table: (name, distance, debiased CKA).
MEASURES = (("1-cka", "1-cka", False), ("angular", "angular", False), ("debiased 1-cka", "1-cka", True))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (None stays None and does not count as a test).

    ``p_(i)`` sorted ascending among the m tests becomes
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def sensitivity_table(store: Any, experiment_id: str, *, layers: Sequence[str], primary_layer: str,
                      permutations: int = 999, seed: int = 0, **rule: Any) -> list[dict[str, Any]]:
    """The AKP test at every (layer, measure) except the primary one, with raw and Holm-adjusted p.

    Parameters
    ----------
    store : RunStore-like
    experiment_id : str
    layers : sequence of str
        Captured layers.
    primary_layer : str
        Its plain ``1-cka`` row is the primary test, left out here.
    permutations, seed
        As in :func:`akp.analysis.akp_test`.
    **rule
        ``threshold``, ``rule``, ``max_gap`` passed to :func:`akp.analysis.akp_test`.

    Returns
    -------
    list of dict
        ``layer``, ``measure``, ``verdict_code``, ``unit``, ``difference``, ``p_value``, ``p_anti``,
        ``p_holm``, ``p_anti_holm``.
    """
    rows = []
    for layer in layers:
        for name, distance, debiased in MEASURES:
            if layer == primary_layer and name == "1-cka":
                continue
            res = akp_test(store, experiment_id, layer=layer, distance=distance, debiased=debiased,
                           permutations=permutations, seed=seed, n_boot=1, **rule)
            rows.append({"layer": layer, "measure": name, "verdict_code": res.verdict_code, "unit": res.unit,
                         "difference": res.dispersion_difference, "p_value": res.p_value, "p_anti": res.p_anti})
    for key, adjusted in (("p_value", "p_holm"), ("p_anti", "p_anti_holm")):
        for row, adj in zip(rows, holm([r[key] for r in rows]), strict=True):
            row[adjusted] = adj
    return rows
