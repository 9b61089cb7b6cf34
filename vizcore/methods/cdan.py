"""CDAN, conditional domain-adversarial training (Long et al. 2018); CDAN+E with entropy weights.

The domain discriminator sees the multilinear map ``T(f, g) = g ⊗ f`` of the features ``f`` and
the classifier's softmax ``g`` (detached, as in the paper's code), so it tells domains apart
*per predicted class*: aligning it aligns the class-conditional distributions, where DANN
aligns only the marginal one. When ``D·K`` is large the map is replaced by the randomized
multilinear map ``(R_f f) ⊙ (R_g g) / sqrt(d)`` with fixed Gaussian ``R_f, R_g`` (the paper
switches above 4096). The features receive the discriminator's gradient reversed and scaled by
the DANN ramp. CDAN+E weighs each example by ``w = 1 + exp(-H(g))``, normalised within each
domain, so confident predictions count more.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from vizcore.core.params import Param
from vizcore.methods import register_method
from vizcore.methods.base import Method
from vizcore.methods.dann import DANN, dann_lambda, domain_classifier
from vizcore.methods.ddc import adapted_features
from vizcore.methods.grl import grad_reverse, scale_grad
from vizcore.models.base import Features

RANDOMIZE_ABOVE = 4096  # the paper's threshold on D * K


def multilinear_map(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The outer product ``g ⊗ f`` of each row, flattened: ``out[b, k * D + d] = g[b, k] f[b, d]``.

    Shape:
        f: (B, D), g: (B, K); output: (B, K * D).
    """
    return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)


def randomized_map(
    f: torch.Tensor, g: torch.Tensor, rf: torch.Tensor, rg: torch.Tensor
) -> torch.Tensor:
    """The randomized multilinear map ``(f R_f) ⊙ (g R_g) / sqrt(d)``.

    Shape:
        f: (B, D), g: (B, K), rf: (D, d), rg: (K, d); output: (B, d).
    """
    return (f @ rf) * (g @ rg) / math.sqrt(rf.shape[1])


def entropy_weights(g: torch.Tensor, n_source: int) -> torch.Tensor:
    """CDAN+E's ``w = 1 + exp(-H(g))``, each domain's weights normalised to sum to 1.

    Shape:
        g: (B, K) probabilities, source rows first; output: (B,).
    """
    h = -(g * torch.log(g.clamp_min(1e-12))).sum(1)
    w = 1.0 + torch.exp(-h)
    return torch.cat([w[:n_source] / w[:n_source].sum(), w[n_source:] / w[n_source:].sum()])


@register_method("cdan")
class CDAN(Method):
    """The domain loss enters the total with weight ``trade_off``; the features receive it reversed
    and scaled by ``trade_off * lambda_p`` (the logged ``lambda``), as in DANN."""

    label = "CDAN"
    description = (
        "Conditional adversarial alignment: the domain classifier sees features times class "
        "predictions (their multilinear map), so classes are aligned, not only the whole "
        "distribution; with entropy weighting (CDAN+E) confident examples count more."
    )
    params = (
        *(p for p in DANN.params if p.name != "input"),
        Param("entropy", "Entropy weighting (CDAN+E)", "bool", False,
              help="Weigh each example by 1 + exp(-entropy of its prediction), normalised per domain."),
        Param("randomized", "Randomized multilinear map", "choice", "auto", choices=("auto", "never", "always"),
              choice_labels=(f"when features × classes > {RANDOMIZE_ABOVE} (as in the paper)",
                             "never (the full outer product)", "always"),
              help="Replace the D·K-wide outer product by a d-wide random projection of it."),
        Param("random_dim", "Randomized map width", "int", 1024, low=16, high=8192, step=64, unit="units",
              help="Width d of the randomized multilinear map."),
    )  # fmt: skip
    extra_metrics = ("domain_acc", "lambda", "transfer_loss")

    def __init__(
        self, trade_off: float = 1.0, feature_dim: int = 64, num_classes: int = 10, **params: Any
    ) -> None:
        super().__init__(trade_off, feature_dim, num_classes, **params)
        p = self.hparams
        width = feature_dim * num_classes
        rule = p["randomized"]
        self.randomize = rule == "always" or (rule == "auto" and width > RANDOMIZE_ABOVE)
        if self.randomize:
            d = int(p["random_dim"])
            # fixed projections: buffers, saved with the method
            gen = torch.Generator().manual_seed(0)
            self.register_buffer("rf", torch.randn(feature_dim, d, generator=gen))
            self.register_buffer("rg", torch.randn(num_classes, d, generator=gen))
            width = d
        self.discriminator = domain_classifier(
            width, int(p["hidden"]), int(p["depth"]), float(p["dropout"])
        )

    def conditional_input(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """What the discriminator reads: the (randomized) multilinear map of ``f`` and ``g``."""
        return randomized_map(f, g, self.rf, self.rg) if self.randomize else multilinear_map(f, g)

    def transfer_loss(
        self, f_s: Features, f_t: Features, progress: float
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        p = self.hparams
        f = torch.cat([adapted_features(f_s), adapted_features(f_t)]).float()  # (n_s + n_t, D)
        g = F.softmax(torch.cat([f_s.logits, f_t.logits]).float(), 1).detach()  # (n_s + n_t, K)
        lam_p, mult = dann_lambda(progress, float(p["gamma"])), float(p["lr_mult"])
        h = self.conditional_input(grad_reverse(f, lam_p / mult), g)
        logit = scale_grad(self.discriminator(h), mult).squeeze(1)
        n_s = len(f_s.logits)
        label = torch.cat([torch.ones(n_s), torch.zeros(len(f) - n_s)]).to(logit)
        per = F.binary_cross_entropy_with_logits(logit, label, reduction="none")
        if p["entropy"]:
            w = entropy_weights(g, n_s)
            loss = (w * per).sum() / w.sum()
        else:
            loss = per.mean()
        acc = ((logit > 0).float() == label).float().mean()
        return loss, {"domain_acc": acc.detach(), "lambda": self.trade_off * lam_p}
