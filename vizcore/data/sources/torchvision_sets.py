"""Sets read by torchvision (``mnist-full``, ``fashion-mnist``, ``usps``, ``svhn``) from a data root
(the ``root`` argument, else ``$VIZCORE_DATA``, else ``~/.vizcore/data``), downloaded only when
asked; when their files are absent :class:`DataUnavailable` says what to do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vizcore.core.errors import DataUnavailable
from vizcore.data.domains import (
    CACHE_SIZE,
    DATA_ENV,
    DIGITS,
    SPLITS,
    DomainSpec,
    _Raw,
    _Request,
    default_root,
)


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


def _check_files(name: str) -> Callable[[str | Path | None, bool], None]:
    """The availability check of a torchvision set (see :func:`~vizcore.data.domains.check_available`):
    the files torchvision reads must be under the data root, unless ``download`` may fetch them."""

    def check(root: str | Path | None, download: bool) -> None:
        if download:
            return
        where = default_root(root).resolve()
        for split in SPLITS:
            if not (where / _TV_SETS[name].files[split]).exists():
                raise _tv_unavailable(name, split, where, "download was not requested")

    return check


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


def _tv_spec(name: str, description: str, native_shape: tuple[int, int, int]) -> DomainSpec:
    classes = _TV_SETS[name].classes
    build = _build_tv(name)
    return DomainSpec(name, description, native_shape, False, 10, build=build, classes=classes,
                      check=_check_files(name))  # fmt: skip


SPECS = (
    _tv_spec("mnist-full", "Full MNIST via torchvision (60,000 / 10,000)", (1, 28, 28)),
    _tv_spec("fashion-mnist", "Fashion-MNIST via torchvision (60,000 / 10,000)", (1, 28, 28)),
    _tv_spec("usps", "USPS handwritten digits via torchvision (7,291 / 2,007, 16x16)", (1, 16, 16)),
    _tv_spec("svhn", "SVHN house-number digits via torchvision (73,257 / 26,032)", (3, 32, 32)),
)
