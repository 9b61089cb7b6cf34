"""Distance measures against hand computations, the registry, and the input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from vizcore.metrics import (
    DistanceResult,
    class_distance_matrix,
    class_samples,
    cross_domain_matrix,
    list_metrics,
    metric_info,
)
from vizcore.metrics.classical import w2_squared_sorted

ALL = ["mmd", "std_euclidean", "mahalanobis", "cosine", "coral", "grassmann", "sliced_wasserstein",
       "wasserstein_exact", "c2st", "js_neural", "critic_w1", "mutual_info"]  # by family
# measures that see a shift of the class mean (Grassmann and CORAL look at spread only)
MEAN_SENSITIVE = ["mmd", "std_euclidean", "mahalanobis", "cosine", "sliced_wasserstein", "wasserstein_exact",
                  "c2st", "js_neural", "critic_w1", "mutual_info"]
# a p-value without permutations: the classifier test's binomial null
P_WITHOUT_PERMUTATIONS = {"c2st"}


def clusters(k=3, m=40, d=4, seed=0, spread=4.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * spread + 5.0  # away from 0 so cosine sees the angle
    f = np.concatenate([c + rng.normal(size=(m, d)) for c in centres])
    return f, np.repeat(np.arange(k), m)


def one_pair(fx, fy, metric, **params) -> float:
    """The distance between two point sets, through the cross-domain matrix on all their rows."""
    fx, fy = np.asarray(fx, float), np.asarray(fy, float)
    res = cross_domain_matrix(fx, np.zeros(len(fx)), fy, np.zeros(len(fy)), metric, **params)
    assert res.values.shape == (1, 1)
    return float(res.values[0, 0])


# ---------------------------------------------------------------------------- hand computations


def test_standardized_euclidean_by_hand():
    x, y = [[0, 0], [2, 0]], [[1, 1], [1, 3]]
    # pooled std (ddof=1): feature 0 var 2/3, feature 1 var 2; means (1, 0) and (1, 2)
    assert one_pair(x, y, "std_euclidean") == pytest.approx(np.sqrt(0 / (2 / 3) + 4 / 2), rel=1e-12)


def test_mahalanobis_isotropic_case_by_hand():
    star = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float)  # within-class covariance 0.5·I
    # Ledoit–Wolf shrinks towards a multiple of I, so an isotropic covariance stays 0.5·I
    assert one_pair(star, star + [3, 4], "mahalanobis") == pytest.approx(5 * np.sqrt(2), rel=1e-9)


def test_mahalanobis_matches_direct_formula():
    rng = np.random.default_rng(4)
    cov = np.array([[2.0, 0.8], [0.8, 0.5]])
    x = rng.multivariate_normal([0, 0], cov, size=50)
    y = rng.multivariate_normal([1, -1], cov, size=50)
    resid = np.concatenate([x - x.mean(0), y - y.mean(0)])
    s = LedoitWolf(assume_centered=True).fit(resid).covariance_
    delta = x.mean(0) - y.mean(0)
    assert one_pair(x, y, "mahalanobis") == pytest.approx(
        np.sqrt(delta @ np.linalg.solve(s, delta)), rel=1e-9
    )


def test_cosine_by_hand():
    x, y = [[1, 0], [1, 0]], [[1, 1], [1, 1]]
    assert one_pair(x, y, "cosine") == pytest.approx(1 - 1 / np.sqrt(2), rel=1e-12)
    assert one_pair(x, [[-2, 0], [-2, 0]], "cosine") == pytest.approx(2.0)


def test_cosine_zero_mean_is_an_error_not_nan():
    with pytest.raises(ValueError, match="mean feature vector is zero"):
        one_pair([[1, 0], [-1, 0]], [[1, 1], [1, 1]], "cosine")


@pytest.mark.parametrize("angle", [0.0, 0.3, 1.2])
def test_grassmann_known_angle(angle):
    e1, e2, e3 = np.eye(3)
    tilted = np.cos(angle) * e2 + np.sin(angle) * e3
    # 3·e1 and 1·e2 (resp. tilted) directions: top-2 PCA spans the two planes exactly
    x = np.array([3 * e1, -3 * e1, e2, -e2])
    y = np.array([3 * e1, -3 * e1, tilted, -tilted])
    assert one_pair(x, y, "grassmann", k=2) == pytest.approx(angle, abs=1e-9)
    assert one_pair(x, y, "grassmann", k=1) == pytest.approx(0.0, abs=1e-9)  # both top-1 = e1


def test_grassmann_checks_k():
    x = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match="k <= d"):
        one_pair(x, x + 1, "grassmann", k=4)
    with pytest.raises(ValueError, match="at least 4 samples per side"):
        one_pair(x, x + 1, "grassmann", k=3, n_per_class=3)


def test_w2_one_dimensional_exact():
    x, y = np.array([[0.0], [1.0], [2.0]]), np.array([[3.0], [4.0], [5.0]])
    assert w2_squared_sorted(x, y) == pytest.approx([9.0])
    # unequal sizes: quantile steps at 1/2 and 1/3, 2/3 give 1/6·1² + 1/3·2² = 1.5
    assert w2_squared_sorted(
        np.array([[0.0], [1.0]]), np.array([[0.0], [0.0], [3.0]])
    ) == pytest.approx([1.5])


def test_sliced_wasserstein_exact_in_one_dimension():
    # in 1-D every unit projection is ±1, so SW equals W2: a shift of 3
    assert one_pair([[0], [1], [2]], [[3], [4], [5]], "sliced_wasserstein") == pytest.approx(
        3.0, rel=1e-12
    )


def test_sliced_wasserstein_of_shifted_gaussians():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 2))
    # y = x + δ·e1: every projection θ shifts by δ·θ₁, so SW² = δ² E[θ₁²] = δ²/2 in 2-D
    got = one_pair(x, x + [2.0, 0.0], "sliced_wasserstein", n_projections=4000)
    assert got == pytest.approx(2.0 / np.sqrt(2), rel=0.03)


def test_coral_by_hand():
    x = [[0, 0], [2, 0], [0, 2], [2, 2]]  # covariance (ddof=1) 4/3·I
    y = [[0, 0], [1, 0], [0, 1], [1, 1]]  # 1/3·I
    assert one_pair(x, y, "coral") == pytest.approx(2 / (4 * 2**2), rel=1e-12)


def test_mean_based_entries_follow_the_halves():
    f, y = clusters()
    plan = class_samples(f, y, seed=1)
    res = class_distance_matrix(f, y, "std_euclidean", seed=1)
    sd = plan.pooled.std(0, ddof=1)
    for i, j in [(0, 0), (0, 2), (2, 1)]:
        a, b = plan.pair(i, j)
        assert res.values[i, j] == pytest.approx(
            np.linalg.norm((a.mean(0) - b.mean(0)) / sd), rel=1e-12
        )


# ------------------------------------------------------------------------ registry and matrices


def test_registry_lists_every_measure_with_labels():
    assert list_metrics() == ALL
    for name in ALL:
        info = metric_info(name)
        assert info.name == name and info.label and len(info.description) > 20
    assert metric_info("grassmann").params == {"k": None}
    assert "estimator" in metric_info("mmd").params
    with pytest.raises(KeyError, match="valid names: c2st, coral, cosine"):
        metric_info("earth_mover")


@pytest.mark.parametrize("metric", ALL)
def test_matrix_contract(metric):
    f, y = clusters(k=3, m=24, d=4)
    res = class_distance_matrix(f, y, metric, seed=2)
    assert isinstance(res, DistanceResult) and res.metric == metric
    assert res.values.shape == (3, 3) and np.isfinite(res.values).all()
    np.testing.assert_array_equal(res.values, res.values.T)
    assert res.classes == res.col_classes == (0, 1, 2) and res.n_per_class == 24
    assert (res.p_values is None) == (metric not in P_WITHOUT_PERMUTATIONS)
    assert res.params["n_per_side"] == 12
    assert res.description.endswith(".") and res.description.count(". ") == 0
    json.dumps(res.params)  # cacheable next to a run
    with pytest.raises(ValueError):
        res.values[0, 0] = 1.0  # results are read-only
    again = class_distance_matrix(f, y, metric, seed=2)
    np.testing.assert_array_equal(again.values, res.values)


@pytest.mark.parametrize("metric", MEAN_SENSITIVE)
def test_separated_classes_sit_above_the_diagonal_noise_floor(metric):
    f, y = clusters(k=3, m=60, d=4)
    v = class_distance_matrix(f, y, metric).values
    assert v[~np.eye(3, dtype=bool)].min() > 3 * np.abs(np.diag(v)).max()


@pytest.mark.parametrize("metric", [m for m in ALL if m != "mmd"])
def test_generic_permutation_p_values(metric):
    f, y = clusters(k=2, m=24, d=3)
    res = class_distance_matrix(f, y, metric, n_perm=19, seed=0)
    p = res.p_values
    assert p.shape == (2, 2) and ((p >= 1 / 20) & (p <= 1)).all()
    np.testing.assert_array_equal(p, p.T)
    if metric in MEAN_SENSITIVE:
        assert p[0, 1] == pytest.approx(1 / 20)


def test_cross_domain_rows_are_source_columns_target():
    f, y = clusters(k=3, m=20, d=3)
    ft, yt = f[y < 2] + 1.0, y[y < 2]
    res = cross_domain_matrix(f, y, ft, yt, "std_euclidean")
    assert res.values.shape == (3, 2) and res.classes == (0, 1, 2) and res.col_classes == (0, 1)
    assert res.params["pairing"] == "cross-domain"
    assert "source class" in res.description


def test_description_says_how_it_was_computed():
    f, y = clusters(k=3, m=20, d=3)
    res = class_distance_matrix(f, y, n_perm=9)
    assert "Unbiased MMD²" in res.description and "halves of 10" in res.description
    assert "9 permutations" in res.description
    assert res.params["estimator"] == "unbiased" and res.params["bandwidth_scope"] == "matrix"
    assert res.params["bandwidth"] > 0


# ------------------------------------------------------------------------------- input checking


@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("metric", ["mmd", "cosine"])
def test_small_classes_raise_naming_class_and_count(count, metric):
    f, y = clusters(k=3, m=10, d=3)
    keep = (y != 2) | (np.cumsum(y == 2) <= count)
    f, y = f[keep], y[keep]
    word = "sample" if count == 1 else "samples"
    with pytest.raises(ValueError, match=f"class 2 has {count} {word}"):
        class_distance_matrix(f, y, metric, classes=[0, 1, 2])


def test_empty_target_class_raises():
    f, y = clusters(k=2, m=10, d=3)
    with pytest.raises(ValueError, match="target class 1 has 1 sample"):
        cross_domain_matrix(f, y, f[:11], y[:11])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_raise(bad):
    f, y = clusters(k=2, m=10, d=3)
    f[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        class_distance_matrix(f, y)


def test_other_argument_errors():
    f, y = clusters(k=2, m=10, d=3)
    with pytest.raises(ValueError, match="n_per_class=11 but class 0 has only 10"):
        class_distance_matrix(f, y, n_per_class=11)
    with pytest.raises(ValueError, match="no parameter"):
        class_distance_matrix(f, y, "cosine", k=3)
    with pytest.raises(ValueError, match="shape"):
        class_distance_matrix(f, y[:-1])
    with pytest.raises(KeyError, match="valid names: full, halves"):
        class_distance_matrix(f, y, pairing="thirds")
    with pytest.raises(ValueError, match="bandwidth_scope"):
        class_distance_matrix(f, y, estimator="seed", bandwidth_scope="matrix")
