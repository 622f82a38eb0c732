"""The projector's scatter: colours, customdata, the selection ring in each plot, thumbnails."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from akp.plots import projector as J
from akp.plots.analysis import CORRECTNESS_COLORS
from akp.projection.probes import probe_view

NAMES = ("non-cancer", "cancer")


@pytest.fixture
def view():
    labels = np.array([0, 1, 1, 0])
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.5]])
    return probe_view(np.arange(8, dtype=float).reshape(4, 2), labels, logits)


XY = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [np.nan, np.nan]])


def test_probe_colours_each_mode(view):
    assert J.probe_colours(view, "class", NAMES) == (["non-cancer", "cancer", "cancer", "non-cancer"], list(NAMES))
    assert J.probe_colours(view, "prediction", NAMES)[0] == ["non-cancer", "cancer", "non-cancer", "cancer"]
    assert J.probe_colours(view, "correctness")[0] == ["correct", "correct", "wrong", "wrong"]
    conf, cats = J.probe_colours(view, "confidence")
    assert cats == [] and conf == pytest.approx(view.confidence) and conf.min() > 0.5
    with pytest.raises(ValueError, match="Colour by: unknown"):
        J.probe_colours(view, "colour")
    no_logits = probe_view(np.zeros((4, 2)), view.labels)
    with pytest.raises(ValueError, match="Colour by: confidence needs"):
        J.probe_colours(no_logits, "confidence")


def test_projector_scatter_points_carry_probe_ids_and_the_selection_is_ringed(view):
    fig = J.projector_scatter(XY, view, color_by="class", class_names=NAMES, selected=2, listed=[1, 2, 3])
    names = [t.name for t in fig.data]
    assert names == ["non-cancer", "cancer", J.LISTED_TRACE, J.SELECTED_TRACE]
    assert list(fig.data[0].customdata) == [0] and list(fig.data[1].customdata) == [1, 2]  # NaN row left out
    ring = fig.data[3]
    assert ring.meta == {"probe": 2} and (list(ring.x), list(ring.y)) == ([2.0], [2.0])
    assert ring.customdata is None and ring.hoverinfo == "skip"  # never mistaken for a probe point
    listed = fig.data[2]
    assert list(listed.x) == [1.0]  # the selected image has its ring, the unplaced one is left out
    # Clicks select points only outside Plotly's select/lasso drag modes (Streamlit's rule).
    assert fig.layout.dragmode == "zoom"
    assert "predicted: cancer (0.73)" in fig.data[1].text[0]
    assert "distance to class centre" in fig.data[1].text[0]


def test_projector_scatter_correctness_colours_and_confidence_scale(view):
    fig = J.projector_scatter(XY, view, color_by="correctness")
    assert {t.name: t.marker.color for t in fig.data} == CORRECTNESS_COLORS
    conf = J.projector_scatter(XY, view, color_by="confidence")
    (trace,) = conf.data
    assert list(trace.customdata) == [0, 1, 2]
    assert np.asarray(trace.marker.color) == pytest.approx(view.confidence[:3])
    assert (trace.marker.cmin, trace.marker.cmax) == (0.5, 1.0)
    with pytest.raises(ValueError, match="coords"):
        J.projector_scatter(XY[:3], view)
    # No selection: no ring, no outlines.
    assert [t.name for t in J.projector_scatter(XY, view).data] == ["class 0", "class 1"]


def test_thumbnails_enlarge_by_whole_pixels_and_grid_captions():
    img = np.array([[[0.0, 1.0], [0.5, 0.25]]])  # (1, 2, 2)
    t = J.thumbnail(img, size=4)
    assert t.dtype == np.uint8 and t.shape == (4, 4)
    assert t[:2, :2].tolist() == [[0, 0], [0, 0]] and t[0, 2] == 255 and t[2, 0] == 128
    assert J.thumbnail(np.ones((3, 2, 2)), size=2).shape == (2, 2, 3)
    grid = J.thumbnail_grid([img] * 5, [f"#{i}" for i in range(5)], columns=3, size=4)
    assert isinstance(grid.data[0], go.Image)
    assert np.asarray(grid.data[0].z).shape[:2] == (2 * (4 + 6 + 18), 3 * (4 + 6))
    assert [a.text for a in grid.layout.annotations] == ["#0", "#1", "#2", "#3", "#4"]
    with pytest.raises(ValueError, match="captions"):
        J.thumbnail_grid([img], [])
    with pytest.raises(ValueError, match="image"):
        J.thumbnail(np.zeros((2, 2, 2, 2)))
