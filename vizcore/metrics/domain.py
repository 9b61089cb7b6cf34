"""Domain-alignment and layout-quality numbers for the before/after embedding table.

Pure functions: numpy arrays in, floats out. Every function checks its inputs and
raises ``ValueError`` with a message a page can show as is.

The numbers and what they say about adaptation:

- proxy A-distance and domain-classifier accuracy: how well a *linear* classifier tells
  source from target features (lower = domains more mixed);
- kNN target accuracy: how well source labels transfer to target points by proximity
  (higher = classes aligned across domains);
- class silhouette: how compact and separated the classes are in feature space;
- trustworthiness and 2-D kNN class accuracy: how faithful the 2-D layout is, so a
  reader knows how far to trust what the scatter plot shows.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import trustworthiness
from sklearn.metrics import balanced_accuracy_score, silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "REPORT_COLUMNS",
    "class_silhouette",
    "embedding_report",
    "knn_class_accuracy_2d",
    "knn_target_accuracy",
    "layout_trustworthiness",
    "proxy_a_distance",
]

#: Keys of :func:`embedding_report` -> (table label, "higher" or "lower" is better for adaptation).
REPORT_COLUMNS: dict[str, tuple[str, str]] = {
    "proxy_a_distance": ("Proxy A-distance", "lower"),
    "domain_accuracy": ("Domain-classifier accuracy", "lower"),
    "knn_target_accuracy": ("kNN target accuracy (source labels)", "higher"),
    "class_silhouette": ("Class silhouette", "higher"),
    "trustworthiness": ("Trustworthiness of the 2-D layout", "higher"),
    "knn_class_accuracy_2d": ("2-D kNN class accuracy", "higher"),
}


def _features(x: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    """Return ``x`` as a finite float (N, D) array or raise a readable ValueError."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (points, features); got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} points; got {x.shape[0]}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} has NaN or Inf in {int(bad.sum())} of {x.shape[0]} rows "
            f"(first at row {int(np.argmax(bad))}); drop or fix those rows first"
        )
    return x


def _labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the features; got {y.shape}")
    return y


def proxy_a_distance(
    fs: np.ndarray, ft: np.ndarray, seed: int = 0, test_size: float = 0.5
) -> tuple[float, float]:
    """Proxy A-distance between two feature samples (Ben-David et al., 2007).

    A linear domain classifier (logistic regression on standardized features) is trained
    on ``1 - test_size`` of the points, stratified by domain, and its error ``eps`` is
    measured on the held-out rest. ``A = 2 (1 - 2 eps)``.

    ``eps`` is the *balanced* error (mean of the per-domain error rates), so a classifier
    that always answers the larger domain scores 0.5 and unequal sample sizes do not
    inflate the distance; for equal sizes it is the plain error. ``eps`` is clipped to at
    most 0.5 (a held-out error above chance is noise, not "negative distance"), so
    ``A`` lies in [0, 2]: 0 = indistinguishable domains, 2 = linearly separable.

    Shape:
        fs: (Ns, D) source features; ft: (Nt, D) target features.

    Returns:
        ``(a_distance, domain_accuracy)`` where ``domain_accuracy = 1 - eps`` before clipping.
    """
    fs = _features(fs, "source features", min_rows=4)
    ft = _features(ft, "target features", min_rows=4)
    if fs.shape[1] != ft.shape[1]:
        raise ValueError(
            f"source and target features differ in width: {fs.shape[1]} vs {ft.shape[1]}"
        )
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1); got {test_size}")
    x = np.vstack([fs, ft])
    d = np.r_[np.zeros(len(fs), dtype=int), np.ones(len(ft), dtype=int)]
    x_tr, x_te, d_tr, d_te = train_test_split(
        x, d, test_size=test_size, random_state=seed, stratify=d
    )
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(x_tr, d_tr)
    accuracy = float(balanced_accuracy_score(d_te, clf.predict(x_te)))
    eps = min(1.0 - accuracy, 0.5)
    return 2.0 * (1.0 - 2.0 * eps), accuracy


def knn_target_accuracy(
    fs: np.ndarray, ys: np.ndarray, ft: np.ndarray, yt: np.ndarray, k: int = 5
) -> float:
    """Accuracy on target labels of a k-nearest-neighbour classifier fit on labelled source.

    Shape:
        fs: (Ns, D), ys: (Ns,), ft: (Nt, D), yt: (Nt,).
    """
    fs = _features(fs, "source features", min_rows=1)
    ft = _features(ft, "target features", min_rows=1)
    ys = _labels(ys, len(fs), "source labels")
    yt = _labels(yt, len(ft), "target labels")
    if not 1 <= k <= len(fs):
        raise ValueError(f"k={k} must be between 1 and the number of source points ({len(fs)})")
    clf = KNeighborsClassifier(n_neighbors=k).fit(fs, ys)
    return float(clf.score(ft, yt))


def class_silhouette(
    x: np.ndarray, y: np.ndarray, sample_size: int | None = None, seed: int = 0
) -> float:
    """Mean silhouette coefficient of the classes ``y`` in the space ``x`` (Euclidean).

    In [-1, 1]; higher = tighter, better separated classes. It costs O(N^2), so pass
    ``sample_size`` for many points (scikit-learn then scores a seeded random subset).

    Shape:
        x: (N, D), y: (N,).
    """
    x = _features(x, "features", min_rows=3)
    y = _labels(y, len(x), "labels")
    n_classes = len(np.unique(y))
    if n_classes < 2:
        raise ValueError(
            f"class silhouette needs at least 2 classes; the labels hold {n_classes} class"
        )
    if n_classes >= len(x):
        raise ValueError(
            f"class silhouette needs fewer classes ({n_classes}) than points ({len(x)})"
        )
    return float(silhouette_score(x, y, sample_size=sample_size, random_state=seed))


def layout_trustworthiness(high: np.ndarray, low: np.ndarray, k: int = 10) -> float:
    """Trustworthiness of a low-dimensional layout (scikit-learn, Venna & Kaski 2001).

    In [0, 1]; 1 means every point's ``k`` nearest neighbours in the layout are also
    among its nearest neighbours in the original space (no false neighbours).

    Shape:
        high: (N, D) original features; low: (N, 2) layout of the same points.
    """
    high = _features(high, "features")
    low = _features(low, "layout")
    if len(high) != len(low):
        raise ValueError(f"features and layout differ in length: {len(high)} vs {len(low)}")
    if not 1 <= k < len(high) / 2:
        raise ValueError(
            f"trustworthiness needs 1 <= k < points / 2; got k={k} for {len(high)} points"
        )
    return float(trustworthiness(high, low, n_neighbors=k))


def knn_class_accuracy_2d(xy: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Leave-one-out k-nearest-neighbour class accuracy in a (2-D) layout.

    Each point is classified by a majority vote of its ``k`` nearest *other* points; ties
    go to the smallest label, as in scikit-learn's ``KNeighborsClassifier``. High values
    mean the classes the plot shows as clusters really are neighbourhoods in the layout.

    Shape:
        xy: (N, 2) (any width works), y: (N,).
    """
    xy = _features(xy, "layout")
    y = _labels(y, len(xy), "labels")
    if not 1 <= k < len(xy):
        raise ValueError(f"k={k} must be between 1 and the number of points - 1 ({len(xy) - 1})")
    classes, y_idx = np.unique(y, return_inverse=True)
    # kneighbors() without X leaves each point out of its own neighbour list.
    _, ind = NearestNeighbors(n_neighbors=k).fit(xy).kneighbors()  # (N, k)
    votes = np.zeros((len(xy), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.arange(len(xy))[:, None], y_idx[ind]), 1)
    return float(np.mean(votes.argmax(axis=1) == y_idx))


def embedding_report(
    fs: np.ndarray,
    ys: np.ndarray,
    ft: np.ndarray,
    yt: np.ndarray,
    layout: np.ndarray | None = None,
    *,
    k_target: int = 5,
    k_layout: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """All table numbers for one state ("before" or "after") of the features.

    Args:
        fs, ys: source features and labels.
        ft, yt: target features and labels.
        layout: optional 2-D layout of ``np.vstack([fs, ft])`` (source rows first); without
            it the two layout numbers are NaN.
        k_target: neighbours for the kNN target accuracy.
        k_layout: neighbours for trustworthiness and the 2-D kNN class accuracy.
        seed: seed of the domain classifier's train/test split.

    Returns:
        A dict keyed like :data:`REPORT_COLUMNS` (class silhouette on the features of both
        domains together, with their class labels).

    Shape:
        fs: (Ns, D), ys: (Ns,), ft: (Nt, D), yt: (Nt,), layout: (Ns + Nt, 2).
    """
    a_distance, domain_accuracy = proxy_a_distance(fs, ft, seed=seed)
    x = np.vstack([np.asarray(fs, dtype=np.float64), np.asarray(ft, dtype=np.float64)])
    y = np.concatenate([np.asarray(ys), np.asarray(yt)])
    report = {
        "proxy_a_distance": a_distance,
        "domain_accuracy": domain_accuracy,
        "knn_target_accuracy": knn_target_accuracy(fs, ys, ft, yt, k=k_target),
        "class_silhouette": class_silhouette(x, y),
        "trustworthiness": float("nan"),
        "knn_class_accuracy_2d": float("nan"),
    }
    if layout is not None:
        report["trustworthiness"] = layout_trustworthiness(x, layout, k=k_layout)
        report["knn_class_accuracy_2d"] = knn_class_accuracy_2d(layout, y, k=k_layout)
    return report
