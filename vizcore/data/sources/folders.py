"""``folder:<path>``: any ImageFolder layout (one sub-folder per class; see ``FOLDER_HELP`` for the
train/ and test/ splits and integer class folders), a prefix resolved by name in ``DOMAINS``
rather than listed by :func:`~vizcore.data.domains.list_domains`.

Which of its files are read is decided once, from headers, when the folder is listed, for the
in-memory path (:func:`~vizcore.data.domains.load_domain`) and the streamed one
(:func:`folder_files`) alike: symbolic links are never followed, and a file PIL cannot read is
skipped and named in ``Domain.skipped`` and the provenance.
:func:`~vizcore.data.domains.check_available` refuses a class with no readable image.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vizcore.core.errors import DataUnavailable
from vizcore.data.domains import (
    CACHE_SIZE,
    SPLIT_SEED,
    SPLITS,
    DomainSpec,
    FileSplit,
    PrefixSource,
    _Raw,
)
from vizcore.data.images import (
    IMAGE_EXTENSIONS,
    _check_shape,
    _conversions,
    _shape_text,
    channels_first,
    decode_image,
    image_header,
)
from vizcore.data.splits import balanced_order, stratified_split

FOLDER_PREFIX = "folder:"
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
    train, test = stratified_split(labels, FOLDER_TEST_FRACTION, SPLIT_SEED)
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
        keep = balanced_order(labels, seed)[:limit]
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


def _folder_spec(name: str) -> DomainSpec:
    """The :class:`DomainSpec` of a ``folder:`` domain, its classes scanned from its folders."""
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


FOLDERS = PrefixSource(
    info=_folder_spec,
    load=lambda name, split, shape: _load_folder(name, split, shape or (3, 32, 32)),
    check=_check_folder,
)
