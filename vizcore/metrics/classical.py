"""The measures computed from the samples directly, registered in ``METRICS`` in this order: MMD²
(Gaussian kernels), standardized Euclidean, Mahalanobis and cosine distances of class means, the
Grassmann distance of principal subspaces, sliced Wasserstein and CORAL. Each takes the
:class:`~vizcore.metrics.distances.SamplePlan` that decides which samples an entry compares.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from sklearn.covariance import LedoitWolf

from vizcore.metrics.distances import Computed, _fill, each_pair, register_metric
from vizcore.metrics.mmd import ESTIMATORS, mmd2_pairs, resolve_bandwidth
from vizcore.metrics.sampling import SamplePlan

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
