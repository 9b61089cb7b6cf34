"""Maximum mean discrepancy (MMD) with Gaussian kernel families.

The kernel is a sum of ``kernel_num`` Gaussians ``exp(-||a - b||² / (base · s))`` whose scales
``s = kernel_mul ** (i - kernel_num // 2)`` are spread around a base bandwidth, as in DAN's
multi-kernel MMD (and tllib's ``GaussianKernel`` family). The bandwidth divides the *squared*
distance. The base comes from a rule applied to the pooled sample (``"mean"`` or ``"median"`` of the
pairwise squared distances) or is a fixed number.

Estimators of MMD² between samples X (n rows) and Y (m rows), with kernel matrix K:

- ``"biased"``: the V-statistic, mean(K_xx) + mean(K_yy) - 2 mean(K_xy); always >= 0, but its
  expectation is > 0 even when X and Y come from one distribution (bias ~ 1/n + 1/m).
- ``"unbiased"``: the U-statistic; the diagonals of K_xx and K_yy are left out, so its expectation is
  exactly MMD² (0 under the null) and single values can be negative.
- ``"linear"``: Gretton et al. (2012), Lemma 14: the mean of
  h = k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i}) over
  disjoint pairs; O(n) time, unbiased, noisier. DAN trains with it.
- ``"seed"``: the group's first experiment, kept to reproduce its numbers: the biased estimator with
  the 5-kernel family 2^{-2..2} around base = sum(D) / (N² - N) over the concatenation of X and Y.

Whole distance matrices go through :func:`mmd2_pairs`, which never forms an (n, n, d) tensor: squared
distances are ``|a|² + |b|² - 2 a·b`` in float64 (centred data, clamped at 0), one matrix product per
block of at most ``GEMM_ELEMS`` entries, so memory stays bounded for any n, and only the kernel
*block sums* each estimator needs are kept (within-sample blocks: upper triangle only, once per
distinct bandwidth). Permutation p-values reuse the pooled kernel matrix of each pair: a permuted
MMD² is a quadratic form of the group-assignment vector, so all permutations are one matrix product.
The kernel families and block sums are :mod:`vizcore.metrics.kernels`; the estimators are
:mod:`vizcore.metrics.estimators`. This module holds the bandwidth rules and the public functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from vizcore.core.registry import Registry
from vizcore.metrics.estimators import ESTIMATORS, _BlockEstimator, _LinearEstimator
from vizcore.metrics.kernels import KERNELS, GaussianFamily, _Sample, run_blocks, sq_dists

ArrayLike = np.ndarray | Tensor
T = TypeVar("T")
Bandwidth = str | float

# The median rule looks at every pairwise distance; above this many pooled rows it uses a seeded
# random subset of rows (the median of ~2 million distances is a stable estimate).
MEDIAN_MAX_ROWS = 2048
# What estimator="seed" fixes: the group's first experiment used exactly this family.
SEED_MODE = {"bandwidth": "mean", "kernel_mul": 2.0, "kernel_num": 5}


# ------------------------------------------------------------------------------------ bandwidths


def _wide(z: Tensor) -> Tensor:
    """float64 where the device has it (Apple MPS does not)."""
    return z.to(torch.float32 if z.device.type == "mps" else torch.float64)


def _mean_rule(z: Tensor) -> float:
    # mean of D over the N² - N off-diagonal pairs without forming D: the block sums of D follow
    # from the first two moments, Σ_{p,q} |z_p - z_q|² = 2N Σ_p |z_p - z̄|², so base = 2 Σ|z - z̄|² / (N - 1)
    zc = _wide(z) - _wide(z).mean(0)
    return float(2 * (zc * zc).sum() / (z.shape[0] - 1))


def _median_rule(z: Tensor) -> float:
    if z.shape[0] > MEDIAN_MAX_ROWS:
        gen = torch.Generator().manual_seed(0)
        z = z[torch.randperm(z.shape[0], generator=gen)[:MEDIAN_MAX_ROWS].to(z.device)]
    d2 = sq_dists(_wide(z), _wide(z))
    upper = torch.ones_like(d2, dtype=torch.bool).triu_(1)
    return float(np.median(d2[upper].cpu().numpy()))


BANDWIDTH_RULES: Registry[Callable[[Tensor], float]] = Registry("bandwidth rule")
BANDWIDTH_RULES.add("mean", _mean_rule)
BANDWIDTH_RULES.add("median", _median_rule)


def _checked(base: float, rule: str) -> float:
    if not base > 0:
        raise ValueError(
            f"bandwidth rule {rule!r} gives {base}: all pooled samples coincide; pass a fixed bandwidth"
        )
    return base


def resolve_bandwidth(bandwidth: Bandwidth, pooled: ArrayLike) -> float:
    """The base bandwidth: a rule applied to the pooled sample, or a fixed positive number.

    ``"mean"`` is the mean squared distance over distinct pairs (the seed's rule); ``"median"`` the
    median of the squared distances (the median heuristic, expressed on squared distances).

    Shape:
        pooled: (N, d).
    """
    if isinstance(bandwidth, str):
        z = _as_tensor(pooled).detach()
        if z.shape[0] < 2:
            raise ValueError("a bandwidth rule needs at least 2 pooled samples")
        return _checked(BANDWIDTH_RULES.get(bandwidth)(z), bandwidth)
    base = float(bandwidth)
    if not (np.isfinite(base) and base > 0):
        raise ValueError(f"a fixed bandwidth must be a positive finite number, got {bandwidth!r}")
    return base


# ------------------------------------------------------------------------------------ public API


def _as_tensor(a: ArrayLike) -> Tensor:
    return a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a))


def _check_sample(a: Tensor, name: str, min_rows: int, width: int) -> None:
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{name} must be 2-D (n, {width}), got shape {tuple(a.shape)}")
    if a.shape[0] < min_rows:
        raise ValueError(f"{name} has {a.shape[0]} rows; this estimator needs at least {min_rows}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN or Inf values")


def _family(
    kernel: str, estimator: str, bandwidth: Bandwidth, kernel_mul: float, kernel_num: int
) -> GaussianFamily:
    ESTIMATORS.get(estimator)  # unknown names fail here, listing the valid ones
    if estimator == "seed":
        given = {"bandwidth": bandwidth, "kernel_mul": float(kernel_mul), "kernel_num": kernel_num}
        if given != SEED_MODE:
            raise ValueError(f"estimator='seed' fixes {SEED_MODE}; got {given}")
    return KERNELS.get(kernel)(kernel_mul=float(kernel_mul), kernel_num=int(kernel_num))


@dataclass(frozen=True)
class PairsMMD:
    """Output of :func:`mmd2_pairs`: one entry per job.

    Attributes:
        values: MMD² estimates, shape (J,).
        p_values: permutation p-values (k + 1) / (n_perm + 1), shape (J,), or None.
        bases: base bandwidth used by each job, shape (J,).
    """

    values: np.ndarray
    p_values: np.ndarray | None
    bases: np.ndarray


def mmd2_pairs(
    bank: Sequence[ArrayLike],
    jobs: Sequence[tuple[int, int]],
    *,
    kernel: str = "gaussian",
    bandwidth: Bandwidth = "mean",
    kernel_mul: float = 2.0,
    kernel_num: int = 5,
    estimator: str = "unbiased",
    n_perm: int = 0,
    seed: int = 0,
) -> PairsMMD:
    """MMD² for many (X, Y) pairs drawn from one bank of samples, in one pass over the kernel blocks.

    Each sample's within-kernel sum is computed once per distinct bandwidth among the jobs using it
    (upper triangle only); each job adds its cross block. A rule bandwidth is applied per job to
    the pooled pair (the seed's convention); pass a float to share one kernel across jobs.

    Args:
        bank: the samples; job ``(a, b)`` compares ``bank[a]`` (X) with ``bank[b]`` (Y).
        jobs: index pairs into ``bank``.
        kernel, bandwidth, kernel_mul, kernel_num, estimator: as in :func:`mmd2`.
        n_perm: permutations per job for p-values; 0 for none.
        seed: seeds the permutations (job j uses the stream ``(seed, j)``).

    Shape:
        bank[i]: (n_i, d), all with the same d.

    Returns:
        A :class:`PairsMMD`.
    """
    est = ESTIMATORS.get(estimator)
    fam = _family(kernel, estimator, bandwidth, kernel_mul, kernel_num)
    # CPU float64: exact enough for the seed comparison and available everywhere (MPS has no float64)
    tensors = [_as_tensor(b).detach().cpu().to(torch.float64) for b in bank]
    for i, t in enumerate(tensors):
        _check_sample(t, f"sample {i}", est.min_rows, tensors[0].shape[-1])
    # distances are translation invariant; centring keeps |a|² + |b|² - 2a·b free of cancellation
    centre = torch.cat(tensors).mean(0) if tensors else 0.0
    samples = [_Sample.of(t - centre) for t in tensors]
    bases = _pair_bases(bandwidth, samples, jobs)
    values = est.values(samples, jobs, bases, fam)
    p = None if n_perm <= 0 else _p_values(est, samples, jobs, bases, fam, n_perm, seed)
    return PairsMMD(values=values, p_values=p, bases=np.asarray(bases, dtype=np.float64))


def _pair_bases(
    bandwidth: Bandwidth, samples: Sequence[_Sample], jobs: Sequence[tuple[int, int]]
) -> list[float]:
    """The base bandwidth of each job, from the rule applied to the job's pooled pair."""
    if not isinstance(bandwidth, str):
        return [resolve_bandwidth(bandwidth, samples[0].z)] * len(jobs)
    if bandwidth != "mean":
        return [
            resolve_bandwidth(bandwidth, torch.cat([samples[a].z, samples[b].z])) for a, b in jobs
        ]
    # the mean rule needs only the pair's moments, Σ_{p,q} D_pq = 2N (Σ|z|² - |Σz|² / N): the block
    # sums of D come from the per-sample statistics, with no pass over the pooled pair
    out = []
    for a, b in jobs:
        n = len(samples[a]) + len(samples[b])
        total = samples[a].total + samples[b].total
        spread = float(samples[a].sq.sum() + samples[b].sq.sum() - total @ total / n)
        out.append(_checked(2 * spread / (n - 1), "mean"))
    return out


def _p_values(
    est: _BlockEstimator | _LinearEstimator,
    bank: Sequence[_Sample],
    jobs: Sequence[tuple[int, int]],
    bases: Sequence[float],
    fam: GaussianFamily,
    n_perm: int,
    seed: int,
) -> np.ndarray:
    tasks = [
        partial(_p_value, est, bank[a].z, bank[b].z, base, fam, n_perm, [seed, j])
        for j, ((a, b), base) in enumerate(zip(jobs, bases, strict=True))
    ]
    return np.asarray(run_blocks(tasks), dtype=np.float64)


def permutation_p_value(observed: float, null: np.ndarray | Tensor) -> float:
    """(k + 1) / (n_perm + 1), k = the permuted statistics at least the observed one: every
    measure's permutation test.

    ">=" counts ties against the observed value; the tolerance absorbs summation-order noise.
    """
    null = np.asarray(null, dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(float(observed)))
    return float(((null >= float(observed) - tol).sum() + 1) / (len(null) + 1))


def _p_value(
    est: _BlockEstimator | _LinearEstimator,
    x: Tensor,
    y: Tensor,
    base: float,
    fam: GaussianFamily,
    n_perm: int,
    stream: list[int],
) -> float:
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(stream).generate_state(1)[0]))
    stats = est.permuted(x, y, base, fam, n_perm, gen)  # (P + 1,)
    return permutation_p_value(float(stats[0]), stats[1:])


def mmd2(
    x: ArrayLike,
    y: ArrayLike,
    *,
    kernel: str = "gaussian",
    bandwidth: Bandwidth = "mean",
    kernel_mul: float = 2.0,
    kernel_num: int = 5,
    estimator: str = "unbiased",
) -> float:
    """MMD² between two samples, computed in float64 in bounded memory.

    Args:
        x: first sample.
        y: second sample.
        kernel: kernel family name (``"gaussian"``).
        bandwidth: ``"mean"`` (mean pairwise squared distance of the pooled sample, the seed's
            rule), ``"median"`` (median heuristic on squared distances) or a fixed positive number;
            the kernel is ``exp(-|a - b|² / (bandwidth · s))``.
        kernel_mul: ratio between neighbouring bandwidths of the family.
        kernel_num: number of Gaussians in the family (1 for a single kernel).
        estimator: ``"unbiased"``, ``"biased"``, ``"linear"`` or ``"seed"`` (see the module doc).

    Shape:
        x: (n, d), y: (m, d).

    Returns:
        The estimate as a Python float.
    """
    return float(
        mmd2_pairs(
            [x, y],
            [(0, 1)],
            kernel=kernel,
            bandwidth=bandwidth,
            kernel_mul=kernel_mul,
            kernel_num=kernel_num,
            estimator=estimator,
        ).values[0]
    )


def mmd2_torch(
    x: Tensor,
    y: Tensor,
    *,
    kernel: str = "gaussian",
    bandwidth: Bandwidth = "mean",
    kernel_mul: float = 2.0,
    kernel_num: int = 5,
    estimator: str = "unbiased",
) -> Tensor:
    """Differentiable MMD² for training losses (DDC, DAN): keeps the autograd graph, any device.

    The bandwidth is computed from detached features, as DAN's reference code does
    (``L2_distance.data``): the loss then moves the features, not the kernel, and gradients do not
    chase a moving bandwidth. The kernel matrix of the pooled batch is formed densely, which is what
    a mini-batch needs; use :func:`mmd2` for large samples.

    Args:
        x, y, kernel, bandwidth, kernel_mul, kernel_num, estimator: as in :func:`mmd2`.

    Shape:
        x: (n, d), y: (m, d); output: () in the dtype and on the device of ``x``.
    """
    est = ESTIMATORS.get(estimator)
    fam = _family(kernel, estimator, bandwidth, kernel_mul, kernel_num)
    for name, t in (("x", x), ("y", y)):  # shape checks only: a NaN check would sync the device
        if t.ndim != 2 or t.shape[0] < est.min_rows:
            raise ValueError(
                f"{name} must be (n, d) with n >= {est.min_rows}, got {tuple(t.shape)}"
            )
    with torch.no_grad():
        base = resolve_bandwidth(bandwidth, torch.cat([x, y]))
    return est.differentiable(x, y, base, fam)
