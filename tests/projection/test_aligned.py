"""Tests for akp.projection.aligned: aligned UMAP over frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from projection_fakes import N_EPOCHS, blobs

from akp import projection as P


def test_aligned_frames_same_points_same_order_and_aligned(tmp_path: Path, count_fits) -> None:
    rng = np.random.default_rng(3)
    x0 = blobs()
    frames = [x0, x0 + rng.normal(scale=0.05, size=x0.shape).astype(np.float32),
              x0 * 1.5]
    out = P.aligned_umap(frames, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert len(out) == 3
    assert all(f.shape == (60, 2) and f.dtype == np.float32 for f in out)
    assert all(np.isfinite(f).all() for f in out)
    # Nearly identical frames stay in place: each point moves little
    # compared with the size of the layout.
    spread = np.ptp(out[0], axis=0).max()
    move = np.linalg.norm(out[1] - out[0], axis=1).mean()
    assert move < 0.25 * spread
    # Same order: the first-half cluster is the first half in every frame.
    for f in out:
        g1, g2 = f[:30].mean(0), f[30:].mean(0)
        assert np.linalg.norm(g1 - g2) > 0.3 * spread
    # Deterministic, and cached.
    assert count_fits["aligned"] == 1
    again = P.aligned_umap(frames, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert count_fits["aligned"] == 1
    for a, b in zip(out, again, strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = P.aligned_umap(frames, n_epochs=N_EPOCHS, use_cache=False)
    for a, b in zip(out, fresh, strict=True):
        np.testing.assert_array_equal(a, b)
    assert count_fits["aligned"] == 2
    # Any change misses.
    P.aligned_umap(frames, n_epochs=N_EPOCHS, cache_dir=tmp_path, alignment_regularisation=0.1)
    P.aligned_umap(frames[:2], n_epochs=N_EPOCHS, cache_dir=tmp_path)
    P.aligned_umap(frames, n_epochs=N_EPOCHS, cache_dir=tmp_path, min_dist=0.3)
    assert count_fits["aligned"] == 5


def test_aligned_accepts_different_feature_counts_and_single_frame(tmp_path: Path) -> None:
    x = blobs()
    out = P.aligned_umap([x, x[:, :4]], n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert [f.shape for f in out] == [(60, 2), (60, 2)]
    (single,) = P.aligned_umap([x], n_epochs=N_EPOCHS, cache_dir=tmp_path)
    np.testing.assert_array_equal(single, P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path))


@pytest.mark.parametrize(
    ("sequence", "kwargs", "field"),
    [
        ([], {}, "features_sequence"),
        ([np.zeros((10, 3)), np.zeros((9, 3))], {}, r"features_sequence\[1\]"),
        ([np.zeros((10, 3)), np.full((10, 3), np.nan)], {}, r"features_sequence\[1\]"),
        ([np.zeros((10, 3))] * 2, {"alignment_regularisation": 0}, "alignment_regularisation"),
        ([np.zeros((10, 3))] * 2, {"alignment_window_size": 0}, "alignment_window_size"),
    ],
)
def test_aligned_bad_input(sequence, kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        P.aligned_umap(sequence, use_cache=False, **kwargs)
