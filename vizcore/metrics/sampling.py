"""Which samples each matrix entry compares: a :class:`SamplePlan`, decided once before any
measure runs (the pairings ``"halves"`` and ``"full"`` of a class matrix, and the source-by-target
plan of a cross-domain matrix; see :mod:`vizcore.metrics.distances`), from checked features and labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from vizcore.core.registry import Registry

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True, eq=False)
class SamplePlan:
    """Which samples each matrix entry compares.

    Attributes:
        bank: the sample sets, each (n_b, d) float64.
        jobs: for each computed entry, indices (x, y) into ``bank``.
        cells: for each computed entry, its (row, col) in the matrix.
        shape: matrix shape.
        symmetric: whether entry (i, j) is mirrored to (j, i).
        groups: every distinct sample used, one (n_g, d) array per class (per domain and class
            for cross-domain plans); the base of pooled statistics.
        n_per_class: samples per class used.
        n_per_side: rows of the smaller side of any comparison (the diagonal halves).
        sampling: a phrase describing the plan, for descriptions.
        classes: class label of each row.
        col_classes: class label of each column.
    """

    bank: tuple[np.ndarray, ...]
    jobs: tuple[tuple[int, int], ...]
    cells: tuple[tuple[int, int], ...]
    shape: tuple[int, int]
    symmetric: bool
    groups: tuple[np.ndarray, ...]
    n_per_class: int
    n_per_side: int
    sampling: str
    classes: tuple[int, ...] = ()
    col_classes: tuple[int, ...] = ()

    @property
    def pooled(self) -> np.ndarray:
        """Every distinct sample used, once. Shape: (sum of group sizes, d)."""
        return np.concatenate(self.groups)

    def pair(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """The (X, Y) samples behind entry (i, j)."""
        for (r, c), (a, b) in zip(self.cells, self.jobs, strict=True):
            if (r, c) == (i, j) or (self.symmetric and (c, r) == (i, j)):
                return self.bank[a], self.bank[b]
        raise IndexError(f"entry ({i}, {j}) is outside a {self.shape} matrix")


# ------------------------------------------------------------------------------- input checking


def _as_features(features: ArrayLike, name: str) -> np.ndarray:
    f = (
        features.detach().cpu().numpy()
        if isinstance(features, torch.Tensor)
        else np.asarray(features)
    )
    if f.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, d), got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.number) or not np.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or Inf values (or is not numeric)")
    return f.astype(np.float64, copy=False)


def _as_labels(labels: ArrayLike, n: int, name: str) -> np.ndarray:
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the features, got {y.shape}")
    if y.size and not np.array_equal(y, np.round(y)):
        raise ValueError(f"{name} must be integer class labels")
    return y.astype(np.int64)


def _counts(y: np.ndarray, classes: Sequence[int] | None) -> dict[int, int]:
    wanted = sorted(set(np.unique(y).tolist())) if classes is None else [int(c) for c in classes]
    return {c: int((y == c).sum()) for c in wanted}


def _check_counts(counts: dict[int, int], need: int, why: str, who: str = "class") -> None:
    if not counts:
        raise ValueError("no classes to compare (empty labels or empty 'classes')")
    for c, k in counts.items():
        if k < need:
            raise ValueError(
                f"{who} {c} has {k} sample{'s' * (k != 1)}; {why} needs at least {need}"
            )


def _n_used(counts: dict[int, int], n_per_class: int | None, who: str = "class") -> int:
    smallest = min(counts.values())
    if n_per_class is None:
        return smallest
    for c, k in counts.items():
        if k < n_per_class:
            raise ValueError(f"n_per_class={n_per_class} but {who} {c} has only {k} samples")
    return int(n_per_class)


def _draw(
    f: np.ndarray, y: np.ndarray, classes: Sequence[int], n: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """A seeded random subset of n rows per class, in random order (so slicing gives random halves)."""
    return [f[rng.permutation(np.flatnonzero(y == c))[:n]] for c in classes]


# ------------------------------------------------------------------------------------- pairings


def _plan_halves(groups: list[np.ndarray], n: int) -> SamplePlan:
    k, h = len(groups), n // 2
    a_halves, b_halves = [g[:h] for g in groups], [g[h : 2 * h] for g in groups]
    cells = [(i, j) for i in range(k) for j in range(i, k)]  # upper triangle, mirrored later
    return SamplePlan(
        bank=tuple(a_halves + b_halves),
        jobs=tuple((i, k + j) for i, j in cells),  # A_i vs B_j
        cells=tuple(cells),
        shape=(k, k),
        symmetric=True,
        groups=tuple(g[: 2 * h] for g in groups),
        n_per_class=2 * h,
        n_per_side=h,
        sampling=(
            f"on disjoint random halves of {h} samples per class (entry (i, j) compares the "
            f"first half of class i with the second half of class j, so the diagonal is the noise "
            f"floor at the same sample size)"
        ),
    )


def _plan_full(groups: list[np.ndarray], n: int) -> SamplePlan:
    k, h = len(groups), n // 2
    a_halves, b_halves = [g[:h] for g in groups], [g[h : 2 * h] for g in groups]
    cells = [(i, j) for i in range(k) for j in range(i, k)]
    whole = 2 * k  # bank index of the first whole class
    return SamplePlan(
        bank=tuple(a_halves + b_halves + list(groups)),
        jobs=tuple((i, k + i) if i == j else (whole + i, whole + j) for i, j in cells),
        cells=tuple(cells),
        shape=(k, k),
        symmetric=True,
        groups=tuple(groups),
        n_per_class=n,
        n_per_side=h,
        sampling=(
            f"on all {n} samples of each pair of classes (diagonal: two disjoint random "
            f"halves of {h}, so a biased estimator's diagonal sits above the off-diagonal floor)"
        ),
    )


PAIRINGS: Registry[Callable[[list[np.ndarray], int], SamplePlan]] = Registry("pairing")
PAIRINGS.add("halves", _plan_halves)
PAIRINGS.add("full", _plan_full)


def class_samples(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    n_per_class: int | None = None,
    seed: int = 0,
    pairing: str = "halves",
    classes: Sequence[int] | None = None,
) -> SamplePlan:
    """The samples behind every entry of :func:`class_distance_matrix` (same arguments, same draw).

    Shape:
        features: (N, d), labels: (N,).
    """
    build = PAIRINGS.get(pairing)
    f = _as_features(features, "features")
    y = _as_labels(labels, len(f), "labels")
    counts = _counts(y, classes)
    _check_counts(counts, 4, "a class matrix (2 per half for the diagonal)")
    n = _n_used(counts, n_per_class)
    if n < 4:
        raise ValueError(
            f"n_per_class={n}: a class matrix needs at least 4 (2 per half for the diagonal)"
        )
    plan = build(_draw(f, y, list(counts), n, np.random.default_rng(seed)), n)
    return replace(plan, classes=tuple(counts), col_classes=tuple(counts))


def cross_domain_samples(
    fs: ArrayLike,
    ys: ArrayLike,
    ft: ArrayLike,
    yt: ArrayLike,
    *,
    n_per_class: int | None = None,
    seed: int = 0,
    classes: Sequence[int] | None = None,
) -> SamplePlan:
    """The samples behind every entry of :func:`cross_domain_matrix`.

    Shape:
        fs: (Ns, d), ys: (Ns,), ft: (Nt, d), yt: (Nt,).
    """
    f_s, f_t = _as_features(fs, "source features"), _as_features(ft, "target features")
    if f_s.shape[1] != f_t.shape[1]:
        raise ValueError(
            f"source and target features differ in width: {f_s.shape[1]} vs {f_t.shape[1]}"
        )
    y_s, y_t = _as_labels(ys, len(f_s), "source labels"), _as_labels(yt, len(f_t), "target labels")
    c_s, c_t = _counts(y_s, classes), _counts(y_t, classes)
    _check_counts(c_s, 2, "a cross-domain matrix", "source class")
    _check_counts(c_t, 2, "a cross-domain matrix", "target class")
    n = min(_n_used(c_s, n_per_class, "source class"), _n_used(c_t, n_per_class, "target class"))
    rng = np.random.default_rng(seed)
    src, tgt = _draw(f_s, y_s, list(c_s), n, rng), _draw(f_t, y_t, list(c_t), n, rng)
    cells = [(i, j) for i in range(len(src)) for j in range(len(tgt))]
    return SamplePlan(
        bank=tuple(src + tgt),
        jobs=tuple((i, len(src) + j) for i, j in cells),
        cells=tuple(cells),
        shape=(len(src), len(tgt)),
        symmetric=False,
        groups=tuple(
            src + tgt
        ),  # (domain, class) groups: within-group stats remove domain shift too
        n_per_class=n,
        n_per_side=n,
        sampling=f"on {n} random samples of each source class (rows) and of each target class (columns)",
        classes=tuple(c_s),
        col_classes=tuple(c_t),
    )


def two_samples(x: ArrayLike, y: ArrayLike) -> SamplePlan:
    """A plan of one entry comparing all of ``x`` with all of ``y``, no subsample, no halves.

    Shape:
        x: (n, d), y: (m, d); the plan's matrix is (1, 1).
    """
    fx, fy = _as_features(x, "x"), _as_features(y, "y")
    if fx.shape[1] != fy.shape[1]:
        raise ValueError(f"x and y must have the same feature size, got {fx.shape[1]} and {fy.shape[1]}")
    if min(len(fx), len(fy)) < 2:
        raise ValueError(f"x and y need at least 2 samples each, got {len(fx)} and {len(fy)}")
    return SamplePlan(bank=(fx, fy), jobs=((0, 1),), cells=((0, 0),), shape=(1, 1), symmetric=False,
                      groups=(fx, fy), n_per_class=min(len(fx), len(fy)), n_per_side=min(len(fx), len(fy)),
                      sampling=f"all {len(fx)} samples of x against all {len(fy)} of y (no subsample)",
                      classes=(0,), col_classes=(1,))  # fmt: skip
