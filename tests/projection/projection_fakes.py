"""Inputs shared by the projection tests: tiny clusters, and the part of RunStore that akp.projection uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np

N_EPOCHS = 30  # enough to lay out 60 points, fast to run


def blobs(n: int = 60, d: int = 8, seed: int = 0, sep: float = 8.0) -> np.ndarray:
    """Two well-separated Gaussian clusters: first half, second half."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[n // 2 :, 0] += sep
    return x.astype(np.float32)


class FakeStore:
    """The part of RunStore that akp.projection uses."""

    def __init__(self, home: Path, reps: dict[tuple[str, str], dict[int, np.ndarray]]):
        self.home = home
        self.reps = reps
        self.calls: list[tuple[str, str, int | None]] = []

    def representations(self, run_id: str, layer: str, epoch: int | None = None) -> np.ndarray:
        self.calls.append((run_id, layer, epoch))
        by_epoch = self.reps[(run_id, layer)]
        return by_epoch[max(by_epoch) if epoch is None else epoch]

    def representation_epochs(self, run_id: str, layer: str) -> list[int]:
        return sorted(self.reps[(run_id, layer)])

    def cache_dir(self, kind: str) -> Path:
        path = self.home / "cache" / kind
        path.mkdir(parents=True, exist_ok=True)
        return path
