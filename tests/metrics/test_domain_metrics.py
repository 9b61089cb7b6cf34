"""Domain-alignment and layout-quality numbers, checked against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness
from sklearn.metrics import silhouette_score
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from vizcore.metrics import domain as D


@pytest.fixture(scope="module")
def two_domains() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three classes in 5-d; the target is the source shifted a little (same labels)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(3, 5))
    ys = rng.integers(0, 3, size=60)
    yt = rng.integers(0, 3, size=45)
    fs = centers[ys] + rng.normal(size=(60, 5))
    ft = centers[yt] + rng.normal(size=(45, 5)) + 0.8
    return fs, ys, ft, yt


# --------------------------------------------------------------------------- proxy A-distance


def test_a_distance_near_zero_for_one_distribution() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8))
    a, acc = D.proxy_a_distance(x[:1000], x[1000:], seed=0)
    assert 0.0 <= a < 0.25
    assert acc == pytest.approx(0.5, abs=0.07)


def test_a_distance_two_for_separable_domains() -> None:
    rng = np.random.default_rng(2)
    fs = rng.normal(size=(300, 8))
    ft = rng.normal(size=(300, 8)) + np.r_[10.0, np.zeros(7)]
    a, acc = D.proxy_a_distance(fs, ft)
    assert a == pytest.approx(2.0) and acc == pytest.approx(1.0)


def test_a_distance_grows_with_shift_and_stays_in_range() -> None:
    rng = np.random.default_rng(3)
    fs = rng.normal(size=(400, 4))
    values = [D.proxy_a_distance(fs, rng.normal(size=(400, 4)) + s)[0] for s in (0.0, 0.3, 1.0)]
    assert values == sorted(values)
    assert all(0.0 <= v <= 2.0 for v in values)


def test_a_distance_is_seeded_and_balanced() -> None:
    rng = np.random.default_rng(4)
    fs, ft = rng.normal(size=(300, 3)), rng.normal(size=(60, 3))
    assert D.proxy_a_distance(fs, ft, seed=5) == D.proxy_a_distance(fs, ft, seed=5)
    # 5:1 sizes, same distribution: answering "source" everywhere is 83% accurate but
    # the balanced error is 0.5, so the distance stays small.
    a, acc = D.proxy_a_distance(fs, ft)
    assert a < 0.4 and acc < 0.6


def test_a_distance_guards() -> None:
    with pytest.raises(ValueError, match="differ in width"):
        D.proxy_a_distance(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 4 points"):
        D.proxy_a_distance(np.zeros((2, 3)), np.zeros((10, 3)))
    bad = np.zeros((10, 3))
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf in 1 of 10 rows"):
        D.proxy_a_distance(np.zeros((10, 3)), bad)


# --------------------------------------------------------------------------- kNN target


@pytest.mark.parametrize("k", [1, 5])
def test_knn_target_accuracy_matches_sklearn(two_domains, k: int) -> None:
    fs, ys, ft, yt = two_domains
    expected = KNeighborsClassifier(n_neighbors=k).fit(fs, ys).score(ft, yt)
    assert D.knn_target_accuracy(fs, ys, ft, yt, k=k) == pytest.approx(expected)


def test_knn_target_accuracy_by_hand() -> None:
    fs = np.array([[0.0], [1.0], [10.0], [11.0]])
    ys = np.array([0, 0, 1, 1])
    ft = np.array([[0.5], [10.5], [2.0], [9.0]])
    yt = np.array([0, 1, 1, 1])  # the third point sits among class 0: wrong
    assert D.knn_target_accuracy(fs, ys, ft, yt, k=1) == pytest.approx(0.75)


def test_knn_target_guards(two_domains) -> None:
    fs, ys, ft, yt = two_domains
    with pytest.raises(ValueError, match="k=100"):
        D.knn_target_accuracy(fs, ys, ft, yt, k=100)
    with pytest.raises(ValueError, match="target labels must have shape"):
        D.knn_target_accuracy(fs, ys, ft, yt[:-1])


# --------------------------------------------------------------------------- silhouette


def test_silhouette_matches_sklearn(two_domains) -> None:
    fs, ys, _, _ = two_domains
    assert D.class_silhouette(fs, ys) == pytest.approx(silhouette_score(fs, ys))


def test_silhouette_by_hand() -> None:
    # Two tight pairs 10 apart: a = 1, b = mean(10, 11) or mean(9, 10) per point.
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.array([0, 0, 1, 1])
    s = [1 - 1 / 10.5, 1 - 1 / 9.5, 1 - 1 / 9.5, 1 - 1 / 10.5]
    assert D.class_silhouette(x, y) == pytest.approx(np.mean(s))


def test_silhouette_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        D.class_silhouette(np.random.default_rng(0).normal(size=(10, 2)), np.zeros(10))


# --------------------------------------------------------------------------- layout quality


def test_trustworthiness_equals_sklearn(two_domains) -> None:
    fs, _, _, _ = two_domains
    low = fs[:, :2] + np.random.default_rng(0).normal(scale=0.5, size=(60, 2))
    for k in (3, 10):
        expected = trustworthiness(fs, low, n_neighbors=k)
        assert D.layout_trustworthiness(fs, low, k=k) == pytest.approx(expected)
    assert D.layout_trustworthiness(fs, fs, k=5) == pytest.approx(1.0)


def test_trustworthiness_guards() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="k < points / 2"):
        D.layout_trustworthiness(x, x[:, :2], k=5)
    with pytest.raises(ValueError, match="differ in length"):
        D.layout_trustworthiness(x, x[:9, :2], k=2)


@pytest.mark.parametrize("k", [1, 3, 4, 10])
def test_knn_class_accuracy_2d_equals_leave_one_out_sklearn(k: int) -> None:
    rng = np.random.default_rng(k)
    xy = rng.normal(size=(40, 2))
    y = (xy[:, 0] + rng.normal(scale=0.7, size=40) > 0).astype(int) + 2 * (xy[:, 1] > 0.5)
    pred = cross_val_predict(KNeighborsClassifier(n_neighbors=k), xy, y, cv=LeaveOneOut())
    assert D.knn_class_accuracy_2d(xy, y, k=k) == pytest.approx(np.mean(pred == y))


def test_knn_class_accuracy_2d_leaves_duplicates_in_but_self_out() -> None:
    # Each point has an exact duplicate of its own class: with k=1 it is found, not itself.
    xy = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 2, axis=0)
    y = np.array(["a", "a", "b", "b", "c", "c"])
    assert D.knn_class_accuracy_2d(xy, y, k=1) == 1.0


# --------------------------------------------------------------------------- report


def test_embedding_report_keys_and_values(two_domains) -> None:
    fs, ys, ft, yt = two_domains
    x = np.vstack([fs, ft])
    y = np.concatenate([ys, yt])
    layout = x[:, :2]
    report = D.embedding_report(fs, ys, ft, yt, layout)
    assert list(report) == list(D.REPORT_COLUMNS)
    assert report["proxy_a_distance"] == pytest.approx(D.proxy_a_distance(fs, ft)[0])
    assert report["knn_target_accuracy"] == pytest.approx(D.knn_target_accuracy(fs, ys, ft, yt))
    assert report["class_silhouette"] == pytest.approx(silhouette_score(x, y))
    assert report["trustworthiness"] == pytest.approx(trustworthiness(x, layout, n_neighbors=10))
    assert report["knn_class_accuracy_2d"] == pytest.approx(D.knn_class_accuracy_2d(layout, y))
    assert all(isinstance(v, float) for v in report.values())


def test_embedding_report_without_layout_has_nan_layout_numbers(two_domains) -> None:
    report = D.embedding_report(*two_domains)
    assert np.isnan(report["trustworthiness"]) and np.isnan(report["knn_class_accuracy_2d"])
    assert 0.0 <= report["proxy_a_distance"] <= 2.0
