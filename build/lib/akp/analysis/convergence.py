"""Convergence of representations over training: mean within-family CKA per captured epoch.

If the principle holds, the happy family's curve rises towards 1 (its runs
come to represent the probe set alike) while the unhappy one's stays low.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from akp.analysis.common import FAMILIES, jsonable
from akp.analysis.families import label_runs
from akp.cka import cka_matrix

__all__ = ["ConvergencePoint", "convergence", "convergence_series"]


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
