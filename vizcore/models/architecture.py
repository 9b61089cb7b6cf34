"""The network a run's config describes, built in one place.

The trainer, the run store, the uploads and the views all build models through
:func:`build_model`, so a run opened next week gets exactly the architecture it was trained
with. It sits below both the store and the trainer, which is what keeps them free of an
import cycle.
"""

from __future__ import annotations

import inspect

from vizcore.core.config import TrainConfig
from vizcore.data.domains import domain_info
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
    input_size: int = 32,
    pretrained: bool = False,
) -> GapNet:
    """A registered model with the constructor arguments it accepts (no weights loaded).

    A model whose constructor takes no ``bottleneck_dim`` (say) simply is not given one, so an
    architecture read off a checkpoint and one described by a config are built the same way.
    """
    kwargs = {"num_classes": num_classes, "in_channels": in_channels, "bottleneck_dim": bottleneck_dim,
              "standardize": standardize, "input_size": input_size, "pretrained": pretrained}  # fmt: skip
    if widths is not None:  # only when asked for: the model's own default otherwise
        kwargs["widths"] = tuple(widths)
    if not batch_norm:  # likewise: a model without the option keeps its own normalisation
        kwargs["batch_norm"] = False
    accepted = inspect.signature(MODELS.get(model)).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    # only a backbone names these (LeNet-GAP+ passes **kwargs on to LeNet-GAP, which has neither)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("input_size", "pretrained") or k in accepted}
    if pretrained and "pretrained" not in kwargs:
        raise ValueError(f"{model} has no pretrained weights; pretrained backbones: {', '.join(pretrained_models())}")
    return create_model(model, **kwargs)


def pretrained_models() -> list[str]:
    """The registered models that can start from torchvision's ImageNet weights."""
    return [m for m in MODELS.names() if "pretrained" in inspect.signature(MODELS.get(m)).parameters]


def build_model(config: TrainConfig, *, pretrained: bool | None = None) -> GapNet:
    """The architecture a config describes; ImageNet weights only where the config asks for them
    and ``pretrained`` is not False (a trained run's model is built without: its weights follow)."""
    shape = resolve_input_shape(config)
    return build_network(
        config.model,
        num_classes=domain_info(config.source).num_classes,
        in_channels=shape[0],
        bottleneck_dim=config.bottleneck_dim,
        standardize=config.standardize,
        widths=config.widths,
        batch_norm=config.batch_norm,
        input_size=min(shape[1:]),
        pretrained=config.pretrained if pretrained is None else pretrained and config.pretrained,
    )
