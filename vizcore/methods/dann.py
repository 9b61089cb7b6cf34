"""DANN, domain-adversarial training (Ganin et al. 2016).

A domain classifier learns to tell source from target features; a gradient reversal layer
between the features and that classifier makes the feature extractor *maximise* its loss, so
the features become domain-invariant. The reversal coefficient ramps up as
``lambda_p = 2 / (1 + exp(-gamma p)) - 1`` so the noisy early domain signal does not disturb
the classifier while it is still learning (gamma = 10 in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vizcore.core.params import Param
from vizcore.methods import register_method
from vizcore.methods.base import Method
from vizcore.methods.ddc import adapted_features
from vizcore.methods.grl import grad_reverse, scale_grad
from vizcore.models.base import Features


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """The DANN ramp ``2 / (1 + exp(-gamma p)) - 1``: 0 at p = 0, about 1 at p = 1."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def domain_classifier(in_dim: int | None, hidden: int, depth: int, dropout: float) -> nn.Sequential:
    """An MLP giving one source-vs-target logit per row.

    Deliberately without BatchNorm: with BN the classifier can read the domain from the batch
    statistics of a domain-pure mini-batch and its accuracy runs to 100% (tllib issue 267).
    ``in_dim=None`` infers the input size on the first call (the method is built before the
    model's conv sizes are known to it).

    Shape:
        input: (B, in_dim); output: (B, 1).
    """
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        first = nn.LazyLinear(hidden) if width is None else nn.Linear(width, hidden)
        layers += [first, nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.LazyLinear(1) if width is None else nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _flat_conv(f: Features) -> torch.Tensor:
    return f.conv.flatten(1)  # (B, C * h * w): the paper's input, the flattened feature maps


def _local_conv(f: Features) -> torch.Tensor:
    return f.conv.permute(0, 2, 3, 1).flatten(0, 2)  # (B * h * w, C): one row per location


# which features the domain classifier reads; a None width is inferred on the first call
DOMAIN_INPUTS: dict[str, tuple[Callable[[Features], torch.Tensor], bool]] = {
    "features": (adapted_features, True),
    "gap": (lambda f: f.gap, False),
    "conv": (_flat_conv, False),
    "conv_local": (_local_conv, False),
}


@register_method("dann")
class DANN(Method):
    """The domain loss enters the total with weight ``trade_off``; the features receive it
    reversed and scaled by ``trade_off * lambda_p`` (the logged ``lambda``)."""

    label = "DANN"
    description = (
        "Makes the features domain-invariant adversarially: a domain classifier learns to tell "
        "source from target while a gradient reversal layer trains the features to fool it."
    )
    params = (
        Param("hidden", "Hidden width", "int", 100, low=1, high=4096, step=10, unit="units",
              help="Width of each hidden layer of the domain classifier."),
        Param("depth", "Hidden layers", "int", 2, low=0, high=8, step=1,
              help="Hidden layers of the domain classifier (0: a linear classifier)."),
        Param("dropout", "Dropout", "float", 0.5, low=0.0, high=0.95, step=0.05,
              help="Dropout probability after each hidden layer of the domain classifier."),
        Param("input", "Domain classifier reads", "choice", "features", choices=tuple(DOMAIN_INPUTS),
              choice_labels=("adaptation features (else GAP vector)", "GAP vector",
                             "flattened conv maps (as in the paper)", "each location of the conv maps"),
              help="Which features the domain classifier tells apart; the conv-map location choice "
              "makes one source-vs-target decision per position."),
        Param("gamma", "Ramp steepness γ", "float", 10.0, low=0.0, high=100.0, step=1.0,
              help="Steepness of the reversal ramp λp = 2 / (1 + exp(-γ p)) - 1 over training "
              "progress p (10 in the paper)."),
        Param("lr_mult", "Domain classifier learning-rate multiplier", "float", 1.0, low=0.01, high=100.0,
              step=0.5, unit="×", help="The domain classifier learns this many times faster than the "
              "network; the reversed gradient is divided by it, so the features still get -λp."),
    )  # fmt: skip
    extra_metrics = ("domain_acc", "lambda", "transfer_loss")

    def __init__(
        self, trade_off: float = 1.0, feature_dim: int = 64, num_classes: int = 10, **params: Any
    ) -> None:
        super().__init__(trade_off, feature_dim, num_classes, **params)
        p = self.hparams
        self.read, known_width = DOMAIN_INPUTS[p["input"]]
        self.discriminator = domain_classifier(
            feature_dim if known_width else None,
            int(p["hidden"]),
            int(p["depth"]),
            float(p["dropout"]),
        )

    def ramp(self, progress: float) -> float:
        """``lambda_p`` at progress p: the gradient-reversal coefficient."""
        return dann_lambda(progress, float(self.hparams["gamma"]))

    def transfer_loss(
        self, f_s: Features, f_t: Features, progress: float
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        xs, xt = self.read(f_s), self.read(f_t)
        lam_p, mult = self.ramp(progress), float(self.hparams["lr_mult"])
        # Only the reversed gradient ramps up: the domain classifier itself learns at full rate.
        # Its gradient is multiplied by lr_mult (a faster learner keeps up with features that
        # change under it) and the reversal divided by it, so the features still get -lambda_p.
        z = grad_reverse(torch.cat([xs, xt]), lam_p / mult)  # (n_s + n_t, D)
        logit = scale_grad(self.discriminator(z.float()), mult).squeeze(1)  # (n_s + n_t,)
        label = torch.cat([torch.ones(len(xs)), torch.zeros(len(xt))]).to(logit)
        loss = F.binary_cross_entropy_with_logits(logit, label)
        acc = ((logit > 0).float() == label).float().mean()
        # "lambda" is the weight the features feel, trade_off * lambda_p (overrides the constant trade_off)
        return loss, {"domain_acc": acc.detach(), "lambda": self.trade_off * lam_p}
