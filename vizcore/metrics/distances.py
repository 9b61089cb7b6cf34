"""Class-by-class distance matrices: MMD and the other measures of the group's survey.

Every measure fills the same kind of matrix and is looked up by name in ``METRICS``, so the page's
selectbox and the tests read one list. Which samples an entry compares is decided once, by a
:class:`SamplePlan`, before any measure runs:

- ``pairing="halves"`` (default): each class contributes ``n_per_class`` samples (the smallest
  class size unless given, seeded subsample), split at random into disjoint halves A and B of
  ``n_per_class // 2``. Entry (i, j), i <= j, compares A_i with B_j and is mirrored to (j, i).
  The diagonal (A_i vs B_i) is then the same estimator at the same sample size applied to two
  samples of one distribution: the noise floor every off-diagonal entry should be read against.
  Using halves off the diagonal too is what makes the entries comparable; a biased estimator's
  offset grows like 1/n, so mixing sample sizes would make the diagonal look farther than it is.
- ``pairing="full"``: off-diagonal entries compare all ``n_per_class`` samples of both classes
  (what the group's first experiment did, more power) while the diagonal still compares halves,
  so under a biased estimator the diagonal sits higher than the off-diagonal floor.
- :func:`cross_domain_matrix`: source class i against target class j, ``n_per_class`` samples of
  each; the two domains are disjoint samples already, so no halving is needed.

Mean-based measures (standardized Euclidean, Mahalanobis, cosine) also use the halves, so their
diagonal shows how far two class means drift from sampling noise alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.linalg
import torch
from sklearn.covariance import LedoitWolf

from vizcore.core.registry import Registry
from vizcore.metrics.mmd import ESTIMATORS, mmd2_pairs, permutation_p_value, resolve_bandwidth

ArrayLike = np.ndarray | torch.Tensor
PairFn = Callable[[np.ndarray, np.ndarray], float]


# ------------------------------------------------------------------------------------ data types


@dataclass(frozen=True, eq=False)
class DistanceResult:
    """A K×K (or Ks×Kt) distance matrix and how it was computed.

    Attributes:
        values: the distances; rows follow ``classes``, columns ``col_classes``.
        p_values: permutation p-values (k + 1) / (n_perm + 1) per entry, or None.
        classes: the class labels of the rows (the source classes for a cross-domain matrix).
        n_per_class: samples per class actually used.
        metric: registry name of the measure.
        params: effective parameters (JSON-friendly: numbers, strings, nested lists).
        description: one sentence on how the matrix was computed, for captions and hover text.
        col_classes: the class labels of the columns (the target classes for a cross-domain
            matrix; the same as ``classes`` otherwise).
    """

    values: np.ndarray
    p_values: np.ndarray | None
    classes: tuple[int, ...]
    n_per_class: int
    metric: str
    params: dict[str, Any]
    description: str
    col_classes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.col_classes:
            object.__setattr__(self, "col_classes", self.classes)
        for a in (self.values, self.p_values):
            if a is not None:
                a.setflags(write=False)


@dataclass(frozen=True)
class MetricInfo:
    """What the page shows about a measure.

    Attributes:
        name: registry name.
        label: short human label for a selectbox.
        description: a sentence or two on what it measures.
        params: the measure's own parameters and their defaults.
        family: one of :data:`FAMILIES`, how the page groups the measures.
    """

    name: str
    label: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    family: str = "kernel"


# What a measure looks at, in the order the page lists them: a kernel embedding, moments (means,
# covariances), the geometry of subspaces, optimal transport, a model trained to tell the two
# samples apart, and information.
FAMILIES = ("kernel", "moments", "geometry", "transport", "learned", "information")


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


@dataclass(frozen=True)
class Computed:
    """What a measure returns for a plan: one value (and p-value) per job."""

    values: np.ndarray
    p_values: np.ndarray | None
    params: dict[str, Any]
    phrase: str


ComputeFn = Callable[..., Computed]


@dataclass(frozen=True)
class Metric:
    """A registry entry: what the page shows, and the function filling a plan's entries."""

    info: MetricInfo
    compute: ComputeFn  # (plan, *, seed, n_perm, **params) -> Computed


METRICS: Registry[Metric] = Registry("distance")


def register_metric(
    name: str, label: str, description: str, family: str
) -> Callable[[ComputeFn], ComputeFn]:
    """Decorator registering a compute function with its label, description, family and parameters."""
    if family not in FAMILIES:
        raise ValueError(f"{name}: unknown family {family!r}; valid: {', '.join(FAMILIES)}")

    def deco(fn: ComputeFn) -> ComputeFn:
        sig = inspect.signature(fn).parameters.values()
        params = {
            p.name: p.default
            for p in sig
            if p.kind is p.KEYWORD_ONLY and p.name not in ("seed", "n_perm")
        }
        METRICS.add(name, Metric(MetricInfo(name, label, description, params, family), fn))
        return fn

    return deco


def list_metrics() -> list[str]:
    """Names of the registered distance measures by family (:data:`FAMILIES`), each family in
    registration order: MMD first."""
    names = METRICS.names()
    return sorted(names, key=lambda n: (FAMILIES.index(METRICS.get(n).info.family), names.index(n)))


def metric_info(name: str) -> MetricInfo:
    """Label, description and parameters of a measure; an unknown name lists the valid ones."""
    return METRICS.get(name).info


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


# ------------------------------------------------------------------------------------- matrices


def _run(metric: str, plan: SamplePlan, seed: int, n_perm: int, params: dict[str, Any]) -> Computed:
    m = METRICS.get(metric)
    unknown = set(params) - set(m.info.params)
    if unknown:
        accepted = ", ".join(m.info.params) or "none"
        raise ValueError(
            f"metric {metric!r} has no parameter(s) {', '.join(sorted(unknown))}; accepted: {accepted}"
        )
    if n_perm < 0:
        raise ValueError(f"n_perm must be >= 0, got {n_perm}")
    return m.compute(plan, seed=seed, n_perm=n_perm, **params)


def _fill(plan: SamplePlan, per_job: np.ndarray) -> np.ndarray:
    out = np.zeros(plan.shape)
    for (r, c), v in zip(plan.cells, per_job, strict=True):
        out[r, c] = v
        if plan.symmetric:
            out[c, r] = v
    return out


def _result(metric: str, plan: SamplePlan, got: Computed, extra: dict[str, Any]) -> DistanceResult:
    perm = (
        f"; p-values from {extra['n_perm']} permutations (seed {extra['seed']})"
        if extra["n_perm"]
        else ""
    )
    return DistanceResult(
        values=_fill(plan, got.values),
        p_values=None if got.p_values is None else _fill(plan, got.p_values),
        classes=plan.classes,
        n_per_class=plan.n_per_class,
        metric=metric,
        params={**got.params, **extra, "n_per_side": plan.n_per_side},
        description=f"{got.phrase}, {plan.sampling}{perm}.",
        col_classes=plan.col_classes,
    )


def class_distance_matrix(
    features: ArrayLike,
    labels: ArrayLike,
    metric: str = "mmd",
    *,
    n_per_class: int | None = None,
    seed: int = 0,
    n_perm: int = 0,
    classes: Sequence[int] | None = None,
    pairing: str = "halves",
    **params: Any,
) -> DistanceResult:
    """Distances between every pair of classes of one feature set.

    Args:
        features: one feature vector per row (e.g. GAP features).
        labels: integer class label per row.
        metric: a name from :func:`list_metrics`.
        n_per_class: samples per class (default: the smallest class size); every class needs at
            least 4 (two per half for the diagonal).
        seed: seeds the subsample, the halves, permutations and random projections.
        n_perm: permutations for p-values (0: none).
        classes: the labels to compare, in this order (default: all labels present).
        pairing: ``"halves"`` or ``"full"`` (see the module doc).
        **params: the measure's own parameters (:func:`metric_info` lists them).

    Shape:
        features: (N, d), labels: (N,); result.values: (K, K).

    Returns:
        A :class:`DistanceResult`; symmetric, the diagonal comparing a class's two halves.
    """
    plan = class_samples(
        features, labels, n_per_class=n_per_class, seed=seed, pairing=pairing, classes=classes
    )
    got = _run(metric, plan, seed, n_perm, params)
    return _result(metric, plan, got, {"pairing": pairing, "seed": seed, "n_perm": n_perm})


def cross_domain_matrix(
    fs: ArrayLike,
    ys: ArrayLike,
    ft: ArrayLike,
    yt: ArrayLike,
    metric: str = "mmd",
    *,
    n_per_class: int | None = None,
    seed: int = 0,
    n_perm: int = 0,
    classes: Sequence[int] | None = None,
    **params: Any,
) -> DistanceResult:
    """Distances between each source class (rows) and each target class (columns).

    Args:
        fs: source features.
        ys: source labels.
        ft: target features.
        yt: target labels (true labels, for analysis).
        metric: a name from :func:`list_metrics`.
        n_per_class: samples per class and domain (default: the smallest class in either domain).
        seed: seeds subsamples, permutations and random projections.
        n_perm: permutations for p-values (0: none).
        classes: labels to compare in both domains (default: those present in each domain).
        **params: the measure's own parameters.

    Shape:
        fs: (Ns, d), ys: (Ns,), ft: (Nt, d), yt: (Nt,); result.values: (Ks, Kt).
    """
    plan = cross_domain_samples(fs, ys, ft, yt, n_per_class=n_per_class, seed=seed, classes=classes)
    got = _run(metric, plan, seed, n_perm, params)
    return _result(metric, plan, got, {"pairing": "cross-domain", "seed": seed, "n_perm": n_perm})


# ------------------------------------------------------------------------------------------ MMD

BANDWIDTH_SCOPES = ("matrix", "pair")


def _bandwidth_phrase(
    bandwidth: str | float, scope: str, kernel_mul: float, kernel_num: int, base: float | None
) -> str:
    where = "over all samples used" if scope == "matrix" else "on each pair's pooled samples"
    how = f"{bandwidth} rule {where}" if isinstance(bandwidth, str) else "fixed"
    at = "" if base is None else f" {base:.4g}"
    if kernel_num == 1:
        return f"a Gaussian kernel with bandwidth{at} ({how})"
    lo = -(kernel_num // 2)
    return f"{kernel_num} Gaussian kernels with bandwidths {kernel_mul:g}^{lo}..{kernel_mul:g}^{lo + kernel_num - 1} × base{at} ({how})"


@register_metric(
    "mmd",
    "MMD² (Gaussian kernels)",
    "Maximum mean discrepancy between the two samples' feature distributions under a (multi-)Gaussian "
    "kernel: 0 when the distributions match. The unbiased estimator is ≈ 0 on the diagonal.",
    family="kernel",
)
def _mmd(
    plan: SamplePlan,
    *,
    seed: int,
    n_perm: int,
    estimator: str = "unbiased",
    bandwidth: str | float = "mean",
    kernel: str = "gaussian",
    kernel_mul: float = 2.0,
    kernel_num: int = 5,
    bandwidth_scope: str | None = None,
) -> Computed:
    # one kernel for the whole matrix keeps entries comparable; the seed's per-pair rule is kept for
    # estimator="seed" so its numbers are reproduced
    scope = bandwidth_scope or ("pair" if estimator == "seed" else "matrix")
    if scope not in BANDWIDTH_SCOPES:
        raise ValueError(
            f"bandwidth_scope must be one of {', '.join(BANDWIDTH_SCOPES)}, got {scope!r}"
        )
    if estimator == "seed" and scope != "pair":
        raise ValueError(
            "estimator='seed' computes its bandwidth per pair; bandwidth_scope must be 'pair'"
        )
    bw = resolve_bandwidth(bandwidth, plan.pooled) if scope == "matrix" else bandwidth
    got = mmd2_pairs(
        plan.bank,
        plan.jobs,
        kernel=kernel,
        bandwidth=bw,
        kernel_mul=kernel_mul,
        kernel_num=kernel_num,
        estimator=estimator,
        n_perm=n_perm,
        seed=seed,
    )
    shared = scope == "matrix" or not isinstance(bandwidth, str)
    params = {
        "estimator": estimator,
        "kernel": kernel,
        "kernel_mul": float(kernel_mul),
        "kernel_num": int(kernel_num),
        "bandwidth_rule": bandwidth if isinstance(bandwidth, str) else "fixed",
        "bandwidth_scope": scope,
        "bandwidth": float(got.bases[0]) if shared else _fill(plan, got.bases).tolist(),
    }
    base = float(got.bases[0]) if shared else None
    label = ESTIMATORS.get(estimator).label
    kernels = _bandwidth_phrase(bandwidth, scope, kernel_mul, kernel_num, base)
    phrase = f"{label[0].upper()}{label[1:]} with {kernels}"
    return Computed(got.values, got.p_values, params, phrase)


# ---------------------------------------------------------------------- sample-based measures


def each_pair(
    plan: SamplePlan, pair: PairFn, seed: int, n_perm: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply a pair function to every job, with permutation p-values when asked."""
    values = np.asarray([pair(plan.bank[a], plan.bank[b]) for a, b in plan.jobs], dtype=np.float64)
    if n_perm == 0:
        return values, None
    p = [
        _perm_p(pair, plan.bank[a], plan.bank[b], v, n_perm, np.random.default_rng([seed, j]))
        for j, ((a, b), v) in enumerate(zip(plan.jobs, values, strict=True))
    ]
    return values, np.asarray(p)


def _perm_p(
    pair: PairFn,
    x: np.ndarray,
    y: np.ndarray,
    observed: float,
    n_perm: int,
    rng: np.random.Generator,
) -> float:
    z, n = np.concatenate([x, y]), len(x)
    stats = np.empty(n_perm)
    for k in range(n_perm):
        order = rng.permutation(len(z))
        stats[k] = pair(z[order[:n]], z[order[n:]])
    return permutation_p_value(observed, stats)


@register_metric(
    "std_euclidean",
    "Standardized Euclidean (class means)",
    "Euclidean distance between class means after dividing each feature by its standard deviation over "
    "all samples used, so wide-ranging features do not dominate.",
    family="moments",
)
def _std_euclidean(plan: SamplePlan, *, seed: int, n_perm: int) -> Computed:
    sd = plan.pooled.std(0, ddof=1)  # (d,)
    keep = sd > 0  # a feature constant over the pool has equal means in every subset

    def pair(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.linalg.norm((x.mean(0) - y.mean(0))[keep] / sd[keep]))

    values, p = each_pair(plan, pair, seed, n_perm)
    return Computed(
        values,
        p,
        {"std_ddof": 1, "n_constant_features": int((~keep).sum())},
        "Standardized Euclidean distance between class means (per-feature std of all samples used)",
    )


@register_metric(
    "mahalanobis",
    "Mahalanobis (class means)",
    "Distance between class means in the metric of the pooled within-class covariance (Ledoit–Wolf "
    "shrinkage), i.e. in units of the classes' own spread.",
    family="moments",
)
def _mahalanobis(plan: SamplePlan, *, seed: int, n_perm: int) -> Computed:
    resid = np.concatenate([g - g.mean(0) for g in plan.groups])  # (N, d) within-class residuals
    lw = LedoitWolf(assume_centered=True).fit(resid)
    chol = scipy.linalg.cho_factor(lw.covariance_)

    def pair(x: np.ndarray, y: np.ndarray) -> float:
        delta = x.mean(0) - y.mean(0)
        return float(np.sqrt(max(0.0, delta @ scipy.linalg.cho_solve(chol, delta))))

    values, p = each_pair(plan, pair, seed, n_perm)
    return Computed(
        values,
        p,
        {"shrinkage": float(lw.shrinkage_)},
        f"Mahalanobis distance between class means (pooled within-class covariance, Ledoit–Wolf shrinkage {lw.shrinkage_:.3g})",
    )


@register_metric(
    "cosine",
    "Cosine (class means)",
    "1 − cosine similarity of the class mean vectors: the angle between classes, ignoring scale.",
    family="moments",
)
def _cosine(plan: SamplePlan, *, seed: int, n_perm: int) -> Computed:
    def pair(x: np.ndarray, y: np.ndarray) -> float:
        mx, my = x.mean(0), y.mean(0)
        norms = np.linalg.norm(mx) * np.linalg.norm(my)
        if norms == 0:
            raise ValueError(
                "cosine distance is undefined for a class whose mean feature vector is zero"
            )
        return float(np.clip(1.0 - mx @ my / norms, 0.0, 2.0))

    values, p = each_pair(plan, pair, seed, n_perm)
    return Computed(values, p, {}, "Cosine distance between class means")


def _pca_basis(x: np.ndarray, k: int) -> np.ndarray:
    """Orthonormal basis of the top-k principal directions. Shape: x (n, d) -> (d, k)."""
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    return vt[:k].T


@register_metric(
    "grassmann",
    "Grassmann (class subspaces)",
    "Geodesic distance between the classes' top-k PCA subspaces (k = min(5, d/2) by default): sqrt "
    "of the sum of squared principal angles; compares the directions a class varies in, not where it sits.",
    family="geometry",
)
def _grassmann(plan: SamplePlan, *, seed: int, n_perm: int, k: int | None = None) -> Computed:
    d = plan.bank[0].shape[1]
    # k = d would make every subspace the whole space; the default keeps k well below d and n
    k = max(1, min(5, d // 2, plan.n_per_side - 1)) if k is None else k
    if not 1 <= k <= d:
        raise ValueError(f"grassmann needs 1 <= k <= d = {d}, got k={k}")
    if plan.n_per_side < k + 1:
        raise ValueError(
            f"grassmann with k={k} needs at least {k + 1} samples per side; the plan has {plan.n_per_side}"
        )

    def pair(x: np.ndarray, y: np.ndarray) -> float:
        # subspace_angles uses sines for small angles, where arccos of the cosines loses precision
        return float(
            np.sqrt((scipy.linalg.subspace_angles(_pca_basis(x, k), _pca_basis(y, k)) ** 2).sum())
        )

    values, p = each_pair(plan, pair, seed, n_perm)
    return Computed(
        values, p, {"k": k}, f"Grassmann distance (principal angles) between top-{k} PCA subspaces"
    )


def w2_squared_sorted(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Exact squared 1-D Wasserstein-2 distance between empirical distributions, per column.

    W2² = ∫₀¹ (F⁻¹(t) - G⁻¹(t))² dt with both quantile functions piecewise constant; with equal
    sizes it is the mean squared difference of the sorted values.

    Shape:
        px: (n, L) sorted along axis 0, py: (m, L) sorted; output: (L,).
    """
    n, m = len(px), len(py)
    if n == m:
        return ((px - py) ** 2).mean(0)
    t = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)  # breakpoints of both steps
    w = np.diff(t, prepend=0.0)
    mid = t - w / 2
    ix, iy = np.minimum((mid * n).astype(int), n - 1), np.minimum((mid * m).astype(int), m - 1)
    return (w[:, None] * (px[ix] - py[iy]) ** 2).sum(0)


@register_metric(
    "sliced_wasserstein",
    "Sliced Wasserstein",
    "Root mean squared 1-D Wasserstein-2 distance of the two samples projected on random directions: a "
    "full-distribution distance that is cheap in high dimension.",
    family="transport",
)
def _sliced_wasserstein(
    plan: SamplePlan, *, seed: int, n_perm: int, n_projections: int = 128
) -> Computed:
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = np.random.default_rng([seed, 1]).normal(size=(plan.bank[0].shape[1], n_projections))
    theta /= np.linalg.norm(theta, axis=0)  # (d, L) unit directions, uniform on the sphere

    def pair(x: np.ndarray, y: np.ndarray) -> float:
        return float(
            np.sqrt(w2_squared_sorted(np.sort(x @ theta, 0), np.sort(y @ theta, 0)).mean())
        )

    values, p = each_pair(plan, pair, seed, n_perm)
    return Computed(
        values,
        p,
        {"n_projections": n_projections},
        f"Sliced Wasserstein-2 distance over {n_projections} seeded random projections",
    )


@register_metric(
    "coral",
    "CORAL (covariances)",
    "Squared Frobenius norm of the difference of the two covariance matrices divided by 4d², the CORAL "
    "loss of Sun & Saenko (2016): compares second-order statistics only.",
    family="moments",
)
def _coral(plan: SamplePlan, *, seed: int, n_perm: int) -> Computed:
    d = plan.bank[0].shape[1]

    def pair(x: np.ndarray, y: np.ndarray) -> float:
        diff = np.atleast_2d(np.cov(x, rowvar=False)) - np.atleast_2d(
            np.cov(y, rowvar=False)
        )  # (d, d)
        return float((diff**2).sum() / (4 * d * d))

    values, p = each_pair(plan, pair, seed, n_perm)
    return Computed(
        values, p, {"cov_ddof": 1}, "CORAL distance ‖C_x − C_y‖²_F / 4d² between covariances"
    )
