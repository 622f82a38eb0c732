"""One umap warm-up per module (it costs ~20 s cold, then nothing), and a spy on the two fit functions."""
from __future__ import annotations

import pytest

import akp.projection.aligned as projection_aligned
import akp.projection.umap as projection_umap
from akp import projection as P


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    P.warm_up()


@pytest.fixture
def count_fits(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Spy on the two fit functions: counts calls, still fits."""
    counts = {"umap": 0, "aligned": 0}
    real_umap, real_aligned = projection_umap._fit_umap, projection_aligned._fit_aligned

    def fit_umap(*args, **kwargs):
        counts["umap"] += 1
        return real_umap(*args, **kwargs)

    def fit_aligned(*args, **kwargs):
        counts["aligned"] += 1
        return real_aligned(*args, **kwargs)

    monkeypatch.setattr(projection_umap, "_fit_umap", fit_umap)
    monkeypatch.setattr(projection_aligned, "_fit_aligned", fit_aligned)
    return counts
