"""Benchmark: all-pairs debiased linear CKA of M representations, against peers.

Usage (from the repository root)::

    .venv/bin/python bench/cka_matrix.py              # CPU: M=32, n=2048, p=256
    .venv/bin/python bench/cka_matrix.py --gpu        # CUDA: M=64, n=8192, p=512
    .venv/bin/python bench/cka_matrix.py --memory     # peak RSS for n=10000, M=32, p=512

Every timing is best-of-``--repeats`` in this one process, on the same data:
post-ReLU float32 activations with large per-feature offsets, as captured
from a network. Peers (``pip install -r requirements-bench.txt``) are skipped
with a note when not installed:

* ``pytorch-cka`` (import ``cka``): ``cka.cka_from_features``, batched over
  all representations; note it clamps to ``[0, 1]``.
* ``ckatorch``: ``ckatorch.core.cka_base(..., unbiased=True)`` once per pair.
* a float64 per-pair reference written here (Kornblith et al.'s feature-space
  debiased formula in numpy); its values are the ground truth for the error
  column.
"""
from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akp.cka import cka_matrix  # noqa: E402


def make_features(m: int, n: int, p: int, seed: int = 0) -> list[np.ndarray]:
    """Post-ReLU float32 features with shared structure and large offsets."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 32))
    feats = []
    for _ in range(m):
        mix = rng.standard_normal((32, p)) / math.sqrt(32)
        own = rng.standard_normal((n, p)) * rng.uniform(0.3, 1.5)
        act = np.maximum(latent @ mix + own + 0.2, 0.0)
        offset = rng.uniform(10.0, 100.0, size=(1, p))
        feats.append((act + offset).astype(np.float32))
    return feats


def reference_pair(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA in float64, feature-space form (Kornblith et al. 2019)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    n = x.shape[0]

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        ra = np.einsum("ij,ij->i", a, a)
        rb = np.einsum("ij,ij->i", b, b)
        dot = np.linalg.norm(a.T @ b) ** 2
        return dot - n / (n - 2) * ra @ rb + ra.sum() * rb.sum() / ((n - 1) * (n - 2))

    return float(hsic(x, y) / math.sqrt(hsic(x, x) * hsic(y, y)))


def reference_matrix(feats: list[np.ndarray]) -> np.ndarray:
    m = len(feats)
    out = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            out[i, j] = out[j, i] = reference_pair(feats[i], feats[j])
    return out


def reference_matrix_torch(feats: list[torch.Tensor]) -> np.ndarray:
    """The same float64 per-pair reference on the GPU (for --gpu)."""
    m = len(feats)
    n = feats[0].shape[0]
    xs = [f.double() - f.double().mean(0) for f in feats]
    rows = [(x * x).sum(1) for x in xs]

    def hsic(i: int, j: int) -> float:
        dot = float(torch.linalg.norm(xs[i].T @ xs[j]) ** 2)
        rr = float(rows[i] @ rows[j])
        return dot - n / (n - 2) * rr + float(rows[i].sum() * rows[j].sum()) / ((n - 1) * (n - 2))

    self_h = [hsic(i, i) for i in range(m)]
    out = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            out[i, j] = out[j, i] = hsic(i, j) / math.sqrt(self_h[i] * self_h[j])
    return out


def best_of(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[float, Any]:
    best = math.inf
    result = None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peers(feats_t: list[torch.Tensor], pair_limit: int) -> dict[str, Callable[[], np.ndarray] | str]:
    out: dict[str, Callable[[], np.ndarray] | str] = {}
    try:
        import cka as pytorch_cka  # pytorch-cka

        def run_pytorch_cka() -> np.ndarray:
            return pytorch_cka.cka_from_features(feats_t, feats_t).double().cpu().numpy()

        out["pytorch-cka (batched)"] = run_pytorch_cka
        # Its Gram matrices are formed from the raw features in their dtype; with
        # float32 offsets that loses everything. Centring first (in float64,
        # outside the timing) shows the library at its best.
        centred = [(f.double() - f.double().mean(0)).to(f.dtype) for f in feats_t]

        def run_pytorch_cka_centred() -> np.ndarray:
            return pytorch_cka.cka_from_features(centred, centred).double().cpu().numpy()

        out["pytorch-cka (input centred first)"] = run_pytorch_cka_centred
    except ImportError:
        out["pytorch-cka (batched)"] = "skipped: pytorch-cka not installed"
    try:
        from ckatorch.core import cka_base

        def run_ckatorch() -> np.ndarray:
            # Only the first ``pair_limit`` pairs (one Gram pair each is slow);
            # the rest stay NaN and the time is scaled to all pairs below.
            m = len(feats_t)
            res = np.full((m, m), np.nan)
            pairs = [(i, j) for i in range(m) for j in range(i + 1, m)][:pair_limit]
            for i, j in pairs:
                res[i, j] = res[j, i] = float(cka_base(feats_t[i], feats_t[j], unbiased=True))
            return res

        out["ckatorch (per pair)"] = run_ckatorch
    except ImportError:
        out["ckatorch (per pair)"] = "skipped: ckatorch not installed"
    return out


def run_speed(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if args.gpu else "cpu")
    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu: CUDA is not available on this machine")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    m, n, p = args.m, args.n, args.p
    feats = make_features(m, n, p)
    feats_t = [torch.from_numpy(f).to(device) for f in feats]
    print(f"debiased linear CKA matrix: M={m} n={n} p={p} float32 post-ReLU with offsets; device={device}; "
          f"torch threads={torch.get_num_threads()}; best of {args.repeats}")

    t_ref0 = time.perf_counter()
    ref = reference_matrix_torch(feats_t) if device.type == "cuda" else reference_matrix(feats)
    t_ref = time.perf_counter() - t_ref0

    rows: list[tuple[str, float | None, float | None, str]] = []
    t_akp, got = best_of(lambda: cka_matrix(feats_t, debiased=True, device=device), args.repeats, sync)
    rows.append(("akp.cka.cka_matrix", t_akp, float(np.nanmax(np.abs(got - ref))), ""))
    n_pairs = m * (m - 1) // 2
    pair_limit = min(args.pair_limit, n_pairs)
    for name, fn in peers(feats_t, pair_limit).items():
        if isinstance(fn, str):
            rows.append((name, None, None, fn))
            continue
        reps = args.peer_pair_repeats if "per pair" in name else args.repeats
        try:
            t, res = best_of(fn, reps, sync)
        except Exception as exc:  # a peer failing (e.g. out of memory) must not end the bench
            rows.append((name, None, None, f"failed: {type(exc).__name__}: {exc}"[:120]))
            continue
        note = f"best of {reps}" if reps != args.repeats else ""
        if "per pair" in name and pair_limit < n_pairs:
            t = t * n_pairs / pair_limit
            note = f"{note}; timed {pair_limit} of {n_pairs} pairs, scaled to all".lstrip("; ")
        rows.append((name, t, float(np.nanmax(np.abs(res - ref))), note))
    rows.append(("float64 per-pair reference (numpy)" if device.type == "cpu" else "float64 per-pair reference (torch)",
                 t_ref, 0.0, "run once; ground truth"))

    print(f"{'implementation':38s} {'time s':>9s} {'akp speed-up':>12s} {'max abs err':>12s}  note")
    for name, t, err, note in rows:
        if t is None:
            print(f"{name:38s} {'-':>9s} {'-':>12s} {'-':>12s}  {note}")
        else:
            print(f"{name:38s} {t:9.3f} {t / t_akp:11.2f}x {err:12.2e}  {note}")
    print("akp time / pytorch-cka time: "
          + next((f"{t_akp / t:.3f}" for name, t, _, _ in rows if name == "pytorch-cka (batched)" and t), "n/a"))


def run_memory(args: argparse.Namespace) -> None:
    m, n, p = 32, 10000, 512
    feats = make_features(m, n, p)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    out = cka_matrix(feats, debiased=True, device="cpu")
    t = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    inputs = sum(f.nbytes for f in feats) / 2**30
    print(f"memory: M={m} n={n} p={p} debiased linear on CPU: {t:.1f} s; "
          f"peak RSS {peak:.2f} GiB (inputs {inputs:.2f} GiB, peak before the call {before:.2f} GiB); "
          f"finite={bool(np.isfinite(out).all())}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="CUDA case: M=64, n=8192, p=512")
    ap.add_argument("--memory", action="store_true", help="peak memory for n=10000, M=32, p=512 on CPU")
    ap.add_argument("--m", type=int, default=None)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--p", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-pair-repeats", type=int, default=1,
                    help="repeats for per-pair peers (slow: one Gram pair at a time)")
    ap.add_argument("--pair-limit", type=int, default=24,
                    help="pairs timed for per-pair peers; their time is scaled to all pairs")
    args = ap.parse_args(argv)
    if args.memory:
        run_memory(args)
        return
    dm, dn, dp = (64, 8192, 512) if args.gpu else (32, 2048, 256)
    args.m, args.n, args.p = args.m or dm, args.n or dn, args.p or dp
    run_speed(args)


if __name__ == "__main__":
    main()
