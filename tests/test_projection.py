"""Tests for akp.projection: UMAP, aligned UMAP, the model map, the cache and
the warm-up. One umap warm-up is shared by the module (it costs ~20 s cold);
inputs are tiny so each fit takes a fraction of a second."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from akp import projection as P

N_EPOCHS = 30  # enough to lay out 60 points, fast to run


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    P.warm_up()


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


@pytest.fixture
def count_fits(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Spy on the two fit functions: counts calls, still fits."""
    counts = {"umap": 0, "aligned": 0}
    real_umap, real_aligned = P._fit_umap, P._fit_aligned

    def fit_umap(*args, **kwargs):
        counts["umap"] += 1
        return real_umap(*args, **kwargs)

    def fit_aligned(*args, **kwargs):
        counts["aligned"] += 1
        return real_aligned(*args, **kwargs)

    monkeypatch.setattr(P, "_fit_umap", fit_umap)
    monkeypatch.setattr(P, "_fit_aligned", fit_aligned)
    return counts


# ----------------------------------------------------------------- lazy import


def test_umap_is_not_imported_by_akp_projection() -> None:
    import subprocess

    code = "import akp.projection, sys; print('umap' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------ umap_embedding


def test_umap_shape_dtype_and_determinism(tmp_path: Path) -> None:
    x = blobs()
    a = P.umap_embedding(x, seed=1, n_epochs=N_EPOCHS, use_cache=False)
    b = P.umap_embedding(x, seed=1, n_epochs=N_EPOCHS, use_cache=False)
    c = P.umap_embedding(x, seed=2, n_epochs=N_EPOCHS, use_cache=False)
    assert a.shape == (60, 2) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_umap_separates_clusters() -> None:
    e = P.umap_embedding(blobs(), n_epochs=N_EPOCHS, use_cache=False).astype(np.float64)
    g1, g2 = e[:30], e[30:]
    within = (np.linalg.norm(g1 - g1.mean(0), axis=1).mean()
              + np.linalg.norm(g2 - g2.mean(0), axis=1).mean()) / 2
    between = np.linalg.norm(g1.mean(0) - g2.mean(0))
    assert between > 3 * within


def test_cache_hit_skips_fit_and_returns_same(tmp_path: Path, count_fits, monkeypatch) -> None:
    x = blobs()
    first = P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert count_fits["umap"] == 1
    files = list(tmp_path.glob("umap-*.npy"))
    assert len(files) == 1
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left nothing behind

    def boom(*args, **kwargs):
        raise AssertionError("fit called on a cache hit")

    monkeypatch.setattr(P, "_fit_umap", boom)
    again = P.umap_embedding(x.copy(), n_epochs=N_EPOCHS, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)
    assert again.dtype == np.float32


def test_cache_misses_when_data_or_any_parameter_changes(tmp_path: Path, count_fits) -> None:
    x = blobs()
    base = dict(n_neighbors=10, min_dist=0.1, metric="euclidean", seed=0, n_epochs=N_EPOCHS)
    P.umap_embedding(x, cache_dir=tmp_path, **base)
    assert count_fits["umap"] == 1

    changed = x.copy()
    changed[3, 2] += 1e-3
    variants = [
        (changed, base),
        (x.astype(np.float64), base),  # same values, other dtype
        (x[:, :6], base),  # other shape
        (x, {**base, "n_neighbors": 11}),
        (x, {**base, "min_dist": 0.2}),
        (x, {**base, "metric": "cosine"}),
        (x, {**base, "seed": 1}),
        (x, {**base, "n_epochs": N_EPOCHS + 1}),
    ]
    for i, (data, params) in enumerate(variants, start=2):
        P.umap_embedding(data, cache_dir=tmp_path, **params)
        assert count_fits["umap"] == i, f"variant {i - 2} should miss the cache"
    assert len(list(tmp_path.glob("umap-*.npy"))) == len(variants) + 1
    # ...and every variant now hits.
    for data, params in variants:
        P.umap_embedding(data, cache_dir=tmp_path, **params)
    assert count_fits["umap"] == len(variants) + 1


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not a numpy file at all", "wrong-shape", "wrong-dtype", "pickled"],
)
def test_corrupt_cache_file_is_ignored_and_rebuilt(tmp_path: Path, count_fits, garbage) -> None:
    x = blobs()
    good = P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    (path,) = tmp_path.glob("umap-*.npy")
    if garbage == "wrong-shape":
        np.save(path, np.zeros((5, 2), np.float32))
    elif garbage == "wrong-dtype":
        np.save(path, good.astype(np.float64))
    elif garbage == "pickled":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(garbage)
    rebuilt = P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert count_fits["umap"] == 2
    np.testing.assert_array_equal(rebuilt, good)
    # The file was rewritten and is now valid.
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), good)


def test_default_cache_dir_follows_akp_home(tmp_path: Path, monkeypatch, count_fits) -> None:
    monkeypatch.setenv("AKP_HOME", str(tmp_path))
    assert P.default_cache_dir() == tmp_path / "cache" / "umap"
    P.umap_embedding(blobs(), n_epochs=N_EPOCHS)
    assert len(list((tmp_path / "cache" / "umap").glob("umap-*.npy"))) == 1


def test_concurrent_identical_requests_fit_once(tmp_path: Path, count_fits) -> None:
    x = blobs()
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(P.umap_embedding(x, n_epochs=N_EPOCHS, cache_dir=tmp_path))
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count_fits["umap"] == 1
    assert len(results) == 4
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


# ------------------------------------------------------------------ small and bad input


def test_fewer_points_than_neighbours_clamps(tmp_path: Path) -> None:
    assert P.effective_n_neighbors(15, 10) == 9
    assert P.effective_n_neighbors(15, 100) == 15
    x = blobs(n=10)
    e = P.umap_embedding(x, n_neighbors=15, n_epochs=N_EPOCHS, cache_dir=tmp_path)
    assert e.shape == (10, 2) and np.isfinite(e).all()
    # The clamped request is the same embedding as asking for 9 directly.
    np.testing.assert_array_equal(
        e, P.umap_embedding(x, n_neighbors=9, n_epochs=N_EPOCHS, use_cache=False)
    )
    tiny = P.umap_embedding(blobs(n=P.MIN_POINTS), n_epochs=N_EPOCHS, use_cache=False)
    assert tiny.shape == (P.MIN_POINTS, 2) and np.isfinite(tiny).all()


@pytest.mark.parametrize(
    ("features", "field"),
    [
        (np.zeros((3, 4)), "at least 4 points"),
        (np.zeros(10), "2-D"),
        (np.zeros((2, 3, 4)), "2-D"),
        (np.zeros((10, 0)), "at least 1 feature"),
        (np.array([[1.0, np.nan]] * 10), "finite"),
        (np.array([[1.0, np.inf]] * 10), "finite"),
        (np.array([["a", "b"]] * 10), "real numbers"),
    ],
)
def test_bad_features_raise_naming_the_field(features, field, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="features") as info:
        P.umap_embedding(features, cache_dir=tmp_path)
    assert field in str(info.value)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n_neighbors": 1}, "n_neighbors"),
        ({"n_neighbors": 2.5}, "n_neighbors"),
        ({"n_neighbors": True}, "n_neighbors"),
        ({"min_dist": -0.1}, "min_dist"),
        ({"min_dist": 1.5}, "min_dist"),
        ({"min_dist": "0.1"}, "min_dist"),
        ({"metric": "hamming-ish"}, "metric"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"n_epochs": 0}, "n_epochs"),
    ],
)
def test_bad_parameters_raise_naming_the_field(params, field) -> None:
    with pytest.raises(ValueError, match=field):
        P.umap_embedding(blobs(), use_cache=False, **params)


# ------------------------------------------------------------------ aligned_umap


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


# ------------------------------------------------------------------ model_map


def two_groups(per_group: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.normal(scale=0.05, size=(2 * per_group, 6))
    pts[per_group:, 0] += 1.0
    return np.linalg.norm(pts[:, None] - pts[None], axis=-1)


def within_between(coords: np.ndarray, per_group: int) -> tuple[float, float]:
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    a, b = slice(0, per_group), slice(per_group, None)
    iu = np.triu_indices(per_group, 1)
    within = (d[a, a][iu].mean() + d[b, b][iu].mean()) / 2
    return float(within), float(d[a, b].mean())


@pytest.mark.parametrize("method", ["mds", "umap"])
def test_model_map_separates_two_tight_groups(method: str) -> None:
    d = two_groups()
    coords = P.model_map(d, method=method, seed=0)
    assert coords.shape == (10, 2) and coords.dtype == np.float64
    within, between = within_between(coords, 5)
    assert within < 0.2 * between
    np.testing.assert_array_equal(coords, P.model_map(d, method=method, seed=0))


def test_model_map_mds_keeps_euclidean_distances() -> None:
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(6, 2))
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    coords = P.model_map(d)
    got = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(got, d, atol=1e-6)
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-9)


def test_model_map_small_cases() -> None:
    np.testing.assert_array_equal(P.model_map([[0.0]]), [[0.0, 0.0]])
    np.testing.assert_allclose(P.model_map([[0, 0.4], [0.4, 0]], method="umap"),
                               [[-0.2, 0.0], [0.2, 0.0]])
    np.testing.assert_array_equal(P.model_map(np.zeros((4, 4))), np.zeros((4, 4))[:, :2])
    # Too few runs for UMAP: MDS is used, exactly the MDS answer.
    d = two_groups(per_group=2)
    np.testing.assert_array_equal(P.model_map(d, method="umap"), P.model_map(d, method="mds"))


@pytest.mark.parametrize(
    ("distances", "kwargs", "message"),
    [
        (np.zeros((3, 2)), {}, "square"),
        (np.zeros(3), {}, "square"),
        (np.zeros((0, 0)), {}, "at least 1 run"),
        ([[0, 1], [2, 0]], {}, "symmetric"),
        ([[0, -1], [-1, 0]], {}, "non-negative"),
        ([[0, np.nan], [np.nan, 0]], {}, "finite"),
        ([[1, 1], [1, 1]], {}, "zero diagonal"),
        ([["a"]], {}, "distances"),
        (np.zeros((3, 3)), {"method": "tsne"}, "method"),
    ],
)
def test_model_map_validation(distances, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        P.model_map(distances, **kwargs)
    assert "distances" in str(info.value) or "method" in str(info.value)


def test_model_map_tolerates_rounding_asymmetry() -> None:
    d = two_groups()
    noisy = d + np.triu(np.full_like(d, 1e-9), 1)
    coords = P.model_map(noisy)
    np.testing.assert_allclose(coords, P.model_map(d), atol=1e-6)


# ------------------------------------------------------------------ store helpers


def test_cache_run_embedding_then_view_from_cache(tmp_path: Path, count_fits, monkeypatch) -> None:
    reps = {("r1", "embedding"): {1: blobs(seed=1), 3: blobs(seed=3)}}
    store = FakeStore(tmp_path, reps)
    cached = P.cache_run_embedding(store, "r1")
    assert store.calls == [("r1", "embedding", None)]
    assert count_fits["umap"] == 1
    assert len(list((tmp_path / "cache" / "umap").glob("umap-*.npy"))) == 1
    # The last epoch's representations were used.
    np.testing.assert_array_equal(
        cached, P.umap_embedding(blobs(seed=3), cache_dir=store.cache_dir("umap"))
    )
    monkeypatch.setattr(P, "_fit_umap", lambda *a, **k: pytest.fail("fit on a cached view"))
    view = P.run_embedding(store, "r1")
    np.testing.assert_array_equal(view, cached)


def test_run_embedding_epoch_and_params(tmp_path: Path, count_fits) -> None:
    reps = {("r1", "conv2"): {1: blobs(seed=1, d=4), 3: blobs(seed=3, d=4)}}
    store = FakeStore(tmp_path, reps)
    e1 = P.run_embedding(store, "r1", layer="conv2", epoch=1, n_epochs=N_EPOCHS, seed=5)
    assert store.calls[-1] == ("r1", "conv2", 1)
    np.testing.assert_array_equal(
        e1, P.umap_embedding(blobs(seed=1, d=4), n_epochs=N_EPOCHS, seed=5, use_cache=False)
    )
    epochs, frames = P.run_aligned_embeddings(store, "r1", layer="conv2", n_epochs=N_EPOCHS)
    assert epochs == [1, 3] and [f.shape for f in frames] == [(60, 2), (60, 2)]
    assert count_fits == {"umap": 2, "aligned": 1}  # one of them uncached


# ------------------------------------------------------------------ warm-up


def test_warm_up_is_idempotent_and_thread_safe() -> None:
    assert P.is_warm()
    assert P.warm_up_status()["state"] == "done"
    assert P.warm_up() == 0.0
    thread = P.start_warm_up()
    assert thread is P.start_warm_up()  # once per process
    assert thread.daemon
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert P.is_warm()
