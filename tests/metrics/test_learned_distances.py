"""The learned, information and exact-transport distances against closed forms and references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from sklearn.feature_selection import mutual_info_classif

from vizcore.metrics import class_distance_matrix, cross_domain_matrix, metric_info
from vizcore.metrics.batched import make_folds, pair_seeds, standardise
from vizcore.metrics.information import mutual_information
from vizcore.metrics.learned import critic_w1, discriminate
from vizcore.metrics.logistic import fit_logistic
from vizcore.metrics.transport import wasserstein


def _js(d) -> np.ndarray:
    return np.maximum(0.0, math.log(2) + 0.5 * d.log_d_p + 0.5 * d.log_1md_q)


def _gaussian_jsd(delta: float) -> float:
    """JS divergence (nats) of N(0, 1) and N(delta, 1), by numerical integration."""
    p, q = stats.norm(0, 1).pdf, stats.norm(delta, 1).pdf

    def f(t: float) -> float:
        m = 0.5 * (p(t) + q(t))
        return 0.5 * p(t) * math.log(p(t) / m) + 0.5 * q(t) * math.log(q(t) / m)

    return integrate.quad(f, -15, 15 + delta)[0]


# ------------------------------------------------------------------------ classifier test


def test_c2st_p_values_are_roughly_uniform_under_the_null() -> None:
    rng = np.random.default_rng(1)
    pairs = [(rng.normal(size=(50, 2)), rng.normal(size=(50, 2))) for _ in range(300)]
    d = discriminate(pairs, pair_seeds(5, len(pairs)), hidden=0)
    p = stats.binom.sf(d.correct - 1, d.n_test, 0.5)
    # 300 draws: the empirical CDF at α sits within ~3 standard errors of α (p-values are discrete)
    for alpha in (0.05, 0.1, 0.25, 0.5):
        assert abs((p <= alpha).mean() - alpha) < 3 * math.sqrt(alpha * (1 - alpha) / 300) + 0.02


def test_c2st_is_sure_of_a_clear_shift() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 3.0
    r = cross_domain_matrix(x, np.zeros(60), y, np.zeros(60), "c2st")
    assert r.values[0, 0] > 0.9 and r.p_values[0, 0] < 1e-20
    assert r.params["n_held_out"] == 120  # every sample scored once (2 folds)


def _sklearn_held_out_logits(pair: tuple[np.ndarray, np.ndarray], seed: int, weight_decay: float) -> list[np.ndarray]:
    """scikit-learn's LogisticRegression on each fold of the pair as discriminate() splits it:
    the same standardised rows, the samples weighted equally, C = 1 / (2 · weight_decay)."""
    from sklearn.linear_model import LogisticRegression

    f, _ = standardise(make_folds([pair], [seed], 2), per_feature=True)
    out = []
    for b in range(2):
        n_p, n_q = int(f.p_train_w[b].sum()), int(f.q_train_w[b].sum())
        z = np.concatenate([f.p_train[b, :n_p], f.q_train[b, :n_q]]).astype(np.float64)
        v = np.r_[np.full(n_p, 0.5 / n_p), np.full(n_q, 0.5 / n_q)]
        clf = LogisticRegression(C=1 / (2 * weight_decay), tol=1e-10, max_iter=10_000)
        clf.fit(z, np.r_[np.ones(n_p), np.zeros(n_q)], sample_weight=v)
        n_p, n_q = int(f.p_test_w[b].sum()), int(f.q_test_w[b].sum())
        out.append(clf.decision_function(np.concatenate([f.p_test[b, :n_p], f.q_test[b, :n_q]]).astype(np.float64)))
    return out


def test_linear_c2st_equals_scikit_learns_logistic_regression() -> None:
    rng = np.random.default_rng(12)
    pair = (rng.normal(size=(300, 20)), rng.normal(size=(200, 20)) + 0.15)
    ours = discriminate([pair], [3], hidden=0, weight_decay=0.01)
    logits = _sklearn_held_out_logits(pair, 3, 0.01)
    f, _ = standardise(make_folds([pair], [3], 2), per_feature=True)
    right = sum(int((o[: int(f.p_test_w[b].sum())] > 0).sum() + (o[int(f.p_test_w[b].sum()):] < 0).sum())
                for b, o in enumerate(logits))  # fmt: skip
    assert ours.correct[0] == right
    log_d_p = sum(float(-np.logaddexp(0, -o[: int(f.p_test_w[b].sum())]).sum()) for b, o in enumerate(logits)) / 300
    assert ours.log_d_p[0] == pytest.approx(log_d_p, abs=1e-6)


def test_linear_c2st_reaches_the_bayes_accuracy_of_two_gaussians_in_few_newton_steps() -> None:
    # N(0, I) against N(δe₁, I): the best classifier's accuracy is Φ(δ/2)
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3)) + np.array([1.5, 0, 0])
    d = discriminate([(x, y)], [0], hidden=0)
    assert d.correct[0] / d.n_test[0] == pytest.approx(stats.norm.cdf(0.75), abs=0.015)  # 3 standard errors
    f, _ = standardise(make_folds([(x, y)], [0], 2), per_feature=True)
    t = torch.cat([torch.ones_like(f.p_train_w), torch.zeros_like(f.q_train_w)], 1)
    v = 0.5 * torch.cat([f.p_train_w / 2000, f.q_train_w / 2000], 1)
    _, _, steps = fit_logistic(torch.cat([f.p_train, f.q_train], 1), t, v, 0.01)
    assert steps <= 10  # Newton's quadratic convergence, where 300 Adam steps were used before


# ------------------------------------------------------------------------ discriminator (JS)


def test_js_neural_is_zero_for_one_distribution_and_log2_for_separated_ones() -> None:
    rng = np.random.default_rng(3)
    same = [(rng.normal(size=(100, 2)), rng.normal(size=(100, 2))) for _ in range(4)]
    apart = [(rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 8.0) for _ in range(2)]
    js = _js(discriminate(same + apart, pair_seeds(0, 6)))
    assert js[:4].max() < 0.02
    assert js[4:] == pytest.approx(math.log(2), abs=0.03)


def test_batched_training_equals_training_one_pair_alone() -> None:
    rng = np.random.default_rng(4)
    pairs = [(rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) + 0.5 * k) for k in range(5)]
    seeds = pair_seeds(7, 5)
    together = discriminate(pairs, seeds)
    alone = discriminate([pairs[3]], [seeds[3]])
    assert together.correct[3] == alone.correct[0]
    assert together.log_d_p[3] == pytest.approx(alone.log_d_p[0], abs=1e-5)
    w_all = critic_w1(pairs, seeds, steps=40)
    assert w_all[2] == pytest.approx(critic_w1([pairs[2]], [seeds[2]], steps=40)[0], abs=1e-5)


# ------------------------------------------------------------------------ WGAN-GP critic (W1)


def test_critic_w1_matches_the_mean_shift_of_two_equal_variance_gaussians() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, (400, 1)), rng.normal(1.5, 1, (400, 1))  # W1 = |Δμ| = 1.5 exactly
    assert critic_w1([(x, y)], [3])[0] == pytest.approx(1.5, rel=0.10)


def test_critic_w1_agrees_with_exact_transport_in_2d() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2))
    y = rng.normal(size=(300, 2)) * np.array([1.0, 2.0]) + np.array([2.0, 0.0])
    assert critic_w1([(x, y)], [3])[0] == pytest.approx(wasserstein(x, y, 1), rel=0.10)


# ------------------------------------------------------------------------ exact transport


def test_wasserstein_exact_equals_the_best_assignment_on_five_points() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)) + 1.0
    cost = np.linalg.norm(x[:, None] - y[None], axis=2)
    # equal sizes and weights: an optimal plan is a permutation; all 120 of them, by hand
    best = min(cost[range(5), perm].mean() for perm in itertools.permutations(range(5)))
    assert wasserstein(x, y, 1) == pytest.approx(best, rel=1e-9)
    best2 = min((cost[range(5), perm] ** 2).mean() for perm in itertools.permutations(range(5)))
    assert wasserstein(x, y, 2) == pytest.approx(math.sqrt(best2), rel=1e-9)


def test_wasserstein_exact_in_one_dimension_pairs_sorted_values() -> None:
    x, y = np.array([[0.0], [1.0], [5.0]]), np.array([[2.0], [3.0], [4.0]])
    assert wasserstein(x, y, 1) == pytest.approx((2 + 2 + 1) / 3)  # 0→2, 1→3, 5→4


def test_wasserstein_exact_refuses_an_unknown_order() -> None:
    with pytest.raises(ValueError, match="valid values: 1, 2"):
        wasserstein(np.zeros((2, 1)), np.ones((2, 1)), 3)


# ------------------------------------------------------------------------ mutual information


def test_mutual_information_is_scikit_learns_estimator_in_one_dimension() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(0, 1, (300, 1)), rng.normal(1, 1, (300, 1))
    ours, _ = mutual_information(x, y, n_neighbors=3)
    z, s = np.concatenate([x, y]), np.r_[np.ones(300), np.zeros(300)]
    theirs = mutual_info_classif(z, s, n_neighbors=3, random_state=0)[0]
    assert ours == pytest.approx(theirs, abs=1e-6)  # scikit-learn adds 1e-10 noise, nothing else


def test_mutual_information_and_js_neural_both_estimate_the_js_divergence() -> None:
    # with equal priors I(X; S) = JS(P, Q): the k-NN and the discriminator routes, against the integral
    rng = np.random.default_rng(9)
    x, y = rng.normal(0, 1, (1500, 1)), rng.normal(1, 1, (1500, 1))
    truth = _gaussian_jsd(1.0)  # ≈ 0.111 nats
    mi, _ = mutual_information(x, y, n_neighbors=10)
    assert mi == pytest.approx(truth, abs=0.02)
    assert _js(discriminate([(x, y)], [1], steps=200))[0] == pytest.approx(truth, abs=0.02)


def test_mutual_information_permutation_p_values() -> None:
    rng = np.random.default_rng(10)
    same, p_same = mutual_information(rng.normal(size=(60, 2)), rng.normal(size=(60, 2)), n_perm=99)
    apart, p_apart = mutual_information(rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + 3, n_perm=99)
    assert p_apart == pytest.approx(0.01) and apart > 0.5
    assert p_same > 0.05


# ------------------------------------------------------------------------ in the matrices


@pytest.mark.parametrize("metric", ["c2st", "js_neural", "critic_w1"])
def test_learned_measures_say_they_are_estimates_and_report_their_held_out_size(metric: str) -> None:
    assert "estimate with its own variance and seed" in metric_info(metric).description
    rng = np.random.default_rng(11)
    f, y = rng.normal(size=(48, 3)) + 3 * np.repeat(np.arange(3), 16)[:, None], np.repeat(np.arange(3), 16)
    r = class_distance_matrix(f, y, metric, steps=60)
    assert r.params["n_held_out"] == 16 and "cross-fitting" in r.description
    assert np.diag(r.values).max() < r.values[~np.eye(3, dtype=bool)].min()


def test_learned_measures_refuse_too_few_samples_for_their_folds() -> None:
    f, y = np.random.default_rng(0).normal(size=(8, 2)), np.repeat([0, 1], 4)
    with pytest.raises(ValueError, match="5 folds needs at least 5 samples on each side"):
        class_distance_matrix(f, y, "js_neural", folds=5)
