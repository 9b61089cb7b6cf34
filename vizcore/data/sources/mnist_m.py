"""``mnist-m``: the bundled MNIST digits blended with crops of colour photographs, as in the DANN
paper (Ganin et al. 2016). The photos are scikit-learn's two sample photos, or a folder of one's
own (``root/mnistm_photos`` or ``$VIZCORE_MNISTM_PHOTOS``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from vizcore.core.errors import DataUnavailable
from vizcore.data.domains import CACHE_SIZE, DIGITS, DomainSpec, _cached, _Raw, _Request
from vizcore.data.sources.digits import DIGIT, _mnist_digits
from vizcore.data.sources.folders import _image_files
from vizcore.data.splits import seeded_rng

PHOTOS_ENV = "VIZCORE_MNISTM_PHOTOS"
PHOTOS_SUBDIR = "mnistm_photos"

# MNIST-M photo scales: a fixed ladder stands in for a continuous factor so each photo is resized
# only a handful of times, after which every crop is a plain slice.
MNISTM_SCALES = tuple(float(s) for s in np.linspace(0.25, 1.0, 16))


def blend_mnist_m(digit: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """MNIST-M blend of Ganin et al. (2016): ``|patch - digit|`` per channel.

    Args:
        digit: Grey digit in [0, 1]. Shape: (..., 1, H, W).
        patch: Colour crop in [0, 1]. Shape: (..., 3, H, W).

    Returns:
        float32 in [0, 1]. Shape: (..., 3, H, W).
    """
    return (patch.to(torch.float32) - digit.to(torch.float32)).abs()


def _photos_dir(req: _Request) -> Path | None:
    """Custom MNIST-M photos: ``root/mnistm_photos`` if ``root`` was given and has it, else
    ``$VIZCORE_MNISTM_PHOTOS``; None means scikit-learn's two sample photos."""
    if req.root_given and (req.root / PHOTOS_SUBDIR).is_dir():
        return req.root / PHOTOS_SUBDIR
    env = os.environ.get(PHOTOS_ENV)
    if env:
        return Path(env).expanduser()
    return None


@functools.lru_cache(maxsize=4)
def _photo_ladder(photos_dir: str | None) -> tuple[tuple[np.ndarray, ...], ...]:
    """Each photo resized to every scale of ``MNISTM_SCALES`` that still fits a 28x28 crop.

    Returns:
        One tuple per photo of uint8 arrays, each Shape: (h, w, 3).
    """
    from PIL import Image

    if photos_dir is None:
        from sklearn.datasets import load_sample_images

        photos = [np.asarray(p, dtype=np.uint8) for p in load_sample_images().images]
    else:
        folder = Path(photos_dir)
        if not folder.is_dir():
            raise DataUnavailable(
                f"MNIST-M photo folder {folder} does not exist; unset ${PHOTOS_ENV} to use "
                "scikit-learn's sample photos, or point it at a folder of .jpg/.png images"
            )
        photos = [np.asarray(Image.open(p).convert("RGB")) for p in _image_files(folder)]
    ladders = []
    for photo in photos:
        h, w = photo.shape[:2]
        img = Image.fromarray(photo)
        sizes = {(round(w * s), round(h * s)) for s in MNISTM_SCALES}
        # PIL's bilinear resize widens its filter when shrinking, so it is antialiased.
        ladder = tuple(
            np.asarray(img.resize(sz, Image.BILINEAR)) for sz in sorted(sizes) if min(sz) >= DIGIT
        )
        if ladder:
            ladders.append(ladder)
    if not ladders:
        where = photos_dir or "scikit-learn's sample images"
        raise DataUnavailable(
            f"no usable MNIST-M photos in {where}: need .jpg/.png images of at least 28x28"
        )
    return tuple(ladders)


def _mnist_m_patches(
    n: int, rng: np.random.Generator, ladders: tuple[tuple[np.ndarray, ...], ...]
) -> np.ndarray:
    """Random 28x28 crops: a random photo, a random scale of it, a random place.

    Returns:
        uint8 patches. Shape: (n, 3, 28, 28).
    """
    photo = rng.integers(0, len(ladders), size=n)
    u_scale, u_y, u_x = rng.random((3, n))
    n_levels = np.array([len(lad) for lad in ladders])
    level = np.minimum((u_scale * n_levels[photo]).astype(np.int64), n_levels[photo] - 1)
    out = np.empty((n, DIGIT, DIGIT, 3), dtype=np.uint8)
    ar = np.arange(DIGIT)
    for p, ladder in enumerate(ladders):
        for lv, img in enumerate(ladder):
            sel = np.flatnonzero((photo == p) & (level == lv))
            if sel.size == 0:
                continue
            h, w = img.shape[:2]
            y0 = (u_y[sel] * (h - DIGIT + 1)).astype(np.int64)
            x0 = (u_x[sel] * (w - DIGIT + 1)).astype(np.int64)
            out[sel] = img[y0[:, None, None] + ar[None, :, None], x0[:, None, None] + ar]
    return out.transpose(0, 3, 1, 2).copy()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _mnist_m_raw(split: str, seed: int, photos_dir: str | None) -> _Raw:
    digits, labels = _mnist_digits(split)
    patches = _mnist_m_patches(len(digits), seeded_rng(seed, "mnist-m", split), _photo_ladder(photos_dir))
    # |patch - digit| in integers equals blend_mnist_m on the /255 values, exactly.
    blended = np.abs(patches.astype(np.int16) - digits[:, None].astype(np.int16)).astype(np.uint8)
    source = (
        f"the photos in {photos_dir}"
        if photos_dir
        else "scikit-learn's sample photos china.jpg and flower.jpg"
    )
    return _Raw(
        images=torch.from_numpy(blended),
        labels=torch.from_numpy(labels),
        classes=DIGITS,
        provenance=(
            f"MNIST-M-style (Ganin et al. 2016): each bundled real MNIST {split} digit blended as "
            f"|patch - digit| with a random 28x28 crop of {source}, each photo shrunk by a random "
            f"factor in [0.25, 1] first; patch seed {seed}."
        ),
    )


def _build_mnist_m(req: _Request) -> _Raw:
    photos = _photos_dir(req)
    return _cached(_mnist_m_raw, req)(
        req.split, req.seed, None if photos is None else str(photos.resolve())
    )


MNIST_M = DomainSpec(
    name="mnist-m",
    description="MNIST digits blended with colour photo crops (DANN's MNIST-M recipe)",
    native_shape=(3, DIGIT, DIGIT),
    offline=True,
    num_classes=10,
    classes=DIGITS,
    generated=True,
    build=_build_mnist_m,
)
