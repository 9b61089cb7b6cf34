"""Class Activation Maps (Zhou et al. 2016) and localisation scores.

For a network whose last conv maps ``A`` (C, h, w) are globally averaged and then mapped
to logits by an affine head with effective weights ``W`` (K, C), the CAM of class k is
``M_k = sum_c W[k, c] * A_c`` — no ReLU, no gradients, no hooks. Spatially averaging
``M_k`` gives back the class logit minus its bias, which the tests check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vizcore.models.base import GapNet

# which class each map explains: None (the predicted one), one index for all, or one per image
ClassIndex = int | Sequence[int] | np.ndarray | torch.Tensor | None


@dataclass(frozen=True)
class CamResult:
    """CAMs of a batch of images.

    Shape:
        maps: (N, H, W) raw CAM upsampled (bilinear) to the input resolution.
        class_idx: (N,) the class each map explains.
        probs: (N, K) softmax probabilities.
    """

    maps: torch.Tensor
    class_idx: torch.Tensor
    probs: torch.Tensor

    @property
    def preds(self) -> torch.Tensor:
        return self.probs.argmax(dim=1)


def class_targets(class_idx: ClassIndex, n: int) -> torch.Tensor | None:
    """The class each of ``n`` maps explains, as one (n,) int64 tensor on the CPU.

    None stays None (the predicted class, known only after a forward pass); one index (an int,
    a 0-d or one-element array or tensor) is that class for every image; otherwise one per image.

    Shape:
        class_idx: (), (1,) or (n,). Returns (n,) or None.
    """
    if class_idx is None:
        return None
    if isinstance(class_idx, torch.Tensor):
        t = class_idx.detach().cpu()
    else:
        t = torch.as_tensor(np.asarray(class_idx))
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"class indices must be integers, not {t.dtype}")
    if t.ndim > 1 or t.numel() not in (1, n):
        shape = tuple(t.shape)
        raise ValueError(f"{shape} class indices for {n} images: give one for all or one per image")
    if (t < 0).any():
        raise ValueError(f"class indices must be non-negative, got {t.min().item()}")
    return t.reshape(-1).long().expand(n).clone()


@torch.no_grad()
def _cam_batch(model: GapNet, x: torch.Tensor, class_idx: torch.Tensor | None) -> CamResult:
    feats = model.forward_features(x)
    w, _ = model.cam_weights()  # (K, C)
    probs = feats.logits.float().softmax(dim=1)
    target = probs.argmax(dim=1) if class_idx is None else class_idx.to(probs.device)
    # (N, C) weights of each image's target class, contracted with (N, C, h, w)
    maps = torch.einsum("nc,nchw->nhw", w[target].float(), feats.conv.float())
    maps = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return CamResult(maps=maps, class_idx=target, probs=probs)


def class_activation_maps(
    model: GapNet,
    images: torch.Tensor,
    class_idx: ClassIndex = None,
    *,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> CamResult:
    """CAMs for many images, batched, on the model's device.

    Args:
        model: a GapNet (its head must collapse to ``cam_weights()``).
        images: input images in [0, 1].
        class_idx: None (predicted class), one class for all, or one class per image (see
            :func:`class_targets`).
        batch_size: images per forward pass.
        device: where to compute; defaults to the model's device.

    Shape:
        images: (N, C, H, W); class_idx: (), (1,) or (N,). Returns maps (N, H, W) on the CPU.
    """
    target = class_targets(class_idx, len(images))
    was_training = model.training
    model.eval()
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    parts: list[CamResult] = []
    try:
        for start in range(0, len(images), batch_size):
            sl = slice(start, start + batch_size)
            cls = None if target is None else target[sl]
            r = _cam_batch(model, images[sl].to(dev, non_blocking=True), cls)
            parts.append(CamResult(r.maps.cpu(), r.class_idx.cpu(), r.probs.cpu()))
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("no images to compute CAMs for")
    return CamResult(
        maps=torch.cat([p.maps for p in parts]),
        class_idx=torch.cat([p.class_idx for p in parts]),
        probs=torch.cat([p.probs for p in parts]),
    )


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map to [0, 1] for display (the CAM paper's convention).

    Shape:
        maps: (N, H, W) -> (N, H, W). A constant map becomes all zeros.
    """
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def _box_mask(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, 4) boxes (x0, y0, x1, y1), end exclusive -> (N, H, W) bool masks."""
    ys = torch.arange(h, device=boxes.device)[None, :, None]
    xs = torch.arange(w, device=boxes.device)[None, None, :]
    x0, y0, x1, y1 = (boxes[:, i, None, None] for i in range(4))
    return (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per image: does the CAM's maximum fall inside the object's box? (strict, no tolerance)

    Shape:
        maps: (N, H, W); boxes: (N, 4) (x0, y0, x1, y1) in pixels, end exclusive. Returns (N,) bool.
    """
    n, h, w = maps.shape
    flat_idx = maps.flatten(1).argmax(dim=1)
    py, px = flat_idx // w, flat_idx % w
    b = boxes.to(maps.device)
    return (px >= b[:, 0]) & (px < b[:, 2]) & (py >= b[:, 1]) & (py < b[:, 3])


def energy_in_box(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per image: share of the min-max normalised CAM's energy that lies inside the box.

    Shape:
        maps: (N, H, W); boxes: (N, 4). Returns (N,) floats in [0, 1].
    """
    m = normalize_maps(maps)
    inside = (m * _box_mask(boxes.to(m.device), *m.shape[1:])).flatten(1).sum(dim=1)
    return inside / m.flatten(1).sum(dim=1).clamp_min(1e-12)


@dataclass(frozen=True)
class LocalizationScore:
    pointing_game: float  # fraction of images whose CAM peak is inside the box
    energy_in_box: float  # mean share of CAM energy inside the box
    n: int


def localization_score(maps: torch.Tensor, boxes: torch.Tensor) -> LocalizationScore:
    """Both localisation scores averaged over a set of images."""
    return LocalizationScore(
        pointing_game=pointing_game(maps, boxes).float().mean().item(),
        energy_in_box=energy_in_box(maps, boxes).mean().item(),
        n=len(maps),
    )


def mean_cam_per_class(maps: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Average normalised CAM of the images of each class (zeros for an absent class).

    Shape:
        maps: (N, H, W); labels: (N,). Returns (K, H, W).
    """
    m = normalize_maps(maps)
    out = torch.zeros((num_classes, *m.shape[1:]))
    for k in range(num_classes):
        sel = labels == k
        if sel.any():
            out[k] = m[sel].mean(dim=0)
    return out
