"""Gradient reversal (Ganin & Lempitsky 2015): identity forward, -coeff * gradient backward."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        # a view, so autograd records this node although the values are unchanged
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.coeff * grad, None


def scale_grad(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """Identity on the forward pass; multiplies the gradient by ``coeff`` on the way back.

    Shape:
        x: any shape; output: the same shape.
    """
    return _ScaleGrad.apply(x, float(coeff))


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity on the forward pass; multiplies the gradient by ``-coeff`` on the way back.

    Shape:
        x: any shape; output: the same shape.
    """
    return _ScaleGrad.apply(x, -float(coeff))


class GradientReverseLayer(nn.Module):
    """:func:`grad_reverse` as a layer with a fixed coefficient."""

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coeff)
