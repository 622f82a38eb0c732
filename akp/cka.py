"""Centered Kernel Alignment (CKA): exact, batched, and minibatch.

Follows Kornblith et al. 2019, *Similarity of Neural Network Representations
Revisited* (Gram form; linear and RBF kernels; RBF bandwidth ``threshold x``
the median pairwise distance, as in their reference code), the debiased HSIC
estimator of Song et al. 2012 (U-centering), and minibatch CKA of Nguyen et
al. 2021 (*Do Wide and Deep Networks Learn the Same Things?*).

Conventions
-----------
* A *representation* is an ``(n, p)`` array: ``n`` examples (the same probe set
  for every representation) by ``p`` features. Representations compared with
  each other may have different ``p``.
* Features are centred (column means removed, computed in float64) before any
  Gram matrix is formed: the activations we compare are post-ReLU float32
  values with large offsets, and centring first keeps the products small.
* Biased CKA lies in ``[0, 1]``. Debiased CKA lies in ``[-1, 1]`` and is
  returned as computed, negative values included: clamping would hide the
  estimator's sampling noise.
* A representation with zero variance (every feature constant over the
  examples) has no defined CKA with anything: the result is ``NaN``.
* Debiased (U-centred) HSIC needs ``n >= 4``; fewer examples raise
  :class:`CKAError`.

Two exact algorithms compute the matrix of all pairwise HSIC values of ``M``
representations of total width ``P = sum(p_i)``:

* **feature space** (linear kernel only): ``tr(K_i K_j) = ||X_i^T X_j||_F^2``
  for centred ``X``; costs about ``n P^2`` multiply-adds, in float64.
* **Gram space**: the (U-)centred Gram matrices are built one block of rows at
  a time (upper triangle only) for all representations at once and their
  pairwise Frobenius inner products accumulated in float64; costs about
  ``n^2 (P + M^2) / 2`` and memory bounded by the block size, never ``M n^2``.
  On CPU, large linear problems use float32 products of the float64-centred
  features with float64 accumulation (measured error ~1e-8 against a float64
  reference); small problems, the RBF kernel and CUDA use float64.

``method="auto"`` picks the cheaper of the two. The debiased linear HSIC in
feature space uses the identity (``d`` = row squared norms of the centred
``X``, ``s = sum(d)``; derivation in :func:`_debias`)::

    n (n - 3) HSIC_u(X, Y) = ||X^T Y||_F^2 - n/(n-2) d_X . d_Y
                             + s_X s_Y / ((n-1)(n-2))
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "CKAError",
    "MinibatchCKA",
    "center_gram",
    "cka_cross",
    "cka_from_grams",
    "cka_matrix",
    "gram_linear",
    "gram_rbf",
    "linear_cka",
    "rbf_cka",
]

KERNELS = ("linear", "rbf")
METHODS = ("auto", "feature", "gram")

# Bytes allowed for one block of Gram rows (all representations together);
# bounds peak memory of the Gram-space algorithm independently of n and M.
_BLOCK_BYTES = 256 * 2**20
# Below this many multiply-adds the Gram-space products run in float64 too:
# float32 only pays off (about 2x) on large problems, where its error is still
# ~1e-8 thanks to the float64 accumulation (see _gram_dot).
_FLOAT32_MIN_COST = 2e8


class CKAError(ValueError):
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


def _resolve_device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CKAError(f"device: must be None, 'cpu' or 'cuda', got {device!r}") from exc
    if dev.type not in ("cpu", "cuda"):
        raise CKAError(f"device: must be None, 'cpu' or 'cuda', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CKAError("device: 'cuda' requested but CUDA is not available; use None or 'cpu'")
    return dev


def _as_tensor(x: Any, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise CKAError(f"{name}: must be a numeric array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise CKAError(f"{name}: must be real-valued")
    if t.ndim != 2:
        raise CKAError(f"{name}: must be a 2-D array (n examples, p features), got shape {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise CKAError(f"{name}: must have at least one feature column, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise CKAError(f"{name}: must contain only finite values (found NaN or inf)")
    return t.to(device)


def _check_options(kernel: str, threshold: float, method: str) -> None:
    if kernel not in KERNELS:
        raise CKAError(f"kernel: must be one of {KERNELS}, got {kernel!r}")
    if method not in METHODS:
        raise CKAError(f"method: must be one of {METHODS}, got {method!r}")
    if method == "feature" and kernel != "linear":
        raise CKAError("method: 'feature' works only with kernel='linear'")
    _check_threshold(threshold)


def _prepare(features: Sequence[Any], name: str, device: torch.device) -> list[torch.Tensor]:
    if isinstance(features, (np.ndarray, torch.Tensor)) and getattr(features, "ndim", 0) == 2:
        raise CKAError(f"{name}: must be a sequence of (n, p) arrays, got a single 2-D array")
    feats = [_as_tensor(f, f"{name}[{i}]", device) for i, f in enumerate(features)]
    if not feats:
        raise CKAError(f"{name}: must hold at least one representation")
    n = feats[0].shape[0]
    for i, f in enumerate(feats):
        if f.shape[0] != n:
            raise CKAError(
                f"{name}[{i}]: every representation must have the same number of rows "
                f"(examples); {name}[0] has {n}, {name}[{i}] has {f.shape[0]}"
            )
    return feats


# --------------------------------------------------------------------------
# The engine: matrix of pairwise (U-)centred HSIC numerators, float64
# --------------------------------------------------------------------------


class _Centred:
    """Centred representations plus the statistics every algorithm needs.

    Means, row norms and the zero-variance test are computed in float64; the
    centred features are then kept in ``dtype`` (float32 only for the linear
    Gram-space products), one representation at a time to bound memory.
    """

    def __init__(self, feats: list[torch.Tensor], dtype: torch.dtype) -> None:
        self.n = int(feats[0].shape[0])
        self.device = feats[0].device
        self.widths = [int(f.shape[1]) for f in feats]
        self.x: list[torch.Tensor | None] = []
        rows = []
        zero = []
        for f in feats:
            # Mean in float64: post-ReLU float32 features carry large offsets.
            f64 = f.to(torch.float64)
            xc = f64 - f64.mean(dim=0, keepdim=True)
            # Zero variance up to rounding: centring a constant such as 0.1 leaves ~1e-17 noise, not zeros.
            tol = 64 * torch.finfo(torch.float64).eps * float(f64.abs().max()) * max(1, self.n) ** 0.5
            del f64
            zero.append(bool(xc.abs().max() <= tol))
            rows.append((xc * xc).sum(dim=1))
            self.x.append(xc.to(dtype))
            del xc
        self.row_sq = torch.stack(rows)  # (M, n): squared row norms, float64
        self.total_sq = self.row_sq.sum(dim=1)  # (M,)
        self.zero_variance = np.array(zero, dtype=bool)


def _debias(a: torch.Tensor, row_sq: torch.Tensor, total_sq: torch.Tensor, n: int) -> torch.Tensor:
    """U-centred numerators from feature-space quantities (linear kernel).

    With ``K = X X^T`` for centred ``X`` we have ``K 1 = 0``. Let ``K~`` be K
    with zero diagonal, ``d = diag(K)`` and ``s = sum(d)``. Then
    ``1^T K~ 1 = -s``, ``K~ 1 = -d``, ``tr(K~ L~) = tr(KL) - d_K . d_L``, and
    Song et al.'s estimator
    ``n(n-3) HSIC_u = tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1``
    becomes ``tr(KL) - n/(n-2) d_K . d_L + s_K s_L / ((n-1)(n-2))``.
    """
    dd = row_sq @ row_sq.T
    return a - (n / (n - 2)) * dd + torch.outer(total_sq, total_sq) / ((n - 1) * (n - 2))


def _feature_numerators(c: _Centred, debiased: bool) -> torch.Tensor:
    """All-pairs ``||X_i^T X_j||_F^2`` in float64 (cost ~ n P^2)."""
    m = len(c.widths)
    xs = [x for x in c.x if x is not None]
    z = torch.cat(xs, dim=1)  # (n, P)
    offsets = np.concatenate([[0], np.cumsum(c.widths)])
    owner = torch.repeat_interleave(torch.arange(m, device=c.device), torch.tensor(c.widths, device=c.device))
    a = torch.zeros(m, m, dtype=torch.float64, device=c.device)
    for i in range(m):
        lo = int(offsets[i])
        cross = xs[i].T @ z[:, lo:]  # (p_i, P - lo): blocks j >= i only
        colsq = (cross * cross).sum(dim=0)
        sums = torch.zeros(m, dtype=torch.float64, device=c.device).index_add_(0, owner[lo:], colsq)
        a[i, i:] = sums[i:]
        a[i:, i] = sums[i:]
    if debiased:
        a = _debias(a, c.row_sq, c.total_sq, c.n)
    return a


def _block_rows(n: int, m: int, itemsize: int) -> int:
    # 512-row blocks keep the batched products efficient while skipping most of
    # the lower triangle; the memory budget caps them for very large n * M.
    per_row = max(1, m * n * itemsize)
    return int(max(16, min(n, 512, _BLOCK_BYTES // per_row)))


def _gram_dot(buf: torch.Tensor, out: torch.Tensor) -> None:
    """``out += G G^T`` for ``G = buf.reshape(M, -1)``, accumulated in float64.

    One batched product per row of the block (at most 2048 columns at a time):
    float32 rounding then grows with the row length, not with ``n^2``, and the
    per-row results are summed in float64. Measured: relative error ~1e-8,
    against ~2e-7 for plain float32 products over 10^4-10^5 entries.
    """
    m, rows, cols = buf.shape
    for c0 in range(0, cols, 2048):
        g = buf[:, :, c0 : c0 + 2048].transpose(0, 1)  # (rows, M, k)
        out += torch.bmm(g, g.transpose(1, 2)).sum(dim=0, dtype=torch.float64)


def _gram_numerators(c: _Centred, debiased: bool, kernel: str, threshold: float) -> torch.Tensor:
    """All-pairs Frobenius products of (U-)centred Gram matrices, built in row blocks.

    Only the blocks on and above the diagonal of each (symmetric) Gram matrix
    are formed; off-diagonal blocks count twice. The linear kernel's blocks are
    batched float32 products of the centred features (the costly part), with
    their inner products accumulated in float64; the RBF kernel works in
    float64 throughout.

    For the debiased linear kernel only the diagonal of each Gram block is
    zeroed (``K~``); the rest of the U-centring is a rank-two correction
    applied exactly in float64 afterwards (see :func:`_debias`):
    ``n(n-3) HSIC_u = <K~, L~> - 2/(n-2) d_K . d_L + s_K s_L / ((n-1)(n-2))``.
    Zeroing the diagonal first removes the large ``d_K . d_L`` part that would
    otherwise cancel in float32.
    """
    n, m, dev = c.n, len(c.widths), c.device
    if kernel == "linear":
        dtype = c.x[0].dtype if c.x[0] is not None else torch.float32
        # Representations of equal width are stacked for batched products; the
        # order puts each width group in a contiguous range of the buffer.
        order = sorted(range(m), key=lambda i: c.widths[i])
        groups: list[tuple[int, int, torch.Tensor]] = []
        pos = 0
        while pos < m:
            end = pos
            while end < m and c.widths[order[end]] == c.widths[order[pos]]:
                end += 1
            stack = torch.empty(end - pos, n, c.widths[order[pos]], dtype=dtype, device=dev)
            for k, i in enumerate(order[pos:end]):
                stack[k] = c.x[i]
                c.x[i] = None  # keep one copy of the features at a time
            groups.append((pos, end, stack))
            pos = end

        def fill(start: int, stop: int, col: int, out: torch.Tensor) -> None:
            cols = slice(col, col + out.shape[2])
            for lo, hi, stack in groups:
                torch.bmm(stack[:, start:stop], stack[:, cols].transpose(1, 2), out=out[lo:hi])

    else:
        dtype = torch.float64
        order = list(range(m))
        xs = [x for x in c.x if x is not None]
        stats = [_rbf_stats(x, threshold, debiased) for x in xs]

        def fill(start: int, stop: int, col: int, out: torch.Tensor) -> None:
            rows, cols = slice(start, stop), slice(col, col + out.shape[2])
            for i in range(m):
                out[i] = _rbf_block(xs[i], stats[i], rows, cols)

    a = torch.zeros(m, m, dtype=torch.float64, device=dev)
    b = _block_rows(n, m, torch.finfo(dtype).bits // 8)
    storage = torch.empty(m * b * n, dtype=dtype, device=dev)
    for start in range(0, n, b):
        stop = min(n, start + b)
        rows = stop - start
        diag = storage[: m * rows * rows].view(m, rows, rows)
        fill(start, stop, start, diag)
        if debiased:
            diag.diagonal(dim1=1, dim2=2).zero_()  # U-centred Grams have a zero diagonal
        _gram_dot(diag, a)
        if stop < n:
            off = storage[m * rows * rows : m * rows * (rows + n - stop)].view(m, rows, n - stop)
            fill(start, stop, stop, off)
            part = torch.zeros_like(a)
            _gram_dot(off, part)
            a += 2.0 * part  # each block above the diagonal stands for its mirror too
    del storage
    if kernel == "linear":
        inv = torch.as_tensor(np.argsort(order), device=dev)
        a = a[inv][:, inv]
        if debiased:
            dd = c.row_sq @ c.row_sq.T
            a = a - (2.0 / (n - 2)) * dd + torch.outer(c.total_sq, c.total_sq) / ((n - 1) * (n - 2))
    return a


def _rbf_stats(x: torch.Tensor, threshold: float, debiased: bool) -> dict[str, Any]:
    """Bandwidth and centring vectors of one RBF Gram matrix (first pass)."""
    n = x.shape[0]
    d = (x * x).sum(dim=1)
    sq = (d[:, None] + d[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    med = _median(sq.reshape(-1))
    if med == 0.0:
        nz = sq[sq > 0]
        med = _median(nz) if nz.numel() else 0.0
    if med == 0.0:
        return {"zero": True}
    scale = 1.0 / (2.0 * threshold**2 * med)
    k = torch.exp(-sq * scale)
    del sq
    if debiased:
        colsum = k.sum(dim=0) - torch.diagonal(k)
        means = colsum / (n - 2)
        means = means - means.sum() / (2 * (n - 1))
        total = 0.0
    else:
        means = k.mean(dim=0)
        total = float(means.mean())
        means = means - total / 2
    return {"zero": False, "scale": scale, "d": d, "means": means}


def _rbf_block(x: torch.Tensor, st: dict[str, Any], rows: slice, cols: slice) -> torch.Tensor:
    """Block ``[rows, cols]`` of one centred (or U-centred, diagonal aside) RBF Gram matrix."""
    if st["zero"]:
        return torch.zeros(rows.stop - rows.start, cols.stop - cols.start, dtype=torch.float64, device=x.device)
    d, means = st["d"], st["means"]
    sq = (d[rows, None] + d[None, cols] - 2.0 * (x[rows] @ x[cols].T)).clamp_min_(0.0)
    k = torch.exp(-sq * st["scale"])
    k -= means[rows, None]
    k -= means[None, cols]
    return k


def _median(v: torch.Tensor) -> float:
    """Median that averages the two middle values for an even count, like numpy."""
    count = v.numel()
    lo = float(torch.kthvalue(v.cpu() if v.device.type != "cpu" else v, (count + 1) // 2).values)
    if count % 2:
        return lo
    hi = float(torch.kthvalue(v.cpu() if v.device.type != "cpu" else v, count // 2 + 1).values)
    return 0.5 * (lo + hi)


def _choose_method(n: int, widths: list[int], kernel: str, method: str) -> str:
    if kernel != "linear":
        return "gram"
    if method != "auto":
        return method
    p_total = sum(widths)
    m = len(widths)
    # Multiply-adds: feature space n P^2 / 2 in float64 (counted twice: float64
    # runs at about half the float32 rate); Gram space n^2 (P + M^2) / 2 in float32.
    feature_cost = 2.0 * n * p_total**2
    gram_cost = float(n) ** 2 * (p_total + m * m)
    return "feature" if feature_cost <= gram_cost else "gram"


def _numerators(
    feats: list[torch.Tensor], *, kernel: str, debiased: bool, threshold: float, method: str
) -> tuple[torch.Tensor, np.ndarray]:
    n = int(feats[0].shape[0])
    _check_n(n, debiased)
    widths = [int(f.shape[1]) for f in feats]
    algo = _choose_method(n, widths, kernel, method)
    big = float(n) ** 2 * (sum(widths) + len(widths) ** 2) >= _FLOAT32_MIN_COST
    # On CUDA float64 is fast enough and immune to TF32 settings made elsewhere
    # (torch.set_float32_matmul_precision would silently cost 3 digits).
    on_cpu = feats[0].device.type == "cpu"
    dtype = torch.float32 if (algo == "gram" and kernel == "linear" and big and on_cpu) else torch.float64
    c = _Centred(feats, dtype)
    if algo == "feature":
        a = _feature_numerators(c, debiased)
    else:
        a = _gram_numerators(c, debiased, kernel, threshold)
    return a, c.zero_variance


def _normalise(a: torch.Tensor, zero: np.ndarray) -> np.ndarray:
    a = a.detach().to("cpu", torch.float64).numpy()
    diag = np.diag(a).copy()
    bad = zero | ~(diag > 0.0)
    diag[bad] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(diag)
        out = a / np.outer(root, root)
    out[bad, :] = np.nan
    out[:, bad] = np.nan
    # Exactly 1 on the diagonal of valid representations (rounding aside).
    idx = np.flatnonzero(~bad)
    out[idx, idx] = 1.0
    return out


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def cka_matrix(
    features: Sequence[Any],
    *,
    kernel: str = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
    device: Any = None,
    method: str = "auto",
) -> np.ndarray:
    """CKA between all pairs of ``M`` representations, in one batched computation.

    Parameters
    ----------
    features : sequence of array-like, each of shape (n, p_i)
        Representations of the same ``n`` examples (numpy arrays or torch
        tensors; float32 is fine, statistics are accumulated in float64).
    kernel : {"linear", "rbf"}, default="linear"
    debiased : bool, default=False
        Use the unbiased HSIC estimator (U-centring); values may be negative.
    threshold : float, default=1.0
        RBF bandwidth as a multiple of the median pairwise distance.
    device : None, "cpu", "cuda" or torch.device, default=None
        Where to compute; None picks CUDA when available, else CPU.
    method : {"auto", "feature", "gram"}, default="auto"
        Algorithm (both exact); "auto" picks the cheaper one for the shapes.

    Returns
    -------
    ndarray of shape (M, M), float64
        Symmetric; 1 on the diagonal; ``NaN`` rows/columns for zero-variance
        representations.

    Raises
    ------
    CKAError
        Bad option, non-2-D or non-finite input, mismatched ``n``, or
        ``debiased`` with ``n < 4``.
    """
    _check_options(kernel, threshold, method)
    dev = _resolve_device(device)
    feats = _prepare(features, "features", dev)
    a, zero = _numerators(feats, kernel=kernel, debiased=debiased, threshold=threshold, method=method)
    return _normalise(a, zero)


def cka_cross(
    features_a: Sequence[Any],
    features_b: Sequence[Any],
    *,
    kernel: str = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
    device: Any = None,
    method: str = "auto",
) -> np.ndarray:
    """CKA between every representation of ``features_a`` and every one of ``features_b``.

    For example layer-by-layer similarity between two runs.

    Parameters
    ----------
    features_a, features_b : sequence of array-like, each of shape (n, p)
        All with the same ``n``.
    kernel, debiased, threshold, device, method
        As in :func:`cka_matrix`.

    Returns
    -------
    ndarray of shape (len(features_a), len(features_b))
    """
    _check_options(kernel, threshold, method)
    dev = _resolve_device(device)
    fa = _prepare(features_a, "features_a", dev)
    fb = _prepare(features_b, "features_b", dev)
    if fa[0].shape[0] != fb[0].shape[0]:
        raise CKAError(
            f"features_b: must have the same number of rows as features_a ({fa[0].shape[0]}), "
            f"got {fb[0].shape[0]}"
        )
    a, zero = _numerators(fa + fb, kernel=kernel, debiased=debiased, threshold=threshold, method=method)
    full = _normalise(a, zero)
    return full[: len(fa), len(fa) :].copy()


def linear_cka(x: Any, y: Any, *, debiased: bool = False) -> float:
    """Linear CKA of two representations of the same examples.

    Parameters
    ----------
    x : array-like of shape (n, p)
    y : array-like of shape (n, q)
    debiased : bool, default=False
        Unbiased HSIC (Song et al. 2012); needs ``n >= 4``; may be negative.

    Returns
    -------
    float
        In ``[0, 1]`` (biased) or ``[-1, 1]`` (debiased); ``NaN`` if either
        representation has zero variance.

    Raises
    ------
    CKAError
        Mismatched rows, non-finite values, or ``debiased`` with ``n < 4``.
    """
    return float(cka_matrix([x, y], kernel="linear", debiased=debiased, device="cpu")[0, 1])


def rbf_cka(x: Any, y: Any, *, threshold: float = 1.0, debiased: bool = False) -> float:
    """RBF-kernel CKA of two representations of the same examples.

    Parameters
    ----------
    x : array-like of shape (n, p)
    y : array-like of shape (n, q)
    threshold : float, default=1.0
        Bandwidth ``sigma = threshold x`` median pairwise distance (see
        :func:`gram_rbf`).
    debiased : bool, default=False

    Returns
    -------
    float
        ``NaN`` if either representation has zero variance.
    """
    return float(cka_matrix([x, y], kernel="rbf", debiased=debiased, threshold=threshold, device="cpu")[0, 1])


class MinibatchCKA:
    """Minibatch CKA accumulator (Nguyen et al. 2021).

    Each call to :meth:`update` gives one minibatch of examples for every one
    of ``M`` representations; the unbiased HSIC of every pair is computed on
    the batch and summed. :meth:`compute` returns
    ``sum HSIC_u(i, j) / sqrt(sum HSIC_u(i, i) * sum HSIC_u(j, j))``. With a
    single batch holding all the data this is exactly the full debiased CKA.
    With the RBF kernel the bandwidth is set per batch.

    Parameters
    ----------
    kernel : {"linear", "rbf"}, default="linear"
    threshold : float, default=1.0
    device : None, "cpu", "cuda" or torch.device, default=None

    Examples
    --------
    >>> acc = MinibatchCKA()
    >>> for xb, yb in batches:          # doctest: +SKIP
    ...     acc.update([xb, yb])
    >>> acc.compute()[0, 1]              # doctest: +SKIP
    """

    def __init__(self, *, kernel: str = "linear", threshold: float = 1.0, device: Any = None) -> None:
        _check_options(kernel, threshold, "auto")
        self.kernel = kernel
        self.threshold = threshold
        self.device = _resolve_device(device)
        self._sum: torch.Tensor | None = None
        self._widths: list[int] | None = None
        self.n_batches = 0
        self.n_examples = 0

    def update(self, features: Sequence[Any]) -> None:
        """Add one minibatch.

        Parameters
        ----------
        features : sequence of array-like, each of shape (b, p_i)
            The same ``M`` representations (same widths) at every call;
            ``b >= 4``.

        Raises
        ------
        CKAError
            Batch smaller than 4, or a different number/width of representations
            than earlier batches.
        """
        feats = _prepare(features, "features", self.device)
        widths = [int(f.shape[1]) for f in feats]
        if self._widths is not None and widths != self._widths:
            raise CKAError(
                f"features: every batch must hold the same representations (widths {self._widths}), got {widths}"
            )
        n = int(feats[0].shape[0])
        a, _ = _numerators(feats, kernel=self.kernel, debiased=True, threshold=self.threshold, method="auto")
        hsic = a / (n * (n - 3))
        self._sum = hsic if self._sum is None else self._sum + hsic
        self._widths = widths
        self.n_batches += 1
        self.n_examples += n

    def compute(self) -> np.ndarray:
        """CKA matrix (M, M) from the batches seen so far.

        Raises
        ------
        CKAError
            If no batch was added.
        """
        if self._sum is None:
            raise CKAError("update: call update() with at least one batch before compute()")
        return _normalise(self._sum, np.zeros(self._sum.shape[0], dtype=bool))

    def reset(self) -> None:
        """Forget all batches."""
        self._sum = None
        self._widths = None
        self.n_batches = 0
        self.n_examples = 0
