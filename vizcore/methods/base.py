"""The method interface shared by every training method."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vizcore.models.base import Features, GapNet
from vizcore.params import Param, validate


def split_features(f: Features, n_source: int) -> tuple[Features, Features]:
    """Split the features of a joint (source ++ target) batch into the two domains."""

    def cut(t: torch.Tensor | None, sl: slice) -> torch.Tensor | None:
        return None if t is None else t[sl]

    s, t = slice(0, n_source), slice(n_source, None)
    return (
        Features(*(cut(getattr(f, n), s) for n in ("conv", "gap", "bottleneck", "logits"))),
        Features(*(cut(getattr(f, n), t) for n in ("conv", "gap", "bottleneck", "logits"))),
    )


class Method(nn.Module):
    """Base class. Subclasses set ``uses_target`` and implement ``transfer_loss``.

    Args:
        trade_off: lambda, the weight of the transfer loss.
        feature_dim: size of the features the transfer loss sees (bottleneck or GAP).
        num_classes: K.
        params: the method's own parameters (``TrainConfig.method_params``), checked against
            the class's ``params`` descriptions; the checked values are ``self.hparams``.
    """

    uses_target: bool = True
    label: str = ""
    description: str = ""
    # typed descriptions: the Train page draws its widgets from these, train() checks them
    params: tuple[Param, ...] = ()
    # which live curves matter for this method (besides loss and accuracy)
    extra_metrics: tuple[str, ...] = ()

    def __init__(self, trade_off: float = 1.0, feature_dim: int = 64, num_classes: int = 10, **params: Any) -> None:
        super().__init__()
        self.hparams = validate(type(self).params, params, owner=self.label or type(self).__name__)
        self.trade_off = trade_off

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
            return cls, {"loss": cls, "cls_loss": cls, "train_acc": _acc(f_s.logits, ys)}
        f_s, f_t = split_features(model.forward_features(torch.cat([xs, xt])), len(xs))
        cls = F.cross_entropy(f_s.logits, ys)
        transfer, logs = self.transfer_loss(f_s, f_t, progress)
        lam = self.lambda_at(progress)
        total = cls + lam * transfer
        return total, {
            "loss": total,
            "cls_loss": cls,
            "transfer_loss": transfer,
            "lambda": lam,
            "train_acc": _acc(f_s.logits, ys),
            **logs,
        }


def _acc(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == y).float().mean()
