"""The network a run's config describes, built in one place.

The trainer, the run store, the uploads and the views all build models through
:func:`build_model`, so a run opened next week gets exactly the architecture it was trained
with. It sits below both the store and the trainer, which is what keeps them free of an
import cycle.
"""

from __future__ import annotations

import inspect

from vizcore.config import TrainConfig
from vizcore.data import domain_info
from vizcore.models import MODELS, create_model
from vizcore.models.base import GapNet


def common_shape(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    """One input shape for two domains: the larger channel count and size (grey -> RGB, upsample)."""
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))


def resolve_input_shape(config: TrainConfig) -> tuple[int, int, int]:
    """(C, H, W) the run's images are brought to: the config's, else the domains' common shape."""
    if config.input_shape is not None:
        return tuple(config.input_shape)  # type: ignore[return-value]
    shape = domain_info(config.source).native_shape
    if config.target:
        shape = common_shape(shape, domain_info(config.target).native_shape)
    return shape


def build_network(
    model: str,
    *,
    num_classes: int,
    in_channels: int,
    bottleneck_dim: int = 0,
    standardize: bool = False,
    widths: tuple[int, ...] | None = None,
    batch_norm: bool = True,
) -> GapNet:
    """A registered model with the constructor arguments it accepts (no weights loaded).

    A model whose constructor takes no ``bottleneck_dim`` (say) simply is not given one, so an
    architecture read off a checkpoint and one described by a config are built the same way.
    """
    kwargs = {"num_classes": num_classes, "in_channels": in_channels,
              "bottleneck_dim": bottleneck_dim, "standardize": standardize}  # fmt: skip
    if widths is not None:  # only when asked for: the model's own default otherwise
        kwargs["widths"] = tuple(widths)
    if not batch_norm:  # likewise: a model without the option keeps its own normalisation
        kwargs["batch_norm"] = False
    accepted = inspect.signature(MODELS.get(model)).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return create_model(model, **kwargs)


def build_model(config: TrainConfig) -> GapNet:
    """The architecture a config describes (no weights loaded)."""
    return build_network(
        config.model,
        num_classes=domain_info(config.source).num_classes,
        in_channels=resolve_input_shape(config)[0],
        bottleneck_dim=config.bottleneck_dim,
        standardize=config.standardize,
        widths=config.widths,
        batch_norm=config.batch_norm,
    )
