"""Principal coordinates of the runs with their family centres: ecology's picture of dispersion."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from akp.analysis.common import FAMILIES, AnalysisError, jsonable
from akp.analysis.permdisp import pcoa
from akp.distances import check_distance_matrix

__all__ = ["Ordination", "family_pcoa"]


@dataclass
class Ordination:
    """Result of :func:`family_pcoa`.

    Attributes
    ----------
    coords : ndarray of shape (n, 2)
        The runs on the first two principal axes (zeros where fewer axes exist).
    centres : dict
        Family -> (x, y): the family centroid on those axes.
    explained : tuple of float
        Share of the positive eigenvalues' sum carried by each of the two axes.
    n_negative_axes : int
        Imaginary axes (a non-Euclidean distance); they are not drawn but the
        test's centres and distances include them.
    """

    coords: np.ndarray
    centres: dict[str, tuple[float, float]]
    explained: tuple[float, float]
    n_negative_axes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return jsonable({"coords": self.coords, "centres": self.centres, "explained": self.explained,
                         "n_negative_axes": self.n_negative_axes})


def family_pcoa(distances: Any, families: Sequence[str]) -> Ordination:
    """Principal coordinates analysis (Gower 1966) of the runs' distances, with each family's centroid.

    PERMDISP measures each run's distance to its family centroid in this
    space (Anderson 2006), so the plot shows what the test measures; the
    centroid of the first two coordinates is the projection of the full one.

    Parameters
    ----------
    distances : array-like of shape (n, n)
        Distances between runs (e.g. 1 - CKA).
    families : sequence of str, length n

    Returns
    -------
    Ordination

    Raises
    ------
    AnalysisError
        Not a distance matrix, or ``families`` of another length.
    """
    d = check_distance_matrix(distances, name="distances", error=AnalysisError)
    if len(families) != d.shape[0]:
        raise AnalysisError.at("families", f"must hold one family per run ({d.shape[0]}), got {len(families)}")
    real, imag = pcoa(d)
    eig = (real**2).sum(axis=0)  # each axis' eigenvalue: its squared coordinates summed
    order = np.argsort(eig)[::-1]  # pcoa returns axes in ascending eigenvalue order; show the largest
    real, eig = real[:, order], eig[order]
    coords = np.zeros((d.shape[0], 2))
    k = min(2, real.shape[1])
    coords[:, :k] = real[:, :k]
    total = float(eig.sum())
    explained = tuple(float(eig[i] / total) if i < k and total > 0 else 0.0 for i in range(2))
    fam = np.asarray(list(families))
    centres = {f: (float(coords[fam == f, 0].mean()), float(coords[fam == f, 1].mean()))
               for f in FAMILIES if (fam == f).any()}
    return Ordination(coords=coords, centres=centres, explained=explained,  # type: ignore[arg-type]
                      n_negative_axes=int(imag.shape[1]))
