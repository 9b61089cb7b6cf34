"""The data layer of the recipes: settings that follow from what the images measure, not from
the domains' names, so a folder never seen before gets a recipe that fits it.

:func:`measure` reads a class-balanced sample of a domain's training images into
:class:`ImageStats` (size, channels, how colourful, intensities, which way the ink runs, and the
number of training images); :func:`advise` turns the source's and target's statistics into
``TrainConfig`` fields, one reason per rule. Every rule is a pure function of the statistics, so
its choices are tested without loading a domain:

* ``STANDARDISE_RULES`` turn on per-image standardisation (channel counts or intensities differ,
  or a colour source varies from image to image);
* ``CHOICE_RULES`` read both sides as grey when only one is colour, give small colour images the
  wider SVHN-GAP network, invert half the source images when the two sides' ink runs different
  ways (and then normalise each domain by its own BatchNorm statistics and maximise the
  information of the target's predictions), shift the images of a small source, and lengthen
  training on a small one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vizcore.core.errors import DataUnavailable
from vizcore.data.domains import load_domain
from vizcore.data.images import LUMA

Fields = dict[str, Any]

STATS_SAMPLE = 512  # training images measured per domain (class-balanced); plenty for means
# Thresholds sit between the built-in domains' measurements (512 training images each): mnist vs
# uci-digits differ by 0.03 in mean intensity and 1.1x in contrast, mnist vs mnist-m by 0.28 and
# 1.2x; mnist's per-image brightness spreads by 0.04, mnist-m's by 0.21.
MEAN_GAP = 0.1
CONTRAST_RATIO = 1.5
BRIGHTNESS_SPREAD = 0.1
CONTRAST_SPREAD = 0.35  # std / mean of the per-image contrast; 0.16 (mnist) to 0.18 (mnist-m)
# Mean spread of a pixel's channels: 0 for grey stored as RGB, 0.1-0.2 for photos and printed-digits.
GREY_COLOUR = 0.02
SMALL_SIDE = 64  # at most this many pixels a side: digit-sized images, for SVHN-GAP
COLOUR_MODEL = "svhn_gap"
# |share of dark-ink images, source - target|: mnist 0, mnist-m 0.39, printed-digits about 0.5
POLARITY_GAP = 0.2
# weight of information maximisation on such a shift (README, seed 0: at 1 it gained 22 points on
# printed -> MNIST but lost 1 on MNIST -> printed, whose source-only start is weaker; 0.3 gained
# on both; entropy alone, without the class-spreading term, collapsed at 1)
TARGET_IM = 0.3
SMALL_SOURCE = 5000  # fewer training images than this: shift them (the bundled MNIST has 8,000)
# Epochs are set so a small source gets as many steps as the measured recipes take on the bundled
# MNIST's 8,000 images, up to MAX_EPOCHS.
REFERENCE_IMAGES = 8000
MAX_EPOCHS = 20


@dataclass(frozen=True)
class ImageStats:
    """Statistics of a sample of one domain's training images, per image then across images.

    Attributes:
        channels: C of the images as stored.
        mean: Average of the per-image mean intensities (all channels).
        contrast: Average of the per-image standard deviations.
        brightness_spread: Standard deviation of the per-image means across images.
        contrast_spread: Standard deviation of the per-image standard deviations across images,
            relative to their mean (``contrast``).
        colour: Mean over pixels of the standard deviation of a pixel's channels (0 for grey,
            also grey stored as three equal channels).
        dark_ink: Share of images whose mean luma is below their median luma: few dark pixels on
            a light ground. 0 for MNIST's white strokes on black.
        height, width: Size of the images as stored.
        count: Training images of the domain (all of them, not the sample).
    """

    channels: int
    mean: float
    contrast: float
    brightness_spread: float
    contrast_spread: float
    colour: float = 0.0
    dark_ink: float = 0.0
    height: int = 0
    width: int = 0
    count: int = 0

    @property
    def is_colour(self) -> bool:
        return self.colour > GREY_COLOUR

    def describe(self) -> str:
        return (
            f"{_channels(self.channels)}, mean {self.mean:.2f}, contrast {self.contrast:.2f}, "
            f"brightness spread {self.brightness_spread:.2f}, contrast spread "
            f"{self.contrast_spread:.2f}, colour {self.colour:.2f}, dark ink {self.dark_ink:.0%}, "
            f"{self.height}x{self.width}, {self.count:,} training images"
        )


def _channels(c: int) -> str:
    return f"{c} channel" + ("s" if c != 1 else "")


def image_stats(images: torch.Tensor, count: int | None = None) -> ImageStats:
    """Measure :class:`ImageStats`.

    Args:
        images: Values in [0, 1]. Shape: (N, C, H, W), N >= 2.
        count: Training images of the domain; None: ``N``.
    """
    x = images.to(torch.float64)
    flat = x.flatten(1)  # (N, C*H*W)
    means, stds = flat.mean(dim=1), flat.std(dim=1)  # (N,), (N,)
    contrast = float(stds.mean())
    c = x.shape[1]
    colour = float(x.std(dim=1, unbiased=False).mean()) if c > 1 else 0.0
    weights = torch.tensor(LUMA, dtype=x.dtype) if c == 3 else torch.full((c,), 1.0 / c, dtype=x.dtype)
    luma = (x * weights.view(1, c, 1, 1)).sum(dim=1).flatten(1)  # (N, H*W)
    dark = (luma.mean(dim=1) < luma.median(dim=1).values).to(torch.float64)
    return ImageStats(
        channels=int(c),
        mean=float(means.mean()),
        contrast=contrast,
        brightness_spread=float(means.std()),
        contrast_spread=float(stds.std()) / max(contrast, 1e-8),
        colour=colour,
        dark_ink=float(dark.mean()),
        height=int(x.shape[2]),
        width=int(x.shape[3]),
        count=len(images) if count is None else int(count),
    )


def measure(name: str, root: str | None = None) -> ImageStats | None:
    """:class:`ImageStats` of up to ``STATS_SAMPLE`` training images of ``name`` at its native
    shape; None when its files are not available (the recipe then does without)."""
    try:
        d = load_domain(name, "train", root=root, limit=STATS_SAMPLE)
        count = len(load_domain(name, "train", root=root)) if len(d) == STATS_SAMPLE else len(d)
    except DataUnavailable:
        return None
    return image_stats(d.images, count) if len(d) >= 2 else None


# --------------------------------------------------------------------------- standardisation

# A rule sees the source's and (or None) the target's statistics and returns why the images need
# per-image standardisation, or None; any reason turns it on.
Rule = Callable[[ImageStats, ImageStats | None], str | None]


def _channels_differ(s: ImageStats, t: ImageStats | None) -> str | None:
    if t is None or s.channels == t.channels:
        return None
    return f"the source has {_channels(s.channels)} and the target {_channels(t.channels)}"


def _intensities_differ(s: ImageStats, t: ImageStats | None) -> str | None:
    if t is None:
        return None
    ratio = max(s.contrast, t.contrast) / max(min(s.contrast, t.contrast), 1e-8)
    if abs(s.mean - t.mean) <= MEAN_GAP and ratio <= CONTRAST_RATIO:
        return None
    return (
        f"their intensities differ (mean {s.mean:.2f} vs {t.mean:.2f}, contrast "
        f"{s.contrast:.2f} vs {t.contrast:.2f})"
    )


def _colour_source_varies(s: ImageStats, t: ImageStats | None) -> str | None:
    if s.channels != 3 or (
        s.brightness_spread <= BRIGHTNESS_SPREAD and s.contrast_spread <= CONTRAST_SPREAD
    ):
        return None
    return (
        "the colour source's images vary in brightness or contrast from one to the next "
        f"(brightness spread {s.brightness_spread:.2f}, contrast spread {s.contrast_spread:.2f})"
    )


STANDARDISE_RULES: dict[str, Rule] = {
    "channels": _channels_differ,
    "intensity": _intensities_differ,
    "colour variation": _colour_source_varies,
}


# --------------------------------------------------------------------------- other choices


@dataclass(frozen=True)
class Choice:
    """Fields a rule chose and why, one sentence."""

    fields: Fields
    why: str


@dataclass(frozen=True)
class Defaults:
    """The recipe's own values that a rule scales from: epochs and batch size before the data layer."""

    epochs: int
    batch_size: int
    # the method trains through the shared loss on a target batch, where domain_bn and
    # target_im act (vizcore.methods.base.Method.uses_shared_loss)
    shared_loss: bool = False


ChoiceRule = Callable[[ImageStats, ImageStats | None, Defaults], Choice | None]


def _grey_input(s: ImageStats, t: ImageStats | None, _: Defaults) -> Choice | None:
    if t is None or s.is_colour == t.is_colour:
        return None
    grey, colour = ("target", "source") if s.is_colour else ("source", "target")
    shape = (1, max(s.height, t.height), max(s.width, t.width))
    return Choice(
        {"input_shape": shape, "standardize": True},
        f"the {grey} is grey (colour {min(s.colour, t.colour):.2f}) and the {colour} colour "
        f"({max(s.colour, t.colour):.2f}): both are read as grey luma at {shape[1]}x{shape[2]} and "
        "standardised per image, so the network cannot lean on a colour one side never has",
    )


def _colour_model(s: ImageStats, t: ImageStats | None, _: Defaults) -> Choice | None:
    sides = [s] if t is None else [s, t]
    if not any(x.is_colour for x in sides) or max(max(x.height, x.width) for x in sides) > SMALL_SIDE:
        return None
    return Choice(
        {"model": COLOUR_MODEL},
        f"colour images of at most {SMALL_SIDE} pixels a side: {COLOUR_MODEL}, the DANN paper's "
        "SVHN trunk (64, 64, 128 channels of 5x5) with a GAP head, three times LeNet-GAP's "
        "computation, for the variety of fonts, colours and grounds such images hold",
    )


def _polarity(s: ImageStats, t: ImageStats | None, _: Defaults) -> Choice | None:
    if t is None or abs(s.dark_ink - t.dark_ink) <= POLARITY_GAP:
        return None
    return Choice(
        {"augment_invert": 0.5},
        f"the ink runs differently (dark ink on a light ground in {s.dark_ink:.0%} of the source "
        f"and {t.dark_ink:.0%} of the target images): half the source images are shown inverted, "
        "so both polarities are learnt",
    )


def _target_terms(s: ImageStats, t: ImageStats | None, d: Defaults) -> Choice | None:
    if t is None or not d.shared_loss or abs(s.dark_ink - t.dark_ink) <= POLARITY_GAP:
        return None
    return Choice(
        {"domain_bn": True, "target_im": TARGET_IM},
        "with the ink running differently, a source batch (half of it shown inverted) and a target "
        "batch have different BatchNorm statistics: each domain is normalised by its own "
        f"(domain_bn), and information maximisation (weight {TARGET_IM}) makes the target's "
        "predictions confident with every class in use. On printed digits → MNIST the adversarial "
        "loss alone fooled its domain classifier without matching the domains (source-only 74%, "
        "DANN 70%, seed 0); with these two terms DANN gained about 20 points on MNIST, and as much "
        "with its adversarial loss off (README)",
    )


def _small_source_shift(s: ImageStats, t: ImageStats | None, _: Defaults) -> Choice | None:
    if t is None or s.count >= SMALL_SOURCE:
        return None
    shift = max(1, round(min(s.height, s.width) / 16))
    return Choice(
        {"augment_shift": shift},
        f"{s.count:,} source images (under {SMALL_SOURCE:,}): each shifted by up to {shift} pixels",
    )


def epochs_for(count: int, d: Defaults) -> int:
    """Epochs giving ``count`` images about the steps ``d.epochs`` give ``REFERENCE_IMAGES``, in
    ``[d.epochs, MAX_EPOCHS]`` (never fewer than the recipe's own)."""
    steps = d.epochs * math.ceil(REFERENCE_IMAGES / d.batch_size)
    per_epoch = max(1, math.ceil(count / d.batch_size))
    return max(d.epochs, min(MAX_EPOCHS, math.ceil(steps / per_epoch)))


def _epochs(s: ImageStats, t: ImageStats | None, d: Defaults) -> Choice | None:
    epochs = epochs_for(s.count, d)
    if epochs == d.epochs:
        return None
    return Choice(
        {"epochs": epochs},
        f"{epochs} epochs instead of {d.epochs}: {s.count:,} source images give about the steps "
        f"{d.epochs} epochs take on {REFERENCE_IMAGES:,} (at most {MAX_EPOCHS})",
    )


CHOICE_RULES: dict[str, ChoiceRule] = {
    "grey input": _grey_input,
    "colour model": _colour_model,
    "polarity": _polarity,
    "target terms": _target_terms,
    "small source": _small_source_shift,
    "epochs": _epochs,
}


# --------------------------------------------------------------------------- the layer


@dataclass(frozen=True)
class DataAdvice:
    """What :func:`from_data` measured and recommends.

    Attributes:
        fields: ``TrainConfig`` fields for the data layer (empty when no rule applies).
        note: One sentence naming the measured statistics, or None when there is nothing to say.
    """

    fields: Fields
    note: str | None


def advise(
    s: ImageStats, t: ImageStats | None, defaults: Defaults, names: tuple[str, str | None] = ("source", "target")
) -> DataAdvice:
    """The data layer from measured statistics alone: every rule's fields and reasons."""
    reasons = [r for rule in STANDARDISE_RULES.values() if (r := rule(s, t)) is not None]
    fields: Fields = {"standardize": True} if reasons else {}
    sentences = [f"Per-image standardisation, because {'; '.join(reasons)}."] if reasons else []
    for rule in CHOICE_RULES.values():
        choice = rule(s, t, defaults)
        if choice is not None:
            fields.update(choice.fields)
            sentences.append(choice.why[0].upper() + choice.why[1:] + ".")
    if not sentences:
        return DataAdvice({}, None)
    measured = f"source {names[0]}: {s.describe()}" + (
        f"; target {names[1]}: {t.describe()}" if t is not None else ""
    )
    note = f"{' '.join(sentences)} Measured on up to {STATS_SAMPLE} training images each: {measured}."
    return DataAdvice(fields, note)


def from_data(source: str, target: str | None, defaults: Defaults, root: str | None = None) -> DataAdvice:
    """The data layer of ``source`` -> ``target`` (or plain training on ``source``), measured.

    A domain whose files are absent is not measured, and the note says so.
    """
    s, t = measure(source, root), (measure(target, root) if target else None)
    missing = [n for n, st in ((source, s), (target, t)) if n and st is None]
    if missing:
        return DataAdvice({}, f"Not adapted to the data: {', '.join(missing)} could not be read.")
    assert s is not None
    return advise(s, t, defaults, (source, target))
