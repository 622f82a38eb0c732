"""Layer-by-layer CKA between two runs of an experiment, at one captured epoch.

The computation behind the Layers page, kept free of Streamlit so it can be
tested; it reads runs through a store-like object. :func:`layer_cka` gathers
the probe-set representations of every layer of run A and run B at an epoch
and compares each layer of A with each layer of B (:func:`akp.cka.cka_cross`).
A layer that cannot be compared is left out, with the reason in
:attr:`LayerCKA.skipped`, rather than failing the whole comparison:

- not captured at that epoch (runs may capture different epochs, or a run may
  have stopped early: diverged, cancelled, failed);
- representations holding NaN or inf (a diverged run);
- unreadable, empty, or with another number of probe rows than the rest.

A layer whose representation is constant over the probe set stays in, with a
NaN CKA (it is undefined; see :mod:`akp.cka`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from akp.cka import cka_cross

__all__ = ["LayerCKA", "common_epochs", "layer_cka"]


class LayerCKA(NamedTuple):
    """Result of :func:`layer_cka`.

    Attributes
    ----------
    layers_a, layers_b : list of str
        Layers of run A and run B that were compared, in capture order.
    matrix : ndarray of shape (len(layers_a), len(layers_b))
        CKA of layer ``i`` of A with layer ``j`` of B; NaN where undefined.
    skipped : list of dict
        ``{"run": "A" or "B", "run_id", "layer", "reason"}`` for each layer left out.
    epoch : int or None
        The epoch compared; None when the runs share no captured epoch.
    """

    layers_a: list[str]
    layers_b: list[str]
    matrix: np.ndarray
    skipped: list[dict[str, Any]]
    epoch: int | None


def _captured(store: Any, run_id: str) -> dict[str, list[int]]:
    """Layer -> epochs at which it was captured, for one run."""
    return {lay: list(store.representation_epochs(run_id, lay)) for lay in store.layers(run_id)}


def common_epochs(store: Any, run_a: str, run_b: str) -> list[int]:
    """Epochs at which both runs captured at least one layer, sorted.

    Parameters
    ----------
    store : RunStore-like
        Needs ``layers(run_id)`` and ``representation_epochs(run_id, layer)``.
    run_a, run_b : str
        Run ids.

    Returns
    -------
    list of int
        Empty when the runs have no captured epoch in common.
    """
    epochs = []
    for run_id in (run_a, run_b):
        epochs.append({e for es in _captured(store, run_id).values() for e in es})
    return sorted(epochs[0] & epochs[1])


def _gather(store: Any, run_id: str, label: str, epoch: int, captured: dict[str, list[int]],
            skipped: list[dict[str, Any]]) -> tuple[list[str], list[np.ndarray]]:
    """(layers, 2-D representations) of one run at ``epoch``; the unusable ones go to ``skipped``."""
    layers, feats = [], []
    for lay, epochs in captured.items():
        def skip(reason: str, lay: str = lay) -> None:
            skipped.append({"run": label, "run_id": run_id, "layer": lay, "reason": reason})

        if epoch not in epochs:
            skip(f"not captured at epoch {epoch} (captured at {epochs or 'no epoch'})")
            continue
        try:
            x = np.asarray(store.representations(run_id, lay, epoch=epoch))
        except (OSError, KeyError, ValueError) as exc:  # StoreError is a ValueError
            skip(f"could not be read: {exc}")
            continue
        if x.ndim < 2 or x.shape[0] == 0 or x.size == 0:
            skip(f"no usable representation (shape {tuple(x.shape)})")
            continue
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            skip(f"representation of type {x.dtype} is not real-valued")
            continue
        x = x.reshape(x.shape[0], -1)
        if not np.isfinite(x).all():
            skip("representation holds NaN or inf values (a diverged run?)")
            continue
        layers.append(lay)
        feats.append(x)
    return layers, feats


def _keep_rows(n: int, label: str, run_id: str, layers: list[str], feats: list[np.ndarray],
               skipped: list[dict[str, Any]]) -> tuple[list[str], list[np.ndarray]]:
    """The layers whose representation has ``n`` probe rows; the others go to ``skipped``."""
    kept_layers, kept_feats = [], []
    for lay, f in zip(layers, feats, strict=True):
        if f.shape[0] == n:
            kept_layers.append(lay)
            kept_feats.append(f)
        else:
            skipped.append({"run": label, "run_id": run_id, "layer": lay,
                            "reason": f"{f.shape[0]} probe rows, not {n} like the other layers"})
    return kept_layers, kept_feats


def layer_cka(
    store: Any,
    run_a: str,
    run_b: str,
    *,
    epoch: int | None = None,
    debiased: bool = False,
    device: Any = "cpu",
) -> LayerCKA:
    """CKA between every layer of ``run_a`` and every layer of ``run_b`` at one epoch.

    Parameters
    ----------
    store : RunStore-like
        Needs ``layers``, ``representation_epochs`` and ``representations(run_id, layer, epoch=...)``.
    run_a, run_b : str
        Run ids (the same run twice is allowed: its self-similarity).
    epoch : int, optional
        Captured epoch to compare; default the latest of :func:`common_epochs`.
    debiased : bool, default=False
        Unbiased HSIC estimator (Song et al. 2012); needs at least 4 probe images.
    device : torch device or str, default="cpu"
        Where :func:`akp.cka.cka_cross` computes.

    Returns
    -------
    LayerCKA
        ``(layers_a, layers_b, matrix, skipped, epoch)``. When no layer of a
        run can be used (or the runs share no epoch) the lists are empty and
        ``matrix`` has a zero dimension; ``skipped`` says why.

    Raises
    ------
    akp.cka.CKAError
        ``debiased`` with fewer than 4 probe images (a ValueError).
    """
    captured = {"A": _captured(store, run_a), "B": _captured(store, run_b)}
    skipped: list[dict[str, Any]] = []
    if epoch is None:
        shared = common_epochs(store, run_a, run_b)
        if not shared:
            for label, run_id in (("A", run_a), ("B", run_b)):
                for lay, epochs in captured[label].items():
                    skipped.append({"run": label, "run_id": run_id, "layer": lay,
                                    "reason": f"no epoch captured by both runs (this layer: {epochs})"})
            return LayerCKA([], [], np.zeros((0, 0)), skipped, None)
        epoch = shared[-1]
    epoch = int(epoch)
    layers_a, feats_a = _gather(store, run_a, "A", epoch, captured["A"], skipped)
    layers_b, feats_b = _gather(store, run_b, "B", epoch, captured["B"], skipped)

    # Every representation must describe the same probe images: keep those with the usual row count.
    rows = [f.shape[0] for f in feats_a + feats_b]
    if rows:
        n = max(set(rows), key=rows.count)
        layers_a, feats_a = _keep_rows(n, "A", run_a, layers_a, feats_a, skipped)
        layers_b, feats_b = _keep_rows(n, "B", run_b, layers_b, feats_b, skipped)
    if not feats_a or not feats_b:
        return LayerCKA(layers_a, layers_b, np.zeros((len(feats_a), len(feats_b))), skipped, epoch)
    matrix = cka_cross(feats_a, feats_b, debiased=debiased, device=device)
    return LayerCKA(layers_a, layers_b, np.asarray(matrix, dtype=np.float64), skipped, epoch)
