"""Gaussian kernel families (``KERNELS``) and the kernel *block sums* MMD² estimators need, from
squared distances formed one bounded matrix product at a time (see :mod:`vizcore.metrics.mmd`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from vizcore.core.registry import Registry

T = TypeVar("T")

# Squared distances formed per matrix product (16 MB in float64): bounds the extra memory whatever
# n is, while keeping BLAS calls few and large (each small call pays a thread barrier).
GEMM_ELEMS = 1 << 21
# Kernel entries per elementwise op (240 KB): in cache, and below torch's intra-op grain size
# (32768), so each op runs on the calling thread; run_blocks supplies the parallelism instead.
CHUNK_ELEMS = 30_000


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


# ------------------------------------------------------------------------- dense, differentiable


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
