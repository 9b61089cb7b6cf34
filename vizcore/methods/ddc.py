"""DDC, Deep Domain Confusion (Tzeng et al. 2014): MMD² on an adaptation layer before the classifier."""

from __future__ import annotations

from typing import Any

import torch

from vizcore.core.params import Param
from vizcore.methods import register_method
from vizcore.methods.base import Method
from vizcore.metrics.mmd import mmd2_torch
from vizcore.models.base import Features


def adapted_features(f: Features) -> torch.Tensor:
    """The features a single-layer transfer loss aligns: the adaptation layer, else the GAP vector.

    Shape:
        output: (B, D).
    """
    return f.bottleneck if f.bottleneck is not None else f.gap


@register_method("ddc")
class DDC(Method):
    label = "DDC"
    description = (
        "Pulls source and target together on the adaptation layer by minimising the MMD² between "
        "their feature distributions (one Gaussian kernel by default)."
    )
    params = (
        Param("kernel_num", "Number of kernels", "int", 1, low=1, high=10, step=1,
              help="Gaussian kernels in the family; 1 is a single kernel, as in DDC."),
        Param("kernel_mul", "Kernel multiplier", "float", 2.0, low=1.0, high=10.0, step=0.5, unit="×",
              help="Ratio between neighbouring kernel bandwidths; used only with more than one kernel."),
        Param("bandwidth", "Kernel bandwidth", "bandwidth", "mean", choices=("mean", "median"),
              choice_labels=("mean pairwise distance", "median pairwise distance"), low=1e-6, high=1e6,
              help="Base bandwidth of exp(-|a-b|²/bandwidth): the mean or median pairwise squared "
              "distance of each batch, or a fixed number."),
        Param("estimator", "MMD² estimator", "choice", "biased", choices=("biased", "unbiased", "linear"),
              choice_labels=("biased (always ≥ 0)", "unbiased (≈ 0 for equal distributions)",
                             "linear-time (O(n), noisier)"),
              help="How MMD² is estimated from a batch."),
    )  # fmt: skip
    extra_metrics = ("transfer_loss",)

    def transfer_loss(
        self, f_s: Features, f_t: Features, progress: float
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        p = self.hparams
        mmd = mmd2_torch(
            adapted_features(f_s).float(),
            adapted_features(f_t).float(),
            bandwidth=p["bandwidth"],
            kernel_mul=float(p["kernel_mul"]),
            kernel_num=int(p["kernel_num"]),
            estimator=p["estimator"],
        )
        return mmd, {}
