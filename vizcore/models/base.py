"""The feature contract shared by every model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Features:
    """Everything a view or a transfer loss may want from one forward pass.

    Shape:
        conv: (B, C, h, w) last conv feature maps (after the last activation/pool).
        gap: (B, C) their global average.
        bottleneck: (B, D) adaptation-layer features, or None for plain classifiers.
        logits: (B, K).
    """

    conv: torch.Tensor
    gap: torch.Tensor
    bottleneck: torch.Tensor | None
    logits: torch.Tensor

    def layer(self, name: str) -> torch.Tensor:
        """Features of one named layer ('gap', 'bottleneck' or 'logits')."""
        out = getattr(self, name, None)
        if out is None or name == "conv":
            raise ValueError(f"this model has no {name!r} features; available: {', '.join(self.layers())}")
        return out

    def layers(self) -> list[str]:
        return [n for n in ("gap", "bottleneck", "logits") if getattr(self, n) is not None]


class GapNet(nn.Module):
    """Base class: conv trunk -> global average pooling -> affine head.

    Because every layer after pooling is affine at inference (Linear, BatchNorm1d in
    eval mode, Dropout), the head collapses to one matrix ``W_eff`` and the class
    activation map ``sum_c W_eff[k, c] A_c`` stays exact (Zhou et al. 2016).
    """

    num_classes: int
    in_channels: int
    # the module whose output is ``Features.conv``: where CAM and the Grad-CAM family explain by default
    cam_layer: str = "features"

    def trunk(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w)
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> Features:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).logits

    def cam_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Effective (K, C) weights and (K,) bias from the GAP vector to the logits."""
        raise NotImplementedError

    def conv_blocks(self) -> list[nn.Module]:
        """The conv blocks of the trunk, input side first (what ``freeze=k`` counts)."""
        raise NotImplementedError

    @property
    def feature_layers(self) -> list[str]:
        raise NotImplementedError


def make_bottleneck(feat: int, dim: int) -> nn.Sequential | None:
    """The DDC/DAN adaptation layer (Linear + BatchNorm1d), or None for dim 0: affine at inference."""
    return nn.Sequential(nn.Linear(feat, dim), nn.BatchNorm1d(dim)) if dim else None


def collapse_head(bottleneck: nn.Sequential | None, fc: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """Effective (K, C) weights and (K,) bias of [bottleneck ->] fc, from the GAP vector to the logits."""
    w, b = fc.weight, fc.bias  # (K, D), (K,)
    if bottleneck is None:
        return w, b
    lin, bn = bottleneck[0], bottleneck[1]
    # eval-mode BN is y = s * (z - mu) + beta with s = gamma / sqrt(var + eps)
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w1 = s[:, None] * lin.weight  # (D, C)
    b1 = s * (lin.bias - bn.running_mean) + bn.bias  # (D,)
    return w @ w1, w @ b1 + b
