"""``printed-digits``: colour digits 0-9 rendered from the fonts on this machine, 32x32 RGB, an
offline stand-in for SVHN (Netzer et al. 2011), the DANN paper's hard source for MNIST.

Each image is one digit in a random font, size, place and slant, in a random colour on a
background of another (a two-colour gradient), often with parts of neighbouring digits at its
sides as in SVHN's house-number crops, a little blur and sensor noise. It is drawn on a 64x64
canvas and averaged down to 32x32, so strokes are antialiased. Train and test are drawn from
separate random streams of a fixed seed, so every run, whatever its seed, sees the same images.

Fonts: the TrueType / OpenType files under the system font folders (``FONT_DIRS``) and, if
matplotlib is installed, its bundled ``mpl-data/fonts/ttf``; files that cannot draw ten distinct
digits (symbol and math-extension fonts) are left out. A machine with none falls back on
Pillow's built-in scalable font. More fonts, more variety: ``apt-get install fonts-dejavu-core
fonts-liberation fonts-freefont-ttf fonts-noto-core``. The fonts used are named in the
provenance, and the rendered split is cached per process keyed by the font list.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vizcore.data.domains import DIGITS, DomainSpec, _Raw
from vizcore.data.splits import seeded_rng

SIZE = 32
CANVAS = 2 * SIZE  # drawn at twice the size, then 2x2-averaged: antialiased strokes
PER_CLASS = {"train": 300, "test": 100}
RENDER_SEED = 0  # fixed: the splits are the same for every run, like a folder's
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# file-name stems of symbol and math-extension fonts whose digit code points are not digits
NOT_DIGIT_FONTS = ("cmex", "cmsy", "stixsiz", "stixnonuni", "lastresort", "symbol", "dingbat",
                   "webdings", "wingding", "opensymbol", "mathtex")  # fmt: skip
DEFAULT_FONT = "Pillow's built-in scalable font"
INSTALL_FONTS = "apt-get install fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-noto-core"

# the layout's ranges (fractions of the canvas unless said otherwise)
HEIGHT = (0.45, 0.85)  # digit height
JITTER = 0.12  # centre offset, each axis
ROTATION = 15.0  # degrees, either way
NEIGHBOUR = 0.5  # chance of a neighbouring digit on each side
MIN_LUMA_GAP = 0.25  # |luma(ink) - luma(ground)|, so the digit is always legible
NOISE = 0.03  # std of the additive pixel noise, on [0, 1]


# --------------------------------------------------------------------------- fonts


def font_files(dirs: Sequence[str] = FONT_DIRS) -> tuple[str, ...]:
    """Font files that draw digits: the system folders', then matplotlib's bundled ones; one file
    per name (the first found), sorted by name so the list is the same on every machine that has
    the same fonts."""
    roots = [Path(d).expanduser() for d in dirs]
    try:
        import matplotlib

        roots.append(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf")
    except ImportError:
        pass
    found: dict[str, str] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            name = path.name
            if path.suffix.lower() not in FONT_SUFFIXES or name in found:
                continue
            if any(bad in name.lower() for bad in NOT_DIGIT_FONTS):
                continue
            if _draws_digits(str(path)):
                found[name] = str(path)
    return tuple(found[n] for n in sorted(found))


def _glyph(font, text: str) -> bytes:  # noqa: ANN001 - a PIL font
    mask = font.getmask(text)
    return bytes(mask) + repr(mask.size).encode()


@functools.lru_cache(maxsize=256)
def _draws_digits(path: str) -> bool:
    """True when the file draws ten distinct, non-empty digits, none of them its missing-glyph box."""
    from PIL import ImageFont

    try:
        font = ImageFont.truetype(path, 32)
        glyphs = [_glyph(font, d) for d in DIGITS]
        missing = _glyph(font, "\ue000")  # a private-use code point: no text font draws it
    except (OSError, ValueError):
        return False
    return all(any(g[:-8]) for g in glyphs) and len(set(glyphs)) == 10 and missing not in glyphs


@functools.lru_cache(maxsize=4096)
def _font(path: str | None, size: int):  # noqa: ANN202 - a PIL font
    from PIL import ImageFont

    return ImageFont.load_default(size) if path is None else ImageFont.truetype(path, size)


def _font_name(path: str | None) -> str:
    return DEFAULT_FONT if path is None else Path(path).stem


# --------------------------------------------------------------------------- rendering


def _colours(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ink, ground and the gradient's second ground colour, float32 in [0, 1]; the ink's luma is
    at least ``MIN_LUMA_GAP`` from both grounds'. Shapes: (n, 3) each."""
    luma = np.array([0.299, 0.587, 0.114])
    ink, g1, g2 = (np.empty((n, 3)) for _ in range(3))
    todo = np.arange(n)
    while todo.size:
        cand = rng.random((3, todo.size, 3))
        lu = cand @ luma  # (3, m)
        ok = (np.abs(lu[0] - lu[1]) >= MIN_LUMA_GAP) & (np.abs(lu[0] - lu[2]) >= MIN_LUMA_GAP)
        ok &= np.sign(lu[0] - lu[1]) == np.sign(lu[0] - lu[2])  # the ink is darker or lighter than both
        ink[todo[ok]], g1[todo[ok]], g2[todo[ok]] = cand[0, ok], cand[1, ok], cand[2, ok]
        todo = todo[~ok]
    return ink.astype(np.float32), g1.astype(np.float32), g2.astype(np.float32)


def _mask(label: int, fonts: Sequence[str | None], rng: np.random.Generator) -> np.ndarray:
    """The ink of one image on the canvas: the digit, maybe a neighbour each side, slanted.

    Returns:
        float32 coverage in [0, 1]. Shape: (CANVAS, CANVAS).
    """
    from PIL import Image, ImageDraw, ImageFilter

    path = fonts[int(rng.integers(len(fonts)))]
    want = rng.uniform(*HEIGHT) * CANVAS
    ref = _font(path, CANVAS)
    x0, y0, x1, y1 = ref.getbbox(str(label))
    size = max(8, round(CANVAS * want / max(y1 - y0, 1)))
    font = _font(path, size)
    left, right = (rng.random(2) < NEIGHBOUR)
    neighbours = rng.integers(0, 10, size=2)
    gap = rng.uniform(0.02, 0.12) * size
    cx, cy = CANVAS / 2 + rng.uniform(-JITTER, JITTER, size=2) * CANVAS

    img = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(img)

    def put(text: str, centre_x: float) -> tuple[float, float]:
        bx0, by0, bx1, by1 = font.getbbox(text)
        ox, oy = centre_x - (bx0 + bx1) / 2, cy - (by0 + by1) / 2
        draw.text((ox, oy), text, fill=255, font=font)
        return ox + bx0, ox + bx1

    lo, hi = put(str(label), cx)
    if left:
        bx0, _, bx1, _ = font.getbbox(str(neighbours[0]))
        put(str(neighbours[0]), lo - gap - (bx1 - bx0) / 2)
    if right:
        bx0, _, bx1, _ = font.getbbox(str(neighbours[1]))
        put(str(neighbours[1]), hi + gap + (bx1 - bx0) / 2)
    img = img.rotate(rng.uniform(-ROTATION, ROTATION), resample=Image.BILINEAR, center=(cx, cy))
    blur = rng.uniform(0.0, 1.5)
    if blur > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img, dtype=np.float32) / 255.0


def render_printed_digits(
    labels: np.ndarray, fonts: Sequence[str | None], rng: np.random.Generator
) -> np.ndarray:
    """Draw one image per label.

    Args:
        labels: int digits 0-9. Shape: (N,).
        fonts: Font files to draw from (None: Pillow's built-in font).
        rng: The only source of randomness: equal generators give equal images.

    Returns:
        uint8 RGB images. Shape: (N, 3, SIZE, SIZE).
    """
    n = len(labels)
    ink, g1, g2 = _colours(n, rng)
    angle = rng.uniform(0, 2 * np.pi, size=n)
    noise_seed = int(rng.integers(2**31))
    masks = np.stack([_mask(int(y), fonts, rng) for y in labels])[:, None]  # (N, 1, S, S)
    ar = (np.arange(CANVAS, dtype=np.float32) + 0.5) / CANVAS - 0.5
    # a linear gradient across the canvas in a random direction, g1 at one side, g2 at the other
    t = (np.cos(angle)[:, None, None] * ar[None, None, :] + np.sin(angle)[:, None, None] * ar[None, :, None]) + 0.5
    t = t.astype(np.float32)[:, None]  # (N, 1, S, S)
    ground = g1[:, :, None, None] * (1 - t) + g2[:, :, None, None] * t
    img = ground * (1 - masks) + ink[:, :, None, None] * masks  # (N, 3, S, S)
    img = img.reshape(n, 3, SIZE, 2, SIZE, 2).mean(axis=(3, 5))
    img += np.random.default_rng(noise_seed).normal(0.0, NOISE, img.shape).astype(np.float32)
    return np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def _balanced_labels(per_class: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(10, dtype=np.int64), per_class))


@functools.lru_cache(maxsize=4)
def printed_raw(split: str, fonts: tuple[str, ...], per_class: int) -> _Raw:
    """One split, rendered once per process for a font list (the cache key)."""
    rng = seeded_rng(RENDER_SEED, "printed-digits", split)
    labels = _balanced_labels(per_class, rng)
    draw_from: tuple[str | None, ...] = fonts or (None,)
    images = render_printed_digits(labels, draw_from, rng)
    names = ", ".join(_font_name(f) for f in draw_from)
    digest = hashlib.sha256("\n".join(draw_from if fonts else ()).encode()).hexdigest()[:12]
    return _Raw(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        classes=DIGITS,
        provenance=(
            f"{len(labels):,} printed digits ({per_class} per class, the {split} split), rendered by "
            f"vizcore from {len(draw_from)} font(s) found on this machine: {names} (font list "
            f"{digest}). Each digit in a random font, height {HEIGHT[0]:.0%}-{HEIGHT[1]:.0%} of the "
            f"frame, offset up to {JITTER:.0%}, rotated up to {ROTATION:.0f} degrees, a "
            f"neighbouring digit at each side with chance {NEIGHBOUR:.0%}, random ink on a random "
            f"two-colour gradient (luma gap >= {MIN_LUMA_GAP}), blur up to 1.5 px and noise "
            f"(std {NOISE}); drawn at {CANVAS}x{CANVAS} and averaged down to {SIZE}x{SIZE}; "
            f"render seed {RENDER_SEED}. More fonts: {INSTALL_FONTS}."
        ),
    )


def _build_printed(req) -> _Raw:  # noqa: ANN001 - a _Request
    return printed_raw(req.split, _fonts(), PER_CLASS[req.split])


@functools.lru_cache(maxsize=1)
def _fonts() -> tuple[str, ...]:
    return font_files()


PRINTED_DIGITS = DomainSpec(
    name="printed-digits",
    description="colour digits rendered from this machine's fonts, 32x32 (an offline stand-in for SVHN)",
    native_shape=(3, SIZE, SIZE),
    offline=True,
    num_classes=10,
    classes=DIGITS,
    build=_build_printed,
)
