"""Tests for akp.distances: the one distance-matrix check, shared by PERMDISP and the map of runs."""
from __future__ import annotations

import numpy as np
import pytest

from akp.analysis import AnalysisError, permdisp
from akp.distances import DISTANCE_TOLERANCE, check_distance_matrix
from akp.errors import AKPError
from akp.projection import ProjectionError, model_map


def test_rounding_within_the_tolerance_is_removed():
    d = np.array([[0.0, 0.5, 0.0], [0.5, 0.0, 0.4], [0.0, 0.4, 0.0]])
    eps = DISTANCE_TOLERANCE / 2
    noisy = d + np.array([[eps, eps, -eps], [0, 0, 0], [0, 0, -eps]])  # asymmetric, diagonal, negative
    out = check_distance_matrix(noisy)
    assert np.array_equal(out, out.T) and np.all(np.diag(out) == 0) and out.min() >= 0
    np.testing.assert_allclose(out, d, atol=DISTANCE_TOLERANCE)


@pytest.mark.parametrize(("bad", "message"), [
    ([[0, 1e-5], [0, 0]], "symmetric"),
    ([[1e-5, 0], [0, 0]], "zero diagonal"),
    ([[0, -1e-5], [-1e-5, 0]], "non-negative"),
])
def test_one_tolerance_for_every_defect(bad, message):
    with pytest.raises(AKPError, match=message) as info:
        check_distance_matrix(bad, name="dist")
    assert info.value.field == "dist" and str(info.value).startswith("dist: ")


def test_callers_get_their_own_error_class_with_the_field():
    asym = np.array([[0.0, 1.0, 1.0], [1.1, 0.0, 1.0], [1.0, 1.0, 0.0]])
    with pytest.raises(AnalysisError) as a:
        permdisp(asym, ["x", "x", "y"])
    with pytest.raises(ProjectionError) as p:
        model_map(asym)
    assert a.value.field == p.value.field == "distances"
    assert str(a.value) == str(p.value)
