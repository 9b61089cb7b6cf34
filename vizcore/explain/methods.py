"""Explanation methods of a CNN's decision, one registry for all: CAM and the Grad-CAM family.

``CAM`` is vizcore's exact map for a GAP network (:mod:`vizcore.explain.cam`): the class's effective head
weights applied to the last conv maps. Grad-CAM, Layer-CAM and XGrad-CAM come from torchcam
(chosen by measurement: see the README's dependency section and ``bench/cam_libraries.py``).
Grad-CAM++ and Score-CAM are written here from their papers: torchcam 0.5.0's Grad-CAM++ loses
the denominator of the paper's eq. 19 (it divides a copy), and its Score-CAM normalises each
channel before upsampling it. Eigen-CAM, which torchcam lacks, is the first principal component
of the target layer's activations. Each method's docstring gives its paper's equation and any
convention of ours; ``tests/explain/test_explain_references.py`` checks every method against that
equation written out independently and against pytorch-grad-cam (``bench/explain_references.py``
prints the agreement).

Every method explains a batch at a *target layer* (by default the module whose output is the
model's ``Features.conv``, i.e. the last conv block before global pooling; an expert may name any
layer with a 4-D output) and returns raw low-resolution maps; :func:`explain` upsamples them
bilinearly to the input, as the CAM paper draws them. The Grad-CAM family applies its ReLU (as
its papers do); CAM keeps its sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vizcore.core.registry import Registry
from vizcore.explain.cam import ClassIndex, class_targets
from vizcore.explain.layers import (
    MapFn,
    default_layer,
    layer_activations,
    layer_gradients,
    resolve_layer,
)
from vizcore.explain.score_cam import score_cam, score_cam_all_classes


@dataclass(frozen=True)
class Explainer:
    """One explanation method: its label, what it needs, and how it computes a batch's maps."""

    label: str
    maps: MapFn
    gradients: bool  # needs a backward pass
    fixed_layer: bool = False  # defined only at the layer before global pooling (CAM)
    about: str = ""
    class_specific: bool = True  # False: the same map whatever the class (Eigen-CAM); titles say so
    revision: int = 0  # bumped when this method's maps change meaning, so cached maps are recomputed


EXPLAINERS: Registry[Explainer] = Registry("explanation method")


def list_explainers() -> list[str]:
    return EXPLAINERS.names()


def _cam_maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    r"""CAM (Zhou et al. 2016, "Learning Deep Features for Discriminative Localization", CVPR):

    .. math::

        M_c = \sum_k w^c_k A^k,

    with w^c the weights of class c in the linear layer after global average pooling (here the
    head's effective weights, :meth:`GapNet.cam_weights`, so a linear bottleneck is collapsed into
    them). No ReLU, as in the paper: the sign says which positions argue against the class.
    pytorch-grad-cam has no CAM; its Grad-CAM at the same layer is ReLU(M_c), min-max normalised.
    """
    if not hasattr(model, "cam_weights"):
        raise ValueError(f"CAM needs a GAP network with cam_weights(); {type(model).__name__} has none")
    with torch.no_grad():
        conv = model.forward_features(x).conv.float()
        w, _ = model.cam_weights()
        return torch.einsum("nc,nchw->nhw", w[cls].float(), conv)


def _torchcam(method: str, model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    """The unnormalised maps of a torchcam gradient extractor (it hooks the layer and backpropagates).

    Shape:
        x: (B, C, H, W); cls: (B,). Returns (B, h, w).
    """
    import torchcam.methods

    extractor = getattr(torchcam.methods, method)(model, layer, input_shape=tuple(x.shape[1:]))
    try:
        with torch.enable_grad():
            scores = model(x)
            out = extractor(cls.tolist(), scores, normalized=False)[0]
    finally:
        extractor.remove_hooks()
    return out.detach().float()


def _grad_cam(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    r"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV; arXiv:1610.02391), computed by torchcam:

    .. math::

        L^c = ReLU\Big(\sum_k \alpha^c_k A^k\Big), \qquad
        \alpha^c_k = \frac{1}{h w} \sum_{i,j} g^k_{ij}.

    At the last block of a GAP network g^k_ij = W[c, k] / (h w), so L^c = ReLU(M_c) / (h w) (CAM).
    """
    return _torchcam("GradCAM", model, x, cls, layer)


def _layer_cam(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    r"""Layer-CAM (Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization", IEEE TIP 30), computed by torchcam: each position weighted by its own positive
    gradient,

    .. math::

        L^c = ReLU\Big(\sum_k ReLU(g^k) \odot A^k\Big).

    The paper's tanh scaling of shallow layers is for fusing several layers' maps; one layer is
    explained here, so it does not apply.
    """
    return _torchcam("LayerCAM", model, x, cls, layer)


def _xgrad_cam(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    r"""XGrad-CAM (Fu et al. 2020, "Axiom-based Grad-CAM: Towards Accurate Visualization and
    Explanation of CNNs", BMVC; arXiv:2008.02312), computed by torchcam:

    .. math::

        L^c = ReLU\Big(\sum_k \alpha^c_k A^k\Big), \qquad
        \alpha^c_k = \sum_{i,j} \frac{A^k_{ij}}{\sum_{a,b} A^k_{ab}} \, g^k_{ij}.

    torchcam adds 1e-8 to the sum of the activations (pytorch-grad-cam 1e-7), so a channel that
    is zero everywhere gets weight 0 instead of 0/0.
    """
    return _torchcam("XGradCAM", model, x, cls, layer)


def grad_cam_pp(a: torch.Tensor, g: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    r"""Grad-CAM++ (Chattopadhay et al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep
    Convolutional Networks", WACV; arXiv:1710.11063) from a layer's activations and gradients:

    .. math::

        L^c = ReLU\Big(\sum_k w^c_k A^k\Big), \qquad
        w^c_k = \sum_{i,j} \alpha^{kc}_{ij} \, ReLU(g^k_{ij}),

        \alpha^{kc}_{ij} = \frac{(g^k_{ij})^2}{2 (g^k_{ij})^2 + \sum_{a,b} A^k_{ab} \, (g^k_{ij})^3}
        \quad \text{(eq. 19)}

    Eq. 19 is the paper's closed form for an exponential score Y^c = exp(S^c) and a piecewise
    linear network, where the second and third derivatives of Y^c are powers of the first one of
    S^c. The paper's weights use dY^c/dA = exp(S^c) g: the factor exp(S^c) > 0 is one number per
    image and is dropped here (as in pytorch-grad-cam and torchcam): it scales a map, which
    neither the drawn (min-max) map nor the ranking of its pixels sees. Where the denominator of
    α is 0 (g = 0: 0/0), α = 0. ``eps`` > 0 is added to the denominator instead, as pytorch-grad-cam
    does (1e-6); only its tests use that.

    At the last block of a GAP network g^k_ij = W[c, k] / (h w) everywhere, and the map reduces to
    ReLU(sum_k ReLU(W[c, k]) / (2 + W[c, k] mean(A^k)) A^k) (checked in the tests).

    Shape:
        a, g: (B, K, h, w). Returns (B, h, w).
    """
    g2 = g.pow(2)
    denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + eps  # (B, K, h, w)
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
    w = (alpha * F.relu(g)).sum(dim=(2, 3))  # (B, K)
    return F.relu(torch.einsum("bk,bkhw->bhw", w, a))


def _grad_cam_pp_maps(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    """Grad-CAM++ of a batch at ``layer``: see :func:`grad_cam_pp`."""
    return grad_cam_pp(*layer_gradients(model, x, cls, layer))


def eigen_projection(a: torch.Tensor) -> torch.Tensor:
    """The centred activations of each image projected on their first principal axis, with the
    axis's sign chosen so the projection correlates positively with the mean over channels (an
    SVD's sign is arbitrary: +v and -v are the same axis).

    Shape:
        a: (B, K, h, w). Returns (B, h, w).
    """
    b, _, h, w = a.shape
    flat = a.flatten(2).transpose(1, 2)  # (B, hw, K)
    centred = flat - flat.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (B, min(hw, K), K)
    proj = torch.einsum("bpc,bc->bp", centred, vh[:, 0])  # (B, hw)
    sign = torch.sign((proj * (flat.mean(dim=2) - flat.mean(dim=(1, 2))[:, None])).sum(1))
    return (proj * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]).view(b, h, w)


def _eigen_cam(model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str) -> torch.Tensor:
    r"""Eigen-CAM (Muhammad & Yeasin 2020, "Eigen-CAM: Class Activation Map using Principal
    Components", IJCNN; arXiv:2008.00299): the activations O (hw, K) of an image projected on their
    first principal component,

    .. math::

        O = U \Sigma V^T, \qquad L = ReLU(O V_1),

    V_1 the first right singular vector, O centred per channel over the positions before the SVD
    (principal components; pytorch-grad-cam centres too). It ignores the class (``cls``).

    Conventions of our own: the sign of V_1 is arbitrary, so it is chosen to make the map correlate
    positively with the mean activation over channels (the part of the image the layer responds to;
    :func:`eigen_projection`); pytorch-grad-cam keeps whatever sign its SVD returns, so its map is
    ours or the ReLU of our projection's negative. Then the ReLU, as every map of the Grad-CAM
    family.
    """
    return F.relu(eigen_projection(layer_activations(model, x, layer)))


EXPLAINERS.add("CAM", Explainer("CAM", _cam_maps, gradients=False, fixed_layer=True,
                                about="exact for GAP networks: head weights on the last conv maps"))  # fmt: skip
EXPLAINERS.add("Grad-CAM", Explainer("Grad-CAM", _grad_cam, gradients=True,
                                     about="spatially averaged gradients as channel weights"))  # fmt: skip
EXPLAINERS.add("Grad-CAM++", Explainer("Grad-CAM++", _grad_cam_pp_maps, gradients=True, revision=1,
                                       about="positive gradients, second-order weighting"))  # fmt: skip
_SCORE_CAM = score_cam()  # the registered instance: explain_all_classes computes every class in one pass
EXPLAINERS.add("Score-CAM", Explainer("Score-CAM", _SCORE_CAM, gradients=False, revision=1,
                                      about="each channel weighted by the score of the image it masks"))  # fmt: skip
EXPLAINERS.add("Layer-CAM", Explainer("Layer-CAM", _layer_cam, gradients=True,
                                      about="positive gradients as per-pixel weights"))  # fmt: skip
EXPLAINERS.add("XGrad-CAM", Explainer("XGrad-CAM", _xgrad_cam, gradients=True,
                                      about="gradients weighted by normalised activations"))  # fmt: skip
EXPLAINERS.add("Eigen-CAM", Explainer("Eigen-CAM", _eigen_cam, gradients=False, class_specific=False,
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


def explain_all_classes(model: nn.Module, images: torch.Tensor, method: str = "CAM", layer: str | None = None) -> torch.Tensor:
    """Raw low-resolution maps of ``images`` for *every* class, so a class switch is an index.

    Meant for the few images on screen, in one batch: Score-CAM's masked passes give every
    class's score at once (:func:`score_cam_all_classes`); a class-agnostic method computes its
    map once; any other method runs once per class over the batch (one backward each for a
    gradient method).

    Shape:
        images: (M, C, H, W) in [0, 1]. Returns (M, classes, h, w) float32.
    """
    spec = EXPLAINERS.get(method)
    if len(images) == 0:
        raise ValueError("no images to explain")
    dev = next(model.parameters()).device
    x = images.to(dev)
    name = resolve_layer(model, tuple(images.shape[1:]), layer)
    if spec.fixed_layer and name != default_layer(model, tuple(images.shape[1:])):
        raise ValueError(f"{method} is defined only at the layer before global pooling, not at {name!r}")
    was_training = model.training
    model.eval()
    try:
        if spec.maps is _SCORE_CAM:
            return score_cam_all_classes(model, x, name).cpu()
        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        if not spec.class_specific:  # the same map for every class
            low = spec.maps(model, x, torch.zeros(len(x), dtype=torch.long, device=dev), name)
            return low.cpu()[:, None].expand(-1, classes, -1, -1).contiguous()
        every = [spec.maps(model, x, torch.full((len(x),), c, dtype=torch.long, device=dev), name).cpu()
                 for c in range(classes)]  # fmt: skip
        return torch.stack(every, dim=1)
    except RuntimeError as e:  # e.g. a layer whose output a later in-place op overwrites
        raise ValueError(f"{method} cannot explain {type(model).__name__} at {name!r}: {e}") from e
    finally:
        model.train(was_training)


def map_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two sets of maps (0 where either map is constant).

    Shape:
        a, b: (N, H, W). Returns (N,).
    """
    x = a.flatten(1).double() - a.flatten(1).double().mean(1, keepdim=True)
    y = b.flatten(1).double() - b.flatten(1).double().mean(1, keepdim=True)
    den = (x.norm(dim=1) * y.norm(dim=1))
    return torch.where(den > 0, (x * y).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den)).float()
