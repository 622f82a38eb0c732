"""Overlaid training curves of runs from several experiments, grouped with a mean line and a band.

Pure functions: :class:`akp.analysis.compare.CurveGroup` objects and per-epoch
metrics in, a plotly figure out. Each group is drawn as a shaded band
(min-max or ± 1 sd, as the groups were computed), a thick mean line and one
thin line per run; hovering a run's line shows its run id, seed, epoch and
value. Clicking a group's legend entry hides or shows all of its traces.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative

from akp.analysis.compare import BANDS, COMPARE_METRICS, CurveGroup

__all__ = ["COLOR_BY", "comparison_figure", "seed_colors"]

COLOR_BY: dict[str, str] = {"group": "one colour per group", "seed": "one colour per seed (same seed, same colour)"}
GROUP_PALETTE = qualitative.Plotly + qualitative.D3
SEED_PALETTE = qualitative.Dark24
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _rgba(color: str, alpha: float) -> str:
    if color.startswith("#"):
        r, g, b = hex_to_rgb(color)
    else:  # "rgb(r, g, b)"
        r, g, b = (int(float(x)) for x in color[color.index("(") + 1:color.index(")")].split(",")[:3])
    return f"rgba({r},{g},{b},{alpha})"


def _text(value: Any) -> str:
    """User text (experiment and condition names) made literal for plotly's pseudo-HTML and hover templates."""
    return html.escape(str(value)).replace("{", "&#123;").replace("}", "&#125;")


def seed_colors(seeds: Sequence[Any]) -> dict[Any, str]:
    """A colour per seed, stable in sorted seed order (seed 0 is always the first colour)."""
    return {s: SEED_PALETTE[i % len(SEED_PALETTE)] for i, s in enumerate(sorted(set(seeds), key=str))}


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def comparison_figure(groups: Sequence[CurveGroup], metrics: Mapping[str, Sequence[Mapping[str, Any]]], *,
                      metric: str = "test_acc", band: str = "minmax", color_by: str = "group",
                      show_runs: bool = True, height: int = 480) -> go.Figure:
    """One panel of curves: per group a band, a mean line and (optionally) one line per run.

    Parameters
    ----------
    groups : sequence of CurveGroup
        From :func:`akp.analysis.compare.group_curves` (computed with the same ``metric`` and ``band``).
    metrics : mapping
        run_id -> per-epoch rows (for the runs' own lines).
    metric : str
        A key of :data:`akp.analysis.compare.COMPARE_METRICS`.
    band : {"minmax", "sd"}
        Only names the band in the legend and hover; the groups hold its values.
    color_by : {"group", "seed"}
        Runs' lines in their group's colour, or in their seed's colour (the
        mean and band always take the group's colour).
    show_runs : bool
        Draw each run's own line.
    height : int
        Figure height in pixels.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    ValueError
        If ``metric``, ``band`` or ``color_by`` is unknown.
    """
    for name, value, allowed in (("metric", metric, COMPARE_METRICS), ("band", band, BANDS),
                                 ("color_by", color_by, COLOR_BY)):
        if value not in allowed:
            raise ValueError(f"{name}: unknown {value!r}; allowed: {', '.join(allowed)}")
    fig = go.Figure()
    label = COMPARE_METRICS[metric]
    if not any(len(g.epochs) for g in groups):
        fig.add_annotation(text="No finished epochs to compare yet", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
        fig.update_layout(height=220, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
        return fig
    seeds = seed_colors([r["seed"] for g in groups for r in g.runs])
    experiments = list(dict.fromkeys(r.get("experiment_id") for g in groups for r in g.runs))
    max_epoch = 0
    for i, group in enumerate(groups):
        if not len(group.epochs):
            continue
        color = GROUP_PALETTE[i % len(GROUP_PALETTE)]
        epochs = [int(e) for e in group.epochs]
        key = _text(group.key)
        max_epoch = max(max_epoch, epochs[-1])
        # The band: upper edge, then lower edge filled up to it.
        fig.add_trace(go.Scatter(x=epochs, y=list(group.high), mode="lines", line={"width": 0}, hoverinfo="skip",
                                 legendgroup=group.key, showlegend=False, name=f"{key} · band"))
        fig.add_trace(go.Scatter(
            x=epochs, y=list(group.low), mode="lines", line={"width": 0}, fill="tonexty",
            fillcolor=_rgba(color, 0.18), legendgroup=group.key, showlegend=False, hoverinfo="skip",
            name=f"{key} · {BANDS[band]}"))
        fig.add_trace(go.Scatter(
            x=epochs, y=list(group.mean), mode="lines+markers", name=f"{key} (n={len(group.runs)})",
            legendgroup=group.key, line={"color": color, "width": 3}, marker={"size": 6},
            customdata=[[lo, hi, int(n)] for lo, hi, n in zip(group.low, group.high, group.n, strict=True)],
            hovertemplate=(f"<b>{key}</b> mean<br>epoch %{{x}}<br>{label} %{{y:.4f}}<br>"
                           f"{BANDS[band]}: %{{customdata[0]:.4f}} to %{{customdata[1]:.4f}}<br>"
                           "runs %{customdata[2]}<extra></extra>")))
        if not show_runs:
            continue
        for run in sorted(group.runs, key=lambda r: (str(r.get("experiment_id")), str(r["seed"]))):
            rows = metrics.get(run["run_id"]) or []
            xs = [int(m["epoch"]) for m in rows]
            ys = [_finite(m.get(metric)) for m in rows]
            if not any(y is not None for y in ys):
                continue
            run_color = seeds[run["seed"]] if color_by == "seed" else color
            # Pooled groups mix experiments: the dash tells a run's experiment apart.
            dash = _DASHES[experiments.index(run.get("experiment_id")) % len(_DASHES)]
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", legendgroup=group.key, showlegend=False,
                name=f"{key} · seed {run['seed']}", opacity=0.75 if color_by == "seed" else 0.55,
                line={"color": run_color, "width": 1.2, "dash": dash},
                customdata=[[run["run_id"], run["seed"]]] * len(xs),
                hovertemplate=(f"{key}<br>run %{{customdata[0]}}<br>seed %{{customdata[1]}}<br>"
                               f"epoch %{{x}}<br>{label} %{{y:.4f}}<extra></extra>")))
    fig.update_xaxes(title_text="epoch", range=[-0.3, max(max_epoch, 1) + 0.3], dtick=max(1, (max_epoch + 1) // 10))
    fig.update_yaxes(title_text=label)
    if metric in ("test_acc", "train_acc"):
        fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(template="plotly_white", height=height, hovermode="closest",
                      margin={"l": 50, "r": 20, "t": 30, "b": 40},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0,
                              "title": {"text": f"mean line, band = {BANDS[band]}"}})
    return fig
