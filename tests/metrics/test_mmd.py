"""MMD estimators checked against direct formulas, their statistics, and the one-pass matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vizcore.metrics.kernels as kernels_mod
import vizcore.metrics.mmd as mmd_mod
from vizcore.metrics import class_distance_matrix, class_samples, cross_domain_matrix
from vizcore.metrics.mmd import GaussianFamily, mmd2, mmd2_pairs, mmd2_torch, resolve_bandwidth

ESTIMATORS = ["unbiased", "biased", "linear", "seed"]


def seed_formula(x: np.ndarray, y: np.ndarray) -> float:
    """The group's original formula, written out with an explicit (n, n, d) difference tensor."""
    z = np.concatenate([x, y])
    n = len(z)
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    b = d.sum() / (n * n - n)
    k = sum(np.exp(-d / (b * 2.0 ** (i - 2))) for i in range(5))
    h = len(x)
    return float((k[:h, :h] + k[h:, h:] - k[:h, h:] - k[h:, :h]).mean())


def direct_mmd2(x: np.ndarray, y: np.ndarray, base: float, estimator: str, mul=2.0, num=5) -> float:
    """Dense reference for the biased / unbiased estimators with a fixed base bandwidth."""
    z = np.concatenate([x, y])
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    k = sum(np.exp(-d / (base * mul ** (i - num // 2))) for i in range(num))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    if estimator == "biased":
        return float(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    off = (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2 * kxy.mean())


def gaussians(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    return rng.normal(size=(n, d)) + shift


def clusters(k=4, m=40, d=6, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * spread
    f = np.concatenate([c + rng.normal(size=(m, d)) for c in centres]).astype(np.float32)
    return f, np.repeat(np.arange(k), m)


# ------------------------------------------------------------------------- seed-compatible mode


@pytest.mark.parametrize(
    "n, d, shift, scale",
    [
        (30, 5, 0.0, 1.0),
        (50, 8, 0.5, 1.0),
        (20, 64, 2.0, 3.0),
        (64, 2, 0.1, 0.01),
        (7, 3, 1.0, 100.0),
    ],
)
def test_seed_mode_equals_original_formula(n, d, shift, scale):
    rng = np.random.default_rng(n + d)
    x, y = gaussians(rng, n, d) * scale, gaussians(rng, n, d, shift) * scale
    assert mmd2(x, y, estimator="seed") == pytest.approx(seed_formula(x, y), rel=1e-6, abs=1e-12)


def test_seed_mode_float32_input_matches_formula():
    rng = np.random.default_rng(3)
    x, y = gaussians(rng, 40, 16).astype(np.float32), gaussians(rng, 40, 16, 0.3).astype(np.float32)
    ref = seed_formula(x.astype(np.float64), y.astype(np.float64))
    assert mmd2(torch.from_numpy(x), torch.from_numpy(y), estimator="seed") == pytest.approx(
        ref, rel=1e-9
    )


@pytest.mark.parametrize("pairing", ["halves", "full"])
def test_seed_class_matrix_equals_double_loop_of_formula(pairing):
    f, y = clusters(k=4, m=30, d=5)
    res = class_distance_matrix(f, y, estimator="seed", pairing=pairing, seed=3)
    plan = class_samples(f, y, pairing=pairing, seed=3)
    loop = np.array([[seed_formula(*plan.pair(i, j)) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(res.values, loop, rtol=1e-6, atol=1e-12)
    # per-pair bandwidths are reported, and they follow the seed's rule on each pair
    x, z = plan.pair(0, 2)
    pooled = np.concatenate([x, z])
    d = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    assert res.params["bandwidth"][0][2] == pytest.approx(
        d.sum() / (len(d) ** 2 - len(d)), rel=1e-9
    )


def test_seed_mode_rejects_other_kernels():
    x = np.zeros((4, 2)) + np.arange(4)[:, None]
    with pytest.raises(ValueError, match="seed"):
        mmd2(x, x + 1, estimator="seed", bandwidth="median")
    with pytest.raises(ValueError, match="seed"):
        mmd2(x, x + 1, estimator="seed", kernel_num=3)


# --------------------------------------------------------------------------- estimators, kernels


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("mul, num", [(2.0, 5), (2.0, 1), (3.0, 4), (1.5, 3)])
def test_block_estimators_match_dense_formula(estimator, mul, num):
    rng = np.random.default_rng(7)
    x, y = gaussians(rng, 25, 4), gaussians(rng, 19, 4, 0.4)
    got = mmd2(x, y, bandwidth=2.5, estimator=estimator, kernel_mul=mul, kernel_num=num)
    assert got == pytest.approx(direct_mmd2(x, y, 2.5, estimator, mul, num), rel=1e-9, abs=1e-13)


def test_linear_estimator_matches_pair_formula():
    rng = np.random.default_rng(8)
    x, y = gaussians(rng, 11, 3), gaussians(rng, 14, 3, 0.5)

    def k(a, b):
        return sum(np.exp(-((a - b) ** 2).sum(-1) / (1.7 * 2.0 ** (i - 2))) for i in range(5))

    x1, x2, y1, y2 = x[0:10:2], x[1:10:2], y[0:10:2], y[1:10:2]  # min(n, m) // 2 = 5 pairs
    ref = (k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)).mean()
    assert mmd2(x, y, bandwidth=1.7, estimator="linear") == pytest.approx(ref, rel=1e-12)


def test_family_scales_and_squaring_shortcut():
    assert GaussianFamily(2.0, 5).scales == (0.25, 0.5, 1.0, 2.0, 4.0)
    assert GaussianFamily(2.0, 4).scales == (0.25, 0.5, 1.0, 2.0)  # DAN's i - num // 2 offsets
    d2 = torch.linspace(0, 50, 101, dtype=torch.float64)
    for fam in (GaussianFamily(2.0, 5), GaussianFamily(3.0, 3), GaussianFamily(2.0, 1)):
        direct = sum(torch.exp(-d2 / (3.0 * s)) for s in fam.scales)
        torch.testing.assert_close(fam.values(d2, 3.0), direct, rtol=1e-13, atol=0)
        assert float(fam.total(d2, 3.0)) == pytest.approx(float(direct.sum()), rel=1e-13)


def test_bandwidth_rules_match_hand_computation():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(30, 4))
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    upper = d[np.triu_indices(30, 1)]
    assert resolve_bandwidth("mean", z) == pytest.approx(d.sum() / (30 * 29), rel=1e-12)
    assert resolve_bandwidth("median", z) == pytest.approx(np.median(upper), rel=1e-12)
    assert resolve_bandwidth(2.5, z) == 2.5
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            resolve_bandwidth(bad, z)
    with pytest.raises(ValueError, match="coincide"):
        resolve_bandwidth("mean", np.ones((5, 3)))
    with pytest.raises(KeyError, match="valid names: mean, median"):
        resolve_bandwidth("silverman", z)


def test_unknown_estimator_lists_valid_names():
    x = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(KeyError, match="biased, linear, seed, unbiased"):
        mmd2(x, x, estimator="quadratic")


def test_chunked_pass_equals_single_block(monkeypatch):
    rng = np.random.default_rng(2)
    bank = [gaussians(rng, n, 3, s) for n, s in ((23, 0.0), (17, 0.3), (31, 1.0))]
    jobs = [(0, 1), (0, 2), (1, 2), (2, 0)]
    whole = {e: mmd2_pairs(bank, jobs, estimator=e, n_perm=30, seed=4) for e in ESTIMATORS}
    # a few rows per product and per elementwise op, ragged last chunks
    monkeypatch.setattr(kernels_mod, "GEMM_ELEMS", 40)
    monkeypatch.setattr(kernels_mod, "CHUNK_ELEMS", 5)
    for e in ESTIMATORS:
        chunked = mmd2_pairs(bank, jobs, estimator=e, n_perm=30, seed=4)
        np.testing.assert_allclose(chunked.values, whole[e].values, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(chunked.p_values, whole[e].p_values)


# ------------------------------------------------------------------------ statistical behaviour


def test_unbiased_and_linear_average_zero_under_null_biased_nonnegative():
    rng = np.random.default_rng(11)
    bank = [gaussians(rng, 24, 3) for _ in range(400)]
    jobs = [(2 * i, 2 * i + 1) for i in range(200)]
    for estimator in ("unbiased", "linear"):
        v = mmd2_pairs(bank, jobs, estimator=estimator).values
        assert abs(v.mean()) < 3.5 * v.std(ddof=1) / np.sqrt(len(v)), estimator
        assert (v < 0).any()  # an unbiased estimator must be allowed below 0
    biased = mmd2_pairs(bank, jobs, estimator="biased").values
    assert (biased >= 0).all()
    assert biased.mean() > 10 * biased.std(ddof=1) / np.sqrt(len(biased))  # its 1/n offset


def test_shift_is_clearly_positive():
    rng = np.random.default_rng(12)
    x, y = gaussians(rng, 100, 3), gaussians(rng, 100, 3, 1.0)
    same = [mmd2(gaussians(rng, 100, 3), gaussians(rng, 100, 3)) for _ in range(20)]
    assert mmd2(x, y) > 10 * np.std(same)
    assert mmd2(x, y, estimator="linear") > 0
    assert mmd2(x, y, estimator="biased") > mmd2(x, y, estimator="unbiased")


def test_p_values_uniform_under_null_and_minimal_under_shift():
    rng = np.random.default_rng(13)
    bank = [gaussians(rng, 20, 2) for _ in range(80)]
    jobs = [(2 * i, 2 * i + 1) for i in range(40)]
    for estimator in ("unbiased", "linear"):
        p = mmd2_pairs(bank, jobs, estimator=estimator, n_perm=99, seed=1).p_values
        # Binomial(40, 0.1): P(count > 10) < 0.3 %; the mean of 40 uniforms has sd 0.046
        assert (p < 0.1).sum() <= 10, estimator
        assert 0.32 < p.mean() < 0.68, estimator
        assert set(np.round(p * 100).astype(int)) <= set(range(1, 101))  # (k + 1) / (n_perm + 1)
    shifted = mmd2_pairs([gaussians(rng, 60, 2), gaussians(rng, 60, 2, 2.0)], [(0, 1)], n_perm=199)
    assert shifted.p_values[0] == pytest.approx(1 / 200)


def test_p_values_are_seeded():
    f, y = clusters(k=3, m=20, d=3, spread=0.3)
    a = class_distance_matrix(f, y, n_perm=50, seed=5)
    b = class_distance_matrix(f, y, n_perm=50, seed=5)
    np.testing.assert_array_equal(a.p_values, b.p_values)
    np.testing.assert_array_equal(a.values, b.values)


# --------------------------------------------------------------------- matrix vs loop of mmd2


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("pairing", ["halves", "full"])
def test_class_matrix_equals_loop_of_mmd2(estimator, pairing):
    f, y = clusters(k=4, m=26, d=5)
    res = class_distance_matrix(f, y, estimator=estimator, pairing=pairing, seed=2)
    plan = class_samples(f, y, pairing=pairing, seed=2)
    bw = res.params["bandwidth"]
    for i in range(4):
        for j in range(4):
            kw = {} if estimator == "seed" else {"bandwidth": bw}  # one shared base for the matrix
            ref = mmd2(*plan.pair(i, j), estimator=estimator, **kw)
            assert res.values[i, j] == pytest.approx(ref, rel=1e-9, abs=1e-13)
    np.testing.assert_array_equal(res.values, res.values.T)


def test_halves_are_disjoint_and_equal_sized():
    f, y = clusters(k=3, m=21, d=2)
    plan = class_samples(f, y)
    assert plan.n_per_class == 20 and plan.n_per_side == 10
    for i in range(3):
        a, b = plan.pair(i, i)
        assert a.shape == b.shape == (10, 2)
        rows = {tuple(r) for r in a} | {tuple(r) for r in b}
        assert len(rows) == 20  # no sample on both sides


def test_cross_domain_matrix_equals_loop():
    f, y = clusters(k=3, m=30, d=4)
    ft = f + 0.5
    res = cross_domain_matrix(f, y, ft, y, n_per_class=20, seed=1)
    assert res.values.shape == (3, 3) and res.col_classes == (0, 1, 2)
    from vizcore.metrics import cross_domain_samples

    plan = cross_domain_samples(f, y, ft, y, n_per_class=20, seed=1)
    for i in range(3):
        for j in range(3):
            x, z = plan.pair(i, j)
            assert len(x) == len(z) == 20
            assert res.values[i, j] == pytest.approx(
                mmd2(x, z, bandwidth=res.params["bandwidth"]), rel=1e-9
            )


def test_memory_is_bounded_for_large_samples(monkeypatch):
    # the pass must never hold more than GEMM_ELEMS distances at once (the two samples' pooled
    # matrix would be 288 MB here, an (n, n, d) tensor 2.3 GB)
    sizes = []
    real = torch.addmm

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(mmd_mod.torch, "addmm", recording)
    rng = np.random.default_rng(0)
    x, y = gaussians(rng, 3000, 8), gaussians(rng, 3000, 8, 0.1)
    assert 3000 * 3000 > 4 * kernels_mod.GEMM_ELEMS
    for estimator in ("unbiased", "seed"):
        sizes.clear()
        assert np.isfinite(mmd2(x, y, estimator=estimator))
        assert 0 < max(sizes) <= kernels_mod.GEMM_ELEMS


# ------------------------------------------------------------------------------- differentiable


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_torch_variant_matches_value_and_has_gradients(estimator):
    rng = np.random.default_rng(21)
    xn, yn = gaussians(rng, 16, 4), gaussians(rng, 12 if estimator != "seed" else 16, 4, 0.7)
    x = torch.tensor(xn, requires_grad=True)
    y = torch.tensor(yn, requires_grad=True)
    loss = mmd2_torch(x, y, estimator=estimator)
    assert loss.dtype == torch.float64 and loss.ndim == 0
    assert float(loss.detach()) == pytest.approx(
        mmd2(xn, yn, estimator=estimator), rel=1e-9, abs=1e-13
    )
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
def test_torch_variant_gradcheck(estimator):
    rng = np.random.default_rng(22)
    x = torch.tensor(gaussians(rng, 6, 3), requires_grad=True)
    y = torch.tensor(gaussians(rng, 6, 3, 0.5), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: mmd2_torch(a, b, bandwidth=2.0, estimator=estimator), (x, y)
    )


def test_torch_variant_keeps_dtype_and_checks_shapes():
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    assert mmd2_torch(x, x + 1).dtype == torch.float32
    with pytest.raises(ValueError, match="n >= 2"):
        mmd2_torch(x[:1], x)


def test_bad_inputs_raise_clear_errors():
    x = np.random.default_rng(0).normal(size=(6, 2))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        mmd2(x, bad)
    with pytest.raises(ValueError, match="at least 2"):
        mmd2(x, x[:1])
    with pytest.raises(ValueError, match="2-D"):
        mmd2(x[:, 0], x)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        mmd2(x, x[:, :1])
