"""Benchmark akp.projection in one process: UMAP warm-up, first fit, warm fit
and cached call for 512 and 2048 probe points of 64 and 256 features; the
aligned UMAP likewise; and a finished run's embedding view served from cache.

Targets: cached call <= 2% of a warm fit; a run's view from cache < 0.2 s.

Usage: .venv/bin/python bench/projection.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akp import projection as P  # noqa: E402
from akp.projection.cache import umap_version  # noqa: E402
from akp.projection.umap import import_umap  # noqa: E402


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def probe_like(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Representations with class structure: 10 clusters, ReLU-like >= 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(10, d))
    x = centres[rng.integers(0, 10, n)] + rng.normal(size=(n, d))
    return np.maximum(x, 0.0).astype(np.float32)


class NpzStore:
    """A small store with RunStore's reading side: one .npz per run."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def save(self, run_id: str, layer: str, reps: dict[int, np.ndarray]) -> None:
        np.savez(self.home / f"{run_id}.npz", **{f"{layer}@{e}": r for e, r in reps.items()})

    def representation_epochs(self, run_id: str, layer: str) -> list[int]:
        with np.load(self.home / f"{run_id}.npz", allow_pickle=False) as z:
            return sorted(int(k.split("@")[1]) for k in z.files if k.split("@")[0] == layer)

    def representations(self, run_id: str, layer: str, epoch: int | None = None) -> np.ndarray:
        if epoch is None:
            epoch = self.representation_epochs(run_id, layer)[-1]
        with np.load(self.home / f"{run_id}.npz", allow_pickle=False) as z:
            return z[f"{layer}@{epoch}"]

    def cache_dir(self, kind: str) -> Path:
        path = self.home / "cache" / kind
        path.mkdir(parents=True, exist_ok=True)
        return path


def main() -> None:
    print(f"umap-learn {umap_version()}, numpy {np.__version__}, python {sys.version.split()[0]}")
    t_import, _ = timed(import_umap)
    print(f"import umap: {t_import:.2f} s")
    t_warm, _ = timed(P.warm_up)
    print(f"warm_up(): {t_warm:.2f} s   (is_warm={P.is_warm()})")
    print()
    header = f"{'points':>6} {'feats':>5} | {'first fit':>9} {'warm fit':>9} {'cached':>9} | cached/warm"
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "umap"
        print("UMAP (umap_embedding, seed 0, default n_epochs)")
        print(header)
        for n in (512, 2048):
            for d in (64, 256):
                x = probe_like(n, d)
                t_first, first = timed(lambda x=x: P.umap_embedding(x, cache_dir=cache))
                t_fit, fit = timed(lambda x=x: P.umap_embedding(x, use_cache=False))
                t_hit, hit = timed(lambda x=x: P.umap_embedding(x, cache_dir=cache), repeat=7)
                assert np.array_equal(first, fit) and np.array_equal(first, hit)
                print(f"{n:>6} {d:>5} | {t_first:>8.3f}s {t_fit:>8.3f}s {t_hit * 1e3:>7.2f}ms"
                      f" | {t_hit / t_fit:.2%}")
        print()
        print("Aligned UMAP (aligned_umap, 4 frames, seed 0, default n_epochs)")
        print(header)
        for n in (512, 2048):
            d = 64
            frames = [probe_like(n, d) * (1 + 0.1 * t) for t in range(4)]
            t_first, first = timed(lambda frames=frames: P.aligned_umap(frames, cache_dir=cache))
            t_fit, fit = timed(lambda frames=frames: P.aligned_umap(frames, use_cache=False))
            t_hit, hit = timed(lambda frames=frames: P.aligned_umap(frames, cache_dir=cache), repeat=7)
            assert all(np.array_equal(a, b) for a, b in zip(first, hit, strict=True))
            print(f"{n:>6} {d:>5} | {t_first:>8.3f}s {t_fit:>8.3f}s {t_hit * 1e3:>7.2f}ms"
                  f" | {t_hit / t_fit:.2%}")
        print()
        print("Finished run's embedding view (store: one .npz per run, 512 x 64, 5 epochs)")
        store = NpzStore(Path(tmp))
        store.save("run-1", "embedding", {e: probe_like(512, 64, seed=e) for e in range(1, 6)})
        t_job, _ = timed(lambda: P.cache_run_embedding(store, "run-1"))
        t_view, _ = timed(lambda: P.run_embedding(store, "run-1"), repeat=7)
        print(f"cache_run_embedding (job end): {t_job:.3f} s")
        print(f"run_embedding from cache (view): {t_view * 1e3:.2f} ms   target < 200 ms")
        print()
        print("Model map (MDS and UMAP on 40 runs, two groups)")
        rng = np.random.default_rng(0)
        pts = rng.normal(scale=0.05, size=(40, 8))
        pts[20:, 0] += 1.0
        dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        for method in ("mds", "umap"):
            t, _ = timed(lambda m=method: P.model_map(dist, method=m), repeat=3)
            print(f"model_map(method={method!r}): {t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
