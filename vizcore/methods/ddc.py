"""DDC, Deep Domain Confusion (Tzeng et al. 2014): MMD² on an adaptation layer before the classifier."""

from __future__ import annotations

from typing import Any

import torch

from vizcore.methods import register_method
from vizcore.methods.base import Method
from vizcore.metrics.mmd import mmd2_torch
from vizcore.metrics.params import BATCH_ESTIMATOR_HELP, BATCH_ESTIMATORS, described
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
    # the kernels are described once, with the distances' (vizcore.metrics.params); DDC's defaults
    params = (
        described("kernel_num", 1),
        described("kernel_mul", 2.0),
        described("bandwidth", "mean"),
        described("estimator", "biased", choices=BATCH_ESTIMATORS, help=BATCH_ESTIMATOR_HELP),
    )
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
