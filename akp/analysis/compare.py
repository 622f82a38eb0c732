"""Compare runs across experiments: gather their curves, group them, and summarise each group per epoch.

A *group* is the runs of one condition of one experiment (``by="experiment"``),
or of one condition name pooled over the experiments (``by="condition"``), as
Weights & Biases groups runs by a config key. Each group is summarised per
epoch by its mean and a band: the minimum and maximum over its runs
(``band="minmax"``) or the mean ± one sample standard deviation
(``band="sd"``, ``ddof=1``; a group of one run has a zero-width band).

Runs are read through a store-like object (``experiment``, ``spec``, ``runs``,
``metrics``), so this module neither trains nor opens the store itself.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from akp.analysis.common import AnalysisError

__all__ = [
    "BANDS",
    "COMPARE_METRICS",
    "GROUP_BY",
    "Comparison",
    "CurveGroup",
    "gather_comparison",
    "group_curves",
    "group_key",
    "group_summary",
]

# metric column -> human label (the columns of RunStore.metrics).
COMPARE_METRICS: dict[str, str] = {
    "test_acc": "test accuracy",
    "train_acc": "train accuracy",
    "test_loss": "test loss",
    "train_loss": "train loss",
    "gap": "generalization gap (train - test acc)",
}
BANDS: dict[str, str] = {"minmax": "min-max over runs", "sd": "mean ± 1 sd over runs"}
GROUP_BY: dict[str, str] = {"experiment": "experiment · condition", "condition": "condition (pooled over experiments)"}


@dataclass
class CurveGroup:
    """One group's runs and their per-epoch summary.

    Attributes
    ----------
    key : str
        The group's label, e.g. ``"smoke · steady"`` or ``"steady"``.
    runs : list of dict
        The run records in the group (with ``experiment_id`` and ``experiment_name``).
    epochs : ndarray of int
        Epochs where at least one run of the group has a finite value, ascending.
    mean, low, high : ndarray of float
        Per epoch: the mean and the band's lower and upper edge.
    n : ndarray of int
        Per epoch: the number of runs that contribute.
    """

    key: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    epochs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    high: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


@dataclass
class Comparison:
    """Runs of several experiments, ready to plot and to tabulate.

    Attributes
    ----------
    experiments : list of dict
        ``{"id", "name", "spec"}`` per experiment, in the order asked for (spec as a dict).
    runs : list of dict
        Run records with ``experiment_id`` and ``experiment_name`` added.
    metrics : dict
        run_id -> per-epoch rows (as from ``RunStore.metrics``).
    """

    experiments: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    metrics: dict[str, list[dict[str, Any]]]


def _check_choice(name: str, value: str, allowed: Mapping[str, str]) -> None:
    if value not in allowed:
        raise AnalysisError.at(name, f"unknown {value!r}; allowed: {', '.join(allowed)}")


def gather_comparison(store: Any, experiment_ids: Sequence[str], *,
                      conditions: Sequence[str] | None = None) -> Comparison:
    """Read the runs, metrics and specs of several experiments.

    Parameters
    ----------
    store : RunStore-like
        Has ``experiment(id)`` (with ``name`` and ``spec``), ``runs(id)`` and ``metrics(run_id)``.
    experiment_ids : sequence of str
        Experiments to compare, in display order; duplicates are dropped.
    conditions : sequence of str, optional
        Keep only runs of these condition names (default: all).

    Returns
    -------
    Comparison

    Raises
    ------
    AnalysisError
        If ``experiment_ids`` is empty.
    """
    ids = list(dict.fromkeys(experiment_ids))
    if not ids:
        raise AnalysisError.at("experiments", "choose at least one experiment")
    wanted = set(conditions) if conditions else None
    experiments, runs, metrics = [], [], {}
    for eid in ids:
        record = store.experiment(eid)
        experiments.append({"id": eid, "name": record["name"], "spec": record["spec"]})
        for run in store.runs(eid):
            if wanted is not None and run["condition"] not in wanted:
                continue
            run = {**run, "experiment_id": eid, "experiment_name": record["name"]}
            runs.append(run)
            if run.get("epochs_done"):
                metrics[run["run_id"]] = store.metrics(run["run_id"])
    return Comparison(experiments=experiments, runs=runs, metrics=metrics)


def group_key(run: Mapping[str, Any], by: str = "experiment") -> str:
    """The label of the group a run belongs to.

    Parameters
    ----------
    run : mapping
        A run record with ``condition`` (and ``experiment_name`` for ``by="experiment"``).
    by : {"experiment", "condition"}

    Returns
    -------
    str
    """
    _check_choice("by", by, GROUP_BY)
    if by == "condition":
        return str(run["condition"])
    return f"{run.get('experiment_name', run.get('experiment_id', '?'))} · {run['condition']}"


def _value(row: Mapping[str, Any], metric: str) -> float | None:
    v = row.get(metric)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def group_curves(runs: Sequence[Mapping[str, Any]], metrics: Mapping[str, Sequence[Mapping[str, Any]]], *,
                 metric: str = "test_acc", by: str = "experiment", band: str = "minmax") -> list[CurveGroup]:
    """Group runs and summarise each group per epoch by a mean and a band.

    At each epoch, only the runs with a finite value there count (a cancelled
    run stops contributing after its last epoch; ``n`` says how many did).

    Parameters
    ----------
    runs : sequence of dict
        Run records (``run_id``, ``condition``, ``experiment_name``).
    metrics : mapping
        run_id -> per-epoch rows with ``epoch`` and ``metric``.
    metric : str
        A key of :data:`COMPARE_METRICS`.
    by : {"experiment", "condition"}
        See :func:`group_key`.
    band : {"minmax", "sd"}
        ``"minmax"``: the band spans the runs' minimum to maximum; ``"sd"``:
        mean ± the sample standard deviation (``ddof=1``; 0 for one run).

    Returns
    -------
    list of CurveGroup
        In order of first appearance in ``runs``; groups without any value keep empty arrays.

    Raises
    ------
    AnalysisError
        If ``metric``, ``by`` or ``band`` is unknown.
    """
    _check_choice("metric", metric, COMPARE_METRICS)
    _check_choice("band", band, BANDS)
    groups: dict[str, CurveGroup] = {}
    for run in runs:
        key = group_key(run, by)
        groups.setdefault(key, CurveGroup(key=key)).runs.append(dict(run))
    for group in groups.values():
        per_epoch: dict[int, list[float]] = {}
        for run in group.runs:
            for row in metrics.get(run["run_id"]) or []:
                v = _value(row, metric)
                if v is not None:
                    per_epoch.setdefault(int(row["epoch"]), []).append(v)
        epochs = sorted(per_epoch)
        values = [np.asarray(per_epoch[e], dtype=np.float64) for e in epochs]
        group.epochs = np.asarray(epochs, dtype=int)
        group.n = np.asarray([len(v) for v in values], dtype=int)
        group.mean = np.asarray([v.mean() for v in values], dtype=np.float64)
        if band == "minmax":
            group.low = np.asarray([v.min() for v in values], dtype=np.float64)
            group.high = np.asarray([v.max() for v in values], dtype=np.float64)
        else:
            sd = np.asarray([v.std(ddof=1) if len(v) > 1 else 0.0 for v in values], dtype=np.float64)
            group.low, group.high = group.mean - sd, group.mean + sd
    return list(groups.values())


def group_summary(groups: Sequence[CurveGroup]) -> list[dict[str, Any]]:
    """One row per group at its last epoch: runs, epoch, mean, band edges.

    Parameters
    ----------
    groups : sequence of CurveGroup

    Returns
    -------
    list of dict
        ``{"group", "runs", "last epoch", "mean", "low", "high", "runs at last epoch"}``;
        the numbers are None for a group without values.
    """
    rows = []
    for g in groups:
        has = bool(len(g.epochs))
        rows.append({"group": g.key, "runs": len(g.runs),
                     "last epoch": int(g.epochs[-1]) if has else None,
                     "runs at last epoch": int(g.n[-1]) if has else 0,
                     "mean": float(g.mean[-1]) if has else None,
                     "low": float(g.low[-1]) if has else None,
                     "high": float(g.high[-1]) if has else None})
    return rows
