"""Images as the domains hold them: one decoder of image files for both data paths, and the
conversion of images to another channel count and size, with what it did in words.

:func:`decode_image` is the one decoder of the in-memory and the streamed data path, so an image
reads the same in both; :func:`image_header` reads a file's mode and size without decoding a
pixel, and refuses a file PIL cannot read (listing a folder uses it). :func:`to_shape` brings
loaded images to a model's (C, H, W); :func:`_conversions` says what that did, for a provenance.
"""

from __future__ import annotations

import struct
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
# RGB -> grey weights of ITU-R BT.601, the ones PIL's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)


def to_shape(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Convert images to another channel count and size.

    Grey -> RGB repeats the channel; RGB -> grey takes BT.601 luminance (0.299, 0.587, 0.114);
    the size changes by antialiased bilinear resampling.

    Args:
        images: Values in [0, 1]. Shape: (N, C, H, W) with C in {1, 3}.
        shape: Target (C, H, W), C in {1, 3}.

    Returns:
        float32 images in [0, 1]. Shape: (N, *shape). The input itself when it already is
        float32 of that shape.

    Raises:
        ValueError: a 4-D input or a channel count of 1 or 3 is required.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    c_out, h_out, w_out = _check_shape(shape)
    x = images.to(torch.float32)
    c_in = x.shape[1]
    if c_in not in (1, 3):
        raise ValueError(f"cannot convert {c_in}-channel images; expected 1 or 3 channels")
    if c_in == 1 and c_out == 3:
        x = x.repeat(1, 3, 1, 1)
    elif c_in == 3 and c_out == 1:
        weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x * weights).sum(dim=1, keepdim=True)
    if tuple(x.shape[2:]) != (h_out, w_out):
        x = F.interpolate(
            x, size=(h_out, w_out), mode="bilinear", align_corners=False, antialias=True
        )
    if x is images:
        return images
    # Weights are non-negative, so this only trims float rounding.
    return x.clamp_(0.0, 1.0)


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape!r}")
    c, h, w = (int(s) for s in shape)
    if c not in (1, 3):
        raise ValueError(f"shape must have 1 or 3 channels, got {c}")
    return c, h, w


SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I")
# PIL modes that decode as grey; every other mode counts as colour (a palette included).
GREY_MODES = ("1", "L", "LA", "La", "F", *SIXTEEN_BIT_GREY)
# PIL modes with transparency, which the conversion to grey or RGB drops.
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
# What PIL raises for a header or pixels it cannot read (a cut-off or damaged file).
PIL_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


def eight_bit(img: Image.Image) -> tuple[Image.Image, str | None]:
    """A 16-bit grey image as 8-bit grey ("L"), value / 257 rounded; any other image unchanged.

    PIL's own convert clips, so every value from 255 up became white and a 16-bit image came
    out nearly binary. Dividing by 257 maps the 16-bit range onto the 8-bit one exactly (0 -> 0,
    257k -> k, 65535 -> 255), so a pixel keeps the brightness its file gives it, as in an 8-bit
    file. Stretching by the image's own range instead would pass off a nearly flat image's
    noise as full contrast; the "contrast" step of vizcore.data.prepare stretches grey images for grey
    models, and says so. Mode "I" (32-bit) is how PIL may hand over a 16-bit PNG, clipped to
    0..65535 here.
    """
    from PIL import Image

    if img.mode not in SIXTEEN_BIT_GREY:
        return img, None
    x = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)
    # rounds half up, never a tie: v / 257 = k + 1/2 would need the even 2v to be 257(2k + 1)
    y = np.floor(x / 257 + 0.5).astype(np.uint8)
    return Image.fromarray(y), f"scaled 16-bit grey to 8 bits (value / 257, {img.mode})"


class DecompressionBomb(ValueError):
    """An image that declares more pixels than PIL decodes (``Image.MAX_IMAGE_PIXELS``)."""


def image_header(path: str | Path | BinaryIO) -> tuple[str, tuple[int, int]]:
    """The PIL mode and (H, W) of an image file, read without decoding a pixel.

    A PNG's chunks are also walked to its end with their checksums checked (PIL's ``verify``:
    read, not decompressed), so a cut-off or damaged PNG is refused here, not when its pixels
    are decoded. Other formats are judged by their header alone.

    Raises:
        ValueError: why the file cannot be read: not an image PIL opens; truncated or damaged;
            or (:class:`DecompressionBomb`) more pixels than PIL's ``Image.MAX_IMAGE_PIXELS``,
            refused before anything is decompressed.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns above MAX_IMAGE_PIXELS and raises above twice that: both refuse the file
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                mode, (w, h) = im.mode, im.size
                im.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecompressionBomb(f"refused unread as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ValueError("not an image PIL can read") from None
    except PIL_READ_ERRORS as e:
        raise ValueError(f"truncated, damaged or unreadable ({e})") from None
    return mode, (h, w)


def decode_image(path: str, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file as uint8 (H, W, C) at ``shape`` = (C, H, W): 16-bit grey scaled to 8 bits
    (:func:`eight_bit`), then grey or RGB, bilinear resize.

    The one decoder of both data paths, so an image reads the same in memory and streamed.

    Raises:
        OSError: the pixels cannot be decoded; the message names the file. Listing a folder
            already leaves out files whose header or PNG structure is bad (:func:`image_header`),
            so this is a file broken past what those show (a cut-off JPEG): both paths stop on it
            alike, rather than one skipping what the other reads.
    """
    from PIL import Image

    c, h, w = shape
    try:
        with Image.open(path) as im:
            img, _ = eight_bit(im)
            # np.array: a writable copy (PIL's buffer is read-only, which torch.from_numpy warns about)
            return np.array(img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)).reshape(h, w, c)
    except (*PIL_READ_ERRORS, Image.DecompressionBombError) as err:
        raise OSError(f"image {path} could not be read: {err}") from None


def channels_first(hwc: np.ndarray) -> torch.Tensor:
    """(..., H, W, C) -> a contiguous (..., C, H, W) tensor with the ordinary strides.

    A permuted copy of a grey image keeps an odd stride on its size-1 channel axis (numpy and
    torch both count it contiguous); convolutions then take another code path and round
    differently, so one folder read in memory and streamed would train apart. Flattening and
    viewing again gives every axis its ordinary stride.
    """
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(hwc, -1, -3)))
    return t.reshape(-1).view(t.shape)


# What decoding (or to_shape) does to an image of a PIL mode to give it ``c`` channels, besides
# resizing, in the order it happens: (does it apply to (mode, c), what it does in words).
_CONVERSIONS: tuple[tuple[Callable[[str, int], bool], str], ...] = (
    (lambda mode, c: mode in SIXTEEN_BIT_GREY, "16-bit grey scaled to 8 bits (value / 257)"),
    (lambda mode, c: mode in ALPHA_MODES, "transparency dropped"),
    (lambda mode, c: mode in GREY_MODES and c == 3, "grey→RGB (the channel repeated)"),
    (lambda mode, c: mode not in GREY_MODES and c == 1, "colour→grey (BT.601 luminance)"),
)


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _shape_text(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{'grey' if c == 1 else 'RGB'} {h}x{w}"


def _conversions(kinds: Mapping[tuple[str, tuple[int, int]], int], shape: tuple[int, int, int]) -> str:
    """What bringing images to ``shape`` did, in words, e.g. "grey→RGB (the channel repeated),
    resized 28x28→32x32 (antialiased bilinear)"; a step that touched only some images says how
    many; "nothing (already so)" when no step applied.

    Args:
        kinds: (PIL mode, (H, W)) -> how many images are stored so.
        shape: (C, H, W) they were brought to.
    """
    c, h, w = shape
    total = sum(kinds.values())

    def some(n: int) -> str:
        return "" if n == total else f" ({n:,} of {total:,} images)"

    steps = []
    for applies, what in _CONVERSIONS:
        if n := sum(k for (mode, _), k in kinds.items() if applies(mode, c)):
            steps.append(what + some(n))
    resized: Counter[tuple[int, int]] = Counter()
    for (_, size), k in kinds.items():
        if size != (h, w):
            resized[size] += k
    if resized:
        by_area = sorted(resized, key=lambda s: (s[0] * s[1], s))
        src = _hw(by_area[0]) if len(by_area) == 1 else f"{len(by_area)} sizes ({_hw(by_area[0])} to {_hw(by_area[-1])})"
        steps.append(f"resized {src}→{h}x{w} (antialiased bilinear){some(sum(resized.values()))}")
    return ", ".join(steps) or "nothing (already so)"

