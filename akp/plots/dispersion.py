"""Figures of dispersion and convergence: routes over epochs, the untrained floor, PCoA with family centres.

Pure functions like :mod:`akp.plots.analysis`: data in, a
:class:`plotly.graph_objects.Figure` out; the numbers come from
:mod:`akp.analysis` (:func:`~akp.analysis.route_convergence`,
:func:`~akp.analysis.cka_floor`, :func:`~akp.analysis.family_pcoa`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from akp.plots.analysis import (
    FAMILY_COLORS,
    FAMILY_ORDER,
    _check_coords,
    _family,
    _family_groups,
    _hover,
    _symbols,
)

__all__ = ["FLOOR_COLOR", "add_floor_line", "mark_floor_on_heatmap", "pcoa_figure", "route_convergence_figure"]

FLOOR_COLOR = "#444444"
# Dash styles cycle over the routes of one family, so routes of a family stay apart in one colour.
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
_TEMPLATE = "plotly_white"


def _floor_text(floor: float) -> str:
    return f"untrained floor {floor:.3f}"


def route_convergence_figure(epochs: Sequence[int], by_route: Mapping[str, Mapping[str, Any]], *,
                             floor: float | None = None, value_label: str = "mean CKA between seeds",
                             title: str = "Convergence within routes over epochs",
                             swap_epochs: Sequence[int] = ()) -> go.Figure:
    """One line per route (condition within family) over epochs, with the untrained floor as a reference line.

    Parameters
    ----------
    epochs : sequence of int
        The x values shared by every route; -1 is drawn as "untrained".
    by_route : mapping
        Route name -> ``{"family", "mean"}`` with one mean per epoch (NaN: a gap),
        as :func:`akp.analysis.route_series` returns.
    floor : float, optional
        Mean CKA between untrained networks, drawn as a horizontal dashed line
        (skipped when None or NaN).
    value_label : str
        Axis title.
    title : str
    swap_epochs : sequence of int
        Epochs with a swap event, marked with dotted vertical lines.

    Returns
    -------
    Figure
        One line trace per route, named by the route, happy routes first,
        coloured by family.

    Raises
    ------
    ValueError
        If a route's ``mean`` does not hold one value per epoch.
    """
    x = [int(e) for e in epochs]
    fig = go.Figure()
    for fam in FAMILY_ORDER:
        names = [n for n, s in by_route.items() if _family(s) == fam]
        for k, name in enumerate(names):
            mean = np.asarray(by_route[name]["mean"], dtype=np.float64)
            if mean.shape[0] != len(x):
                raise ValueError(f"by_route[{name!r}]['mean']: must hold one value per epoch ({len(x)})")
            fig.add_trace(go.Scatter(
                x=x, y=np.where(np.isfinite(mean), mean, None), mode="lines+markers", name=name,
                line={"color": FAMILY_COLORS[fam], "width": 3, "dash": _DASHES[k % len(_DASHES)]},
                hovertemplate=f"{name}<br>epoch %{{x}}<br>{value_label}: %{{y:.3f}}<extra></extra>"))
    add_floor_line(fig, floor)
    for e in sorted({int(v) for v in swap_epochs}):
        fig.add_vline(x=e, line_dash="dot", line_color="#777")
    fig.update_layout(title=title, template=_TEMPLATE, xaxis_title="epoch (−1 = untrained)",
                      yaxis_title=value_label, legend_title="route")
    if len(x) <= 20:
        fig.update_xaxes(tickmode="array", tickvals=x,
                         ticktext=["untrained" if e == -1 else str(e) for e in x])
    return fig


def add_floor_line(fig: go.Figure, floor: float | None) -> go.Figure:
    """Draw the untrained floor as a dashed horizontal line on a figure with CKA on the y axis.

    Parameters
    ----------
    fig : Figure
        E.g. :func:`akp.plots.analysis.convergence_figure`.
    floor : float, optional
        Mean CKA between untrained networks; None or NaN draws nothing.

    Returns
    -------
    Figure
        ``fig`` itself, changed in place.
    """
    if floor is not None and math.isfinite(floor):
        fig.add_hline(y=float(floor), line_dash="dash", line_color=FLOOR_COLOR, name="untrained floor",
                      annotation_text=_floor_text(floor), annotation_position="bottom right")
    return fig


def mark_floor_on_heatmap(fig: go.Figure, floor: float | None) -> go.Figure:
    """Mark the untrained floor on a CKA heatmap's colour scale (e.g. :func:`akp.plots.analysis.cka_heatmap`).

    The colour range is widened to include the floor when it lies below it,
    and the colour bar gets a tick labelled with the floor among ticks at
    every tenth, so a reader sees which cells lie above the floor.

    Parameters
    ----------
    fig : Figure
        Holding one ``Heatmap`` trace (the first is used).
    floor : float, optional
        Mean CKA between untrained networks; None or NaN leaves ``fig`` as it is.

    Returns
    -------
    Figure
        ``fig`` itself, changed in place.

    Raises
    ------
    ValueError
        If ``fig`` has no heatmap trace.
    """
    heat = next((t for t in fig.data if t.type == "heatmap"), None)
    if heat is None:
        raise ValueError("fig: must hold a heatmap trace")
    if floor is None or not math.isfinite(floor):
        return fig
    zmin = heat.zmin if heat.zmin is not None else 0.0
    zmax = heat.zmax if heat.zmax is not None else 1.0
    zmin = min(float(zmin), math.floor(float(floor) * 10.0) / 10.0)
    ticks = [round(v, 1) for v in np.arange(math.ceil(zmin * 10) / 10, zmax + 1e-9, 0.1)]
    ticks = [t for t in ticks if abs(t - floor) > 0.03]  # keep the floor's label readable
    vals = sorted([*ticks, float(floor)])
    text = [f"◀ {_floor_text(floor)}" if v == float(floor) else f"{v:.1f}" for v in vals]
    heat.update(zmin=zmin, colorbar={"tickmode": "array", "tickvals": vals, "ticktext": text})
    return fig


def pcoa_figure(coords: Any, records: Sequence[Mapping[str, Any]], centres: Mapping[str, Sequence[float]], *,
                explained: Sequence[float] | None = None,
                title: str = "PCoA of the runs with family centres") -> go.Figure:
    """Runs on the first two principal coordinates, coloured by family, each family's centre marked.

    Parameters
    ----------
    coords : array-like of shape (n, 2)
        As :attr:`akp.analysis.Ordination.coords`, in the order of ``records``.
    records : sequence of mapping
        Run records with ``family``, ``condition``, ``seed``.
    centres : mapping
        Family -> (x, y) centre.
    explained : sequence of two float, optional
        Share of variation per axis, shown in the axis titles.
    title : str

    Returns
    -------
    Figure
        Per family present (in family order) a marker trace named by the
        family; then one trace ``"<family> centre"`` per centre; each run is
        joined to its family's centre by a thin line (trace ``"<family> spokes"``).

    Raises
    ------
    ValueError
        If ``coords`` is not (n, 2).
    """
    xy = _check_coords(coords, records)
    symbols = _symbols(records)
    fig = go.Figure()
    for fam, idx in _family_groups(records):
        centre = centres.get(fam)
        if centre is not None:  # the spokes are the distances PERMDISP compares
            sx: list[float | None] = []
            sy: list[float | None] = []
            for i in idx:
                sx += [float(centre[0]), float(xy[i, 0]), None]
                sy += [float(centre[1]), float(xy[i, 1]), None]
            fig.add_trace(go.Scatter(x=sx, y=sy, mode="lines", name=f"{fam} spokes", hoverinfo="skip",
                                     showlegend=False, line={"color": FAMILY_COLORS[fam], "width": 1}, opacity=0.4))
        fig.add_trace(go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=fam,
            marker={"color": FAMILY_COLORS[fam], "size": 12, "line": {"width": 1, "color": "white"},
                    "symbol": [symbols[str(records[i]["condition"])] for i in idx]},
            hovertext=[_hover(records[i]) for i in idx], hovertemplate="%{hovertext}<extra></extra>",
            customdata=[records[i].get("run_id") for i in idx]))
    for fam in FAMILY_ORDER:
        if fam in centres:
            cx, cy = (float(v) for v in centres[fam])
            fig.add_trace(go.Scatter(
                x=[cx], y=[cy], mode="markers", name=f"{fam} centre",
                marker={"color": FAMILY_COLORS[fam], "size": 20, "symbol": "x-thin-open", "line": {"width": 4}},
                hovertemplate=f"{fam} centre<extra></extra>"))
    share = list(explained) if explained is not None else []
    axis = [f"PCoA axis {k + 1}" + (f" ({100 * share[k]:.0f}%)" if k < len(share) else "") for k in range(2)]
    fig.update_layout(title=title, template=_TEMPLATE, legend_title="family", xaxis_title=axis[0],
                      yaxis_title=axis[1])
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig
