"""The method interface shared by every training method.

A method owns its training step through one hook, :meth:`Method.step`. The default step is one
forward pass (:meth:`Method.loss`), one backward pass and one step of the trainer's optimiser;
a method with several optimisers, alternating updates or frozen parts overrides ``step`` (and
:meth:`Method.optimizers`), and ``train.py`` stays one loop with no branch for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vizcore.core.params import Param, validate
from vizcore.data.feeds import Feed
from vizcore.models.base import Features, GapNet


def split_features(f: Features, n_source: int) -> tuple[Features, Features]:
    """Split the features of a joint (source ++ target) batch into the two domains."""

    def cut(t: torch.Tensor | None, sl: slice) -> torch.Tensor | None:
        return None if t is None else t[sl]

    s, t = slice(0, n_source), slice(n_source, None)
    return (
        Features(*(cut(getattr(f, n), s) for n in ("conv", "gap", "bottleneck", "logits"))),
        Features(*(cut(getattr(f, n), t) for n in ("conv", "gap", "bottleneck", "logits"))),
    )


@dataclass
class StepContext:
    """What the trainer hands a method's step.

    Attributes:
        model: the network being trained (the run's saved model).
        optimizers: the method's optimisers by name (:meth:`Method.optimizers`).
        check: raises the trainer's divergence error for a NaN/Inf loss; call it before every
            ``backward`` so a bad loss never reaches the weights.
        autocast: a fresh mixed-precision context (a no-op on CPU) for each forward pass.
        gen: the run's seeded CPU random generator (augmentations).
        augment: the configured augmentations of a source batch.
    """

    model: GapNet
    optimizers: dict[str, torch.optim.Optimizer]
    check: Callable[[torch.Tensor], None]
    autocast: Callable[[], AbstractContextManager[Any]]
    gen: torch.Generator
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] = field(default=lambda x, g: x)


@dataclass
class Lineage:
    """The runs a run starts from, loaded by the trainer and handed to :meth:`Method.setup`.

    Attributes:
        parent: the parent run's model (``init_from``), its weights already in ``model``; a
            separate copy, so a method may keep it fixed (ADDA's source encoder).
        teacher: the teacher run's model (``teacher``), in eval mode.
    """

    parent: GapNet | None = None
    teacher: GapNet | None = None


class Method(nn.Module):
    """Base class. Subclasses set ``uses_target`` and implement ``transfer_loss`` (or ``loss``,
    or ``step``).

    Args:
        trade_off: lambda, the weight of the transfer loss.
        feature_dim: size of the features the transfer loss sees (bottleneck or GAP).
        num_classes: K.
        domain_bn: forward source and target batches separately, so each is normalised by
            its own BatchNorm statistics (``TrainConfig.domain_bn``).
        target_im: weight of :func:`information_loss` on the target batch, added to the loss
            (``TrainConfig.target_im``).
        params: the method's own parameters (``TrainConfig.method_params``), checked against
            the class's ``params`` descriptions; the checked values are ``self.hparams``.
    """

    uses_target: bool = True
    label: str = ""
    description: str = ""
    # typed descriptions: the Train page draws its widgets from these, train() checks them
    params: tuple[Param, ...] = ()
    # which live curves matter for this method (besides loss and accuracy): the Train page's
    # curves, the Compare page's choice of curve and the command line's epoch line read these
    extra_metrics: tuple[str, ...] = ()
    # the end-of-epoch values :meth:`evaluate` adds (e.g. a kNN accuracy), drawn as epoch curves
    eval_metrics: tuple[str, ...] = ()
    # the epoch-level value that says how good the run is (an accuracy in [0, 1])
    score: str = "target_acc"
    # TrainConfig fields that must be set for this method ("init_from", "teacher", ...)
    requires: tuple[str, ...] = ()
    # False: the method needs no labels (self-supervised); the Train page says so
    uses_labels: bool = True

    def __init__(self, trade_off: float = 1.0, feature_dim: int = 64, num_classes: int = 10, *,
                 domain_bn: bool = False, target_im: float = 0.0, **params: Any) -> None:  # fmt: skip
        super().__init__()
        self.hparams = validate(type(self).params, params, owner=self.label or type(self).__name__)
        self.trade_off = trade_off
        self.domain_bn = domain_bn
        self.target_im = target_im

    @classmethod
    def uses_shared_loss(cls) -> bool:
        """Whether training goes through :meth:`loss` as written here, so ``domain_bn`` and
        ``target_im`` apply: a method with a target whose ``step`` and ``loss`` are the base's."""
        return cls.uses_target and cls.step is Method.step and cls.loss is Method.loss

    # -- the hooks the trainer calls ---------------------------------------------------------
    def setup(self, model: GapNet, lineage: Lineage) -> None:
        """Called once, after the model is built (and given its parent's weights), before the
        optimisers are made: a method keeps what it needs of its lineage, freezes parts."""

    def optimizers(
        self, model: GapNet, make: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    ) -> dict[str, torch.optim.Optimizer]:
        """The optimisers of the run, by name; ``make`` builds one the config describes.

        Default: one optimiser over every trainable weight of the model and of the method.
        The trainer sets every group's learning rate to the schedule's value times the group's
        ``lr_mult`` (1 when absent).
        """
        return {"main": make(trainable(model, self))}

    def step(self, ctx: StepContext, xs: torch.Tensor, ys: torch.Tensor, xt: torch.Tensor | None,
             progress: float) -> dict[str, Any]:  # fmt: skip
        """One training step; returns the values to log. Default: one backward pass of
        :meth:`loss` and one step of the "main" optimiser."""
        with ctx.autocast():
            loss, logs = self.loss(ctx.model, xs, ys, xt, progress)
        ctx.check(loss)
        opt = ctx.optimizers["main"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return logs

    def evaluate(self, model: GapNet, train: Feed, test: Feed) -> dict[str, float]:
        """Extra end-of-epoch values from the source training and test splits (read through
        their feeds, which may stream from disk); the test accuracies themselves are the
        trainer's. Default: none."""
        return {}

    # -- the default loss --------------------------------------------------------------------
    def lambda_at(self, progress: float) -> float:
        """Weight of the transfer loss at training progress p in [0, 1]."""
        return self.trade_off

    def transfer_loss(self, f_s: Features, f_t: Features, progress: float) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def loss(
        self, model: GapNet, xs: torch.Tensor, ys: torch.Tensor, xt: torch.Tensor | None, progress: float
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Total loss and the values to log (tensors are turned into floats by the loop)."""
        if xt is None or not self.uses_target:
            f_s = model.forward_features(xs)
            cls = F.cross_entropy(f_s.logits, ys)
            return cls, {"loss": cls, "cls_loss": cls, "train_acc": batch_accuracy(f_s.logits, ys)}
        if self.domain_bn:  # two forward passes: each domain's batch statistics normalise it alone
            f_s, f_t = model.forward_features(xs), model.forward_features(xt)
        else:
            f_s, f_t = split_features(model.forward_features(torch.cat([xs, xt])), len(xs))
        cls = F.cross_entropy(f_s.logits, ys)
        transfer, logs = self.transfer_loss(f_s, f_t, progress)
        lam = self.lambda_at(progress)
        total = cls + lam * transfer
        if self.target_im:
            im = information_loss(f_t.logits)
            total = total + self.target_im * im
            logs = {**logs, "target_im": im}
        return total, {
            "loss": total,
            "cls_loss": cls,
            "transfer_loss": transfer,
            "lambda": lam,
            "train_acc": batch_accuracy(f_s.logits, ys),
            **logs,
        }


def trainable(*modules: nn.Module) -> Iterator[nn.Parameter]:
    """The parameters of ``modules`` that take gradients (frozen ones are left out)."""
    for m in modules:
        yield from (p for p in m.parameters() if p.requires_grad)


def information_loss(logits: torch.Tensor) -> torch.Tensor:
    """Negative mutual information between a batch's images and their predicted classes (nats):
    ``mean_i H(p_i) - H(mean_i p_i)`` over the softmax rows p_i (Krause et al. 2010; SHOT's target
    loss, Liang et al. 2020). The first term makes each prediction confident, which moves decision
    boundaries out of the dense regions; the second keeps the batch's classes spread, without
    which entropy minimisation alone can put every image in a few classes. From 0 (uniform
    predictions, or every image confidently in one class) down to -ln K (each class equally often,
    each image certain). The "im" validator (:mod:`vizcore.metrics.validators`) scores the same
    quantity, negated, on a run's stored numpy predictions; this one is the differentiable loss.

    Shape:
        logits: (B, K); output: scalar.
    """
    logp = F.log_softmax(logits.float(), dim=1)  # (B, K)
    p = logp.exp()
    conditional = -(p * logp).sum(dim=1).mean()
    mean_p = p.mean(dim=0)  # (K,)
    marginal = -(mean_p * mean_p.clamp_min(1e-12).log()).sum()
    return conditional - marginal


def batch_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == y).float().mean()
