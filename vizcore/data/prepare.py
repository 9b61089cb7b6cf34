"""A user's image brought to a model's input by a list of small steps, each saying what it did.

Any PNG/JPEG, colour or grey, any size; the page shows before/after with the steps in words. Only
the header is read before the size check, so a decompression bomb is refused before PIL decodes a
pixel; 16-bit grey is scaled to 8 bits, not clipped.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from vizcore.core.registry import Registry
from vizcore.core.uploads import check_upload_size
from vizcore.data.images import PIL_READ_ERRORS as _PIL_READ_ERRORS
from vizcore.data.images import eight_bit, to_shape

if TYPE_CHECKING:
    from PIL import Image

IMAGE_FORMATS = ("PNG", "JPEG")
MAX_IMAGE_PIXELS = 50_000_000  # larger is refused before decoding (a "decompression bomb")
WORK_SIZE = 512  # big photos are shrunk to this longest side first; the model sees far less

@dataclass
class Prepared:
    """An uploaded image before and after preprocessing.

    Shape:
        original: (H0, W0, 3) uint8 as uploaded (alpha flattened); tensor: (1, C, H, W) in [0, 1].
    """

    name: str
    original: np.ndarray
    tensor: torch.Tensor
    steps: list[str] = field(default_factory=list)
    inverted: bool = False

    @property
    def model_view(self) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8: what the model sees, for display."""
        x = (self.tensor[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        return x[..., 0] if x.shape[-1] == 1 else x


@dataclass(frozen=True)
class ImageOptions:
    """invert: None = automatic (dark-on-light images for grey models); frame: centre the
    digit in a 20/28 box like MNIST (grey models only; None = automatic)."""

    invert: bool | None = None
    frame: bool | None = None


# A step takes (H, W, C) floats in [0, 1], the target (C, H, W) and the options, and returns the
# new array and a sentence saying what it did (None when it did nothing).
Step = Callable[[np.ndarray, tuple[int, int, int], ImageOptions], tuple[np.ndarray, str | None]]
STEPS: Registry[Step] = Registry("preprocessing step")


def _open_image(data: bytes, name: str) -> Image.Image:
    """The image with only its header read, refused before any pixel is decoded when it is
    not PNG/JPEG or declares more than MAX_IMAGE_PIXELS (a "decompression bomb")."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL warns from 89M pixels and raises from twice that, both inside Image.open and
            # past MAX_IMAGE_PIXELS; as errors they reach the message below, not the browser
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # lazy: reads the header, decodes nothing
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(
            f"{name} is refused before decoding: it declares more than the {MAX_IMAGE_PIXELS:,} "
            f"pixels vizcore decodes ({e})"
        ) from None
    except UnidentifiedImageError:
        raise ValueError(f"{name} is not an image PIL can read") from None
    except _PIL_READ_ERRORS as e:
        raise ValueError(
            f"{name} is truncated or damaged: PIL cannot read its header ({e})"
        ) from None
    if img.format not in IMAGE_FORMATS:
        raise ValueError(f"{name} is a {img.format} image; upload PNG or JPEG")
    if img.width * img.height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{name} is refused before decoding: it is {img.width}x{img.height} = "
            f"{img.width * img.height:,} pixels, more than the {MAX_IMAGE_PIXELS:,} vizcore decodes"
        )
    return img


def _decode(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """(H, W, 3) uint8, EXIF-rotated, transparency filled with white; refuses non-PNG/JPEG."""
    from PIL import Image, ImageOps

    check_upload_size(data, name)
    img = _open_image(data, name)
    notes = [f"read {img.format} {img.width}x{img.height}, mode {img.mode}"]
    try:
        img.load()  # the pixels, decoded here and only here
        img = ImageOps.exif_transpose(img)  # reads the EXIF block, which can be damaged too
    except _PIL_READ_ERRORS as e:
        raise ValueError(
            f"{name} is truncated or damaged: PIL cannot decode its pixels ({e})"
        ) from None
    img, note = eight_bit(img)
    notes += [note] if note else []
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # a drawing on a transparent canvas: transparency counts as paper (white)
        base = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(base, img.convert("RGBA"))
        notes.append("filled the transparent background with white")
    if max(img.size) > WORK_SIZE:
        img.thumbnail((WORK_SIZE, WORK_SIZE), Image.LANCZOS)
    return np.asarray(img.convert("RGB")), notes


def _border(x: np.ndarray) -> np.ndarray:
    """Median colour of the outermost pixels: the background of a centred object. (C,)"""
    edge = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    return np.median(edge, axis=0)


@STEPS.register("channels")
def _channels(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    grey = bool(np.allclose(x[..., 0], x[..., 1], atol=2 / 255) and np.allclose(x[..., 1], x[..., 2], atol=2 / 255))
    if shape[0] == 1:
        # ITU-R BT.601 luminance, as vizcore.data.domains.to_shape and PIL's convert("L")
        y = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return y[..., None], None if grey else "converted colour to grey (BT.601 luminance)"
    return x, "kept the grey image, as three equal RGB channels" if grey else None


def _wants_invert(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> bool:
    if opts.invert is not None:
        return opts.invert
    # MNIST-style grey models learned light strokes on a dark background
    return shape[0] == 1 and float(_border(x).mean()) > 0.5


@STEPS.register("invert")
def _invert(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    if not _wants_invert(x, shape, opts):
        return x, None
    why = "chosen" if opts.invert else "the image is dark-on-light; MNIST digits are light-on-dark"
    return 1.0 - x, f"inverted the image ({why})"


@STEPS.register("contrast")
def _contrast(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    if shape[0] != 1:
        return x, None
    lo, hi = float(np.percentile(x, 1)), float(np.percentile(x, 99.5))
    if hi - lo < 1e-3 or (lo < 0.02 and hi > 0.98):
        return x, None
    # a photographed page is grey, not black: map its background to 0 and its ink to 1, like MNIST
    return np.clip((x - lo) / (hi - lo), 0, 1), f"stretched the contrast (grey levels {lo:.2f}–{hi:.2f} → 0–1)"


def _square(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    s = max(h, w)
    out = np.empty((s, s, x.shape[2]), dtype=x.dtype)
    out[:] = fill
    out[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = x
    return out


def _resize(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float()
    return to_shape(t, (x.shape[2], *hw))[0].permute(1, 2, 0).numpy()


def _mass_centred(digit: np.ndarray, background: np.ndarray, hw: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner that puts the digit's centre of ink mass at the frame's centre (kept inside)."""
    ink = np.abs(digit - background).sum(axis=2)
    total = ink.sum()
    if total <= 0:
        return (hw[0] - digit.shape[0]) // 2, (hw[1] - digit.shape[1]) // 2
    cy = float((ink.sum(1) * np.arange(digit.shape[0])).sum() / total)
    cx = float((ink.sum(0) * np.arange(digit.shape[1])).sum() / total)
    top = int(round((hw[0] - 1) / 2 - cy))
    left = int(round((hw[1] - 1) / 2 - cx))
    return min(max(top, 0), hw[0] - digit.shape[0]), min(max(left, 0), hw[1] - digit.shape[1])


def _frames(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> bool:
    return opts.frame if opts.frame is not None else shape[0] == 1


@STEPS.register("size")
def _size(x: np.ndarray, shape: tuple[int, int, int], opts: ImageOptions) -> tuple[np.ndarray, str | None]:
    h0, w0 = x.shape[:2]
    _, h, w = shape
    ink = np.abs(x - _border(x)).max(axis=2) > 0.25 if _frames(x, shape, opts) else None
    if ink is not None and ink.any():
        # MNIST: the digit's box fitted into 20x20 (of 28), aspect kept, centred
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        crop = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        inner = (max(1, round(h * 20 / 28)), max(1, round(w * 20 / 28)))
        digit = _resize(_square(crop, _border(x)), inner)
        top, left = _mass_centred(digit, _border(x), (h, w))
        out = np.empty((h, w, x.shape[2]), dtype=np.float32)
        out[:] = _border(x)
        out[top : top + inner[0], left : left + inner[1]] = digit
        return out, (
            f"cropped to the digit ({crop.shape[1]}x{crop.shape[0]} of {w0}x{h0}), fitted into "
            f"{inner[1]}x{inner[0]} keeping its aspect ratio and placed in {w}x{h} with its centre of "
            "mass in the middle, as MNIST digits are"
        )
    if (h0, w0) == (h, w):
        return x, None
    sq = _square(x, _border(x)) if h0 != w0 and h == w else x
    pad = f"padded to a {sq.shape[1]}x{sq.shape[0]} square with the background colour, " if sq is not x else ""
    return _resize(sq, (h, w)), f"{pad}resized {sq.shape[1]}x{sq.shape[0]} → {w}x{h} (antialiased bilinear)"


def prepare_image(
    data: bytes, shape: Sequence[int], name: str = "image", options: ImageOptions | None = None
) -> Prepared:
    """Bring an uploaded PNG/JPEG to a model's input, saying what was done at each step.

    Args:
        data: the file's bytes.
        shape: the model's input (C, H, W), C in {1, 3}.
        name: shown in messages.
        options: inversion and MNIST framing; None means automatic.

    Raises:
        ValueError: not a PNG/JPEG, more than MAX_IMAGE_PIXELS (refused before decoding), or
            truncated or damaged; the message names the file.
    """
    c, h, w = (int(s) for s in shape)
    options = options or ImageOptions()
    rgb, notes = _decode(data, name)
    x = rgb.astype(np.float32) / 255.0  # (H, W, 3)
    inverted = False
    for step_name in STEPS:
        x, note = STEPS.get(step_name)(x, (c, h, w), options)
        if note:
            notes.append(note)
            inverted |= step_name == "invert"
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None].clamp_(0, 1)
    return Prepared(name, rgb, tensor, notes, inverted)
