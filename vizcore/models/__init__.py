"""Model registry: ``create_model(name, **kwargs)``, ``list_models()``.

Every model returns logits from ``forward(x)`` and exposes its features through
``forward_features(x) -> Features``. Models whose head is a chain of affine layers
after global average pooling also give ``cam_weights()``, so CAM needs no hooks.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vizcore.core.registry import Registry
from vizcore.models.base import Features, GapNet

MODELS: Registry[type[GapNet]] = Registry("model")


def register_model(name: str):
    return MODELS.register(name)


def create_model(name: str, **kwargs: Any) -> GapNet:
    """Build a registered model; an unknown name raises an error listing valid names."""
    return MODELS.get(name)(**kwargs)


def list_models() -> list[str]:
    return MODELS.names()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Registration happens on import of the model files.
from vizcore.models import lenet_gap, svhn_gap, torchvision_nets  # noqa: E402,F401

__all__ = ["Features", "GapNet", "create_model", "list_models", "register_model", "count_parameters"]
