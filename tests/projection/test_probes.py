"""The projector's numbers: distance to class centre, prediction and confidence, selections, typed ids."""
from __future__ import annotations

import numpy as np
import pytest

from akp.errors import AKPError
from akp.projection import probes as P


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    """These tests fit no UMAP: skip the package's module-wide warm-up."""


def test_class_centre_distances_are_euclidean_to_the_class_mean_with_the_class_median():
    features = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0],  # class 0: mean (2, 0)
                         [0.0, 1.0], [0.0, 3.0]])  # class 1: mean (0, 2)
    labels = np.array([0, 0, 0, 1, 1])
    distance, median = P.class_centre_distances(features, labels)
    np.testing.assert_allclose(distance, [2.0, 0.0, 2.0, 1.0, 1.0])
    np.testing.assert_allclose(median, [2.0, 2.0, 2.0, 1.0, 1.0])
    # Feature maps are flattened: a (n, C, H, W) layer gives the same distances as its flat copy.
    maps = np.arange(5 * 2 * 2 * 2, dtype=np.float32).reshape(5, 2, 2, 2) ** 1.5
    np.testing.assert_allclose(P.class_centre_distances(maps, labels)[0],
                               P.class_centre_distances(maps.reshape(5, -1), labels)[0])
    with pytest.raises(AKPError, match="features") as err:
        P.class_centre_distances(features[:4], labels)
    assert err.value.field == "features"
    with pytest.raises(AKPError, match="labels"):
        P.class_centre_distances(features, labels.astype(float))


def test_probe_view_prediction_confidence_and_correctness_from_logits():
    features = np.eye(3)
    labels = np.array([0, 1, 1])
    logits = np.array([[2.0, 0.0], [0.0, 0.0], [1000.0, 0.0]])  # the large logit must not overflow
    view = P.probe_view(features, labels, logits)
    assert view.prediction.tolist() == [0, 0, 0]
    np.testing.assert_allclose(view.confidence, [np.exp(2) / (np.exp(2) + 1), 0.5, 1.0])
    assert view.correct.tolist() == [True, False, False]
    plain = P.probe_view(features, labels)
    assert plain.prediction is None and plain.confidence is None and plain.correct is None
    with pytest.raises(AKPError, match="logits") as err:
        P.probe_view(features, labels, logits[:2])
    assert err.value.field == "logits"


def test_parse_probe_id_accepts_numbers_and_hash_and_names_the_search_box():
    assert P.parse_probe_id("12", 64) == 12
    assert P.parse_probe_id(" #0 ", 64) == 0
    assert P.parse_probe_id("", 64) is None and P.parse_probe_id(None, 64) is None
    for bad in ("64", "-1", "abc", "1.5"):
        with pytest.raises(AKPError, match=r"Probe id: a whole number from 0 to 63") as err:
            P.parse_probe_id(bad, 64)
        assert err.value.field == "Probe id"


def test_selection_from_event_click_box_lasso_and_ring():
    click = {"points": [{"customdata": 7, "curve_number": 0, "point_index": 3}], "box": [], "lasso": []}
    assert P.selection_from_event(click, 64) == P.ChartSelection((7,), "point")
    # Streamlit may hand customdata as a one-element list or a float after a JSON round trip.
    assert P.selection_from_event({"points": [{"customdata": [5.0]}]}, 64).probes == (5,)
    box = {"points": [{"customdata": 3}, {"customdata": 9}, {"customdata": 3}],
           "box": [{"x": [0, 1], "y": [0, 1]}], "lasso": []}
    assert P.selection_from_event(box, 64) == P.ChartSelection((3, 9), "set")
    # A lasso around a single image still lists it rather than replacing the chosen image.
    lasso = {"points": [{"customdata": 4}], "box": [], "lasso": [{"x": [0, 1, 1], "y": [0, 0, 1]}]}
    assert P.selection_from_event(lasso, 64) == P.ChartSelection((4,), "set")
    # Shift-clicks on several points list them.
    assert P.selection_from_event({"points": [{"customdata": 1}, {"customdata": 2}]}, 64).kind == "set"
    # The ring trace carries no customdata; ids outside the probe set and booleans are ignored.
    junk = {"points": [{"curve_number": 2, "point_index": 0}, {"customdata": 99}, {"customdata": True}]}
    assert P.selection_from_event(junk, 64) == P.ChartSelection()
    assert P.selection_from_event(None, 64) == P.ChartSelection()


def test_probe_rows_one_row_per_run_with_names_and_missing_logits():
    labels = np.array([0, 1])
    a = P.probe_view(np.array([[0.0], [1.0]]), labels, np.array([[0.0, 3.0], [0.0, 3.0]]))
    b = P.probe_view(np.array([[0.0], [1.0]]), labels)
    rows = P.probe_rows(1, [("happy run", a), ("unhappy run", b)], ("non-cancer", "cancer"))
    assert rows[0]["run"] == "happy run" and rows[0]["prediction"] == "cancer" and rows[0]["correct"] is True
    assert rows[0]["confidence"] == pytest.approx(np.exp(3) / (1 + np.exp(3)), abs=1e-3)
    assert rows[1]["prediction"] is None and rows[1]["correct"] is None
    assert rows[1]["distance to class centre"] == 0.0  # alone in its class
    assert P.probe_rows(0, [("r", a)])[0]["prediction"] == "class 1"  # without names, classes by number
    with pytest.raises(AKPError, match="Probe id"):
        P.probe_rows(2, [("r", a)])
