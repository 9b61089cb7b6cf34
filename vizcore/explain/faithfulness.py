"""Whether a saliency map is *faithful*: does the model's confidence follow the pixels it marks?

All scores perturb the images in the order a map ranks their pixels and read the class
probability (softmax) of the class the map explains; every perturbed image of every image and
step is built at once and passed through the model in large batches (no per-image loop).

- **Deletion / insertion AUC** (RISE, Petsiuk et al. 2018): remove the most salient pixels
  first (set to 0, the black background) in ``steps`` equal steps, or insert them first into a
  blurred copy; the area under the probability curve over the removed/inserted fraction.
  Deletion: lower is more faithful; insertion: higher.
- **ROAD** (Rong et al. 2022, remove and debias): removed pixels are filled by *noisy linear
  imputation* from their neighbours (each removed pixel the weighted mean of its 8 neighbours,
  4-neighbours weight 1/6, diagonals 1/12, solved for all removed pixels jointly, plus Gaussian
  noise), so that the removal itself leaks no shape. MoRF: most relevant first (lower is
  better); LeRF: least relevant first (higher is better); averaged over ``ROAD_PERCENTS``.
- **Average drop / increase in confidence** (Chattopadhay et al. 2018): the image multiplied by
  its min-max normalised map; the mean relative drop max(0, p - p') / p (%, lower is better) and
  the share of images whose confidence rises (%, higher is better).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vizcore.explain.cam import normalize_maps

ROAD_PERCENTS = (10, 30, 50, 70, 90)
ROAD_NOISE = 0.01  # std of the noise added to imputed pixels (the ROAD paper's)
DEFAULT_STEPS = 10
# images per forward pass: a CPU runs LeNet-GAP about 1.8x faster per image in batches of 256 than
# of 1,024 (the activations stay in cache); perturbed images are built ``chunk`` at a time
FORWARD_BATCH = 256
# 3x3 neighbour weights of the ROAD imputation
_NEIGHBOURS = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])


def salience_rank(maps: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel in its map, 0 for the most salient (ties broken by position).

    Shape:
        maps: (N, H, W) -> (N, H*W) int64.
    """
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order).contiguous())
    return rank


def class_probs(
    model: nn.Module, images: torch.Tensor, class_idx: torch.Tensor, batch_size: int = FORWARD_BATCH
) -> torch.Tensor:
    """Softmax probability of ``class_idx`` for many images, in big batches: (M,)."""
    dev = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            p = model(images[i : i + batch_size].to(dev)).float().softmax(1)
            out.append(p.gather(1, class_idx[i : i + batch_size, None].to(dev))[:, 0].cpu())
    return torch.cat(out)


def blur(images: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian blur per channel (RISE's insertion start), reflect-padded: same shape."""
    radius = int(min(3 * sigma, (min(images.shape[-2:]) - 1) // 2))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    x = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


# (indices of the images, mask (B, 1, H, W) True where perturbed) -> perturbed images (B, C, H, W)
MakeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# fraction of the work done -> None, told between chunks; it may raise to stop the work there
Progress = Callable[[float], None]


def _curves(
    model: nn.Module,
    shape: tuple[int, ...],
    rank: torch.Tensor,
    class_idx: torch.Tensor,
    fractions: torch.Tensor,
    make: MakeFn,
    chunk: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Probability of each image's class after perturbing its pixels ranked below each fraction.

    All (image, step) pairs are flattened into one list, then built by ``make`` and scored
    ``chunk`` at a time: one forward pass per chunk, whatever the number of images. ``progress``
    hears the fraction done before each chunk (and may raise to stop the work there).

    Shape:
        shape: (N, C, H, W) of the images; rank: (N, H*W); fractions: (S,). Returns (N, S).
    """
    n, _, h, w = shape
    s = len(fractions)
    counts = (fractions * h * w).round().long()  # (S,)
    probs = torch.empty(n * s)
    for i in range(0, n * s, chunk):
        if progress is not None:
            progress(i / (n * s))
        idx = torch.arange(i, min(i + chunk, n * s))
        img, step = idx // s, idx % s
        mask = (rank[img] < counts[step][:, None]).view(-1, 1, h, w)
        probs[idx] = class_probs(model, make(img, mask), class_idx[img])
    return probs.view(n, s)


def _part(progress: Progress | None, k: int, parts: int) -> Progress | None:
    """``progress`` for the k-th of ``parts`` equal parts of a piece of work."""
    if progress is None:
        return None
    return lambda f: progress((k + f) / parts)


def auc(curve: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under each curve over the fractions: (N, S) -> (N,)."""
    return torch.trapezoid(curve, fractions, dim=1)


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    class_idx: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    chunk: int = 1024,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """RISE's deletion and insertion curves and AUCs of each image (see the module doc).

    Shape:
        images: (N, C, H, W); maps: (N, H, W); class_idx: (N,). Returns deletion, insertion (N,)
        AUCs and deletion_curve, insertion_curve (N, steps + 1) at fractions 0, 1/steps, ..., 1.
    """
    fractions = torch.linspace(0, 1, steps + 1)
    rank = salience_rank(maps)
    blurred = blur(images)
    shape = tuple(images.shape)
    dele = _curves(model, shape, rank, class_idx, fractions,
                   lambda i, m: images[i].masked_fill(m, 0.0), chunk, _part(progress, 0, 2))  # fmt: skip
    ins = _curves(model, shape, rank, class_idx, fractions,
                  lambda i, m: torch.where(m, images[i], blurred[i]), chunk, _part(progress, 1, 2))  # fmt: skip
    return {"deletion": auc(dele, fractions), "insertion": auc(ins, fractions),
            "deletion_curve": dele, "insertion_curve": ins}  # fmt: skip


def impute(
    images: torch.Tensor, mask: torch.Tensor, noise: float = ROAD_NOISE, seed: int = 0, rtol: float = 1e-3
) -> torch.Tensor:
    """ROAD's noisy linear imputation: every removed pixel becomes the weighted mean of its
    neighbours (removed or not), solved jointly (to a relative residual ``rtol``) for all removed pixels of all images at once by
    conjugate gradients, plus Gaussian noise; pixels not removed are returned unchanged.

    The system per image and channel is ``(D - W_uu) x_u = W_uk x_k`` (D: the summed weights of a
    pixel's neighbours inside the image; W: the 3x3 neighbour weights), symmetric positive
    definite wherever a removed region touches a kept pixel.

    Shape:
        images: (B, C, H, W); mask: (B, 1, H, W) bool, True where removed. Returns (B, C, H, W).
    """
    b, c, h, w = images.shape
    k = _NEIGHBOURS.to(images.dtype).view(1, 1, 3, 3).expand(c, 1, 3, 3).contiguous()
    m = mask.to(images.dtype).expand(b, c, h, w)

    def conv(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, k, padding=1, groups=c)

    degree = conv(torch.ones(1, c, h, w, dtype=images.dtype))

    def apply(v: torch.Tensor) -> torch.Tensor:
        return m * (degree * v - conv(m * v))

    rhs = m * conv((1 - m) * images)
    x = torch.zeros_like(images)
    r = rhs.clone()
    p = r.clone()
    rr = (r * r).sum((2, 3), keepdim=True)
    # the default relative residual (1e-3) is far below the imputation noise (ROAD_NOISE)
    tol = rtol**2 * (rhs * rhs).sum((2, 3), keepdim=True).clamp_min(1e-30)
    for _ in range(h * w if rtol < 1e-6 else 2 * max(h, w)):
        if bool((rr <= tol).all()):
            break
        ap = apply(p)
        alpha = rr / (p * ap).sum((2, 3), keepdim=True).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = (r * r).sum((2, 3), keepdim=True)
        p = r + (rr_new / rr.clamp_min(1e-30)) * p
        rr = rr_new
    gen = torch.Generator().manual_seed(seed)
    x = x + noise * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    return torch.where(m.bool(), x, images)


def road(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    class_idx: torch.Tensor,
    percents: tuple[int, ...] = ROAD_PERCENTS,
    chunk: int = 1024,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """ROAD curves: class probability after imputing the ``percents`` most (MoRF) or least (LeRF)
    relevant pixels of each image.

    Shape:
        images: (N, C, H, W); maps: (N, H, W). Returns morf, lerf: (N, len(percents)).
    """
    fractions = torch.tensor(percents, dtype=torch.float32) / 100
    shape = tuple(images.shape)

    def make(i: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return impute(images[i], m)

    morf = _curves(model, shape, salience_rank(maps), class_idx, fractions, make, chunk, _part(progress, 0, 2))
    lerf = _curves(model, shape, salience_rank(-maps), class_idx, fractions, make, chunk, _part(progress, 1, 2))
    return {"morf": morf, "lerf": lerf}


def confidence_change(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, class_idx: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Chattopadhay et al.'s average drop and increase in confidence, per image.

    Shape:
        images: (N, C, H, W); maps: (N, H, W). Returns drop (N,) = max(0, p - p') / p and
        increase (N,) bool = p' > p, with p' the probability on ``image * normalised map``.
    """
    p = class_probs(model, images, class_idx)
    q = class_probs(model, images * normalize_maps(maps)[:, None], class_idx)
    return {"drop": (p - q).clamp_min(0) / p.clamp_min(1e-12), "increase": q > p}


FAITHFULNESS_COLUMNS = {
    "deletion": ("deletion AUC", "lower"),
    "insertion": ("insertion AUC", "higher"),
    "road_morf": ("ROAD MoRF", "lower"),
    "road_lerf": ("ROAD LeRF", "higher"),
    "avg_drop": ("average drop %", "lower"),
    "avg_increase": ("increase in confidence %", "higher"),
}


@dataclass(frozen=True)
class Faithfulness:
    """Faithfulness of one set of maps, averaged over its images (see FAITHFULNESS_COLUMNS)."""

    deletion: float
    insertion: float
    road_morf: float
    road_lerf: float
    avg_drop: float
    avg_increase: float
    n: int


def per_image(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    class_idx: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    percents: tuple[int, ...] = ROAD_PERCENTS,
    chunk: int = 1024,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Every faithfulness score of each image (keys of FAITHFULNESS_COLUMNS, each (N,); the
    percentages in percent), all perturbations batched; ``progress`` hears the fraction done
    between chunks of the perturbed images.

    Shape:
        images: (N, C, H, W) in [0, 1]; maps: (N, H, W) at the input resolution; class_idx: (N,).
    """
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"maps of shape {tuple(maps.shape)} do not fit images {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    try:
        di = deletion_insertion(model, images, maps, class_idx, steps, chunk, _part(progress, 0, 2))
        rd = road(model, images, maps, class_idx, percents, chunk, _part(progress, 1, 2))
        cc = confidence_change(model, images, maps, class_idx)
    finally:
        model.train(was_training)
    # ROAD: each image's mean over the removal percentages (every image has all of them)
    return {"deletion": di["deletion"], "insertion": di["insertion"], "road_morf": rd["morf"].mean(dim=1),
            "road_lerf": rd["lerf"].mean(dim=1), "avg_drop": 100 * cc["drop"],
            "avg_increase": 100 * cc["increase"].float()}  # fmt: skip


def faithfulness(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, class_idx: torch.Tensor, **options: Any
) -> Faithfulness:
    """The mean over the images of every score of :func:`per_image` (``options``: its steps,
    percents, chunk and progress)."""
    scores = per_image(model, images, maps, class_idx, **options)
    return Faithfulness(**{k: v.mean().item() for k, v in scores.items()}, n=len(images))
