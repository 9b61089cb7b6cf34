"""Independent references for vizcore's explanation methods (tests and bench/explain_references.py).

:func:`paper_map` writes each method's equation as its paper gives it, for one image at a time,
with plain torch autograd and nothing from :mod:`vizcore.explain.methods`. :func:`library_maps` asks
pytorch-grad-cam (grad-cam on PyPI, a test-only dependency) for the same method, at the layer's
resolution and in its own normalisation (:func:`library_normalise`); :func:`ours_in_library_convention`
computes vizcore's map with pytorch-grad-cam's conventions where the two differ.

Notation as in vizcore/explain/methods.py: A^k (h, w) the k-th channel of the layer's output, S^c the
logit of class c, g^k = dS^c/dA^k.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _activation(model: nn.Module, x1: torch.Tensor, layer: str, c: int | None = None):
    """A (K, h, w) of one image at ``layer``, and g = dS^c/dA when a class ``c`` is given."""
    got: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: got.append(out))
    try:
        with torch.enable_grad():
            scores = model(x1.detach().requires_grad_(True))
            grad = None if c is None else torch.autograd.grad(scores[0, c], got[0])[0][0]
    finally:
        handle.remove()
    return got[0][0].detach(), None if grad is None else grad


def _weighted(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A^k for (K,) weights and (K, h, w) maps."""
    return (w[:, None, None] * a).sum(0)


def cam(model: nn.Module, x1: torch.Tensor, c: int, layer: str) -> torch.Tensor:
    """Zhou et al. 2016: M_c = sum_k w^c_k A^k, w^c the class's row of the linear layer after GAP."""
    assert getattr(model, "bottleneck", None) is None, (
        "the paper's network: GAP, then one linear layer"
    )
    a, _ = _activation(model, x1, layer)
    return _weighted(model.fc.weight[c].detach(), a)


def grad_cam(model: nn.Module, x1: torch.Tensor, c: int, layer: str) -> torch.Tensor:
    """Selvaraju et al. 2017: alpha_k = mean_ij g^k_ij; ReLU(sum_k alpha_k A^k)."""
    a, g = _activation(model, x1, layer, c)
    return F.relu(_weighted(g.mean(dim=(1, 2)), a))


def grad_cam_pp(model: nn.Module, x1: torch.Tensor, c: int, layer: str) -> torch.Tensor:
    """Chattopadhay et al. 2018, eq. 19: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3) (0 where 0/0);
    w_k = sum_ij alpha_ij ReLU(g_ij); ReLU(sum_k w_k A^k)."""
    a, g = _activation(model, x1, layer, c)
    w = torch.zeros(len(a), dtype=a.dtype)
    for k in range(len(a)):
        num = g[k] ** 2
        den = 2 * g[k] ** 2 + a[k].sum() * g[k] ** 3
        alpha = torch.where(den == 0, torch.zeros_like(num), num / den)
        w[k] = (alpha * g[k].clamp_min(0)).sum()
    return F.relu(_weighted(w, a))


def layer_cam(model: nn.Module, x1: torch.Tensor, c: int, layer: str) -> torch.Tensor:
    """Jiang et al. 2021: ReLU(sum_k ReLU(g^k) * A^k), position by position."""
    a, g = _activation(model, x1, layer, c)
    return F.relu((g.clamp_min(0) * a).sum(0))


def xgrad_cam(model: nn.Module, x1: torch.Tensor, c: int, layer: str) -> torch.Tensor:
    """Fu et al. 2020: alpha_k = sum_ij A^k_ij / (sum_ab A^k_ab) * g^k_ij; ReLU(sum_k alpha_k A^k)."""
    a, g = _activation(model, x1, layer, c)
    total = a.sum(dim=(1, 2))
    alpha = torch.where(total == 0, torch.zeros_like(total), (a * g).sum(dim=(1, 2)) / total)
    return F.relu(_weighted(alpha, a))


def score_cam(
    model: nn.Module, x1: torch.Tensor, c: int, layer: str, align_corners: bool = False
) -> torch.Tensor:
    """Wang et al. 2020: H^k = s(Up(A^k)) (upsampled, then min-max normalised); the K masked images
    X * H^k scored in one batch (the paper's Algorithm 1); alpha = softmax_k(S^c(X * H^k) - S^c(X_b)),
    X_b a black image; ReLU(sum_k alpha_k A^k). Up is bilinear (the paper does not say with which
    corners)."""
    a, _ = _activation(model, x1, layer)
    up = F.interpolate(
        a[:, None], size=x1.shape[-2:], mode="bilinear", align_corners=align_corners
    )[:, 0]
    masks = []
    for k in range(len(a)):
        span = up[k].max() - up[k].min()
        masks.append((up[k] - up[k].min()) / span if span > 0 else torch.zeros_like(up[k]))
    with torch.no_grad():
        scores = model(x1 * torch.stack(masks)[:, None])[:, c] - model(torch.zeros_like(x1))[0, c]
    return F.relu(_weighted(scores.softmax(0), a))


def eigen_projection(model: nn.Module, x1: torch.Tensor, layer: str) -> torch.Tensor:
    """Muhammad & Yeasin 2020: O (hw, K) centred per channel, O = U S V^T, O V_1, by NumPy's SVD; the
    sign of V_1 chosen (vizcore's convention) so the map correlates positively with the channel mean."""
    a, _ = _activation(model, x1, layer)
    o = a.flatten(1).T.numpy()  # (hw, K)
    centred = o - o.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    p = centred @ vt[0]
    if p @ (o.mean(axis=1) - o.mean()) < 0:
        p = -p
    return torch.from_numpy(p).view(a.shape[1:])


def eigen_cam(model: nn.Module, x1: torch.Tensor, c: int, layer: str) -> torch.Tensor:
    """ReLU of :func:`eigen_projection`; the class ``c`` is not used."""
    return F.relu(eigen_projection(model, x1, layer))


PAPER: dict[str, Callable[[nn.Module, torch.Tensor, int, str], torch.Tensor]] = {
    "CAM": cam,
    "Grad-CAM": grad_cam,
    "Grad-CAM++": grad_cam_pp,
    "Score-CAM": score_cam,
    "Layer-CAM": layer_cam,
    "XGrad-CAM": xgrad_cam,
    "Eigen-CAM": eigen_cam,
}


def paper_map(
    method: str, model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str
) -> torch.Tensor:
    """The paper's map of every image, one image at a time, by a float64 copy of the model (in float32
    a one-image pass may take another convolution algorithm: on the random ResNet-18 of the tests its
    Grad-CAM at layer2 was off by 0.5 % of the map's peak).

    Shape:
        x: (B, C, H, W); cls: (B,). Returns (B, h, w) float64.
    """
    exact = copy.deepcopy(model).double().eval()
    return torch.stack(
        [PAPER[method](exact, x[i : i + 1].double(), int(cls[i]), layer) for i in range(len(x))]
    )


# pytorch-grad-cam has no CAM: its Grad-CAM at the last block of a GAP network is ReLU(CAM), normalised
LIBRARY = {"CAM": "GradCAM", "Grad-CAM": "GradCAM", "Grad-CAM++": "GradCAMPlusPlus", "Score-CAM": "ScoreCAM",
           "Layer-CAM": "LayerCAM", "XGrad-CAM": "XGradCAM", "Eigen-CAM": "EigenCAM"}  # fmt: skip


def library_maps(
    method: str, model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str
) -> torch.Tensor:
    """pytorch-grad-cam's maps at the layer's resolution, in its normalisation (see library_normalise).

    Shape:
        x: (B, C, H, W); cls: (B,). Returns (B, h, w) float32.
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    extractor = getattr(pytorch_grad_cam, LIBRARY[method])(model, [model.get_submodule(layer)])
    extractor.batch_size = 512  # Score-CAM's masked images per forward pass
    # no resize: the maps stay at the layer's resolution
    extractor.get_target_width_height = lambda _x: None
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Score-CAM's progress bars
            out = extractor(x, [ClassifierOutputTarget(int(c)) for c in cls])
    finally:
        extractor.activations_and_grads.release()
    return torch.from_numpy(out)


def library_normalise(maps: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's scaling of each map, (M - min M) / (1e-7 + max(M - min M)), applied twice as
    it does (once per target layer, once after averaging the layers).

    Shape:
        maps: (B, h, w) -> (B, h, w) float32.
    """
    m = maps.double()
    for _ in range(2):
        m = m - m.amin(dim=(1, 2), keepdim=True)
        m = m / (1e-7 + m.amax(dim=(1, 2), keepdim=True))
    return m.float()


def ours_in_library_convention(
    method: str, model: nn.Module, x: torch.Tensor, cls: torch.Tensor, layer: str
) -> torch.Tensor:
    """vizcore's raw maps computed with pytorch-grad-cam's conventions, where they differ (each
    named in the method's docstring): CAM through a ReLU (grad-cam has no CAM; its Grad-CAM at the
    last block of a GAP network is ReLU(CAM) / (h w)); 1e-6 in the denominator of Grad-CAM++'s
    alpha; Score-CAM's masks upsampled with align_corners=True. Eigen-CAM's sign is compared apart
    (:func:`eigen_in_library_sign`).

    Shape:
        x: (B, C, H, W); cls: (B,). Returns (B, h, w).
    """
    from vizcore.explain.layers import layer_gradients
    from vizcore.explain.methods import explain, grad_cam_pp
    from vizcore.explain.score_cam import score_cam

    if method == "CAM":
        return explain(model, x, cls, "CAM", layer).low.clamp_min(0)
    if method == "Grad-CAM++":
        return grad_cam_pp(*layer_gradients(model, x, cls, layer), eps=1e-6)
    if method == "Score-CAM":
        return score_cam(align_corners=True)(model, x, cls, layer)
    return explain(model, x, cls, method, layer).low


def eigen_in_library_sign(projection: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """ReLU(+p) or ReLU(-p) per image, whichever is closer to pytorch-grad-cam's Eigen-CAM map (it
    keeps the sign its SVD returns).

    Shape:
        projection: (B, h, w) vizcore's signed projection; theirs: (B, h, w). Returns (B, h, w).
    """
    both = torch.stack([F.relu(projection), F.relu(-projection)])  # (2, B, h, w)
    gaps = torch.stack(
        [(library_normalise(m) - theirs).abs().amax(dim=(1, 2)) for m in both]
    )  # (2, B)
    return both[gaps.argmin(0), torch.arange(len(projection))]
