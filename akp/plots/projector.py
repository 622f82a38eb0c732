"""The projector's scatter: a run's UMAP of the probe set, coloured, with the selection ringed.

Pure functions: arrays and a :class:`akp.projection.probes.ProbeView` in, a
Plotly figure out. Every probe point carries its probe index as
``customdata``, which is how a click, a box or a lasso in the browser maps back
to probe images (:func:`akp.projection.probes.selection_from_event`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from akp.plots.analysis import _TEMPLATE, CATEGORY_COLORS, CORRECTNESS_COLORS
from akp.projection.probes import ProbeView, class_name

__all__ = ["COLOR_MODES", "SELECTED_TRACE", "LISTED_TRACE", "probe_colours", "projector_scatter", "thumbnail",
           "thumbnail_grid"]

# What the colour can show, with the legend title of each.
COLOR_MODES = {"class": "true class", "prediction": "predicted class", "correctness": "right or wrong",
               "confidence": "confidence"}
SELECTED_TRACE = "selected"  # the ring around the chosen probe image (its customdata is the probe index)
LISTED_TRACE = "listed"  # outlines of the images a box or lasso listed
NEEDS_LOGITS = frozenset({"prediction", "correctness", "confidence"})


def probe_colours(view: ProbeView, mode: str, class_names: Sequence[str] = ()
                  ) -> tuple[list[str] | np.ndarray, list[str]]:
    """What each probe point's colour shows.

    Parameters
    ----------
    view : ProbeView
        The run's view of the probe set.
    mode : {"class", "prediction", "correctness", "confidence"}
    class_names : sequence of str

    Returns
    -------
    values : list of str, or ndarray of float64
        A category per point (class, prediction, "correct"/"wrong"), or for
        "confidence" the softmax probability of the predicted class.
    categories : list of str
        Legend order (empty for "confidence", which uses a colour scale).

    Raises
    ------
    ValueError
        Unknown ``mode`` (field ``Colour by``), or a mode that needs logits when the run has none.
    """
    if mode not in COLOR_MODES:
        raise ValueError(f"Colour by: unknown {mode!r}; allowed: {', '.join(COLOR_MODES)}")
    if mode in NEEDS_LOGITS and view.prediction is None:
        raise ValueError(f"Colour by: {COLOR_MODES[mode]} needs the run's logits at this epoch")
    n_classes = max(len(class_names), int(view.labels.max()) + 1 if view.labels.size else 0)
    if mode == "class":
        return [class_name(int(k), class_names) for k in view.labels], [class_name(k, class_names)
                                                                        for k in range(n_classes)]
    if mode == "prediction":
        n_classes = max(n_classes, int(view.prediction.max()) + 1)
        return [class_name(int(k), class_names) for k in view.prediction], [class_name(k, class_names)
                                                                            for k in range(n_classes)]
    if mode == "correctness":
        return ["correct" if c else "wrong" for c in view.correct], ["correct", "wrong"]
    return np.asarray(view.confidence, dtype=np.float64), []


def _hover(i: int, view: ProbeView, class_names: Sequence[str]) -> str:
    text = f"probe #{i}<br>true class: {class_name(int(view.labels[i]), class_names)}"
    if view.prediction is not None:
        text += (f"<br>predicted: {class_name(int(view.prediction[i]), class_names)} "
                 f"({view.confidence[i]:.2f})")
    return text + f"<br>distance to class centre: {view.centre_distance[i]:.3g}"


def projector_scatter(coords: Any, view: ProbeView, *, color_by: str = "class", class_names: Sequence[str] = (),
                      title: str = "", selected: int | None = None, listed: Sequence[int] = ()) -> go.Figure:
    """Scatter of one run's 2-D embedding of the probe set, for the projector.

    Parameters
    ----------
    coords : array-like of shape (n, 2)
        The embedding; rows with NaN (points UMAP could not place) are left out.
    view : ProbeView
        The run's predictions and distances (hover text, colours).
    color_by : {"class", "prediction", "correctness", "confidence"}
    class_names : sequence of str
    title : str
    selected : int, optional
        The chosen probe image: drawn with a large black ring (trace ``"selected"``).
    listed : sequence of int
        Images listed by a box or lasso (in either plot): outlined (trace ``"listed"``).

    Returns
    -------
    Figure
        Categorical modes: one trace per category, named by it. "confidence":
        one trace with a colour scale from 0.5 to 1. Every probe point's
        ``customdata`` is its probe index. Drag zooms (so a click selects a
        point); the box and lasso tools are in the mode bar.

    Raises
    ------
    ValueError
        If ``coords`` does not have one row per probe image, or as :func:`probe_colours`.
    """
    xy = np.asarray(coords, dtype=np.float64)
    n = view.labels.shape[0]
    if xy.ndim != 2 or xy.shape != (n, 2):
        raise ValueError(f"coords: must be of shape ({n}, 2), one row per probe image; got {xy.shape}")
    values, cats = probe_colours(view, color_by, class_names)
    ok = np.isfinite(xy).all(axis=1)
    hover = [_hover(i, view, class_names) for i in range(n)]
    fig = go.Figure()
    if color_by == "confidence":
        idx = np.flatnonzero(ok)
        fig.add_trace(go.Scatter(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers", name="confidence", customdata=idx.tolist(),
            marker={"color": np.asarray(values)[idx], "colorscale": "Viridis", "cmin": 0.5, "cmax": 1.0,
                    "size": 7, "opacity": 0.9, "colorbar": {"title": {"text": "confidence"}, "thickness": 12}},
            text=[hover[i] for i in idx], hovertemplate="%{text}<extra></extra>", showlegend=False))
    else:
        for k, cat in enumerate(cats):
            idx = [i for i in range(n) if values[i] == cat and ok[i]]
            if not idx:
                continue
            color = CORRECTNESS_COLORS.get(cat, CATEGORY_COLORS[k % len(CATEGORY_COLORS)])
            fig.add_trace(go.Scatter(x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=cat, customdata=idx,
                                     marker={"color": color, "size": 7, "opacity": 0.85},
                                     text=[hover[i] for i in idx], hovertemplate="%{text}<extra></extra>"))
    marks = [i for i in dict.fromkeys(listed) if 0 <= i < n and ok[i] and i != selected]
    if marks:
        fig.add_trace(go.Scatter(x=xy[marks, 0], y=xy[marks, 1], mode="markers", name=LISTED_TRACE,
                                 marker={"size": 11, "color": "rgba(0,0,0,0)", "line": {"width": 1.5, "color": "#000"}},
                                 hoverinfo="skip", showlegend=False))
    if selected is not None and 0 <= selected < n and ok[selected]:
        # customdata marks which probe is ringed (the e2e test reads it); no hover so clicks reach the point.
        fig.add_trace(go.Scatter(x=[xy[selected, 0]], y=[xy[selected, 1]], mode="markers", name=SELECTED_TRACE,
                                 meta={"probe": int(selected)},
                                 marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#000"}},
                                 hoverinfo="skip", showlegend=False))
    # dragmode "zoom", not "select": Streamlit turns clicks into selections only outside select/lasso mode.
    fig.update_layout(title=title, template=_TEMPLATE, legend_title=COLOR_MODES[color_by], dragmode="zoom",
                      xaxis={"showticklabels": False, "title": "UMAP 1"},
                      yaxis={"showticklabels": False, "title": "UMAP 2"}, height=440,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, uirevision="projector")
    return fig


def thumbnail(image: Any, size: int = 64) -> np.ndarray:
    """A probe image as an 8-bit picture for a thumbnail, enlarged by whole pixels (no blur).

    Parameters
    ----------
    image : array-like of shape (C, H, W) or (H, W), values in [0, 1]
    size : int, default=64
        Smallest side wanted, in pixels; the image is repeated by ``ceil(size / H)``.

    Returns
    -------
    ndarray of uint8, shape (H', W') for grey or (H', W', 3) for RGB

    Raises
    ------
    ValueError
        If the shape is not an image's.
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[0] == 3:
        a = np.moveaxis(a, 0, -1)
    elif a.ndim != 2:
        raise ValueError(f"image: must be of shape (1, H, W), (3, H, W) or (H, W); got {a.shape}")
    k = max(1, -(-size // a.shape[0]))
    a = np.repeat(np.repeat(a, k, axis=0), k, axis=1)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def thumbnail_grid(images: Any, captions: Sequence[str], *, columns: int = 12, size: int = 48,
                   title: str = "") -> go.Figure:
    """Probe images as one figure of thumbnails, each captioned (e.g. ``"#12 · cancer"``).

    One mosaic image, not one file per thumbnail: nothing to fetch from the
    server's media store, so a rerun cannot leave broken images behind.

    Parameters
    ----------
    images : sequence of array-like of shape (C, H, W) or (H, W), values in [0, 1]
        All of the same shape.
    captions : sequence of str
        One per image.
    columns : int, default=12
        Thumbnails per row.
    size : int, default=48
        Smallest side of a thumbnail, in pixels (see :func:`thumbnail`).
    title : str

    Returns
    -------
    Figure
        One ``Image`` trace (the mosaic, RGB) and one caption annotation per thumbnail.

    Raises
    ------
    ValueError
        If there are no images, the captions do not match them, or the shapes differ.
    """
    tiles = [thumbnail(im, size) for im in images]
    if not tiles or len(tiles) != len(captions):
        raise ValueError(f"captions: one per image; got {len(captions)} captions for {len(tiles)} images")
    tiles = [np.repeat(t[..., None], 3, axis=-1) if t.ndim == 2 else t for t in tiles]
    h, w = tiles[0].shape[:2]
    if any(t.shape[:2] != (h, w) for t in tiles):
        raise ValueError("images: must all have the same shape")
    pad, cap = 6, 18  # pixels between tiles, and under each for its caption
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    mosaic = np.full((rows * (h + pad + cap), cols * (w + pad), 3), 255, dtype=np.uint8)
    fig = go.Figure()
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y0, x0 = r * (h + pad + cap), c * (w + pad)
        mosaic[y0:y0 + h, x0:x0 + w] = tile
        fig.add_annotation(x=x0 + w / 2, y=y0 + h + cap / 2, text=str(captions[k]), showarrow=False,
                           font={"size": 10}, xanchor="center", yanchor="middle")
    fig.add_trace(go.Image(z=mosaic, hoverinfo="skip"))
    height, width = mosaic.shape[:2]
    fig.update_layout(title=title, template=_TEMPLATE, height=height + (40 if title else 0) + 10,
                      width=max(width + 20, 200), margin={"l": 10, "r": 10, "t": 40 if title else 0, "b": 10})
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    return fig
