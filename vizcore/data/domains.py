"""Data domains: named, deterministic image sets, offline first.

Every domain is loaded with :func:`load_domain` and comes back as a :class:`Domain` (float32
images in [0, 1], int64 labels, class names and a provenance sentence saying where the data came
from). Names live in ``DOMAINS``, a :class:`~vizcore.core.registry.Registry`, so selectboxes and
tests pick up a new domain without further code. Each source is one module of
:mod:`vizcore.data.sources`, which registers it:

* offline (no network, no files beyond ``assets/``): ``mnist``, ``cluttered-mnist`` and
  ``uci-digits`` (:mod:`~vizcore.data.sources.digits`), ``mnist-m``
  (:mod:`~vizcore.data.sources.mnist_m`), ``printed-digits`` (rendered from the machine's fonts,
  :mod:`~vizcore.data.sources.printed`);
* read by torchvision (``mnist-full``, ``fashion-mnist``, ``usps``, ``svhn``;
  :mod:`~vizcore.data.sources.torchvision_sets`) from a data root, downloaded only when asked;
* ``folder:<path>`` (:mod:`~vizcore.data.sources.folders`): any ImageFolder layout, a prefix
  resolved by name (a :class:`PrefixSource`), not listed by :func:`list_domains`.

:func:`check_available` refuses, before a run's folder exists, a domain whose files are absent.

A source and a target domain are checked as a pair in :mod:`vizcore.data.pairs`.

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
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vizcore.core.errors import DataUnavailable, DomainMismatch
from vizcore.core.registry import Registry
from vizcore.data.images import _check_shape, _conversions, _shape_text, to_shape
from vizcore.data.splits import balanced_order

__all__ = [
    "DOMAINS",
    "DataUnavailable",
    "Domain",
    "DomainMismatch",
    "FileSplit",
    "DomainSpec",
    "PrefixSource",
    "check_available",
    "class_counts",
    "default_root",
    "domain_info",
    "describe_splits",
    "empty_classes",
    "list_domains",
    "load_domain",
]

SPLITS = ("train", "test")
DIGITS = tuple(str(d) for d in range(10))
DATA_ENV = "VIZCORE_DATA"
# Fixed so that every run, whatever its seed, evaluates on the same test items.
SPLIT_SEED = 0

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
        check: Refuses the set, given the data root and whether it may download, when its files
            cannot be read (see :func:`check_available`); None when it is always there.
    """

    name: str
    description: str
    native_shape: tuple[int, int, int]
    offline: bool
    num_classes: int
    generated: bool = False
    build: Callable[[_Request], _Raw] | None = field(default=None, repr=False, compare=False)
    classes: tuple[str, ...] = ()
    check: Callable[[str | Path | None, bool], None] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def class_names(self) -> tuple[str, ...]:
        """``classes``, or ``"0"`` .. ``"K-1"`` for a spec registered without names."""
        return self.classes or tuple(str(i) for i in range(self.num_classes))


@dataclass(frozen=True)
class PrefixSource:
    """A family of domains named ``<prefix><argument>`` (``folder:PATH``), resolved by name when
    used rather than listed.

    Attributes:
        info: The :class:`DomainSpec` of one name (it may scan for the classes).
        load: The raw split of one name: (name, split, shape or None) -> images and labels.
        check: Refuses one name whose images cannot be read (see :func:`check_available`).
    """

    info: Callable[[str], DomainSpec]
    load: Callable[[str, str, tuple[int, int, int] | None], _Raw]
    check: Callable[[str], None]


class DomainRegistry(Registry[DomainSpec]):
    """Named :class:`DomainSpec` entries, and prefixes whose names are resolved when used."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.prefixes: dict[str, PrefixSource] = {}

    def register_prefix(self, prefix: str, source: PrefixSource) -> PrefixSource:
        if prefix in self.prefixes:
            raise ValueError(f"{self.kind} prefix {prefix!r} is registered twice")
        self.prefixes[prefix] = source
        return source

    def by_prefix(self, name: str) -> PrefixSource | None:
        """The prefix source ``name`` belongs to, or None for a plain name."""
        return next((s for p, s in self.prefixes.items() if name.startswith(p)), None)


DOMAINS = DomainRegistry("data set")


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
    source = DOMAINS.by_prefix(name)
    if source is not None:
        return source.info(name)
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
    by_prefix = DOMAINS.by_prefix(name)
    spec = None if by_prefix is not None else DOMAINS.get(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of items, got {limit}")
    if shape is not None:
        shape = _check_shape(shape)

    if by_prefix is not None:
        raw = by_prefix.load(name, split, shape)
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
        idx = torch.from_numpy(balanced_order(raw.labels.numpy(), seed)[:limit])
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


def unavailable_reason(name: str, *, root: str | Path | None = None) -> str | None:
    """Why the domain ``name`` cannot be read on this machine (without downloading), or None."""
    try:
        check_available(name, root=root)
    except DataUnavailable as e:
        return str(e)
    return None


def check_available(name: str, *, root: str | Path | None = None, download: bool = False) -> None:
    """Refuse a domain whose images cannot be read, without decoding any, so a run can be
    refused before its folder exists.

    A ``folder:`` domain needs its folder and class folders, a readable image in each split and
    one in every class of the training split; its files' headers are read for this (the check
    both data paths then share, :func:`~vizcore.data.images.image_header`). A torchvision set needs the files
    torchvision reads under the data root, unless ``download`` may fetch them.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the valid names).
        DataUnavailable: as above; the message says what to do (and names an empty class).
    """
    domain_info(name)  # a folder: domain is scanned for its class folders
    by_prefix = DOMAINS.by_prefix(name)
    if by_prefix is not None:
        by_prefix.check(name)
        return
    check = DOMAINS.get(name).check
    if check is not None:
        check(root, download)


# --------------------------------------------------------------------------- shared internals


def _to_float(images: torch.Tensor, *, copied: bool) -> torch.Tensor:
    """Cached images -> float32 in [0, 1], never sharing memory with the cache."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if copied:  # an index already made a copy
        return images.to(torch.float32)
    return images.to(torch.float32, copy=True)


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
