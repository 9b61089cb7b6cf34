"""ADDA, adversarial discriminative domain adaptation (Tzeng et al. 2017), stage 2.

Stage 1 is any trained run (source-only, say): its encoder and classifier. This run starts from
it (``init_from``) and learns a *separate* target encoder, initialised from the source encoder,
against a domain discriminator, with the inverted-label GAN loss: the discriminator learns
source = 1, target = 0 on (fixed source encoder, target encoder) features; the target encoder
learns to make its target features read as source (label 1), not by reversing a gradient. The
source encoder and the classifier stay fixed (the parent's copy, and the frozen classifier).

The run's saved model is a normal network: the target encoder plus the source classifier, so
every view (CAM, embeddings, distances) loads it as it loads any run; the source side is the
parent run's model. Two optimisers, updated in turn each step, through the method's own step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from vizcore.core.params import Param
from vizcore.methods import register_method
from vizcore.methods.base import Lineage, Method, StepContext, trainable
from vizcore.methods.dann import domain_classifier
from vizcore.methods.ddc import adapted_features
from vizcore.methods.freeze import freeze_module, keep_statistics
from vizcore.models.base import Features, GapNet


def discriminator_loss(
    d_source: torch.Tensor, d_target: torch.Tensor, smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's BCE with source = 1, target = 0, and its accuracy.

    ``smoothing`` moves both labels that far towards 1/2 (one-sided would favour a domain).

    Shape:
        d_source: (n_s,), d_target: (n_t,) logits.
    """
    logits = torch.cat([d_source, d_target])
    label = torch.cat([torch.ones_like(d_source), torch.zeros_like(d_target)])
    acc = ((logits > 0).float() == label).float().mean()
    soft = label * (1 - 2 * smoothing) + smoothing
    return F.binary_cross_entropy_with_logits(logits, soft), acc


# What the discriminator reads of an encoder's output, by the ``input`` parameter.
DISC_INPUTS: dict[str, Callable[[Features], torch.Tensor]] = {
    "features": adapted_features,
    "logits": lambda f: f.logits,
    "probs": lambda f: f.logits.softmax(dim=1),
    "features+probs": lambda f: torch.cat([adapted_features(f), f.logits.softmax(dim=1)], dim=1),
}


def disc_input_dim(name: str, feature_dim: int, num_classes: int) -> int:
    """Width of the discriminator's input for the ``input`` choice ``name``."""
    return {"features": feature_dim, "logits": num_classes, "probs": num_classes,
            "features+probs": feature_dim + num_classes}[name]  # fmt: skip


def inverted_label_loss(d_target: torch.Tensor) -> torch.Tensor:
    """The target encoder's GAN loss with inverted labels: BCE of its target logits against 1.

    Shape:
        d_target: (n_t,) logits.
    """
    return F.binary_cross_entropy_with_logits(d_target, torch.ones_like(d_target))


@register_method("adda")
class ADDA(Method):
    label = "ADDA"
    description = (
        "Starts from a trained run; learns a separate target encoder against a domain discriminator "
        "(inverted-label GAN loss) while the source encoder and the classifier stay fixed."
    )
    params = (
        Param("hidden", "Hidden width", "int", 500, low=1, high=4096, step=50, unit="units",
              help="Width of each hidden layer of the discriminator (500 in the paper)."),
        Param("depth", "Hidden layers", "int", 2, low=0, high=8, step=1,
              help="Hidden layers of the discriminator (2 in the paper: 500-500-1)."),
        Param("dropout", "Dropout", "float", 0.0, low=0.0, high=0.95, step=0.05,
              help="Dropout probability after each hidden layer of the discriminator."),
        Param("lr_mult", "Discriminator learning-rate multiplier", "float", 1.0, low=0.01, high=100.0,
              step=0.5, unit="×", help="The discriminator learns this many times faster than the encoder."),
        Param("input", "Discriminator reads", "choice", "features", choices=tuple(DISC_INPUTS),
              choice_labels=("adaptation features", "logits", "class probabilities", "features and probabilities"),
              help="What the discriminator sees of each encoder: the adaptation-layer features, the "
                   "logits or the class probabilities of the fixed classifier, or features and probabilities."),
        Param("target_bn", "Target BatchNorm statistics", "choice", "target", choices=("target", "source"),
              choice_labels=("target batches", "the source's, kept"),
              help="target: the target encoder normalises with target batch statistics and keeps their "
                   "running average; source: it keeps the parent's source statistics (affine still learnt)."),
        Param("smoothing", "Label smoothing", "float", 0.0, low=0.0, high=0.45, step=0.05,
              help="The discriminator's labels are moved this far towards 1/2 (a weaker discriminator)."),
    )  # fmt: skip
    extra_metrics = ("domain_acc", "disc_loss", "encoder_loss")
    requires = ("init_from",)

    def __init__(
        self, trade_off: float = 1.0, feature_dim: int = 64, num_classes: int = 10, **params: Any
    ) -> None:
        super().__init__(trade_off, feature_dim, num_classes, **params)
        p = self.hparams
        self.read = DISC_INPUTS[str(p["input"])]
        self.discriminator = domain_classifier(
            disc_input_dim(str(p["input"]), feature_dim, num_classes),
            int(p["hidden"]), int(p["depth"]), float(p["dropout"]),
        )

    def setup(self, model: GapNet, lineage: Lineage) -> None:
        if lineage.parent is None:
            raise ValueError("ADDA needs a trained run to start from (init_from)")
        source = lineage.parent
        freeze_module(source)
        # a plain attribute, not a submodule: never trained, never put back in training mode
        object.__setattr__(self, "source_encoder", source.eval())
        freeze_module(model.fc)  # the source classifier, shared by both encoders
        if self.hparams["target_bn"] == "source":
            keep_statistics(model)  # normalise with the parent's source statistics throughout

    def optimizers(
        self, model: GapNet, make: Callable[[Iterable[Any]], torch.optim.Optimizer]
    ) -> dict[str, torch.optim.Optimizer]:
        d = [
            {
                "params": list(self.discriminator.parameters()),
                "lr_mult": float(self.hparams["lr_mult"]),
            }
        ]
        return {"encoder": make(trainable(model)), "discriminator": make(d)}

    def step(self, ctx: StepContext, xs: torch.Tensor, ys: torch.Tensor, xt: torch.Tensor | None,
             progress: float) -> dict[str, Any]:  # fmt: skip
        if xt is None:
            raise ValueError("ADDA needs a target domain")
        with torch.no_grad(), ctx.autocast():
            f_s = self.read(self.source_encoder.forward_features(xs)).float()
        with ctx.autocast():
            f_t = self.read(ctx.model.forward_features(xt)).float()
        disc = self.discriminator
        # 1) the discriminator: source = 1, target = 0, on fixed features
        d_loss, acc = discriminator_loss(disc(f_s).squeeze(1), disc(f_t.detach()).squeeze(1),
                                         float(self.hparams["smoothing"]))  # fmt: skip
        _update(ctx, "discriminator", d_loss)
        # 2) the target encoder: make its features read as source (inverted labels)
        e_loss = inverted_label_loss(disc(f_t).squeeze(1))
        _update(ctx, "encoder", e_loss)
        return {"loss": e_loss, "disc_loss": d_loss, "encoder_loss": e_loss, "domain_acc": acc}


def _update(ctx: StepContext, name: str, loss: torch.Tensor) -> None:
    """One checked backward pass and step of the optimiser ``name``."""
    ctx.check(loss)
    opt = ctx.optimizers[name]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
