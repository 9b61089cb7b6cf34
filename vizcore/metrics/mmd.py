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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from vizcore.core.registry import Registry

ArrayLike = np.ndarray | Tensor
T = TypeVar("T")
Bandwidth = str | float

# Squared distances formed per matrix product (16 MB in float64): bounds the extra memory whatever
# n is, while keeping BLAS calls few and large (each small call pays a thread barrier).
GEMM_ELEMS = 1 << 21
# Kernel entries per elementwise op (240 KB): in cache, and below torch's intra-op grain size
# (32768), so each op runs on the calling thread; run_blocks supplies the parallelism instead.
CHUNK_ELEMS = 30_000
# The median rule looks at every pairwise distance; above this many pooled rows it uses a seeded
# random subset of rows (the median of ~2 million distances is a stable estimate).
MEDIAN_MAX_ROWS = 2048
# What estimator="seed" fixes: the group's first experiment used exactly this family.
SEED_MODE = {"bandwidth": "mean", "kernel_mul": 2.0, "kernel_num": 5}


# --------------------------------------------------------------------------------------- kernels


@dataclass(frozen=True)
class GaussianFamily:
    """Sum of Gaussian kernels ``exp(-d2 / (base · s))`` over scales ``s = mul^(i - num // 2)``.

    Args:
        kernel_mul: ratio between neighbouring bandwidths.
        kernel_num: number of Gaussians (1 gives a single kernel with bandwidth ``base``).
    """

    kernel_mul: float = 2.0
    kernel_num: int = 5

    def __post_init__(self) -> None:
        if self.kernel_num < 1 or not self.kernel_mul > 0:
            raise ValueError(
                f"need kernel_num >= 1 and kernel_mul > 0, got {self.kernel_num}, {self.kernel_mul}"
            )

    @property
    def scales(self) -> tuple[float, ...]:
        return tuple(
            float(self.kernel_mul) ** (i - self.kernel_num // 2) for i in range(self.kernel_num)
        )

    @property
    def at_zero(self) -> float:
        """k(a, a): every Gaussian is 1 at distance 0."""
        return float(self.kernel_num)

    def __call__(self, d2: Tensor, base: float | Tensor) -> Tensor:
        """Kernel values, differentiable in ``d2``.

        Shape:
            d2: any shape; output: same shape.
        """
        return sum(torch.exp(-d2 / (base * s)) for s in self.scales)

    def values(self, d2: Tensor, base: float) -> Tensor:
        """Kernel values without autograd, using the squaring shortcut when ``kernel_mul == 2``."""
        if self.kernel_mul != 2.0:
            return self(d2, base)
        # halving the bandwidth squares the Gaussian: one exp, then kernel_num - 1 multiplications
        u = torch.mul(d2, -1.0 / (base * max(self.scales))).exp_()
        total = u.clone()
        for _ in range(self.kernel_num - 1):
            u.mul_(u)
            total.add_(u)
        return total

    def total(self, d2: Tensor, base: float) -> Tensor:
        """Sum of the kernel values over all of ``d2`` (a 0-d float64 tensor)."""
        if self.kernel_mul != 2.0:
            return sum(
                torch.mul(d2, -1.0 / (base * s)).exp_().sum(dtype=torch.float64)
                for s in self.scales
            )
        u = torch.mul(d2, -1.0 / (base * max(self.scales))).exp_()
        acc = u.sum(dtype=torch.float64)
        for _ in range(self.kernel_num - 1):
            acc += u.mul_(u).sum(dtype=torch.float64)
        return acc


KERNELS: Registry[Callable[..., GaussianFamily]] = Registry("kernel")
KERNELS.add("gaussian", GaussianFamily)


# ------------------------------------------------------------------------------------- distances


def sq_dists(a: Tensor, b: Tensor, a2: Tensor | None = None, b2: Tensor | None = None) -> Tensor:
    """Squared Euclidean distances via ``|a|² + |b|² - 2 a·b``, clamped at 0.

    Shape:
        a: (n, d), b: (m, d), a2: (n,), b2: (m,); output: (n, m).
    """
    a2 = (a * a).sum(1) if a2 is None else a2
    b2 = (b * b).sum(1) if b2 is None else b2
    d2 = torch.addmm(b2, a, b.T, alpha=-2.0)  # (n, m) = |b|² - 2 a·b
    return d2.add_(a2[:, None]).clamp_min_(0.0)


def run_blocks(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Run independent block computations on ``torch.get_num_threads()`` Python threads, in order.

    torch releases the GIL inside ops, so blocks proceed in parallel while every small op runs
    single-threaded. Parallelising inside each op instead (OpenMP) costs a barrier per op; on a busy
    machine, e.g. with a training run beside the dashboard, that made a 10×10 matrix ~20× slower.
    """
    workers = min(len(tasks), torch.get_num_threads())
    if workers <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda task: task(), tasks))


def _row_blocks(n_rows: int, n_cols: int, elems: int) -> Iterator[tuple[int, int]]:
    """Row ranges [r0, r1) of an (n_rows, n_cols) matrix holding at most ``elems`` entries each."""
    step = max(1, elems // max(1, n_cols))
    for r0 in range(0, n_rows, step):
        yield r0, min(n_rows, r0 + step)


def _totals(
    partial_d2: Tensor, a2: Tensor, bases: Sequence[float], fam: GaussianFamily, upper: bool = False
) -> Tensor:
    """Kernel sums for each base over a block of distances, finished in small row slices.

    Each slice adds ``|a|²`` and clamps in place, then evaluates the kernels: every op stays below
    torch's grain size and runs on the calling thread (one large op would need a thread barrier).

    Args:
        partial_d2: ``|b|² - 2 a·b`` from one matrix product; overwritten.
        a2: squared norms of the block's rows.
        bases: base bandwidths.
        fam: the kernel family.
        upper: keep only entries strictly right of the block's leading diagonal (a within-sample
            block whose columns start at its first row).

    Shape:
        partial_d2: (r, c), a2: (r,); output: (len(bases),) float64.
    """
    out = torch.zeros(len(bases), dtype=torch.float64)
    for s0, s1 in _row_blocks(partial_d2.shape[0], partial_d2.shape[1], CHUNK_ELEMS):
        d2 = partial_d2[s0:s1].add_(a2[s0:s1, None]).clamp_min_(0.0)  # (s, c)
        if upper:  # k(inf) = 0 drops the diagonal and everything left of it
            d2[:, :s1].masked_fill_(
                torch.ones(s1 - s0, s1, dtype=torch.bool).tril_(s0), float("inf")
            )
        for k, base in enumerate(bases):
            out[k] += fam.total(d2, base)
    return out


@dataclass(frozen=True)
class _Sample:
    """A centred float64 sample with the row statistics every block and bandwidth reuses.

    Attributes:
        z: the rows, (n, d).
        sq: squared row norms, (n,).
        total: column sums, (d,).
    """

    z: Tensor
    sq: Tensor
    total: Tensor

    @classmethod
    def of(cls, z: Tensor) -> _Sample:
        return cls(z, (z * z).sum(1), z.sum(0))

    def __len__(self) -> int:
        return self.z.shape[0]


def _within_totals(x: _Sample, bases: Sequence[float], fam: GaussianFamily) -> list[float]:
    """Σ_{p≠q} k(x_p, x_q) for each base, from one chunked pass over the upper triangle of D(x, x)."""
    n, z, sq = len(x), x.z, x.sq
    upper = torch.zeros(len(bases), dtype=torch.float64)
    for r0, r1 in _row_blocks(n, n, GEMM_ELEMS):
        partial_d2 = torch.addmm(sq[r0:], z[r0:r1], z[r0:].T, alpha=-2.0)  # (r, n - r0)
        upper += _totals(partial_d2, sq[r0:r1], bases, fam, upper=True)
    return (2 * upper).tolist()


def _cross_total(x: _Sample, y: _Sample, base: float, fam: GaussianFamily) -> float:
    """Σ_{p,q} k(x_p, y_q), in row blocks of x."""
    acc = 0.0
    for r0, r1 in _row_blocks(len(x), len(y), GEMM_ELEMS):
        partial_d2 = torch.addmm(y.sq, x.z[r0:r1], y.z.T, alpha=-2.0)  # (r, m)
        acc += float(_totals(partial_d2, x.sq[r0:r1], [base], fam)[0])
    return acc


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


# ------------------------------------------------------------------------------------ estimators


Sums = Tensor | float


def _biased(w_xx: Sums, w_yy: Sums, c_xy: Sums, n: int, m: int, at_zero: float) -> Sums:
    # w_*: off-diagonal kernel sums within a sample, c_xy: sum over the cross block
    return (w_xx + n * at_zero) / n**2 + (w_yy + m * at_zero) / m**2 - 2 * c_xy / (n * m)


def _unbiased(w_xx: Sums, w_yy: Sums, c_xy: Sums, n: int, m: int, at_zero: float) -> Sums:
    return w_xx / (n * (n - 1)) + w_yy / (m * (m - 1)) - 2 * c_xy / (n * m)


Combine = Callable[[Sums, Sums, Sums, int, int, float], Sums]


@dataclass(frozen=True)
class _BlockEstimator:
    """An estimator that is a function of kernel block sums (biased, unbiased, seed)."""

    label: str
    combine: Combine
    min_rows: int  # rows per sample the estimator is defined for

    def values(
        self,
        bank: Sequence[_Sample],
        jobs: Sequence[tuple[int, int]],
        bases: Sequence[float],
        fam: GaussianFamily,
    ) -> np.ndarray:
        # each sample's within-sum is needed once per distinct base among the jobs that use it
        need: dict[int, list[float]] = {}
        for (a, b), base in zip(jobs, bases, strict=True):
            for p in (a, b):
                need.setdefault(p, [])
                if base not in need[p]:
                    need[p].append(base)
        tasks = [partial(_within_totals, bank[p], bs, fam) for p, bs in need.items()]
        pairs = zip(jobs, bases, strict=True)
        tasks += [partial(_cross_total, bank[a], bank[b], s, fam) for (a, b), s in pairs]
        done = run_blocks(tasks)  # within-sums first, then one cross sum per job
        within = {
            p: dict(zip(bs, w, strict=True))
            for (p, bs), w in zip(need.items(), done[: len(need)], strict=True)
        }
        out = []
        for (a, b), base, c_xy in zip(jobs, bases, done[len(need) :], strict=True):
            n, m = len(bank[a]), len(bank[b])
            out.append(
                float(self.combine(within[a][base], within[b][base], c_xy, n, m, fam.at_zero))
            )
        return np.asarray(out, dtype=np.float64)

    def differentiable(self, x: Tensor, y: Tensor, base: float, fam: GaussianFamily) -> Tensor:
        """The estimate with autograd, from the dense kernel matrix of a mini-batch."""
        return self.combine(*_dense_block_sums(x, y, base, fam), len(x), len(y), fam.at_zero)

    def permuted(
        self,
        x: Tensor,
        y: Tensor,
        base: float,
        fam: GaussianFamily,
        n_perm: int,
        gen: torch.Generator,
    ) -> Tensor:
        """Observed statistic then ``n_perm`` permuted ones, shape (n_perm + 1,)."""
        n, m = len(x), len(y)
        a = _assignments(n, m, n_perm, gen)  # (N, P + 1) 0/1, column 0 the observed split
        q, r, t = _quadratic_forms(torch.cat([x, y]), a, base, fam)
        # a'Ka, a'K1, 1'K1 give all three block sums; remove the diagonal k(z, z) from the within ones
        w_xx, w_yy, c_xy = q - n * fam.at_zero, t - 2 * r + q - m * fam.at_zero, r - q
        return self.combine(w_xx, w_yy, c_xy, n, m, fam.at_zero)


def _assignments(n: int, m: int, n_perm: int, gen: torch.Generator) -> Tensor:
    """Indicator columns of the first group: the observed split, then random splits of n + m rows."""
    order = torch.rand(n_perm, n + m, generator=gen, dtype=torch.float64).argsort(dim=1)  # (P, N)
    a = torch.zeros(n_perm + 1, n + m, dtype=torch.float64)
    a[0, :n] = 1
    a[1:].scatter_(1, order[:, :n], 1.0)
    return a.T.contiguous()


def _quadratic_forms(
    z: Tensor, a: Tensor, base: float, fam: GaussianFamily
) -> tuple[Tensor, Tensor, Tensor]:
    """For every column a of ``a``: a'Ka and a'K1, plus 1'K1, over row chunks of the kernel matrix K.

    Shape:
        z: (N, d), a: (N, P); outputs: (P,), (P,), ().
    """
    sq = (z * z).sum(1)
    q = torch.zeros(a.shape[1], dtype=torch.float64)
    r, t = torch.zeros_like(q), torch.zeros((), dtype=torch.float64)
    for r0, r1 in _row_blocks(z.shape[0], max(z.shape[0], a.shape[1]), GEMM_ELEMS):
        rows = slice(r0, r1)
        kc = fam.values(sq_dists(z[rows], z, sq[rows], sq), base)  # (r, N)
        kc[:, r0:].diagonal().fill_(fam.at_zero)  # k(z, z) exactly, as in the block path
        q += (a[rows] * (kc @ a)).sum(0)
        row_sums = kc.sum(1)  # (r,)
        r += a[rows].T @ row_sums
        t += row_sums.sum()
    return q, r, t


@dataclass(frozen=True)
class _LinearEstimator:
    """Gretton et al. (2012) linear-time estimator over disjoint pairs of rows."""

    label: str = "linear-time MMD²"
    min_rows: int = 2

    @staticmethod
    def statistic(x: Tensor, y: Tensor, base: float, fam: GaussianFamily) -> Tensor:
        """Shape: x: (..., n, d), y: (..., m, d); output: (...). Uses the first min(n, m) // 2 pairs."""
        h = min(x.shape[-2], y.shape[-2]) // 2 * 2
        x1, x2, y1, y2 = x[..., 0:h:2, :], x[..., 1:h:2, :], y[..., 0:h:2, :], y[..., 1:h:2, :]

        def k(u: Tensor, v: Tensor) -> Tensor:
            return fam((u - v).pow(2).sum(-1), base)  # (..., h / 2), only paired rows

        return (k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)).mean(-1)

    def differentiable(self, x: Tensor, y: Tensor, base: float, fam: GaussianFamily) -> Tensor:
        """The estimate with autograd; O(n) like the statistic itself."""
        return self.statistic(x, y, base, fam)

    def values(
        self,
        bank: Sequence[_Sample],
        jobs: Sequence[tuple[int, int]],
        bases: Sequence[float],
        fam: GaussianFamily,
    ) -> np.ndarray:
        return np.asarray(
            [
                float(self.statistic(bank[a].z, bank[b].z, s, fam))
                for (a, b), s in zip(jobs, bases, strict=True)
            ]
        )

    def permuted(
        self,
        x: Tensor,
        y: Tensor,
        base: float,
        fam: GaussianFamily,
        n_perm: int,
        gen: torch.Generator,
    ) -> Tensor:
        z, n = torch.cat([x, y]), len(x)
        order = torch.rand(n_perm, len(z), generator=gen, dtype=torch.float64).argsort(
            dim=1
        )  # (P, N)
        order = torch.cat([torch.arange(len(z))[None], order])  # row 0: the observed split
        batch = max(1, 16 * CHUNK_ELEMS // z.numel())  # permuted copies of z held at once
        out = []
        for b0 in range(0, len(order), batch):
            zp = z[order[b0 : b0 + batch]]  # (B, N, d)
            out.append(self.statistic(zp[:, :n], zp[:, n:], base, fam))
        return torch.cat(out)


ESTIMATORS: Registry[_BlockEstimator | _LinearEstimator] = Registry("estimator")
ESTIMATORS.add("unbiased", _BlockEstimator("unbiased MMD²", _unbiased, 2))
ESTIMATORS.add("biased", _BlockEstimator("biased MMD²", _biased, 1))
ESTIMATORS.add("linear", _LinearEstimator())
ESTIMATORS.add("seed", _BlockEstimator("seed-compatible (biased) MMD²", _biased, 1))


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


def _dense_block_sums(x: Tensor, y: Tensor, base: float, fam: GaussianFamily) -> tuple[Tensor, ...]:
    """Within (off-diagonal) and cross kernel sums from the dense pooled kernel matrix, with autograd.

    Shape:
        x: (n, d), y: (m, d); outputs: three 0-d tensors.
    """
    n, m = len(x), len(y)
    k = fam(_sq_dists_grad(torch.cat([x, y])), base)  # (N, N)
    w_xx, w_yy = k[:n, :n].sum() - n * fam.at_zero, k[n:, n:].sum() - m * fam.at_zero
    return w_xx, w_yy, k[:n, n:].sum()


def _sq_dists_grad(z: Tensor) -> Tensor:
    """Differentiable squared distances with an exactly zero, gradient-free diagonal.

    Shape:
        z: (N, d); output: (N, N).
    """
    sq = (z * z).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min(0.0)
    return d2 * (1 - torch.eye(len(z), dtype=z.dtype, device=z.device))
