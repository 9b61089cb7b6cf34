"""Every registered distance has a two-sample call, x against y, on the same code path as the
matrices; its caption says which samples were paired."""

from __future__ import annotations

import numpy as np
import pytest

from vizcore.metrics import list_metrics, two_sample
from vizcore.metrics.mmd import mmd2

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(60, 6)), RNG.normal(size=(50, 6))


@pytest.mark.parametrize("metric", list_metrics())
def test_every_metric_compares_two_sample_sets(metric: str) -> None:
    got = two_sample(X, Y, metric)
    assert np.isfinite(got.value) and got.metric == metric
    assert "all 60 samples of x against all 50 of y" in got.description
    assert two_sample(X, Y, metric).value == got.value  # seeded: the same number again


def test_mmd_of_two_samples_is_the_direct_formula() -> None:
    # unbiased MMD² with the 5-kernel family and the mean bandwidth rule, on all samples
    assert two_sample(X, Y, "mmd").value == pytest.approx(mmd2(X, Y), abs=1e-12)

    def k(a: np.ndarray, b: np.ndarray, bw: float) -> np.ndarray:
        d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (bw * 2.0**e)) for e in range(-2, 3))

    z = np.concatenate([X, Y])
    base = ((z[:, None] - z[None]) ** 2).sum(-1).sum() / (len(z) ** 2 - len(z))
    kxx, kyy, kxy = k(X, X, base), k(Y, Y, base), k(X, Y, base)
    n, m = len(X), len(Y)
    direct = ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
              - 2 * kxy.mean())  # fmt: skip
    assert two_sample(X, Y, "mmd").value == pytest.approx(direct, rel=1e-9)


def test_a_shift_is_found_and_its_p_value_is_small() -> None:
    shifted = Y + 1.0
    same, moved = two_sample(X, Y, "mmd", n_perm=50), two_sample(X, shifted, "mmd", n_perm=50)
    assert moved.value > same.value and moved.p_value < 0.05 < same.p_value
    assert "50 permutations" in moved.description


@pytest.mark.parametrize(("x", "y", "why"), [(X, Y[:, :4], "same feature size"), (X[:1], Y, "at least 2"),
                                             (np.full((5, 6), np.nan), Y, "NaN")])  # fmt: skip
def test_bad_samples_are_refused_in_words(x: np.ndarray, y: np.ndarray, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        two_sample(x, y, "mmd")
