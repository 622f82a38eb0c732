"""Figures of the analysis pages: families, representations, layers.

Pure functions: data in, :class:`plotly.graph_objects.Figure` out. Nothing here
computes a statistic; the numbers come from :mod:`akp.analysis`,
:mod:`akp.cka` and :mod:`akp.projection`.

Runs are described by *records*: mappings with at least the keys
``run_id``, ``condition``, ``seed``, ``test_acc`` and ``family``
(``"happy"`` or ``"unhappy"``; anything else is drawn as ``"other"``), and
optionally ``gap`` and ``state``. Wherever runs are listed (heatmap axes,
box points, legend), happy runs come first, then unhappy, then the rest;
within a family runs are sorted by condition and seed, so the block
structure of a CKA matrix is visible at a glance.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from akp.plots.labels import place_labels

__all__ = [
    "CATEGORY_COLORS",
    "FAMILY_COLORS",
    "FAMILY_ORDER",
    "accuracy_gap_scatter",
    "cell_image_figure",
    "cka_heatmap",
    "convergence_figure",
    "dispersion_box",
    "family_order",
    "layer_cka_heatmap",
    "model_map_figure",
    "run_label",
]

FAMILY_ORDER = ("happy", "unhappy", "other")
# Colour-blind-safe pair (Okabe-Ito bluish green / vermillion), grey for runs outside both families.
FAMILY_COLORS = {"happy": "#009E73", "unhappy": "#D55E00", "other": "#999999"}
# Okabe-Ito for categorical colourings of points (classes, predictions, correctness).
CATEGORY_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
CORRECTNESS_COLORS = {"correct": "#0072B2", "wrong": "#D55E00"}
# Marker symbols cycle over conditions so a condition is recognisable in every scatter.
CONDITION_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star", "triangle-down",
                     "pentagon", "hexagon")
_TEMPLATE = "plotly_white"


def _family(record: Mapping[str, Any]) -> str:
    fam = record.get("family")
    return fam if fam in ("happy", "unhappy") else "other"


def run_label(record: Mapping[str, Any]) -> str:
    """Short label of a run for axes and legends: ``"condition · s<seed>"``.

    Parameters
    ----------
    record : mapping
        A run record with ``condition`` and ``seed``.

    Returns
    -------
    str
    """
    return f"{record['condition']} · s{record['seed']}"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)}, {alpha})"


def _acc(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3f}"


def family_order(records: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of ``records`` sorted by family (happy, unhappy, other), condition, seed.

    Parameters
    ----------
    records : sequence of mapping
        Run records.

    Returns
    -------
    list of int
        A permutation of ``range(len(records))``; the sort is stable.
    """
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(range(len(records)),
                  key=lambda i: (rank[_family(records[i])], str(records[i]["condition"]), records[i]["seed"]))


def _symbols(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    conditions = list(dict.fromkeys(str(r["condition"]) for r in records))
    return {c: CONDITION_SYMBOLS[i % len(CONDITION_SYMBOLS)] for i, c in enumerate(conditions)}


def _hover(record: Mapping[str, Any]) -> str:
    parts = [f"<b>{record['condition']}</b> · seed {record['seed']}",
             f"family: {_family(record)}", f"test acc: {_acc(record.get('test_acc'))}"]
    if record.get("gap") is not None:
        parts.append(f"generalization gap: {_acc(record.get('gap'))}")
    if record.get("run_id"):
        parts.append(f"run: {record['run_id']}")
    return "<br>".join(parts)


def _family_groups(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[int]]]:
    """(family, indices in :func:`family_order`) for each family present, in family order."""
    order = family_order(records)
    groups = [(fam, [i for i in order if _family(records[i]) == fam]) for fam in FAMILY_ORDER]
    return [(fam, idx) for fam, idx in groups if idx]


def _check_coords(coords: Any, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``coords`` as float64 of shape (n runs, 2); ValueError otherwise."""
    xy = np.asarray(coords, dtype=np.float64)
    if xy.shape != (len(records), 2):
        raise ValueError(f"coords: must be of shape ({len(records)}, 2); got {xy.shape}")
    return xy


def _check_square(matrix: Any, n: int, name: str) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (n, n):
        raise ValueError(f"{name}: must be a ({n}, {n}) matrix, one row per record; got shape {m.shape}")
    return m


def accuracy_gap_scatter(records: Sequence[Mapping[str, Any]], *, threshold: float | None = None,
                         title: str = "Test accuracy vs generalization gap") -> go.Figure:
    """Scatter of test accuracy (x) against generalization gap (y), one trace per family.

    Parameters
    ----------
    records : sequence of mapping
        Run records with ``test_acc`` and ``gap``; records missing either are skipped.
    threshold : float, optional
        The happy/unhappy threshold on test accuracy, drawn as a dashed vertical line.
    title : str

    Returns
    -------
    Figure
        Traces named ``"happy"``, ``"unhappy"`` (and ``"other"``) in that order, only
        for families present; marker symbols distinguish conditions.
    """
    fig = go.Figure()
    symbols = _symbols(records)
    for fam in FAMILY_ORDER:
        rows = [r for r in records if _family(r) == fam and r.get("test_acc") is not None
                and r.get("gap") is not None]
        if not rows:
            continue
        fig.add_trace(go.Scatter(
            x=[float(r["test_acc"]) for r in rows], y=[float(r["gap"]) for r in rows], mode="markers", name=fam,
            marker={"color": FAMILY_COLORS[fam], "size": 11, "line": {"width": 1, "color": "white"},
                    "symbol": [symbols[str(r["condition"])] for r in rows]},
            text=[_hover(r) for r in rows], hovertemplate="%{text}<extra></extra>",
            customdata=[r.get("run_id") for r in rows]))
    if threshold is not None:
        fig.add_vline(x=float(threshold), line_dash="dash", line_color="#555",
                      annotation_text=f"threshold {threshold:.3f}", annotation_position="top")
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="test accuracy",
                      yaxis_title="generalization gap (train − test accuracy)", legend_title="family")
    return fig


def cka_heatmap(matrix: Any, records: Sequence[Mapping[str, Any]], *, value_label: str = "CKA",
                title: str = "CKA between runs (ordered by family)") -> go.Figure:
    """Heatmap of a run-by-run matrix, rows and columns ordered by family.

    Parameters
    ----------
    matrix : array-like of shape (n, n)
        Values between runs in the order of ``records`` (e.g. CKA); NaN is drawn blank.
    records : sequence of mapping
        One run record per row.
    value_label : str
        Name of the value (colour bar, hover).
    title : str

    Returns
    -------
    Figure
        One ``Heatmap`` trace (colour range from the smallest value rounded down to a
        tenth, at most 0.9, up to 1) whose ``x``/``y`` are run labels in family order and
        whose ``customdata`` holds the hover details; family blocks are outlined
        and named above the plot.

    Raises
    ------
    ValueError
        If ``matrix`` is not (n, n) for n records.
    """
    m = _check_square(matrix, len(records), "matrix")
    order = family_order(records)
    ordered = [records[i] for i in order]
    z = m[np.ix_(order, order)]
    labels = [run_label(r) for r in ordered]
    # Make labels unique: plotly merges equal category names.
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        seen[lab] = seen.get(lab, 0) + 1
        if seen[lab] > 1:
            labels[i] = f"{lab} ({seen[lab]})"
    info = [f"{r['condition']} · seed {r['seed']} · {_family(r)} · test acc {_acc(r.get('test_acc'))}"
            for r in ordered]
    custom = np.array([[[info[i], info[j]] for j in range(len(ordered))] for i in range(len(ordered))],
                      dtype=object).reshape(len(ordered), len(ordered), 2)
    # Colour range: up to 1 (identical), down to just below the smallest value, so that the block
    # structure shows even when every run is fairly similar (CKA of related runs is often > 0.8).
    finite = z[np.isfinite(z)]
    zmin = math.floor(float(finite.min()) * 10.0) / 10.0 if finite.size else 0.0
    zmin = min(zmin, 0.9)
    zmax = max(1.0, float(finite.max())) if finite.size else 1.0
    fig = go.Figure(go.Heatmap(
        z=np.where(np.isfinite(z), z, None), x=labels, y=labels, customdata=custom, zmin=zmin, zmax=zmax,
        colorscale="Viridis", colorbar={"title": value_label},
        hovertemplate=("row: %{customdata[0]}<br>column: %{customdata[1]}<br>"
                       + value_label + ": %{z:.3f}<extra></extra>")))
    # Outline each family's block and name it.
    start = 0
    for fam in FAMILY_ORDER:
        size = sum(1 for r in ordered if _family(r) == fam)
        if not size:
            continue
        lo, hi = start - 0.5, start + size - 0.5
        fig.add_shape(type="rect", x0=lo, x1=hi, y0=lo, y1=hi, xref="x", yref="y",
                      line={"color": FAMILY_COLORS[fam], "width": 3}, name=f"family:{fam}")
        fig.add_annotation(x=(lo + hi) / 2, y=1.0, xref="x", yref="paper", yanchor="bottom",
                           text=f"<b>{fam}</b> ({size})", showarrow=False, font={"color": FAMILY_COLORS[fam]})
        start += size
    fig.update_layout(title=title, template=_TEMPLATE, margin={"t": 90})
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-45)
    return fig


def dispersion_box(distances: Any, records: Sequence[Mapping[str, Any]], *,
                   value_label: str = "distance to family centre",
                   title: str = "Dispersion per family") -> go.Figure:
    """Box plot per family of each run's distance to its family centre, every run shown as a point.

    Parameters
    ----------
    distances : array-like of shape (n,)
        Distance of each run (in the order of ``records``) to its family's centre.
    records : sequence of mapping
        One run record per distance.
    value_label : str
        Axis title.
    title : str

    Returns
    -------
    Figure
        One ``Box`` trace per family present, named by family, in family order.

    Raises
    ------
    ValueError
        If the lengths differ.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    if d.shape[0] != len(records):
        raise ValueError(f"distances: must hold one value per record ({len(records)}); got {d.shape[0]}")
    fig = go.Figure()
    for fam in FAMILY_ORDER:
        idx = [i for i in family_order(records) if _family(records[i]) == fam and np.isfinite(d[i])]
        if not idx:
            continue
        fig.add_trace(go.Box(
            y=d[idx], name=fam, boxpoints="all", jitter=0.3, pointpos=0, marker_color=FAMILY_COLORS[fam],
            line_color=FAMILY_COLORS[fam], text=[_hover(records[i]) for i in idx],
            hovertemplate="%{text}<br>" + value_label + ": %{y:.4f}<extra></extra>", boxmean=True))
    fig.update_layout(title=title, template=_TEMPLATE, yaxis_title=value_label, xaxis_title="family",
                      showlegend=False)
    return fig


def model_map_figure(coords: Any, records: Sequence[Mapping[str, Any]], *,
                     title: str = "Model map: runs placed by representation distance") -> go.Figure:
    """Scatter of runs in the plane (e.g. from :func:`akp.projection.model_map`), coloured by family.

    Parameters
    ----------
    coords : array-like of shape (n, 2)
        Position of each run, in the order of ``records``.
    records : sequence of mapping
    title : str

    Returns
    -------
    Figure
        One trace per family present, in family order; symbols distinguish conditions.
        Seed labels sit where they overlap no other label or point
        (:func:`akp.plots.labels.place_labels`); crowded ones are left to the hover.

    Raises
    ------
    ValueError
        If ``coords`` is not (n, 2).
    """
    xy = _check_coords(coords, records)
    symbols = _symbols(records)
    labels = [f"s{r['seed']}" for r in records]
    # Close runs would print their labels on top of each other: each label goes where it is free,
    # or is left out (the hover still names the run).
    positions = place_labels(xy, labels) if np.isfinite(xy).all() else ["top center"] * len(records)
    fig = go.Figure()
    for fam, idx in _family_groups(records):
        fig.add_trace(go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers+text", name=fam,
            text=[labels[i] if positions[i] else "" for i in idx],
            textposition=[positions[i] or "top center" for i in idx],
            marker={"color": FAMILY_COLORS[fam], "size": 14, "line": {"width": 1, "color": "white"},
                    "symbol": [symbols[str(records[i]["condition"])] for i in idx]},
            hovertext=[_hover(records[i]) for i in idx], hovertemplate="%{hovertext}<extra></extra>",
            customdata=[records[i].get("run_id") for i in idx]))
    fig.update_layout(title=title, template=_TEMPLATE, legend_title="family",
                      xaxis_title="map axis 1", yaxis_title="map axis 2")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def convergence_figure(epochs: Sequence[int], by_family: Mapping[str, Mapping[str, Sequence[float]]], *,
                       value_label: str = "mean CKA within family",
                       title: str = "Convergence over epochs",
                       swap_epochs: Sequence[int] = ()) -> go.Figure:
    """Line per family over epochs with a shaded spread band.

    Parameters
    ----------
    epochs : sequence of int
        The x values, shared by every family.
    by_family : mapping
        family -> ``{"mean": [...], "lo": [...], "hi": [...]}``, one value per epoch
        (``lo``/``hi`` optional: the band is drawn when both are given).
    value_label : str
        Axis title.
    title : str
    swap_epochs : sequence of int
        Epochs with a swap event, marked with dotted vertical lines.

    Returns
    -------
    Figure
        Per family present (in family order): a band trace named ``"<family> spread"``
        (when given) then a line trace named ``"<family>"``.
    """
    x = [int(e) for e in epochs]
    fig = go.Figure()
    for fam in FAMILY_ORDER:
        series = by_family.get(fam)
        if not series:
            continue
        color = FAMILY_COLORS[fam]
        mean = np.asarray(series["mean"], dtype=np.float64)
        if mean.shape[0] != len(x):
            raise ValueError(f"by_family[{fam!r}]['mean']: must hold one value per epoch ({len(x)})")
        lo, hi = series.get("lo"), series.get("hi")
        if lo is not None and hi is not None:
            lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
            fig.add_trace(go.Scatter(
                x=x + x[::-1], y=np.concatenate([hi_a, lo_a[::-1]]), fill="toself", fillcolor=_rgba(color, 0.2),
                mode="lines", line={"width": 0}, name=f"{fam} spread", hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=fam, line={"color": color, "width": 3},
                                 hovertemplate=f"{fam}<br>epoch %{{x}}<br>{value_label}: %{{y:.3f}}<extra></extra>"))
    for e in sorted(set(int(v) for v in swap_epochs)):
        fig.add_vline(x=e, line_dash="dot", line_color="#777")
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="epoch", yaxis_title=value_label,
                      legend_title="family")
    if len(x) <= 20:
        fig.update_xaxes(tickmode="array", tickvals=x)
    return fig


def layer_cka_heatmap(matrix: Any, layers_a: Sequence[str], layers_b: Sequence[str], *,
                      name_a: str = "run A", name_b: str = "run B", value_label: str = "CKA",
                      title: str = "Layer-by-layer CKA") -> go.Figure:
    """Heatmap of CKA between every layer of run A (rows) and every layer of run B (columns).

    Parameters
    ----------
    matrix : array-like of shape (len(layers_a), len(layers_b))
    layers_a, layers_b : sequence of str
        Layer names, input to output.
    name_a, name_b : str
        Run labels for the axis titles.
    value_label : str
    title : str

    Returns
    -------
    Figure
        One ``Heatmap`` trace with the values printed in the cells.

    Raises
    ------
    ValueError
        If the shape does not match the layer lists.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (len(layers_a), len(layers_b)):
        raise ValueError(f"matrix: must be of shape ({len(layers_a)}, {len(layers_b)}); got {m.shape}")
    finite = m[np.isfinite(m)]
    zmin = min(math.floor(float(finite.min()) * 10.0) / 10.0, 0.9) if finite.size else 0.0
    text = [["n/a" if not np.isfinite(v) else f"{v:.2f}" for v in row] for row in m]
    fig = go.Figure(go.Heatmap(
        z=np.where(np.isfinite(m), m, None), x=list(layers_b), y=list(layers_a), zmin=zmin, zmax=1.0,
        colorscale="Viridis", colorbar={"title": value_label}, text=text, texttemplate="%{text}",
        hovertemplate=f"{name_a}: %{{y}}<br>{name_b}: %{{x}}<br>{value_label}: %{{z:.3f}}<extra></extra>"))
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title=f"{name_b} layer",
                      yaxis_title=f"{name_a} layer")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return fig


def cell_image_figure(image: Any, *, title: str = "") -> go.Figure:
    """A probe image as a figure: grey-scale heatmap for one channel, RGB image for three.

    Parameters
    ----------
    image : array-like of shape (C, H, W) or (H, W), values in [0, 1]
    title : str

    Returns
    -------
    Figure
        One ``Heatmap`` (grey) or ``Image`` (RGB) trace, square pixels, no axes.

    Raises
    ------
    ValueError
        If the shape is not an image's.
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        trace: go.BaseTraceType = go.Heatmap(z=a, colorscale="gray", zmin=0.0, zmax=1.0, showscale=False,
                                             hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>")
    elif a.ndim == 3 and a.shape[0] == 3:
        trace = go.Image(z=np.clip(np.moveaxis(a, 0, -1), 0.0, 1.0) * 255.0)
    else:
        raise ValueError(f"image: must be of shape (1, H, W), (3, H, W) or (H, W); got {a.shape}")
    fig = go.Figure(trace)
    fig.update_layout(title=title, template=_TEMPLATE, height=260, width=260,
                      margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return fig
