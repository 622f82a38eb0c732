"""Tests of akp.plots.training: the figures hold exactly the data given, events are where they belong."""
from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

import akp.plots as plots
from akp.plots.training import (
    condition_colors,
    event_label,
    final_accuracy_figure,
    metrics_table,
    schedule_segments,
    schedule_timeline,
    training_curves,
)
from akp.schedule import PRESETS, SwapEvent, SwapSchedule


def _rows(n_epochs: int, offset: float = 0.0) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / (e + 1), "train_acc": 0.5 + 0.1 * e + offset,
             "test_loss": 1.2 / (e + 1), "test_acc": 0.45 + 0.1 * e + offset, "gap": 0.05,
             "activation": "relu", "loss": "cross_entropy"} for e in range(n_epochs)]


RUNS = [
    {"run_id": "r0", "condition": "steady", "seed": 0, "state": "done", "test_acc": 0.75},
    {"run_id": "r1", "condition": "steady", "seed": 1, "state": "done", "test_acc": 0.8},
    {"run_id": "r2", "condition": "shock", "seed": 0, "state": "diverged", "test_acc": 0.5},
    {"run_id": "r3", "condition": "shock", "seed": 1, "state": "queued", "test_acc": None},
]
METRICS = {"r0": _rows(4), "r1": _rows(4, 0.01), "r2": _rows(3)}
EVENTS = {"r2": [{"epoch": 2, "activation": "sigmoid", "loss": "mse"}], "r3": []}


def test_training_curves_one_trace_per_condition_and_split() -> None:
    fig = training_curves(RUNS, METRICS, EVENTS, metric="accuracy", epochs=4)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names == ["steady · train", "steady · test", "shock · train", "shock · test"]
    steady_test = fig.data[1]
    # Two seeds separated by a gap; values are exactly the metrics given.
    assert list(steady_test.x) == [0, 1, 2, 3, None, 0, 1, 2, 3, None]
    expected = [0.45 + 0.1 * e for e in range(4)] + [None] + [0.46 + 0.1 * e for e in range(4)] + [None]
    assert len(steady_test.y) == len(expected)
    for got, want in zip(steady_test.y, expected, strict=True):
        assert (got is None and want is None) or got == pytest.approx(want)
    assert list(steady_test.customdata) == [0] * 4 + [None] + [1] * 4 + [None]
    assert steady_test.line.dash == "solid" and fig.data[0].line.dash == "dot"
    # The colour is the condition's, shared by its splits.
    colors = condition_colors(["steady", "shock"])
    assert fig.data[0].line.color == fig.data[1].line.color == colors["steady"]
    assert fig.data[2].line.color == colors["shock"]


def test_training_curves_swap_event_marker_in_its_panel() -> None:
    fig = training_curves(RUNS, METRICS, EVENTS, metric="loss", epochs=4)
    shapes = fig.layout.shapes
    assert len(shapes) == 1
    assert shapes[0].x0 == shapes[0].x1 == 1.5  # event at epoch 2 applies between epochs 1 and 2
    assert shapes[0].xref == "x2" and shapes[0].yref == "y2 domain"  # the second panel: "shock"
    texts = [a.text for a in fig.layout.annotations]
    assert "e2 → sigmoid, mse" in texts
    assert [t.name for t in fig.data][:2] == ["steady · train", "steady · test"]
    assert fig.data[1].y[0] == pytest.approx(1.2)


def test_training_curves_gap_and_non_finite() -> None:
    metrics = {"r0": _rows(2)}
    metrics["r0"][1]["gap"] = float("nan")
    fig = training_curves(RUNS[:1], metrics, None, metric="gap")
    assert [t.name for t in fig.data] == ["steady · gap"]
    assert fig.data[0].y[0] == pytest.approx(0.05)
    assert fig.data[0].y[1] is None  # a NaN is a gap in the line, never a made-up value


def test_training_curves_empty_and_bad_metric() -> None:
    fig = training_curves([], {}, {})
    assert len(fig.data) == 0 and fig.layout.annotations[0].text == "No runs yet"
    fig = training_curves(RUNS[3:], {}, {})  # only a queued run: a panel, no traces
    assert len(fig.data) == 0
    with pytest.raises(ValueError, match="metric: unknown 'f1'; allowed: accuracy, loss, gap"):
        training_curves(RUNS, METRICS, metric="f1")


def test_training_curves_layout_wraps_panels() -> None:
    runs = [{"run_id": f"r{i}", "condition": f"c{i}", "seed": 0} for i in range(7)]
    metrics = {f"r{i}": _rows(2) for i in range(7)}
    fig = training_curves(runs, metrics, columns=3, height_per_row=200)
    assert len(fig.data) == 14
    assert fig.layout.height == 80 + 3 * 200 + 60
    assert fig.data[-1].xaxis == "x7"


def test_schedule_segments() -> None:
    sched = SwapSchedule("s", "relu", "cross_entropy",
                         (SwapEvent(2, activation="tanh"), SwapEvent(4, loss="mse"), SwapEvent(5, activation="relu")))
    segs = schedule_segments(sched, 6)
    assert segs["activation"] == [(0, 2, "relu"), (2, 5, "tanh"), (5, 6, "relu")]
    assert segs["loss"] == [(0, 4, "cross_entropy"), (4, 6, "mse")]
    # Each epoch is covered exactly once, and agrees with active_at.
    for kind, idx in (("activation", 0), ("loss", 1)):
        covered = [e for start, end, name in segs[kind] for e in range(start, end)
                   if name == sched.active_at(e)[idx]]
        assert covered == list(range(6))
    assert schedule_segments(sched, 3)["loss"] == [(0, 3, "cross_entropy")]


def test_schedule_timeline_bars_match_segments() -> None:
    scheds = [PRESETS["steady"], PRESETS["alternating"]]
    fig = schedule_timeline(scheds, 8)
    bars = [(t.y[0], t.base[0] + 0.5, t.base[0] + 0.5 + t.x[0], t.text[0]) for t in fig.data]
    expected = []
    for s in scheds:
        segs = schedule_segments(s, 8)
        for kind in ("activation", "loss"):
            expected += [(f"{s.name} · {kind}", start, end, name) for start, end, name in segs[kind]]
    assert bars == expected
    # One legend entry per function; one marker per swap event.
    assert sorted(t.name for t in fig.data if t.showlegend) == ["cross_entropy", "relu", "sigmoid"]
    assert [sh.x0 for sh in fig.layout.shapes] == [e.epoch - 0.5 for e in PRESETS["alternating"].events]
    assert all(t.marker.color == next(u.marker.color for u in fig.data if u.name == t.name) for t in fig.data)


def test_metrics_table_and_final_accuracy() -> None:
    table = metrics_table(RUNS, METRICS)
    assert len(table) == 4 + 4 + 3
    assert list(table.columns[:4]) == ["run_id", "condition", "seed", "epoch"]
    assert table.loc[table.run_id == "r1", "test_acc"].iloc[0] == pytest.approx(0.46)
    fig = final_accuracy_figure(RUNS)
    assert [t.name for t in fig.data] == ["steady", "shock"]
    assert list(fig.data[0].y) == [0.75, 0.8] and list(fig.data[1].y) == [0.5]


def test_event_label_and_reexports() -> None:
    assert event_label({"epoch": 1, "activation": "tanh", "loss": None}) == "→ tanh"
    assert event_label({"epoch": 1, "activation": None, "loss": "mse"}) == "→ mse"
    assert plots.training_curves is training_curves and plots.schedule_timeline is schedule_timeline
    assert math.isclose(len(condition_colors(["a", "b", "a"])), 2)


def test_schedule_timeline_colours_stay_with_their_function_between_edits() -> None:
    def colours(scheds):
        fig = schedule_timeline(scheds, 8)
        return {t.name: t.marker.color for t in fig.data}

    before = colours([PRESETS["steady"], PRESETS["late-flip"]])
    # Removing the first condition or adding one with new functions recolours nothing that was shown.
    after = colours([PRESETS["late-flip"], PRESETS["periodic"]])
    assert all(after[name] == colour for name, colour in before.items() if name in after)
    assert {"relu", "tanh", "flipped"} <= set(before) & set(after)
    shown = colours([PRESETS[name] for name in PRESETS])
    acts = [shown[n] for n in shown if n in {"relu", "tanh", "sigmoid", "gelu", "silu", "identity", "sine_hf"}]
    assert len(set(acts)) == len(acts)  # distinct activations never share a colour
