"""DAN, Deep Adaptation Network (Long et al. 2015): multi-kernel MMD on several layers.

Each adapted layer contributes ``MMD²_k = sum_u beta_u MMD²_{k_u}`` over a family of Gaussian
kernels ``k_u`` whose bandwidths are spread by ``kernel_mul`` around a base bandwidth. The kernel
weights ``beta`` are either uniform (what DAN's released code and tllib use) or, with
``kernel_weights="optimal"``, chosen per batch as in the paper: the weights that maximise the
test power of the linear-time estimator,
``min beta^T (Q + eps I) beta  s.t.  d^T beta = 1, beta >= 0``, with ``d`` the per-kernel MMD²
and ``Q`` the covariance of the per-kernel linear-time terms, then normalised to sum to 1.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from vizcore.core.params import Param
from vizcore.methods import register_method
from vizcore.methods.base import Method
from vizcore.metrics.mmd import mmd2_torch, resolve_bandwidth
from vizcore.metrics.params import BATCH_ESTIMATOR_HELP, BATCH_ESTIMATORS, described
from vizcore.models.base import Features

LAYER_LABELS = {"gap": "GAP vector", "bottleneck": "adaptation layer", "logits": "logits"}
# the layer sets worth offering, DAN's own (GAP and adaptation layer) first
LAYER_SETS = (
    "gap,bottleneck",
    "bottleneck",
    "gap",
    "bottleneck,logits",
    "gap,bottleneck,logits",
    "logits",
)


def kernel_scales(kernel_num: int, kernel_mul: float) -> list[float]:
    """Bandwidth multipliers ``kernel_mul ** (u - kernel_num // 2)``, as mmd.GaussianFamily spreads them."""
    return [float(kernel_mul) ** (u - kernel_num // 2) for u in range(kernel_num)]


def linear_time_terms(x: torch.Tensor, y: torch.Tensor, bandwidths: list[float]) -> torch.Tensor:
    """The terms ``h_u`` of the linear-time MMD² estimator for each single Gaussian kernel.

    ``h = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)`` over disjoint pairs of rows; the mean of
    ``h_u`` is the linear-time MMD² of kernel ``u`` (Gretton et al. 2012).

    Shape:
        x: (n, d), y: (m, d); output: (len(bandwidths), min(n, m) // 2).
    """
    h = min(len(x), len(y)) // 2 * 2
    x1, x2, y1, y2 = x[0:h:2], x[1:h:2], y[0:h:2], y[1:h:2]
    bw = torch.tensor(bandwidths, dtype=x.dtype, device=x.device)[:, None]  # (U, 1)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(a - b).pow(2).sum(-1)[None] / bw)  # (U, h / 2)

    return k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)


def optimal_kernel_weights(d: np.ndarray, q: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Solve ``min b^T (Q + eps I) b  s.t.  d^T b = 1, b >= 0`` exactly, then normalise to sum 1.

    A strictly convex QP in a handful of variables: every support set S gives the candidate
    ``b_S = A_S^{-1} d_S / (d_S^T A_S^{-1} d_S)``; the feasible candidate of least objective is
    the optimum (it satisfies the KKT conditions). If no kernel shows a positive MMD², there is
    no discrepancy to weigh and the weights are uniform.

    Shape:
        d: (U,), q: (U, U); output: (U,).
    """
    u = len(d)
    a = q + eps * np.eye(u)
    best, best_obj = None, np.inf
    for size in range(1, u + 1):
        for s in itertools.combinations(range(u), size):
            idx = list(s)
            try:
                ad = np.linalg.solve(a[np.ix_(idx, idx)], d[idx])
            except np.linalg.LinAlgError:
                continue
            denom = float(d[idx] @ ad)
            if denom <= 0 or np.any(ad < -1e-12 * np.abs(ad).max()):
                continue
            obj = 1.0 / denom  # b^T A b at b = ad / denom
            if obj < best_obj:
                best, best_obj = (idx, ad / denom), obj
    out = np.full(u, 1.0 / u)
    if best is not None:
        out = np.zeros(u)
        out[best[0]] = np.clip(best[1], 0.0, None)
        out /= out.sum()
    return out


def multi_kernel_mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel_num: int = 5,
    kernel_mul: float = 2.0,
    bandwidth: str | float = "mean",
    estimator: str = "unbiased",
    optimal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-kernel MMD² with weights summing to 1, and those weights.

    With uniform weights this is ``mmd2_torch(..., kernel_num=kernel_num) / kernel_num``; with
    ``optimal`` the weights come from :func:`optimal_kernel_weights` on the detached features.

    Shape:
        x: (n, d), y: (m, d); output: () and (kernel_num,).
    """
    base = resolve_bandwidth(bandwidth, torch.cat([x, y]).detach())
    scales = kernel_scales(kernel_num, kernel_mul)
    if not optimal:
        mmd = mmd2_torch(
            x, y, bandwidth=base, kernel_mul=kernel_mul, kernel_num=kernel_num, estimator=estimator
        )
        return mmd / kernel_num, torch.full((kernel_num,), 1.0 / kernel_num)
    with torch.no_grad():
        h = linear_time_terms(x.double(), y.double(), [base * s for s in scales]).cpu().numpy()
    beta = optimal_kernel_weights(h.mean(1), np.atleast_2d(np.cov(h)))
    per_kernel = [
        mmd2_torch(x, y, bandwidth=base * s, kernel_num=1, estimator=estimator)
        for s, b in zip(scales, beta, strict=True)
        if b > 0
    ]
    weights = [float(b) for b in beta if b > 0]
    mmd = sum(w * m for w, m in zip(weights, per_kernel, strict=True))
    return mmd, torch.from_numpy(beta)


@register_method("dan")
class DAN(Method):
    label = "DAN"
    description = (
        "Pulls source and target together on several layers at once (GAP and adaptation layer) "
        "by minimising a multi-kernel MMD² between their feature distributions."
    )
    params = (
        Param("layers", "Layers to adapt", "choice", "gap,bottleneck", choices=LAYER_SETS,
              choice_labels=tuple(" + ".join(LAYER_LABELS[n] for n in s.split(",")) for s in LAYER_SETS),
              help="Which features the multi-kernel MMD² aligns; each layer adds its own term. DAN "
              "adapts several layers at once."),
        described("kernel_num", 5),  # described once, with the distances' (vizcore.metrics.params)
        described("kernel_mul", 2.0),
        Param("kernel_weights", "Kernel weights", "choice", "uniform", choices=("uniform", "optimal"),
              choice_labels=("uniform (DAN's released code, tllib)", "optimal per batch (test power)"),
              help="How the kernels are weighed: equally, or per batch by the weights that maximise the "
              "test power of the linear-time estimator (Long et al. 2015)."),
        described("estimator", "unbiased", choices=BATCH_ESTIMATORS, help=BATCH_ESTIMATOR_HELP),
    )  # fmt: skip
    extra_metrics = ("transfer_loss",)

    def __init__(
        self, trade_off: float = 1.0, feature_dim: int = 64, num_classes: int = 10, **params: Any
    ) -> None:
        super().__init__(trade_off, feature_dim, num_classes, **params)
        self.layers = self.hparams["layers"].split(",")

    def transfer_loss(
        self, f_s: Features, f_t: Features, progress: float
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        p = self.hparams
        total = torch.zeros((), device=f_s.logits.device)
        logs: dict[str, Any] = {}
        for name in self.layers:
            mmd, beta = multi_kernel_mmd2(
                f_s.layer(name).float(),
                f_t.layer(name).float(),
                kernel_num=int(p["kernel_num"]),
                kernel_mul=float(p["kernel_mul"]),
                estimator=str(p["estimator"]),
                optimal=p["kernel_weights"] == "optimal",
            )
            total = total + mmd
            logs[f"mmd_{name}"] = mmd.detach()
        return total, logs
