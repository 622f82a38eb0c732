"""Where to put point labels so that they overlap neither each other nor the points.

Plotly draws ``mode="markers+text"`` labels at one fixed ``textposition``;
runs that land close together on the model map then print their labels on top
of each other. :func:`place_labels` picks, for each point, the first of eight
positions around it whose label box is free, in screen pixels estimated from
the data range and the plot size; a label with no free position is left out
(the point's hover still names it).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["POSITIONS", "label_boxes", "place_labels"]

# Plotly textpositions in order of preference, with the direction of the label from the point.
POSITIONS = {
    "top center": (0, 1), "bottom center": (0, -1), "middle right": (1, 0), "middle left": (-1, 0),
    "top right": (1, 1), "top left": (-1, 1), "bottom right": (1, -1), "bottom left": (-1, -1),
}


def _pixels(xy: np.ndarray, width_px: float, height_px: float) -> np.ndarray:
    """Data coordinates to pixels, for equal axis scales (the model map's ``scaleanchor``) and
    Plotly's autorange padding of about 5 % on each side."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.maximum(hi - lo, 1e-12) * 1.1
    scale = min(width_px / span[0], height_px / span[1])
    return (xy - (lo + hi) / 2) * scale


def label_boxes(xy: Any, texts: Sequence[str], positions: Sequence[str | None], *, width_px: float = 600,
                height_px: float = 380, marker_px: float = 14, font_px: float = 12) -> list[tuple | None]:
    """Estimated pixel boxes ``(x0, y0, x1, y1)`` of labels drawn at ``positions`` (None: not drawn).

    Parameters
    ----------
    xy : array-like of shape (n, 2)
        Point positions, in data units.
    texts : sequence of str
        Label of each point.
    positions : sequence of str or None
        A key of :data:`POSITIONS` per point, or None.
    width_px, height_px : float
        Size of the plotting area, in pixels.
    marker_px : float
        Marker diameter, in pixels.
    font_px : float
        Font size, in pixels (a character is about 0.6 of it wide).

    Returns
    -------
    list of tuple or None
    """
    px = _pixels(np.asarray(xy, dtype=np.float64), width_px, height_px)
    return [None if pos is None else _box_at(c, text, pos, marker_px, font_px)
            for c, text, pos in zip(px, texts, positions, strict=True)]


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(xy: Any, texts: Sequence[str], *, width_px: float = 600, height_px: float = 380,
                 marker_px: float = 14, font_px: float = 12) -> list[str | None]:
    """A textposition per point such that no two labels overlap and no label covers a point.

    Greedy, most crowded points first (they have the fewest free positions).

    Parameters
    ----------
    xy : array-like of shape (n, 2)
        Point positions, in data units (equal scales on both axes).
    texts : sequence of str
        Label of each point.
    width_px, height_px, marker_px, font_px : float
        As in :func:`label_boxes`.

    Returns
    -------
    list of str or None
        A key of :data:`POSITIONS` per point, or None where every position is taken.

    Raises
    ------
    ValueError
        If ``xy`` is not (len(texts), 2) or holds non-finite values.
    """
    pts = np.asarray(xy, dtype=np.float64)
    if pts.ndim != 2 or pts.shape != (len(texts), 2) or not np.isfinite(pts).all():
        raise ValueError(f"coords: must be finite, of shape ({len(texts)}, 2); got {pts.shape}")
    n = len(texts)
    if n == 0:
        return []
    px = _pixels(pts, width_px, height_px)
    r = marker_px / 2
    markers = [(x - r, y - r, x + r, y + r) for x, y in px]
    crowd = ((px[:, None, :] - px[None, :, :]) ** 2).sum(-1)
    order = np.argsort(np.sort(crowd, axis=1)[:, 1] if n > 1 else np.zeros(1), kind="stable")
    chosen: list[str | None] = [None] * n
    placed: list[tuple] = []
    for i in order:
        for pos in POSITIONS:
            box = _box_at(px[i], texts[i], pos, marker_px, font_px)
            if any(_overlaps(box, m) for j, m in enumerate(markers) if j != i):
                continue
            if any(_overlaps(box, p) for p in placed):
                continue
            chosen[i] = pos
            placed.append(box)
            break
    return chosen


def _box_at(centre: np.ndarray, text: str, pos: str, marker_px: float, font_px: float) -> tuple:
    """Pixel box of ``text`` drawn at ``pos`` around a marker centred at ``centre`` (y up)."""
    cx, cy = centre
    gap = marker_px / 2 + 1
    w, h = 0.6 * font_px * max(len(text), 1), font_px * 1.2
    dx, dy = POSITIONS[pos]
    x0 = cx - w / 2 if dx == 0 else (cx + gap if dx > 0 else cx - gap - w)
    y0 = cy - h / 2 if dy == 0 else (cy + gap if dy > 0 else cy - gap - h)
    return (x0, y0, x0 + w, y0 + h)
