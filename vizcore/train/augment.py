"""Batch augmentations of the training loop, drawn from a CPU generator so a run is reproducible."""

from __future__ import annotations

import torch


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by a random integer offset in [-max_shift, max_shift], zero fill.

    Shape:
        x: (B, C, H, W) -> (B, C, H, W).
    """
    b, _, h, w = x.shape
    pad = torch.nn.functional.pad(x, (max_shift,) * 4)
    off = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=gen).to(x.device)  # CPU generator: reproducible
    ar = torch.arange(max(h, w), device=x.device)
    rows = (off[:, 0, None] + ar[:h])[:, :, None]  # (B, H, 1)
    cols = (off[:, 1, None] + ar[:w])[:, None, :]  # (B, 1, W)
    bidx = torch.arange(b, device=x.device)[:, None, None]
    # advanced indexing gathers every image's own window: (B, H, W, C) -> (B, C, H, W)
    return pad.permute(0, 2, 3, 1)[bidx, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_invert(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Invert the intensities of each image (``1 - x``, for images in [0, 1]) with probability ``prob``.

    Shape:
        x: (B, C, H, W) -> (B, C, H, W).
    """
    flip = (torch.rand(len(x), generator=gen) < prob).to(x.device)  # CPU generator: reproducible
    return torch.where(flip[:, None, None, None], 1.0 - x, x)
