"""A registered dataset's card, ready to display: counts per class and split, a summary line, samples.

Cards come from :func:`akp.datasets.registry.dataset_card`; nothing here reads
anything but the card and the sample images it lists.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from akp.datasets.registry import datasets_dir, is_dataset_id

__all__ = ["MAX_INLINE_BYTES", "card_samples", "card_summary", "card_table", "dataset_label", "inline_png"]

MAX_INLINE_BYTES = 256 * 1024  # a sample thumbnail is a few KiB; anything bigger is not inlined
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_SPLITS = ("train", "val", "test")


def _splits(card: dict[str, Any]) -> list[str]:
    counts = card.get("counts") or {}
    return [s for s in _SPLITS if s in counts] + [s for s in counts if s not in _SPLITS]


def card_table(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Images per class and split of a dataset card, with a total row and column.

    Parameters
    ----------
    card : dict
        From :func:`akp.datasets.registry.dataset_card`.

    Returns
    -------
    list of dict
        One row per class (``class``, one column per split present, ``total``),
        then a row ``class="all"``.
    """
    counts = card.get("counts") or {}
    splits = _splits(card)
    rows = []
    for name in card.get("class_names") or []:
        row: dict[str, Any] = {"class": str(name)}
        row.update({s: int(counts[s].get(name, 0)) for s in splits})
        row["total"] = sum(row[s] for s in splits)
        rows.append(row)
    total: dict[str, Any] = {"class": "all"}
    total.update({s: sum(r[s] for r in rows) for s in splits})
    total["total"] = sum(total[s] for s in splits)
    return [*rows, total]


def card_summary(card: dict[str, Any]) -> str:
    """One line about a dataset card: image size, channels, classes, positive classes.

    Examples
    --------
    ``"32x32 px · 1 channel (grayscale) · 2 classes: benign, malignant"``
    """
    h, w = (card.get("image_size") or [0, 0])[:2]
    c = int(card.get("channels") or 0)
    kind = "1 channel (grayscale)" if c == 1 else f"{c} channels (RGB)" if c == 3 else f"{c} channels"
    names = [str(n) for n in card.get("class_names") or []]
    parts = [f"{h}x{w} px", kind, f"{len(names)} classes: {', '.join(names)}"]
    if card.get("positive_classes"):
        parts.append(f"cancer = {', '.join(map(str, card['positive_classes']))}")
    return " · ".join(parts)


def card_samples(card: dict[str, Any], *, home: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Paths of the sample PNGs of each class of a registered dataset.

    Parameters
    ----------
    card : dict
        From :func:`akp.datasets.registry.dataset_card`.
    home : path-like
        AKP home holding ``datasets/<id>/``.

    Returns
    -------
    dict of str to list of Path
        Class name to its existing sample images; entries that would lie
        outside the dataset's folder are skipped.
    """
    dataset_id = str(card.get("id", ""))
    if not is_dataset_id(dataset_id):
        return {}
    root = (datasets_dir(home) / dataset_id).resolve()
    out: dict[str, list[Path]] = {}
    for name, files in (card.get("samples") or {}).items():
        paths = []
        for rel in files or []:
            p = (root / str(rel)).resolve()
            if p.is_relative_to(root) and p.is_file():
                paths.append(p)
        out[str(name)] = paths
    return out


def dataset_label(card: dict[str, Any]) -> str:
    """Human label of a registered dataset: name, image count, id."""
    n = sum(int(v) for v in (card.get("n_images") or {}).values())
    return f"{card.get('name', '?')} · {n} images · {card.get('id', '?')}"


def inline_png(path: str | os.PathLike[str]) -> str | None:
    """A sample PNG as a ``data:`` URI, for pages that must not depend on the server's media files.

    Streamlit serves ``st.image`` pictures from ``/media/<id>`` files it drops
    when a rerun no longer references them, so a browser still showing an older
    run gets a 404 ("Image source error"). An inline image cannot go missing.

    Parameters
    ----------
    path : path-like
        A file from :func:`card_samples`.

    Returns
    -------
    str or None
        ``"data:image/png;base64,..."``, or None when the file is not a PNG, is
        larger than :data:`MAX_INLINE_BYTES` or cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INLINE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_INLINE_BYTES or not data.startswith(_PNG_MAGIC):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
