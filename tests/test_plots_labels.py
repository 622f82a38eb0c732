"""Model-map labels: never on top of each other or of a point."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from akp.plots import labels as L
from akp.plots.analysis import model_map_figure


def _clear(xy, texts, positions) -> None:
    boxes = L.label_boxes(xy, texts, positions)
    drawn = [b for b in boxes if b is not None]
    for a, b in itertools.combinations(drawn, 2):
        assert not L._overlaps(a, b), (a, b)
    px = L._pixels(np.asarray(xy, dtype=float), 600, 380)
    for i, box in enumerate(boxes):
        for j, (x, y) in enumerate(px):
            if box is not None and j != i:
                assert not L._overlaps(box, (x - 7, y - 7, x + 7, y + 7)), (i, j)


def test_spread_points_keep_the_default_position():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    assert L.place_labels(xy, ["s0", "s1", "s2", "s3"]) == ["top center"] * 4


def test_close_points_get_labels_that_do_not_overlap():
    rng = np.random.default_rng(0)
    # Twelve runs: two tight clusters of five (as happy runs often are) and two loners.
    xy = np.vstack([rng.normal(0, 0.02, (5, 2)), rng.normal(1, 0.02, (5, 2)), [[0.0, 1.0], [1.0, 0.0]]])
    texts = [f"s{i}" for i in range(12)]
    positions = L.place_labels(xy, texts)
    _clear(xy, texts, positions)
    assert positions[10] == positions[11] == "top center"  # loners are not disturbed
    # Two runs a marker apart: both labelled, at different positions.
    pair = np.array([[0.0, 0.0], [0.03, 0.0], [1.0, 1.0]])
    placed = L.place_labels(pair, ["s0", "s1", "s2"])
    assert placed[0] is not None and placed[1] is not None and placed[0] != placed[1]
    _clear(pair, ["s0", "s1", "s2"], placed)
    with pytest.raises(ValueError, match="coords"):
        L.place_labels(xy[:3], texts)


def test_model_map_figure_spreads_labels_of_close_runs():
    records = [{"run_id": f"r{i}", "condition": "steady", "seed": i, "test_acc": 0.9, "family": "happy"}
               for i in range(3)]
    fig = model_map_figure([[0.0, 0.0], [0.01, 0.0], [1.0, 1.0]], records)
    (trace,) = fig.data
    assert list(trace.text) == ["s0", "s1", "s2"]
    assert trace.textposition[0] != trace.textposition[1]
