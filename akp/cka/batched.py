"""Batched exact CKA of many representations at once (feature or Gram space), in torch.

See :mod:`akp.cka` for the conventions and the two algorithms.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from akp.cka.reference import CKAError, _check_n, _check_threshold

KERNELS = ("linear", "rbf")
METHODS = ("auto", "feature", "gram")

# Bytes allowed for one block of Gram rows (all representations together);
# bounds peak memory of the Gram-space algorithm independently of n and M.
_BLOCK_BYTES = 256 * 2**20
# Below this many multiply-adds the Gram-space products run in float64 too:
# float32 only pays off (about 2x) on large problems, where its error is still
# ~1e-8 thanks to the float64 accumulation (see _gram_dot).
_FLOAT32_MIN_COST = 2e8


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


