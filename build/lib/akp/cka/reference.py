"""Reference Gram-form CKA in numpy float64, after Kornblith et al. 2019, and the CKA error type."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from akp.errors import AKPError


class CKAError(AKPError):
    """Invalid input to a CKA function; the message names the field and what is allowed."""


# --------------------------------------------------------------------------
# Reference Gram-form implementation (numpy, float64), after Kornblith et al.
# --------------------------------------------------------------------------


def gram_linear(x: Any) -> np.ndarray:
    """Linear-kernel Gram matrix ``x x^T`` in float64.

    Parameters
    ----------
    x : array-like of shape (n, p)

    Returns
    -------
    ndarray of shape (n, n)
    """
    x = np.asarray(x, dtype=np.float64)
    return x @ x.T


def gram_rbf(x: Any, threshold: float = 1.0) -> np.ndarray:
    """RBF-kernel Gram matrix with bandwidth ``threshold x`` median distance.

    As in Kornblith et al.'s reference code, ``sigma^2 = threshold^2 *
    median(squared distances)``, the median taken over the full ``n x n``
    matrix of squared distances (diagonal zeros included). If that median is 0
    (more than half the pairs coincide) the median of the non-zero squared
    distances is used instead; if every distance is 0 the Gram matrix is all
    ``NaN`` (zero-variance representation).

    Parameters
    ----------
    x : array-like of shape (n, p)
    threshold : float, default=1.0
        Bandwidth as a multiple of the median distance; must be > 0.

    Returns
    -------
    ndarray of shape (n, n)
    """
    _check_threshold(threshold)
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)  # distances are translation invariant
    dots = x @ x.T
    sq_norms = np.diag(dots)
    # Rounding can make a squared distance slightly negative; distances are >= 0.
    sq = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * dots, 0.0)
    med = float(np.median(sq))
    if med == 0.0:
        nonzero = sq[sq > 0]
        if nonzero.size == 0:
            return np.full_like(sq, np.nan)
        med = float(np.median(nonzero))
    return np.exp(-sq / (2.0 * threshold**2 * med))


def center_gram(gram: Any, unbiased: bool = False) -> np.ndarray:
    """Centre a symmetric Gram matrix (float64 copy).

    Parameters
    ----------
    gram : array-like of shape (n, n)
        Symmetric Gram matrix.
    unbiased : bool, default=False
        If True, U-centre it (Song et al. 2012): the Frobenius inner product of
        two U-centred Gram matrices is ``n (n - 3)`` times the unbiased HSIC.

    Returns
    -------
    ndarray of shape (n, n)

    Raises
    ------
    CKAError
        If ``gram`` is not square and symmetric, or ``unbiased`` and ``n < 4``.
    """
    gram = np.array(gram, dtype=np.float64, copy=True)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise CKAError(f"gram: must be a square (n, n) matrix, got shape {gram.shape}")
    if not np.allclose(gram, gram.T, equal_nan=True):
        raise CKAError("gram: must be symmetric")
    n = gram.shape[0]
    if unbiased:
        _check_n(n, True)
        np.fill_diagonal(gram, 0.0)
        means = gram.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0.0)
    else:
        means = gram.mean(axis=0)
        means -= means.mean() / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def cka_from_grams(gram_x: Any, gram_y: Any, debiased: bool = False) -> float:
    """CKA of two Gram matrices (reference implementation, float64).

    Parameters
    ----------
    gram_x, gram_y : array-like of shape (n, n)
        Uncentred Gram matrices of the same examples.
    debiased : bool, default=False
        Use U-centring (unbiased HSIC) instead of ordinary centring.

    Returns
    -------
    float
        CKA; ``NaN`` if either centred Gram matrix is zero.
    """
    gx = center_gram(gram_x, unbiased=debiased)
    gy = center_gram(gram_y, unbiased=debiased)
    if gx.shape != gy.shape:
        raise CKAError(f"gram_y: must have the shape of gram_x {gx.shape}, got {gy.shape}")
    den = math.sqrt(float(np.sum(gx * gx)) * float(np.sum(gy * gy)))
    if not den > 0.0:
        return float("nan")
    return float(np.sum(gx * gy) / den)


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise CKAError(f"threshold: must be a finite number > 0, got {threshold!r}")


def _check_n(n: int, debiased: bool) -> None:
    need = 4 if debiased else 2
    if n < need:
        kind = "debiased (U-centred) HSIC" if debiased else "CKA"
        raise CKAError(f"n: {kind} needs at least {need} examples (rows), got {n}")
