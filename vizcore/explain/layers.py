"""Target layers of a CNN for its explanations: the layers one may choose (every module with a 4-D
output), the default (the module whose output is the model's ``Features.conv``, the last conv block
before global pooling), and the activations and gradients at one layer, read with hooks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# (model, images (B, C, H, W), classes (B,), layer name) -> raw maps (B, h, w): one explanation method
MapFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, str], torch.Tensor]


def _trace(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The 4-D outputs of every named module, in execution order, of one dummy forward pass, and
    the last of them."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_m: nn.Module, _i: object, out: object) -> None:
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                seen.setdefault(name, out)

        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in model.named_modules() if name]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros((1, *input_shape), device=next(model.parameters()).device)
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not seen:
        raise ValueError(f"{type(model).__name__} has no layer with a 4-D output to explain")
    return seen, list(seen.values())[-1]


def _post_order(module: nn.Module, prefix: str) -> list[str]:
    """Names of ``module`` and its descendants, children before their parent (execution order
    of a sequential trunk)."""
    out: list[str] = []
    for name, child in module.named_children():
        out += _post_order(child, f"{prefix}.{name}" if prefix else name)
    return [*out, prefix]


def layer_choices(model: nn.Module, input_shape: tuple[int, int, int]) -> list[str]:
    """The layers an expert may explain at: every module with a 4-D output, in execution order.

    For a GapNet, the modules of its conv trunk (``cam_layer`` and everything in it), read off
    the module tree without a forward pass; for any other network, traced with one dummy image.
    """
    trunk = getattr(model, "cam_layer", None)
    if trunk is not None and trunk in dict(model.named_modules()):
        return _post_order(model.get_submodule(trunk), trunk)
    return list(_trace(model, input_shape)[0])


def default_layer(model: nn.Module, input_shape: tuple[int, int, int]) -> str:
    """The last conv block: a GapNet's ``cam_layer`` (the module whose output is ``Features.conv``);
    for any other network, the outermost module whose output is its last 4-D output."""
    trunk = getattr(model, "cam_layer", None)
    if trunk is not None and trunk in dict(model.named_modules()):
        return trunk
    seen, conv = _trace(model, input_shape)
    same = [n for n, out in seen.items() if out is conv]
    return min(same, key=lambda n: n.count(".")) if same else list(seen)[-1]


def resolve_layer(model: nn.Module, input_shape: tuple[int, int, int], layer: str | None) -> str:
    """``layer`` if the model has it with a 4-D output, the default layer for None; else a clear error."""
    if layer is None or layer == "":
        return default_layer(model, input_shape)
    choices = layer_choices(model, input_shape)
    if layer not in choices:
        shown = ", ".join(choices[-12:])
        raise ValueError(f"{type(model).__name__} has no layer {layer!r} with 2-D feature maps; "
                         f"the last ones are: {shown}")  # fmt: skip
    return layer


#
# Notation of every docstring below: A^k (h, w) the k-th channel of the target layer's output for
# one image, S^c the score of class c before the softmax (the logit), g^k_ij = dS^c / dA^k_ij.


def layer_activations(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The target layer's output for a batch, without gradients.

    Shape:
        x: (B, C, H, W). Returns (B, K, h, w) float32.
    """
    got: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: got.append(out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return got[0].float()


def layer_gradients(
    model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target layer's output A and the gradient g = dS^c/dA of each image's class score.

    One backward pass for the batch: the images do not interact in eval mode, so the gradient of
    the sum of the class scores is each image's own gradient.

    Shape:
        x: (B, C, H, W); cls: (B,). Returns A and g, both (B, K, h, w) float32.
    """
    got: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: got.append(out))
    try:
        with torch.enable_grad():
            # an input that requires grad: the layer's output is in the graph even if the weights are frozen
            scores = model(x.detach().requires_grad_(True))  # (B, classes)
            (grad,) = torch.autograd.grad(scores.gather(1, cls[:, None]).sum(), got[0])
    finally:
        handle.remove()
    return got[0].detach().float(), grad.float()
