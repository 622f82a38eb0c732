"""What one run makes of each probe image, and which probe images a chart selection names.

The projector view (Representations) shows, for a chosen probe image, the
run's prediction, its confidence and the image's distance to its class centre
in the run's representation space, for two runs side by side. This module
computes those numbers from arrays (no store, no Streamlit) and maps chart
selections (points, box, lasso) and typed probe ids back to probe indices.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from akp.projection.umap import ProjectionError

__all__ = [
    "PROBE_FIELD",
    "ChartSelection",
    "ProbeView",
    "class_centre_distances",
    "class_name",
    "parse_probe_id",
    "probe_rows",
    "probe_view",
    "selection_from_event",
]

PROBE_FIELD = "Probe id"  # the search box's label: errors name the field as the user sees it


@dataclass(frozen=True)
class ProbeView:
    """One run's view of the probe set at one layer and epoch.

    Attributes
    ----------
    labels : ndarray of int, shape (n,)
        True classes.
    centre_distance : ndarray of float64, shape (n,)
        Euclidean distance of each image's representation to the mean
        representation of its true class (in the layer's own space, not in UMAP's).
    class_median : ndarray of float64, shape (n,)
        The median of ``centre_distance`` over the image's class: a scale for it.
    prediction : ndarray of int, shape (n,), or None
        Argmax of the logits; None when no logits were captured at that epoch.
    confidence : ndarray of float64, shape (n,), or None
        Softmax probability of the predicted class.
    """

    labels: np.ndarray
    centre_distance: np.ndarray
    class_median: np.ndarray
    prediction: np.ndarray | None = None
    confidence: np.ndarray | None = None

    @property
    def correct(self) -> np.ndarray | None:
        """Whether the prediction is the true class (None without logits)."""
        return None if self.prediction is None else self.prediction == self.labels


def _labels(labels: Any) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ProjectionError("labels: must be a 1-D array of integer classes", field="labels")
    return y.astype(np.int64)


def class_centre_distances(features: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distance of every probe image to its class centre, and its class's median distance.

    Parameters
    ----------
    features : array-like of shape (n, d) or (n, ...)
        The run's representations of the probe set (flattened past axis 0).
    labels : array-like of int, shape (n,)
        True classes.

    Returns
    -------
    distance : ndarray of float64, shape (n,)
        Euclidean distance to the mean representation of the image's class,
        computed in float64.
    class_median : ndarray of float64, shape (n,)
        For each image, the median ``distance`` over the images of its class.

    Raises
    ------
    ProjectionError
        If the lengths differ (field ``features``) or ``labels`` is not integer (field ``labels``).
    """
    y = _labels(labels)
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(x.shape[0], -1) if x.ndim >= 1 else x
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ProjectionError(f"features: must have one row per label ({y.shape[0]}); got shape {x.shape}",
                              field="features")
    distance = np.empty(y.shape[0], dtype=np.float64)
    median = np.empty(y.shape[0], dtype=np.float64)
    for k in np.unique(y):
        members = y == k
        d = np.linalg.norm(x[members] - x[members].mean(axis=0), axis=1)
        distance[members] = d
        median[members] = np.median(d)
    return distance, median


def probe_view(features: Any, labels: Any, logits: Any = None) -> ProbeView:
    """What a run makes of each probe image: distance to its class centre, prediction, confidence.

    Parameters
    ----------
    features : array-like of shape (n, ...)
        Representations at the chosen layer and epoch.
    labels : array-like of int, shape (n,)
        True classes.
    logits : array-like of shape (n, n_classes), optional
        The run's logits at the same epoch; without them there is no prediction.

    Returns
    -------
    ProbeView

    Raises
    ------
    ProjectionError
        If shapes disagree (field ``features`` or ``logits``).
    """
    y = _labels(labels)
    distance, median = class_centre_distances(features, y)
    if logits is None:
        return ProbeView(y, distance, median)
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[1] < 1:
        raise ProjectionError(f"logits: must be of shape ({y.shape[0]}, n_classes); got {z.shape}", field="logits")
    # Softmax in a stable form: subtract the row maximum before exponentiating.
    e = np.exp(z - z.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    pred = np.argmax(z, axis=1)
    return ProbeView(y, distance, median, pred, prob[np.arange(y.shape[0]), pred])


def parse_probe_id(text: str | None, n_probe: int) -> int | None:
    """The probe index typed in the search box ("12" or "#12"), or None for an empty box.

    Parameters
    ----------
    text : str or None
        What the user typed.
    n_probe : int
        Size of the probe set.

    Returns
    -------
    int or None

    Raises
    ------
    ProjectionError
        Field ``Probe id``: not a whole number from 0 to ``n_probe - 1``.
    """
    raw = (text or "").strip().lstrip("#").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) >= n_probe:
        raise ProjectionError(f"{PROBE_FIELD}: a whole number from 0 to {n_probe - 1}, got {text!r}",
                              field=PROBE_FIELD)
    return int(raw)


@dataclass(frozen=True)
class ChartSelection:
    """Probe indices a chart selection names.

    Attributes
    ----------
    probes : tuple of int
        Selected probe indices, in selection order, without duplicates.
    kind : {"none", "point", "set"}
        "point": one point clicked (it becomes *the* selected probe image);
        "set": a box, a lasso or several shift-clicked points (listed).
    """

    probes: tuple[int, ...] = ()
    kind: str = "none"


def _probe_of(point: Mapping[str, Any], n_probe: int) -> int | None:
    custom = point.get("customdata")
    if isinstance(custom, (list, tuple)):
        custom = custom[0] if custom else None
    # JSON round trips may turn ints into floats; bools are not probe ids.
    if isinstance(custom, bool) or not isinstance(custom, (int, float)) or float(custom) != int(custom):
        return None
    idx = int(custom)
    return idx if 0 <= idx < n_probe else None


def selection_from_event(selection: Mapping[str, Any] | None, n_probe: int) -> ChartSelection:
    """Map a Plotly chart selection (as Streamlit returns it) to probe indices.

    Every point of the projector's scatter carries its probe index as
    ``customdata``; points without one (the selection ring) are ignored.

    Parameters
    ----------
    selection : mapping or None
        ``{"points": [...], "box": [...], "lasso": [...]}``, as in
        ``st.session_state[chart_key].selection``.
    n_probe : int
        Size of the probe set (indices outside it are ignored).

    Returns
    -------
    ChartSelection
    """
    if not selection:
        return ChartSelection()
    points: Iterable[Mapping[str, Any]] = selection.get("points") or ()
    probes = tuple(dict.fromkeys(p for p in (_probe_of(pt, n_probe) for pt in points) if p is not None))
    if not probes:
        return ChartSelection()
    region = bool(selection.get("box")) or bool(selection.get("lasso"))
    return ChartSelection(probes, "point" if len(probes) == 1 and not region else "set")


def probe_rows(probe: int, views: Sequence[tuple[str, ProbeView]], class_names: Sequence[str] = ()
               ) -> list[dict[str, Any]]:
    """One table row per run for one probe image: prediction, confidence, right or wrong, distances.

    Parameters
    ----------
    probe : int
        Probe index.
    views : sequence of (run label, ProbeView)
        The runs side by side.
    class_names : sequence of str
        Name of class k at index k (others are named "class k").

    Returns
    -------
    list of dict
        Keys: run, prediction, confidence, correct (None where logits are
        missing), distance to class centre, class median (of that distance).

    Raises
    ------
    ProjectionError
        Field ``Probe id`` if ``probe`` is outside the probe set.
    """
    rows = []
    for label, view in views:
        if not 0 <= probe < view.labels.shape[0]:
            raise ProjectionError(f"{PROBE_FIELD}: {probe} is outside the probe set (0 to "
                                  f"{view.labels.shape[0] - 1})", field=PROBE_FIELD)
        pred = None if view.prediction is None else int(view.prediction[probe])
        rows.append({
            "run": label,
            "prediction": None if pred is None else class_name(pred, class_names),
            "confidence": None if view.confidence is None else round(float(view.confidence[probe]), 3),
            "correct": None if pred is None else bool(pred == int(view.labels[probe])),
            "distance to class centre": round(float(view.centre_distance[probe]), 4),
            "class median": round(float(view.class_median[probe]), 4),
        })
    return rows


def class_name(k: int, class_names: Sequence[str] = ()) -> str:
    """Name of class ``k``: ``class_names[k]`` if given, else ``"class k"``."""
    return str(class_names[k]) if 0 <= k < len(class_names) else f"class {k}"
