"""The estimators of MMD² (``ESTIMATORS``: unbiased, biased, linear, seed) from kernel block sums,
with permutation statistics as quadratic forms of the group-assignment vector (see
:mod:`vizcore.metrics.mmd`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor

import vizcore.metrics.kernels as kernels
from vizcore.core.registry import Registry
from vizcore.metrics.kernels import (
    GaussianFamily,
    _cross_total,
    _dense_block_sums,
    _row_blocks,
    _Sample,
    _within_totals,
    run_blocks,
    sq_dists,
)

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
    for r0, r1 in _row_blocks(z.shape[0], max(z.shape[0], a.shape[1]), kernels.GEMM_ELEMS):
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
        batch = max(1, 16 * kernels.CHUNK_ELEMS // z.numel())  # permuted copies of z held at once
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
