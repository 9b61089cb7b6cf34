"""Freezing parts of a network: fixed weights and fixed BatchNorm statistics.

A frozen module takes no gradient and is left out of every optimiser, and each BatchNorm inside
it stays in eval mode whatever ``model.train()`` says (a forward pre-hook puts it back), so it
normalises with its trained statistics and never updates them: its weights and its buffers stay
bit-identical through training.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from vizcore.models.base import GapNet


def _keep_eval(module: nn.Module, args: object) -> None:
    module.training = False  # returns None: the input is left as it is


def freeze_module(module: nn.Module) -> None:
    """No gradients for ``module``'s weights; its BatchNorms stay in eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    keep_statistics(module)


def keep_statistics(module: nn.Module) -> None:
    """Each BatchNorm in ``module`` stays in eval mode: its statistics are fixed, its weights not."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not getattr(
            m, "_vizcore_frozen", False
        ):
            m._vizcore_frozen = True
            m.register_forward_pre_hook(_keep_eval)
            m.eval()


def layer_names(model: GapNet) -> list[str]:
    """The names ``freeze`` accepts: the model's top-level layers and each conv block."""
    top = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
    blocks = [f"features.{i}" for i in range(len(model.conv_blocks()))]
    return top + blocks


def frozen_layers(model: GapNet, freeze: int | Sequence[str]) -> list[tuple[str, nn.Module]]:
    """The layers ``freeze`` names: the first k conv blocks, or layers by name.

    Raises:
        ValueError: k outside 0..number of conv blocks, or an unknown name (the valid names
            are listed).
    """
    if isinstance(freeze, bool):
        raise ValueError(f"freeze={freeze!r}: give a number of conv blocks or layer names")
    if isinstance(freeze, int):
        blocks = model.conv_blocks()
        if not 0 <= freeze <= len(blocks):
            raise ValueError(f"freeze={freeze}: {type(model).__name__} has {len(blocks)} conv blocks; "
                             f"valid values: 0 to {len(blocks)} or layer names ({', '.join(layer_names(model))})")  # fmt: skip
        return [(f"features.{i}", b) for i, b in enumerate(blocks[:freeze])]
    valid = layer_names(model)
    unknown = [n for n in freeze if n not in valid]
    if unknown:
        raise ValueError(
            f"freeze: no layer named {', '.join(map(repr, unknown))}; valid names: {', '.join(valid)}"
        )
    return [(n, model.get_submodule(n)) for n in freeze]


def apply_freeze(model: GapNet, freeze: int | Sequence[str]) -> list[str]:
    """Freeze the layers ``freeze`` names (see :func:`frozen_layers`); returns their names."""
    layers = frozen_layers(model, freeze)
    for _, m in layers:
        freeze_module(m)
    return [n for n, _ in layers]
