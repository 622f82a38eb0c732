"""Tests for akp.plots.analysis: the figures' data (traces, order, colours, markers)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from akp.plots import analysis as A

# Deliberately interleaved: unhappy and happy runs alternate, conditions out of order.
RECORDS = [
    {"run_id": "r0", "condition": "shock", "seed": 1, "test_acc": 0.50, "gap": 0.02, "family": "unhappy"},
    {"run_id": "r1", "condition": "steady", "seed": 1, "test_acc": 0.91, "gap": 0.05, "family": "happy"},
    {"run_id": "r2", "condition": "shock", "seed": 0, "test_acc": 0.55, "gap": 0.10, "family": "unhappy"},
    {"run_id": "r3", "condition": "steady", "seed": 0, "test_acc": 0.90, "gap": 0.04, "family": "happy"},
    {"run_id": "r4", "condition": "odd", "seed": 0, "test_acc": None, "gap": None, "family": None},
]


def matrix() -> np.ndarray:
    m = np.full((5, 5), 0.2)
    m[np.ix_([1, 3], [1, 3])] = 0.9  # happy block
    m[0, 2] = m[2, 0] = 0.4
    np.fill_diagonal(m, 1.0)
    m[4, :] = m[:, 4] = np.nan
    m[4, 4] = 1.0
    return m


def test_family_order_happy_then_unhappy_then_other_by_condition_and_seed():
    assert A.family_order(RECORDS) == [3, 1, 2, 0, 4]


def test_accuracy_gap_scatter_traces_by_family_with_colours_and_threshold():
    fig = A.accuracy_gap_scatter(RECORDS, threshold=0.7)
    assert [t.name for t in fig.data] == ["happy", "unhappy"]  # the run without accuracy is skipped
    happy, unhappy = fig.data
    assert sorted(happy.x) == [0.90, 0.91] and sorted(unhappy.y) == [0.02, 0.10]
    assert happy.marker.color == A.FAMILY_COLORS["happy"] and unhappy.marker.color == A.FAMILY_COLORS["unhappy"]
    assert set(happy.customdata) == {"r1", "r3"}
    # Conditions get distinct symbols; both happy runs share "steady"'s symbol.
    assert len(set(happy.marker.symbol)) == 1 and set(happy.marker.symbol) != set(unhappy.marker.symbol)
    vlines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(vlines) == 1 and vlines[0].x0 == pytest.approx(0.7)
    assert "seed 1" in happy.text[0] or "seed 1" in happy.text[1]


def test_cka_heatmap_orders_rows_and_columns_by_family():
    fig = A.cka_heatmap(matrix(), RECORDS)
    (hm,) = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert list(hm.x) == ["steady · s0", "steady · s1", "shock · s0", "shock · s1", "odd · s0"]
    assert list(hm.y) == list(hm.x)
    z = np.array(hm.z, dtype=float)
    # Happy block first (0.9 off-diagonal), then unhappy (0.4), NaN drawn blank.
    assert z[0, 1] == pytest.approx(0.9) and z[2, 3] == pytest.approx(0.4) and z[0, 2] == pytest.approx(0.2)
    assert np.isnan(z[4, 0]) and z[4, 4] == 1.0
    # Hover carries condition, seed and test accuracy of both runs.
    assert "steady · seed 0" in hm.customdata[0][1][0] and "test acc 0.910" in hm.customdata[0][1][1]
    # Family blocks are outlined in the family colours, sized by family.
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(s.line.color, s.x1 - s.x0) for s in rects] == [
        (A.FAMILY_COLORS["happy"], 2), (A.FAMILY_COLORS["unhappy"], 2), (A.FAMILY_COLORS["other"], 1)]
    assert [a.text for a in fig.layout.annotations] == ["<b>happy</b> (2)", "<b>unhappy</b> (2)", "<b>other</b> (1)"]


def test_cka_heatmap_rejects_wrong_shape_and_allows_negative_debiased_values():
    with pytest.raises(ValueError, match="matrix"):
        A.cka_heatmap(np.eye(3), RECORDS)
    m = matrix()
    m[0, 2] = m[2, 0] = -0.3
    hm = A.cka_heatmap(m, RECORDS).data[0]
    assert hm.zmin == pytest.approx(-0.3) and hm.zmax == 1.0
    # Similar runs: the colour range starts just below the smallest value, so structure stays visible.
    hm = A.cka_heatmap(np.array([[1.0, 0.87], [0.87, 1.0]]), RECORDS[:2]).data[0]
    assert hm.zmin == pytest.approx(0.8) and hm.zmax == 1.0


def test_cka_heatmap_makes_duplicate_labels_unique():
    recs = [dict(RECORDS[1]), dict(RECORDS[1], run_id="r9")]
    hm = A.cka_heatmap(np.eye(2), recs).data[0]
    assert list(hm.x) == ["steady · s1", "steady · s1 (2)"]


def test_dispersion_box_one_box_per_family_with_all_points():
    d = np.array([0.3, 0.05, 0.4, 0.07, 0.9])
    fig = A.dispersion_box(d, RECORDS)
    assert [t.name for t in fig.data] == ["happy", "unhappy", "other"]
    assert list(fig.data[0].y) == [0.07, 0.05]  # family order: steady s0, steady s1
    assert list(fig.data[1].y) == [0.4, 0.3]
    assert all(t.boxpoints == "all" for t in fig.data)
    assert fig.data[1].marker.color == A.FAMILY_COLORS["unhappy"]
    with pytest.raises(ValueError, match="distances"):
        A.dispersion_box(d[:3], RECORDS)


def test_model_map_figure_positions_and_symbols():
    xy = np.arange(8, dtype=float).reshape(4, 2)
    fig = A.model_map_figure(xy, RECORDS[:4])
    assert [t.name for t in fig.data] == ["happy", "unhappy"]
    happy = fig.data[0]
    assert list(happy.x) == [6.0, 2.0] and list(happy.y) == [7.0, 3.0]  # r3 then r1
    assert list(happy.customdata) == ["r3", "r1"] and list(happy.text) == ["s0", "s1"]
    assert happy.marker.symbol[0] != fig.data[1].marker.symbol[0]
    with pytest.raises(ValueError, match="coords"):
        A.model_map_figure(xy, RECORDS[:3])


def test_convergence_figure_lines_bands_and_swap_marks():
    by_family = {"unhappy": {"mean": [0.2, 0.3, 0.3], "lo": [0.1, 0.2, 0.1], "hi": [0.3, 0.4, 0.5]},
                 "happy": {"mean": [0.5, 0.7, 0.9]}}
    fig = A.convergence_figure([0, 1, 2], by_family, swap_epochs=[1, 1])
    assert [t.name for t in fig.data] == ["happy", "unhappy spread", "unhappy"]
    band = fig.data[1]
    assert list(band.x) == [0, 1, 2, 2, 1, 0] and list(band.y) == [0.3, 0.4, 0.5, 0.1, 0.2, 0.1]
    assert band.fill == "toself" and band.fillcolor.startswith("rgba(213, 94, 0") and band.mode == "lines"
    assert fig.data[0].line.color == A.FAMILY_COLORS["happy"]
    assert [s.x0 for s in fig.layout.shapes] == [1]
    with pytest.raises(ValueError, match="mean"):
        A.convergence_figure([0, 1], by_family)


def test_layer_cka_heatmap_axes_and_cell_text():
    m = np.array([[1.0, 0.5, np.nan], [0.25, 0.75, 0.1]])
    fig = A.layer_cka_heatmap(m, ["conv1", "embedding"], ["conv1", "embedding", "logits"],
                              name_a="steady s0", name_b="shock s0")
    hm = fig.data[0]
    assert list(hm.y) == ["conv1", "embedding"] and list(hm.x) == ["conv1", "embedding", "logits"]
    assert hm.text[0] == ("1.00", "0.50", "n/a") or list(hm.text[0]) == ["1.00", "0.50", "n/a"]
    assert fig.layout.xaxis.title.text == "shock s0 layer"
    assert hm.zmin == pytest.approx(0.1) and hm.zmax == 1.0  # just below the smallest value
    with pytest.raises(ValueError, match="matrix"):
        A.layer_cka_heatmap(m.T, ["conv1", "embedding"], ["conv1", "embedding", "logits"])


def test_cell_image_figure_grey_and_rgb():
    grey = A.cell_image_figure(np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4))
    assert isinstance(grey.data[0], go.Heatmap) and np.asarray(grey.data[0].z).shape == (4, 4)
    assert np.asarray(grey.data[0].z)[3, 3] == pytest.approx(1.0)
    rgb = A.cell_image_figure(np.ones((3, 4, 5)))
    assert isinstance(rgb.data[0], go.Image) and np.asarray(rgb.data[0].z).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="image"):
        A.cell_image_figure(np.ones((2, 4, 4)))


# -- akp.plots.dispersion: routes over epochs, the untrained floor, PCoA with centres -----------------------
def test_route_convergence_figure_routes_by_family_with_the_floor_line():
    from akp.plots import dispersion as D

    by_route = {"shock (unhappy)": {"family": "unhappy", "mean": [0.8, 0.7, float("nan")]},
                "steady (happy)": {"family": "happy", "mean": [0.8, 0.9, 0.95]},
                "tanh (happy)": {"family": "happy", "mean": [0.8, 0.85, 0.9]}}
    fig = D.route_convergence_figure([-1, 0, 1], by_route, floor=0.78, swap_epochs=[1])
    assert [t.name for t in fig.data] == ["steady (happy)", "tanh (happy)", "shock (unhappy)"]
    assert fig.data[0].line.color == fig.data[1].line.color == A.FAMILY_COLORS["happy"]
    assert fig.data[0].line.dash != fig.data[1].line.dash  # two routes of one family stay apart
    assert fig.data[2].y[2] is None  # a gap, not a zero
    floor = [s for s in fig.layout.shapes if s.y0 == s.y1]
    assert len(floor) == 1 and floor[0].y0 == 0.78 and floor[0].line.dash == "dash"
    assert any("untrained floor 0.780" in a.text for a in fig.layout.annotations)
    assert [s.x0 for s in fig.layout.shapes if s.x0 == s.x1] == [1]
    assert list(fig.layout.xaxis.ticktext) == ["untrained", "0", "1"]
    no_floor = D.route_convergence_figure([-1, 0, 1], by_route, floor=float("nan"))
    assert not no_floor.layout.shapes
    with pytest.raises(ValueError, match="mean"):
        D.route_convergence_figure([0, 1], by_route)


def test_mark_floor_on_heatmap_widens_the_scale_and_labels_the_floor():
    from akp.plots import dispersion as D

    fig = A.cka_heatmap(matrix()[:4, :4] * 0 + 0.95 + np.eye(4) * 0.05, RECORDS[:4])
    assert fig.data[0].zmin == 0.9
    D.mark_floor_on_heatmap(fig, 0.72)
    heat = fig.data[0]
    assert heat.zmin == pytest.approx(0.7)  # the floor lies inside the colour range
    assert 0.72 in heat.colorbar.tickvals
    label = heat.colorbar.ticktext[list(heat.colorbar.tickvals).index(0.72)]
    assert "untrained floor 0.720" in label
    assert 0.7 not in heat.colorbar.tickvals and 0.8 in heat.colorbar.tickvals  # no tick crowding the floor
    same = A.cka_heatmap(matrix(), RECORDS)
    before = same.to_json()
    assert D.mark_floor_on_heatmap(same, None).to_json() == before
    with pytest.raises(ValueError, match="heatmap"):
        D.mark_floor_on_heatmap(go.Figure(), 0.5)


def test_pcoa_figure_runs_centres_and_spokes():
    from akp.plots import dispersion as D

    xy = np.arange(8, dtype=float).reshape(4, 2)
    centres = {"happy": (4.0, 5.0), "unhappy": (2.0, 3.0)}
    fig = D.pcoa_figure(xy, RECORDS[:4], centres, explained=(0.6, 0.3))
    names = [t.name for t in fig.data]
    assert names == ["happy spokes", "happy", "unhappy spokes", "unhappy", "happy centre", "unhappy centre"]
    happy = fig.data[1]
    assert list(happy.x) == [6.0, 2.0] and list(happy.customdata) == ["r3", "r1"]
    assert list(fig.data[4].x) == [4.0] and list(fig.data[4].y) == [5.0]
    spokes = fig.data[0]
    assert list(spokes.x) == [4.0, 6.0, None, 4.0, 2.0, None]  # centre to each run
    assert fig.layout.xaxis.title.text == "PCoA axis 1 (60%)"
    with pytest.raises(ValueError, match="coords"):
        D.pcoa_figure(xy, RECORDS[:3], centres)


def test_add_floor_line_on_the_pooled_convergence_figure():
    from akp.plots import dispersion as D

    fig = A.convergence_figure([0, 1], {"happy": {"mean": [0.5, 0.9]}})
    D.add_floor_line(fig, 0.61)
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 0.61 and line.line.dash == "dash"
    assert D.add_floor_line(A.convergence_figure([0], {}), None).layout.shapes == ()
