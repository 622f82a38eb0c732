"""Figures of training: curves per condition with swap events, schedule timelines, final accuracy.

Pure functions: plain data in (run records, per-epoch metrics, swap events,
schedules), a plotly figure out. Epochs are 0-based everywhere, as in
:mod:`akp.schedule`: a swap event at epoch ``e`` applies at the start of epoch
``e``, so it is drawn as a vertical marker at ``e - 0.5``, between the last
epoch trained with the old functions and the first with the new ones.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from akp.schedule import SwapSchedule
from akp.swaps import ACTIVATIONS, LOSSES

__all__ = [
    "CURVE_METRICS",
    "condition_colors",
    "event_label",
    "final_accuracy_figure",
    "metrics_table",
    "schedule_segments",
    "schedule_timeline",
    "training_curves",
]

# metric key -> (y-axis title, (train column, test column)); "gap" has a single series.
CURVE_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "accuracy": ("accuracy", ("train_acc", "test_acc")),
    "loss": ("loss", ("train_loss", "test_loss")),
    "gap": ("generalization gap (train - test acc)", ("gap",)),
}
_SPLIT_NAMES = {"train_acc": "train", "test_acc": "test", "train_loss": "train", "test_loss": "test", "gap": "gap"}
_DASH = {"train": "dot", "test": "solid", "gap": "solid"}
PALETTE = qualitative.Plotly + qualitative.D3
# Every activation and loss keeps one colour on every timeline, whatever the conditions shown, so an edit of one
# condition never recolours the others: activations from Bold (11 colours), losses from Set2 (8), none near white.
FUNCTION_COLORS = ({name: qualitative.Bold[i % len(qualitative.Bold)] for i, name in enumerate(sorted(ACTIVATIONS))}
                   | {name: qualitative.Set2[i % len(qualitative.Set2)] for i, name in enumerate(sorted(LOSSES))})


def condition_colors(conditions: Sequence[str]) -> dict[str, str]:
    """A stable colour per condition, in the given order.

    Parameters
    ----------
    conditions : sequence of str

    Returns
    -------
    dict
        condition -> CSS colour.
    """
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(dict.fromkeys(conditions))}


def event_label(event: Mapping[str, Any]) -> str:
    """Short text of a swap event, e.g. ``"→ sigmoid, mse"``."""
    parts = [p for p in (event.get("activation"), event.get("loss")) if p]
    return "→ " + ", ".join(parts) if parts else "swap"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def training_curves(
    runs: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Sequence[Mapping[str, Any]]],
    events: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    *,
    metric: str = "accuracy",
    epochs: int | None = None,
    columns: int = 3,
    height_per_row: int = 280,
) -> go.Figure:
    """Training and test curves, one panel per condition, swap events as vertical markers.

    Seeds of one condition are drawn as one trace per split (train dotted,
    test solid), separated by gaps, so a figure of 100 runs stays light.

    Parameters
    ----------
    runs : sequence of dict
        Run records with at least run_id, condition, seed (as from ``RunStore.runs``).
    metrics : mapping
        run_id -> per-epoch rows (epoch, train_loss, train_acc, test_loss, test_acc, gap, ...).
        Runs without rows are skipped.
    events : mapping, optional
        run_id -> swap events (epoch, activation, loss). A condition's markers
        are the union over its runs (the schedule is the same for all seeds).
    metric : {"accuracy", "loss", "gap"}
        Which curves to draw.
    epochs : int, optional
        Training budget, to fix the x range (default: from the data).
    columns : int
        Panels per row.
    height_per_row : int
        Figure height per row of panels, in pixels.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    ValueError
        If ``metric`` is unknown.
    """
    if metric not in CURVE_METRICS:
        raise ValueError(f"metric: unknown {metric!r}; allowed: {', '.join(CURVE_METRICS)}")
    y_title, series = CURVE_METRICS[metric]
    events = events or {}
    conditions = list(dict.fromkeys(r["condition"] for r in runs))
    colors = condition_colors(conditions)
    if not conditions:
        fig = go.Figure()
        fig.add_annotation(text="No runs yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_layout(height=220, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
        return fig
    cols = max(1, min(columns, len(conditions)))
    rows = math.ceil(len(conditions) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=conditions, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=min(0.12, 0.3 / rows))
    by_condition: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for run in runs:
        by_condition[run["condition"]].append(run)
    max_epoch = (epochs - 1) if epochs else 0
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for i, cond in enumerate(conditions):
        row, col = i // cols + 1, i % cols + 1
        cond_events: dict[int, Mapping[str, Any]] = {}
        for column in series:
            split = _SPLIT_NAMES[column]
            xs: list[float | None] = []
            ys: list[float | None] = []
            seeds: list[Any] = []
            for run in sorted(by_condition[cond], key=lambda r: r["seed"]):
                rows_ = metrics.get(run["run_id"]) or []
                if not rows_:
                    continue
                for m in rows_:
                    xs.append(m["epoch"])
                    ys.append(_finite(m.get(column)))
                    seeds.append(run["seed"])
                    max_epoch = max(max_epoch, int(m["epoch"]))
                xs.append(None)  # a gap between seeds
                ys.append(None)
                seeds.append(None)
            if not xs:
                continue
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines+markers", name=f"{cond} · {split}", legendgroup=cond,
                line={"color": colors[cond], "dash": _DASH[split], "width": 1.6}, marker={"size": 4},
                customdata=seeds, connectgaps=False,
                hovertemplate=f"{cond} · {split}<br>seed %{{customdata}}<br>epoch %{{x}}<br>"
                              f"{column} %{{y:.4f}}<extra></extra>",
            ), row=row, col=col)
        for run in by_condition[cond]:
            for ev in events.get(run["run_id"]) or []:
                cond_events.setdefault(int(ev["epoch"]), ev)
        axis = "" if i == 0 else str(i + 1)  # make_subplots numbers a regular grid's axes row by row
        for k, (epoch, ev) in enumerate(sorted(cond_events.items())):
            # Plain layout dicts, added once below: fig.add_vline costs ~0.1 s per call on a 10-panel figure.
            x = epoch - 0.5
            shapes.append({"type": "line", "xref": f"x{axis}", "yref": f"y{axis} domain", "x0": x, "x1": x,
                           "y0": 0, "y1": 1, "line": {"color": "#888", "dash": "dash", "width": 1}})
            # Labels of nearby events are staggered in three rows so that they do not overprint.
            notes.append({"xref": f"x{axis}", "yref": f"y{axis} domain", "x": x, "y": 1 - 0.05 * (k % 3),
                          "bgcolor": "rgba(255,255,255,0.85)",
                          "xanchor": "left",
                          "yanchor": "top", "showarrow": False, "font": {"size": 10, "color": "#555"},
                          "text": f"e{epoch} {event_label(ev)}"})
    fig.update_layout(shapes=shapes, annotations=list(fig.layout.annotations) + notes)
    fig.update_xaxes(title_text="epoch", range=[-0.6, max(max_epoch, 1) + 0.4], dtick=max(1, (max_epoch + 1) // 10))
    if metric == "accuracy":
        # Head-room above 1 keeps the swap-event labels clear of the curves.
        fig.update_yaxes(range=[0, 1.2], tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
    fig.update_yaxes(title_text=y_title, col=1)
    # The legend goes below the x-axis titles: ~70 px under the plot area whatever the figure's height.
    height = 80 + height_per_row * rows
    fig.update_layout(template="plotly_white", height=height + 60,
                      margin={"l": 50, "r": 20, "t": 50, "b": 100},
                      legend={"orientation": "h", "yanchor": "top", "y": -70 / (height - 90),
                              "groupclick": "toggleitem"})
    return fig


def schedule_segments(schedule: SwapSchedule, epochs: int) -> dict[str, list[tuple[int, int, str]]]:
    """Which activation and loss are in force over the epochs, as contiguous segments.

    Parameters
    ----------
    schedule : SwapSchedule
    epochs : int
        Training budget (events at or past it are ignored).

    Returns
    -------
    dict
        ``{"activation": [(start, end_exclusive, name), ...], "loss": [...]}``.
    """
    out: dict[str, list[tuple[int, int, str]]] = {"activation": [], "loss": []}
    for epoch in range(max(0, epochs)):
        active = dict(zip(("activation", "loss"), schedule.active_at(epoch), strict=True))
        for kind, name in active.items():
            segs = out[kind]
            if segs and segs[-1][2] == name and segs[-1][1] == epoch:
                segs[-1] = (segs[-1][0], epoch + 1, name)
            else:
                segs.append((epoch, epoch + 1, name))
    return out


def schedule_timeline(schedules: Sequence[SwapSchedule], epochs: int) -> go.Figure:
    """A timeline of which activation and loss are active per epoch, for each condition.

    Parameters
    ----------
    schedules : sequence of SwapSchedule
        The conditions, drawn top to bottom.
    epochs : int
        Training budget.

    Returns
    -------
    plotly.graph_objects.Figure
        One horizontal bar row per condition and kind (activation, loss),
        coloured by function name (:data:`FUNCTION_COLORS`, the same on every
        timeline); swap events are marked with their epoch.
    """
    fig = go.Figure()
    fn_colors = FUNCTION_COLORS
    shown: set[str] = set()
    categories: list[str] = []
    for sched in schedules:
        segs = schedule_segments(sched, epochs)
        for kind in ("activation", "loss"):
            label = f"{sched.name} · {kind}"
            categories.append(label)
            for start, end, name in segs[kind]:
                fig.add_trace(go.Bar(
                    x=[end - start], base=[start - 0.5], y=[label], orientation="h", name=name,
                    legendgroup=name, showlegend=name not in shown, marker={"color": fn_colors[name],
                                                                             "line": {"color": "white", "width": 1}},
                    text=[name], textposition="inside", insidetextanchor="middle",
                    hovertemplate=f"{label}<br>{name}: epochs {start}–{end - 1}<extra></extra>",
                ))
                shown.add(name)
    swap_epochs = sorted({ev.epoch for sched in schedules for ev in sched.events if ev.epoch < epochs})
    fig.update_layout(shapes=[{"type": "line", "xref": "x", "yref": "paper", "x0": e - 0.5, "x1": e - 0.5,
                               "y0": 0, "y1": 1, "line": {"color": "#444", "dash": "dot", "width": 1}}
                              for e in swap_epochs])
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(categories)), title_text=None)
    fig.update_xaxes(title_text="epoch", range=[-0.5, max(epochs, 1) - 0.5], dtick=max(1, epochs // 20), showgrid=True)
    fig.update_layout(barmode="overlay", template="plotly_white", height=90 + 34 * max(1, len(categories)),
                      margin={"l": 10, "r": 10, "t": 30, "b": 40}, bargap=0.25,
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                      uniformtext={"minsize": 8, "mode": "hide"})
    return fig


def metrics_table(runs: Sequence[Mapping[str, Any]],
                  metrics: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """Per-epoch metrics of many runs as one long table (for CSV export).

    Parameters
    ----------
    runs : sequence of dict
        Run records (run_id, condition, seed, ...).
    metrics : mapping
        run_id -> per-epoch rows.

    Returns
    -------
    pandas.DataFrame
        Columns run_id, condition, seed, then the metric columns.
    """
    rows = [{"run_id": r["run_id"], "condition": r["condition"], "seed": r["seed"], **m}
            for r in runs for m in metrics.get(r["run_id"]) or []]
    columns = ["run_id", "condition", "seed", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "gap",
               "activation", "loss"]
    return pd.DataFrame(rows, columns=columns)


def final_accuracy_figure(runs: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Final test accuracy of each finished run, one strip per condition.

    Parameters
    ----------
    runs : sequence of dict
        Run records with condition, seed, state, test_acc.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    conditions = list(dict.fromkeys(r["condition"] for r in runs))
    colors = condition_colors(conditions)
    fig = go.Figure()
    for cond in conditions:
        pts = [r for r in runs if r["condition"] == cond and r.get("test_acc") is not None]
        if not pts:
            continue
        fig.add_trace(go.Box(
            y=[r["test_acc"] for r in pts], x=[cond] * len(pts), name=cond, boxpoints="all", jitter=0.4,
            pointpos=0, marker={"color": colors[cond], "size": 7}, line={"color": colors[cond]},
            fillcolor="rgba(0,0,0,0)", customdata=[[r["seed"], r["state"]] for r in pts],
            hovertemplate=f"{cond}<br>seed %{{customdata[0]}} (%{{customdata[1]}})<br>"
                          "test acc %{y:.4f}<extra></extra>",
        ))
    fig.update_layout(template="plotly_white", height=320, showlegend=False,
                      margin={"l": 50, "r": 20, "t": 30, "b": 40}, yaxis_title="final test accuracy",
                      yaxis_range=[0, 1.02])
    return fig
