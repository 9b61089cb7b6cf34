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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vizcore.core.registry import Registry
from vizcore.metrics.mmd import permutation_p_value
from vizcore.metrics.sampling import (
    ArrayLike,
    SamplePlan,
    class_samples,
    cross_domain_samples,
    two_samples,
)

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
        revision: bumped when the measure's values change meaning, so cached matrices are recomputed.
    """

    name: str
    label: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    family: str = "kernel"
    revision: int = 0


# What a measure looks at, in the order the page lists them: a kernel embedding, moments (means,
# covariances), the geometry of subspaces, optimal transport, a model trained to tell the two
# samples apart, and information.
FAMILIES = ("kernel", "moments", "geometry", "transport", "learned", "information")


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
    name: str, label: str, description: str, family: str, revision: int = 0
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
        METRICS.add(name, Metric(MetricInfo(name, label, description, params, family, revision), fn))
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


@dataclass(frozen=True)
class TwoSampleResult:
    """One distance between two sample sets; ``description`` says which samples were paired."""

    value: float
    p_value: float | None
    metric: str
    params: dict[str, Any]
    description: str


def two_sample(
    x: ArrayLike, y: ArrayLike, metric: str = "mmd", *, seed: int = 0, n_perm: int = 0, **params: Any
) -> TwoSampleResult:
    """The distance ``metric`` between two sample sets, every sample of each used once.

    The same registered computation as the matrices' entries (one registry, one code path), on a
    plan with one entry: x against y. A learned measure trains and tests on held-out folds of
    both sets, as it does for a matrix entry.

    Shape:
        x: (n, d), y: (m, d).
    """
    plan = two_samples(x, y)
    got = _run(metric, plan, seed, n_perm, params)
    perm = f"; p-value from {n_perm} permutations (seed {seed})" if n_perm else ""
    return TwoSampleResult(
        value=float(got.values[0]),
        p_value=None if got.p_values is None else float(got.p_values[0]),
        metric=metric,
        params={**got.params, "seed": seed, "n_perm": n_perm},
        description=f"{got.phrase}, {plan.sampling}{perm}.",
    )


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


# ------------------------------------------------------- helpers of the sample-based measures


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
