"""Deep CORAL (Sun & Saenko 2016): align the second-order statistics of the two domains."""

from __future__ import annotations

from typing import Any

import torch

from vizcore.core.params import Param
from vizcore.methods import register_method
from vizcore.methods.base import Method
from vizcore.methods.ddc import adapted_features
from vizcore.models.base import Features


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased feature covariance.

    Shape:
        x: (n, d); output: (d, d).
    """
    xc = x - x.mean(dim=0, keepdim=True)
    return xc.T @ xc / max(len(x) - 1, 1)


def coral_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """``||C_s - C_t||_F^2 / (4 d^2)``, the Deep CORAL loss.

    Shape:
        f_s: (n, d), f_t: (m, d); output: ().
    """
    d = f_s.shape[1]
    return (covariance(f_s) - covariance(f_t)).pow(2).sum() / (4 * d * d)


@register_method("coral")
class DeepCORAL(Method):
    label = "Deep CORAL"
    description = (
        "Matches the feature covariances of source and target (second-order statistics) "
        "with a Frobenius-norm loss on the adaptation layer."
    )
    params = (
        Param("match_mean", "Also match the means", "bool", True,
              help="Add the squared gap between the feature means (first-order statistics) to the "
              "covariance loss, as tllib does."),
    )  # fmt: skip
    extra_metrics = ("transfer_loss",)

    def transfer_loss(
        self, f_s: Features, f_t: Features, progress: float
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        xs, xt = adapted_features(f_s).float(), adapted_features(f_t).float()
        loss = coral_loss(xs, xt)
        logs: dict[str, Any] = {"cov_gap": loss.detach()}
        if self.hparams["match_mean"]:
            mean_gap = (xs.mean(0) - xt.mean(0)).pow(2).mean()
            loss = loss + mean_gap
            logs["mean_gap"] = mean_gap.detach()
        return loss, logs
