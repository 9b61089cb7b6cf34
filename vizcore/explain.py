"""Explanation methods of a CNN's decision, one registry for all: CAM and the Grad-CAM family.

``CAM`` is vizcore's exact map for a GAP network (:mod:`vizcore.cam`): the class's effective head
weights applied to the last conv maps. Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM and XGrad-CAM
come from torchcam (chosen by measurement: see the README's dependency section and
``bench/cam_libraries.py``); Eigen-CAM, which torchcam lacks, is the first principal component of
the target layer's activations (Muhammad & Yeasin 2020), a few lines of torch here.

Every method explains a batch at a *target layer* (by default the module whose output is the
model's ``Features.conv``, i.e. the last conv block before global pooling; an expert may name any
layer with a 4-D output) and returns raw low-resolution maps; :func:`explain` upsamples them
bilinearly to the input, as the CAM paper draws them. The library methods apply their ReLU (as
their papers do); CAM keeps its sign.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vizcore.cam import ClassIndex, class_targets
from vizcore.registry import Registry

# (model, images (B, C, H, W), classes (B,), layer name) -> raw maps (B, h, w)
MapFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, str], torch.Tensor]


@dataclass(frozen=True)
class Explainer:
    """One explanation method: its label, what it needs, and how it computes a batch's maps."""

    label: str
    maps: MapFn
    gradients: bool  # needs a backward pass
    fixed_layer: bool = False  # defined only at the layer before global pooling (CAM)
    about: str = ""


EXPLAINERS: Registry[Explainer] = Registry("explanation method")


def list_explainers() -> list[str]:
    return EXPLAINERS.names()


# --------------------------------------------------------------------------- target layers


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


# --------------------------------------------------------------------------- the methods


def _cam_maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    """Our exact CAM: ``sum_c W[k, c] A_c`` of the head's effective weights (no ReLU)."""
    if not hasattr(model, "cam_weights"):
        raise ValueError(f"CAM needs a GAP network with cam_weights(); {type(model).__name__} has none")
    with torch.no_grad():
        conv = model.forward_features(x).conv.float()
        w, _ = model.cam_weights()
        return torch.einsum("nc,nchw->nhw", w[cls].float(), conv)


def _torchcam(method: str, **kwargs) -> MapFn:
    """A torchcam extractor as a MapFn: hooks the layer, forwards, returns unnormalised maps."""

    def maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
        import torchcam.methods

        extractor = getattr(torchcam.methods, method)(model, layer, input_shape=tuple(x.shape[1:]), **kwargs)
        try:
            with torch.set_grad_enabled(method != "ScoreCAM"):
                scores = model(x)
                out = extractor(cls.tolist(), scores, normalized=False)[0]
        finally:
            extractor.remove_hooks()
        return out.detach().float()

    return maps


def _eigen_cam(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    """Eigen-CAM: activations (h*w, C) centred per image, projected on their first principal axis.

    The axis's sign is arbitrary; it is chosen so the map correlates positively with the mean
    activation (the part of the image the layer responds to), then the ReLU of the paper.
    """
    got: list[torch.Tensor] = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _i, out: got.append(out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    a = got[0].float()  # (B, C, h, w)
    b, c, h, w = a.shape
    flat = a.flatten(2).transpose(1, 2)  # (B, hw, C)
    centred = flat - flat.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (B, min, C)
    proj = torch.einsum("bpc,bc->bp", centred, vh[:, 0])  # (B, hw)
    sign = torch.sign((proj * (flat.mean(dim=2) - flat.mean(dim=(1, 2))[:, None])).sum(1))
    proj = proj * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
    return F.relu(proj).view(b, h, w)


EXPLAINERS.add("CAM", Explainer("CAM", _cam_maps, gradients=False, fixed_layer=True,
                                about="exact for GAP networks: head weights on the last conv maps"))  # fmt: skip
EXPLAINERS.add("Grad-CAM", Explainer("Grad-CAM", _torchcam("GradCAM"), gradients=True,
                                     about="spatially averaged gradients as channel weights"))  # fmt: skip
EXPLAINERS.add("Grad-CAM++", Explainer("Grad-CAM++", _torchcam("GradCAMpp"), gradients=True,
                                       about="positive gradients, second-order weighting"))  # fmt: skip
EXPLAINERS.add("Score-CAM", Explainer("Score-CAM", _torchcam("ScoreCAM", batch_size=512), gradients=False,
                                      about="each channel weighted by the score of the image it masks"))  # fmt: skip
EXPLAINERS.add("Layer-CAM", Explainer("Layer-CAM", _torchcam("LayerCAM"), gradients=True,
                                      about="positive gradients as per-pixel weights"))  # fmt: skip
EXPLAINERS.add("XGrad-CAM", Explainer("XGrad-CAM", _torchcam("XGradCAM"), gradients=True,
                                      about="gradients weighted by normalised activations"))  # fmt: skip
EXPLAINERS.add("Eigen-CAM", Explainer("Eigen-CAM", _eigen_cam, gradients=False,
                                      about="first principal component of the activations (class-agnostic)"))  # fmt: skip


# --------------------------------------------------------------------------- batched entry point


@dataclass(frozen=True)
class Explanation:
    """Maps of a batch of images by one method.

    Shape:
        maps: (N, H, W) upsampled (bilinear) to the input. low: (N, h, w) at the layer's resolution.
        class_idx: (N,) the class each map explains.
    """

    method: str
    layer: str
    maps: torch.Tensor
    low: torch.Tensor
    class_idx: torch.Tensor


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) -> (N, H, W) float32, bilinear (align_corners=False), as CAMs are drawn."""
    return F.interpolate(maps.float()[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def explain(
    model: nn.Module,
    images: torch.Tensor,
    class_idx: ClassIndex = None,
    method: str = "CAM",
    layer: str | None = None,
    *,
    batch_size: int = 500,
) -> Explanation:
    """Maps of ``images`` by ``method`` at ``layer`` (None: the last conv block), batched, on the CPU.

    Args:
        class_idx: the class each image's map explains: None for the predicted class, one index
            (an int, a 0-d or one-element array or tensor) for all, or a sequence, array or tensor
            of one per image.

    Shape:
        images: (N, C, H, W) in [0, 1]; class_idx: (), (1,) or (N,). Returns maps (N, H, W) and
        low (N, h, w).
    """
    spec = EXPLAINERS.get(method)
    if len(images) == 0:
        raise ValueError("no images to explain")
    class_idx = class_targets(class_idx, len(images))
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    name = resolve_layer(model, tuple(images.shape[1:]), layer)
    if spec.fixed_layer and name != default_layer(model, tuple(images.shape[1:])):
        raise ValueError(f"{method} is defined only at the layer before global pooling, not at {name!r}")
    if class_idx is None:
        with torch.no_grad():
            class_idx = torch.cat([model(images[i : i + batch_size].to(dev)).argmax(1).cpu()
                                   for i in range(0, len(images), batch_size)])  # fmt: skip
    parts = []
    try:
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(dev)
            parts.append(spec.maps(model, x, class_idx[i : i + batch_size].to(dev), name).cpu())
    except RuntimeError as e:  # e.g. a layer whose output a later in-place op overwrites
        raise ValueError(f"{method} cannot explain {type(model).__name__} at {name!r}: {e}") from e
    finally:
        model.train(was_training)
    low = torch.cat(parts)
    return Explanation(method, name, upsample_maps(low, tuple(images.shape[-2:])), low, class_idx.cpu())


def map_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two sets of maps (0 where either map is constant).

    Shape:
        a, b: (N, H, W). Returns (N,).
    """
    x = a.flatten(1).double() - a.flatten(1).double().mean(1, keepdim=True)
    y = b.flatten(1).double() - b.flatten(1).double().mean(1, keepdim=True)
    den = (x.norm(dim=1) * y.norm(dim=1))
    return torch.where(den > 0, (x * y).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den)).float()
