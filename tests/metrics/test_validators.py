"""Unsupervised validators against hand computations and their papers' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vizcore.metrics.validators import (
    VALIDATORS,
    ValidationData,
    density_ratio,
    dev_risk,
    score_all,
)


def data(target_probs, source_probs=None, source_labels=None, target_feat=None, source_feat=None,
         source_train_feat=None) -> ValidationData:  # fmt: skip
    t = np.asarray(target_probs, float)
    s = np.asarray(source_probs if source_probs is not None else t, float)
    y = np.asarray(source_labels if source_labels is not None else s.argmax(1))
    tf = np.asarray(target_feat if target_feat is not None else t, float)
    sf = np.asarray(source_feat if source_feat is not None else s, float)
    stf = np.asarray(source_train_feat if source_train_feat is not None else sf, float)
    return ValidationData(t, tf, s, y, sf, stf)


def H(*p: float) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def score(name: str, d: ValidationData, **params) -> float:
    return VALIDATORS.get(name).score(d, **params)


TWO = [[1.0, 0.0], [0.5, 0.5]]


def test_entropy_by_hand():
    # entropies 0 and ln 2: their mean, negated
    assert score("entropy", data(TWO)) == pytest.approx(-math.log(2) / 2, abs=1e-9)


def test_information_maximisation_by_hand():
    # H(mean) - mean H: mean prediction (0.75, 0.25)
    assert score("im", data(TWO)) == pytest.approx(H(0.75, 0.25) - math.log(2) / 2, abs=1e-9)


def test_bnm_against_numpy_svd():
    p = np.random.default_rng(0).dirichlet(np.ones(4), size=7)
    assert score("bnm", data(p)) == pytest.approx(np.linalg.norm(p, "nuc") / 7)
    assert score("bnm", data(np.eye(3))) == pytest.approx(1.0)  # one-hot and diverse: the maximum


def test_snd_against_its_definition_on_a_tiny_cosine_matrix():
    # predictions (1,0), (1,0), (0,1): cosines 1 between the first two, 0 otherwise
    t = 0.05
    d = data([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    e1 = math.exp(1 / t)

    def row(*sims: float) -> float:  # entropy of the softmax of sims / t over the other images
        z = [math.exp(s / t) for s in sims]
        return H(*(x / sum(z) for x in z))

    want = (row(1, 0) + row(1, 0) + row(0, 0)) / 3
    assert row(1, 0) == pytest.approx(H(e1 / (e1 + 1), 1 / (e1 + 1)))
    assert score("snd", d) == pytest.approx(want, abs=1e-9)
    assert score("snd", d, temperature=1.0) == pytest.approx((2 * row_t(1.0) + math.log(2)) / 3, abs=1e-9)


def row_t(t: float) -> float:
    a, b = math.exp(1 / t), 1.0
    return H(a / (a + b), b / (a + b))


def test_dev_risk_against_the_direct_weighted_formula():
    loss = np.array([0.2, 1.0, 0.5, 3.0])
    w = np.array([0.5, 2.0, 1.0, 0.5])
    wl = w * loss
    n = len(w)
    cov = sum((wl[i] - wl.mean()) * (w[i] - w.mean()) for i in range(n)) / (n - 1)
    var = sum((w[i] - w.mean()) ** 2 for i in range(n)) / (n - 1)
    eta = -cov / var
    assert dev_risk(loss, w) == pytest.approx(wl.mean() + eta * w.mean() - eta)
    # equal weights: no control variate, the plain mean loss
    assert dev_risk(loss, np.ones(4)) == pytest.approx(loss.mean())


def test_density_ratio_is_about_one_for_one_distribution():
    rng = np.random.default_rng(0)
    s, t, v = rng.normal(size=(400, 3)), rng.normal(size=(200, 3)), rng.normal(size=(300, 3))
    w = density_ratio(s, t, v)
    assert w.mean() == pytest.approx(1.0, abs=0.15)
    # a target shifted along one axis: source points on that side weigh more
    far = density_ratio(s, t + [2.0, 0, 0], v)
    assert far[v[:, 0] > 1].mean() > 3 * far[v[:, 0] < -1].mean()


def test_source_accuracy_and_reverse_by_hand():
    src = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]
    d = data([[1.0, 0.0], [0.0, 1.0]], source_probs=src, source_labels=[0, 1, 1],
             target_feat=[[0.0, 0.0], [10.0, 0.0]], source_feat=[[1.0, 0.0], [9.0, 0.0], [2.0, 0.0]])
    assert score("source_acc", d) == pytest.approx(2 / 3)
    # centroids (0,0) for class 0 and (10,0) for class 1: the source points read 0, 1, 0
    assert score("reverse", d) == pytest.approx(2 / 3)


def test_every_validator_prefers_confident_diverse_predictions():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 25)
    sharp = np.eye(4)[y] * 0.97 + 0.01
    vague = np.full((100, 4), 0.25) + rng.normal(0, 0.01, (100, 4)).clip(-0.2, 0.2)
    vague /= vague.sum(1, keepdims=True)
    feat = np.eye(4)[y] * 3 + rng.normal(0, 0.3, (100, 4))
    good = data(sharp, sharp, y, feat, feat, feat + rng.normal(0, 0.3, feat.shape))
    bad = data(vague, vague, y, feat, feat, feat + rng.normal(0, 0.3, feat.shape))
    for name in ("entropy", "im", "bnm", "dev", "source_acc"):
        assert score(name, good) > score(name, bad), name
    assert set(score_all(good)) == set(VALIDATORS)
    assert all(np.isfinite(v) for v in score_all(bad).values())


def test_bad_parameter_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        score("snd", data(TWO), temperature=-1)


def test_weighted_spearman_against_scipy_and_by_hand():
    from scipy.stats import spearmanr

    from vizcore.metrics.validators import weighted_spearman

    rng = np.random.default_rng(3)
    s, a = rng.normal(size=9), rng.normal(size=9)
    assert weighted_spearman(s, a, power=0) == pytest.approx(spearmanr(s, a).statistic)
    # 3 runs: accuracy ranks 0, 1/2, 1 (weights 0, 1/4, 1 with power 2 -> 0, 0.2, 0.8);
    # score ranks 1/2, 0, 1
    rs, ra, w = [0.5, 0.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.2, 0.8]
    ms, ma = sum(x * y for x, y in zip(w, rs, strict=True)), sum(x * y for x, y in zip(w, ra, strict=True))
    cov = sum(wi * (x - ms) * (y - ma) for wi, x, y in zip(w, rs, ra, strict=True))
    vs = sum(wi * (x - ms) ** 2 for wi, x in zip(w, rs, strict=True))
    va = sum(wi * (y - ma) ** 2 for wi, y in zip(w, ra, strict=True))
    want = cov / math.sqrt(vs * va)
    assert weighted_spearman([0.3, 0.1, 0.9], [0.2, 0.5, 0.8]) == pytest.approx(want)
    assert weighted_spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
