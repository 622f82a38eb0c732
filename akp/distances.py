"""The one check of a distance matrix between runs, shared by PERMDISP and the map of runs.

Distances here come from CKA (``1 - CKA`` or ``arccos CKA``) computed in floating
point, so a matrix can be off by rounding: a little asymmetric, a diagonal of
``1e-9`` instead of 0, a ``-1e-12``. :func:`check_distance_matrix` accepts those
within one relative tolerance, :data:`DISTANCE_TOLERANCE`, and removes them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from akp.errors import AKPError

__all__ = ["DISTANCE_TOLERANCE", "check_distance_matrix"]

#: Relative tolerance of :func:`check_distance_matrix`: an entry may be off by
#: ``DISTANCE_TOLERANCE * max(1, max |d|)`` from symmetric, zero-diagonal and
#: non-negative. CKA of float32 representations is good to about 1e-7, so 1e-6
#: forgives its rounding and nothing that is a real defect of the matrix.
DISTANCE_TOLERANCE = 1e-6


def check_distance_matrix(
    d: Any, *, name: str = "distances", error: type[AKPError] = AKPError
) -> np.ndarray:
    """Check a distance matrix and return it cleaned of rounding noise.

    Parameters
    ----------
    d : array-like of shape (n, n)
        Square, finite, symmetric, non-negative, zero diagonal, each within
        :data:`DISTANCE_TOLERANCE` (relative to ``max(1, max |d|)``); n >= 1.
    name : str, default="distances"
        The argument's name: it starts every message and is the error's ``field``.
    error : type of AKPError, default=AKPError
        Raised on bad input (callers pass their own subclass).

    Returns
    -------
    ndarray of shape (n, n), float64
        A new array: symmetrised, negatives within tolerance set to 0, diagonal 0.

    Raises
    ------
    AKPError
        Of type ``error``, with ``field=name`` and a message that names the defect.
    """
    try:
        x = np.array(d, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error.at(name, f"must be a square numeric matrix; {exc}") from exc
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise error.at(name, f"must be a square (n, n) matrix; got shape {x.shape}")
    if x.shape[0] == 0:
        raise error.at(name, "must describe at least 1 run; got shape (0, 0)")
    if not np.isfinite(x).all():
        raise error.at(name, "must be finite; it holds NaN or infinite values")
    tol = DISTANCE_TOLERANCE * max(1.0, float(np.abs(x).max()))
    if (x < -tol).any():
        raise error.at(name, f"must be non-negative (>= 0); minimum is {x.min():.3g}")
    if not np.allclose(x, x.T, rtol=0.0, atol=tol):
        raise error.at(name, "must be symmetric (d[i, j] == d[j, i])")
    if np.abs(np.diag(x)).max() > tol:
        raise error.at(name, "must have a zero diagonal (a run is at distance 0 from itself)")
    # Only rounding noise is left (checked above to be within tol): remove it.
    x = np.clip((x + x.T) / 2.0, 0.0, None)
    np.fill_diagonal(x, 0.0)
    return x
