"""Tests for akp.cka: CKA properties, algorithms agreeing, precision, minibatch, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from akp import cka as C
from akp.cka import CKAError, MinibatchCKA, cka_cross, cka_matrix, linear_cka, rbf_cka
from akp.cka import batched as CB


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def relu_features(n: int, p: int, seed: int, *, offset: float = 50.0, latent: np.ndarray | None = None) -> np.ndarray:
    """Post-ReLU float32 activations with a large offset, optionally sharing a latent signal."""
    r = rng(seed)
    base = r.standard_normal((n, p))
    if latent is not None:
        base = base + latent @ r.standard_normal((latent.shape[1], p))
    return (np.maximum(base + 0.3, 0.0) + offset * r.uniform(0.5, 1.5, size=(1, p))).astype(np.float32)


def reference(x: np.ndarray, y: np.ndarray, *, debiased: bool = False, kernel: str = "linear",
              threshold: float = 1.0) -> float:
    """Kornblith et al.'s Gram-form CKA in float64 (the public reference helpers)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if kernel == "linear":
        gx, gy = C.gram_linear(x - x.mean(0)), C.gram_linear(y - y.mean(0))
    else:
        gx, gy = C.gram_rbf(x, threshold), C.gram_rbf(y, threshold)
    return C.cka_from_grams(gx, gy, debiased=debiased)


@pytest.fixture(scope="module")
def reps() -> list[np.ndarray]:
    latent = rng(99).standard_normal((120, 5))
    return [relu_features(120, p, s, latent=latent) for s, p in enumerate([10, 40, 200, 40, 7])]


# ---- properties -------------------------------------------------------------


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_self_similarity_is_one(kernel, debiased):
    x = rng(1).standard_normal((50, 8))
    fn = linear_cka if kernel == "linear" else rbf_cka
    assert fn(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_symmetric(debiased):
    x, y = rng(2).standard_normal((40, 6)), rng(3).standard_normal((40, 9)) ** 2
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(linear_cka(y, x, debiased=debiased), abs=1e-14)
    assert rbf_cka(x, y, debiased=debiased) == pytest.approx(rbf_cka(y, x, debiased=debiased), abs=1e-14)


@pytest.mark.parametrize("debiased", [False, True])
def test_invariant_to_orthogonal_transform_scaling_and_translation(debiased):
    r = rng(4)
    x = r.standard_normal((60, 10))
    y = x @ r.standard_normal((10, 12)) + 0.5 * r.standard_normal((60, 12))
    base = linear_cka(x, y, debiased=debiased)
    q = ortho_group.rvs(12, random_state=5)
    assert linear_cka(x, y @ q, debiased=debiased) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, 7.5 * y, debiased=debiased) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, y + r.normal(0, 100, size=(1, 12)), debiased=debiased) == pytest.approx(base, abs=1e-10)
    # RBF CKA: the bandwidth follows the median distance, so the same invariances hold.
    rbase = rbf_cka(x, y, debiased=debiased)
    assert rbf_cka(x, 3.0 * (y @ q) + 4.0, debiased=debiased) == pytest.approx(rbase, abs=1e-10)


def test_not_invariant_to_general_invertible_linear_map():
    r = rng(6)
    x = r.standard_normal((80, 6))
    y = x[:, :3] @ r.standard_normal((3, 6)) + 0.3 * r.standard_normal((80, 6))
    a = np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 30.0]) @ ortho_group.rvs(6, random_state=7)  # invertible, not orthogonal
    assert abs(np.linalg.det(a)) > 1.0
    assert abs(linear_cka(x, y @ a) - linear_cka(x, y)) > 0.05


def test_biased_values_in_unit_interval(reps):
    m = cka_matrix(reps)
    assert np.all(m >= -1e-12) and np.all(m <= 1.0 + 1e-12)
    assert np.allclose(np.diag(m), 1.0)
    assert np.allclose(m, m.T)


# ---- algorithms agree ---------------------------------------------------------


@pytest.mark.parametrize("debiased", [False, True])
def test_feature_and_gram_forms_match_reference(reps, debiased, float32_products):
    ref = np.array([[reference(a, b, debiased=debiased) for b in reps] for a in reps])
    feature = cka_matrix(reps, debiased=debiased, method="feature")
    gram = cka_matrix(reps, debiased=debiased, method="gram")
    np.testing.assert_allclose(feature, ref, atol=1e-12)
    np.testing.assert_allclose(gram, ref, atol=1e-7)  # float32 products, float64 accumulation
    auto = cka_matrix(reps, debiased=debiased)
    np.testing.assert_allclose(auto, ref, atol=1e-7)


@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_matrix_matches_reference(reps, debiased):
    ref = np.array([[reference(a, b, debiased=debiased, kernel="rbf", threshold=0.7) for b in reps] for a in reps])
    got = cka_matrix(reps, kernel="rbf", threshold=0.7, debiased=debiased)
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_gram_path_with_several_row_blocks_matches(monkeypatch, float32_products):
    # Force several row blocks (and uneven widths) so the block-triangle bookkeeping is exercised.
    monkeypatch.setattr(CB, "_BLOCK_BYTES", 4 * 300 * 8 * 60)  # 3 blocks (float32), 5 (float64)
    latent = rng(8).standard_normal((300, 4))
    feats = [relu_features(300, p, s, latent=latent) for s, p in enumerate([5, 33, 33, 70])]
    for debiased in (False, True):
        ref = cka_matrix(feats, debiased=debiased, method="feature")
        np.testing.assert_allclose(cka_matrix(feats, debiased=debiased, method="gram"), ref, atol=1e-7)
        np.testing.assert_allclose(
            cka_matrix(feats, kernel="rbf", debiased=debiased),
            [[reference(a, b, debiased=debiased, kernel="rbf") for b in feats] for a in feats], atol=1e-12)


def test_matrix_equals_pairwise_calls(reps):
    for debiased in (False, True):
        m = cka_matrix(reps, debiased=debiased)
        for i in range(len(reps)):
            for j in range(len(reps)):
                if i != j:
                    assert m[i, j] == pytest.approx(linear_cka(reps[i], reps[j], debiased=debiased), abs=1e-7)
        mr = cka_matrix(reps, kernel="rbf", debiased=debiased)
        assert mr[0, 2] == pytest.approx(rbf_cka(reps[0], reps[2], debiased=debiased), abs=1e-12)


def test_cross_is_the_off_diagonal_block(reps):
    a, b = reps[:2], reps[2:]
    cross = cka_cross(a, b, debiased=True)
    full = cka_matrix(reps, debiased=True)
    assert cross.shape == (2, 3)
    np.testing.assert_allclose(cross, full[:2, 2:], atol=1e-12)


def test_accepts_torch_tensors_and_float64(reps):
    t = [torch.from_numpy(r) for r in reps[:3]]
    np.testing.assert_allclose(cka_matrix(t), cka_matrix(reps[:3]), atol=1e-12)


# ---- precision ---------------------------------------------------------------


@pytest.fixture
def float32_products(monkeypatch):
    """Make the Gram path use its float32 products (normally only on large problems)."""
    monkeypatch.setattr(CB, "_FLOAT32_MIN_COST", 0.0)


@pytest.mark.parametrize("method", ["feature", "gram"])
@pytest.mark.parametrize("debiased", [False, True])
def test_float32_input_agrees_with_float64(method, debiased, float32_products):
    latent = rng(10).standard_normal((512, 8))
    f32 = [relu_features(512, p, s, latent=latent, offset=100.0) for s, p in enumerate([64, 64, 128])]
    f64 = [f.astype(np.float64) for f in f32]
    ref = np.array([[reference(a, b, debiased=debiased) for b in f64] for a in f64])
    np.testing.assert_allclose(cka_matrix(f32, debiased=debiased, method=method), ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(cka_matrix(f64, debiased=debiased, method=method), ref, atol=1e-6, rtol=0)


def test_debiased_near_zero_for_independent_data_when_p_much_larger_than_n():
    r = rng(11)
    n, p = 30, 2000
    x, y = r.standard_normal((n, p)), r.standard_normal((n, p))
    biased = linear_cka(x, y)
    debiased = linear_cka(x, y, debiased=True)
    assert biased > 0.8  # the biased estimator is badly inflated when p >> n
    assert abs(debiased) < 0.05


def test_debiased_can_be_negative_and_is_not_clamped():
    values = [linear_cka(rng(100 + s).standard_normal((12, 3)), rng(200 + s).standard_normal((12, 3)),
                         debiased=True) for s in range(20)]
    assert min(values) < 0.0


# ---- minibatch ---------------------------------------------------------------


def test_minibatch_single_batch_equals_full_debiased(reps):
    acc = MinibatchCKA()
    acc.update(reps)
    np.testing.assert_allclose(acc.compute(), cka_matrix(reps, debiased=True), atol=1e-12)
    acc_rbf = MinibatchCKA(kernel="rbf")
    acc_rbf.update(reps[:2])
    assert acc_rbf.compute()[0, 1] == pytest.approx(rbf_cka(reps[0], reps[1], debiased=True), abs=1e-12)


def test_minibatch_accumulates_hsic_over_batches(reps):
    acc = MinibatchCKA()
    for start in range(0, 120, 40):
        acc.update([r[start:start + 40] for r in reps[:2]])
    assert acc.n_batches == 3 and acc.n_examples == 120
    # Nguyen et al.: sum the per-batch unbiased HSIC, then normalise.
    h = []
    for a, b in [(0, 1), (0, 0), (1, 1)]:
        total = 0.0
        for start in range(0, 120, 40):
            x = reps[a][start:start + 40].astype(np.float64)
            y = reps[b][start:start + 40].astype(np.float64)
            total += float(np.sum(C.center_gram(C.gram_linear(x), True) * C.center_gram(C.gram_linear(y), True)))
        h.append(total / (40 * 37))
    assert acc.compute()[0, 1] == pytest.approx(h[0] / np.sqrt(h[1] * h[2]), abs=1e-9)
    with pytest.raises(CKAError, match="widths"):
        acc.update([reps[0][:10], reps[2][:10]])
    acc.reset()
    with pytest.raises(CKAError, match="update"):
        acc.compute()


# ---- RBF known behaviour -----------------------------------------------------


def test_rbf_known_behaviour():
    r = rng(12)
    x = r.standard_normal((60, 4))
    # A monotone non-linear map keeps RBF neighbourhoods better than a linear kernel sees.
    y = np.tanh(3.0 * x) + 0.01 * r.standard_normal((60, 4))
    assert rbf_cka(x, y, threshold=0.5) > 0.8
    # Large bandwidth: the RBF kernel tends to the linear one (Kornblith et al. 2019).
    z = np.concatenate([x, r.standard_normal((60, 4))], axis=1)
    assert rbf_cka(x, z, threshold=50.0) == pytest.approx(linear_cka(x, z), abs=2e-3)
    # Bandwidth is a multiple of the median distance of all pairs (diagonal included).
    g = C.gram_rbf(x, threshold=2.0)
    xc = x - x.mean(0)
    sq = ((xc[:, None] - xc[None]) ** 2).sum(-1)
    np.testing.assert_allclose(g, np.exp(-sq / (2 * 4.0 * np.median(sq))), atol=1e-12)


# ---- degenerate input and errors ----------------------------------------------


def test_zero_variance_gives_nan():
    x = rng(13).standard_normal((20, 3))
    const = np.full((20, 4), 5.0, dtype=np.float32)
    assert np.isnan(linear_cka(x, const))
    assert np.isnan(linear_cka(x, const, debiased=True))
    assert np.isnan(rbf_cka(x, const))
    m = cka_matrix([x, const, x * 2])
    assert np.isnan(m[1]).all() and np.isnan(m[:, 1]).all()
    assert m[0, 2] == pytest.approx(1.0)
    # A constant that binary floating point cannot hold exactly still has zero variance.
    for value in (0.1, 1 / 3, 1e6 + 0.1):
        tenth = np.full((7, 3), value)
        assert np.isnan(linear_cka(tenth, x[:7]))
        assert np.isnan(linear_cka(tenth, x[:7], debiased=True))
        assert np.isnan(rbf_cka(tenth, x[:7]))


def test_errors_name_the_field():
    x = rng(14).standard_normal((10, 3))
    with pytest.raises(CKAError, match="n: debiased"):
        linear_cka(x[:3], x[:3], debiased=True)
    assert np.isfinite(linear_cka(x[:4], x[:4] ** 2, debiased=True))
    with pytest.raises(CKAError, match=r"features\[1\]"):
        cka_matrix([x, x[:5]])
    with pytest.raises(CKAError, match="kernel"):
        cka_matrix([x, x], kernel="poly")
    with pytest.raises(CKAError, match="threshold"):
        rbf_cka(x, x, threshold=0)
    with pytest.raises(CKAError, match="finite"):
        linear_cka(x, np.where(x > 1, np.nan, x))
    with pytest.raises(CKAError, match="2-D"):
        linear_cka(x.ravel(), x)
    with pytest.raises(CKAError, match="method"):
        cka_matrix([x, x], kernel="rbf", method="feature")
    with pytest.raises(CKAError, match="at least one"):
        cka_matrix([])
    with pytest.raises(CKAError, match="device"):
        cka_matrix([x, x], device="tpu")
    assert issubclass(CKAError, ValueError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(reps):
    for debiased in (False, True):
        np.testing.assert_allclose(cka_matrix(reps, debiased=debiased, device="cuda", method="gram"),
                                   cka_matrix(reps, debiased=debiased, device="cpu"), atol=1e-6)


def test_auto_method_picks_the_cheaper_algorithm():
    # Feature space costs ~2 n P^2 (float64), Gram space ~n^2 (P + M^2): few narrow
    # representations -> feature space; many wide ones -> Gram space.
    assert C._choose_method(2048, [256, 256], "linear", "auto") == "feature"
    assert C._choose_method(2048, [256] * 32, "linear", "auto") == "gram"
    assert C._choose_method(10000, [512] * 32, "linear", "auto") == "gram"
    assert C._choose_method(100, [5] * 3, "rbf", "auto") == "gram"
    assert C._choose_method(100, [5] * 3, "linear", "gram") == "gram"


def _song_unbiased_hsic(k: np.ndarray, g: np.ndarray) -> float:
    """Song et al. 2012, eq. 5, written out with explicit sums (independent of akp.cka's algebra)."""
    n = k.shape[0]
    kt, gt = k.copy(), g.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(gt, 0.0)
    trace = sum(kt[i, j] * gt[j, i] for i in range(n) for j in range(n))
    sums = kt.sum() * gt.sum() / ((n - 1) * (n - 2))
    cross = sum(kt[i, j] * gt[j, m] for i in range(n) for j in range(n) for m in range(n))
    return (trace + sums - 2.0 / (n - 2) * cross) / (n * (n - 3))


def _biased_hsic(k: np.ndarray, g: np.ndarray) -> float:
    """tr(K H L H) / (n - 1)^2 with the centring matrix H (Gretton et al. 2005)."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ g @ h)) / (n - 1) ** 2


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_matches_the_hsic_definitions_written_out(debiased):
    r = rng(21)
    x = np.maximum(r.standard_normal((12, 5)), 0) + 3.0  # post-ReLU with an offset
    y = x @ r.standard_normal((5, 4)) + 0.5 * r.standard_normal((12, 4))
    # The written-out sums cancel badly on offset features; both estimators are invariant to column
    # translation, so the reference uses centred copies while akp gets the raw offsets.
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, g = xc @ xc.T, yc @ yc.T
    hsic = _song_unbiased_hsic if debiased else _biased_hsic
    expected = hsic(k, g) / np.sqrt(hsic(k, k) * hsic(g, g))
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(expected, abs=1e-12)
    assert cka_matrix([x, y], debiased=debiased)[0, 1] == pytest.approx(expected, abs=1e-12)
