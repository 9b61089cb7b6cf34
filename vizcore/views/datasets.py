"""What an image folder holds, read exactly as training reads it (the "Your data" page).

Everything here comes from :mod:`vizcore.data.sources.folders`: the same listing, the same header
check that decides which files both data paths read, the same split (the folder's own train/ and
test/, or the fixed stratified 80/20 one), the same decoder for the samples. So the counts, the
files skipped and the empty classes the page shows are the ones a run on the folder gets.

On top of that, what training does not look at: byte-identical images in the training and the
test split (a test image the model has seen scores as if it generalised), and whether the folder
pairs with a source domain under a class map (:func:`vizcore.data.pairs.check_domain_pair`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vizcore.core.errors import DataUnavailable, DomainMismatch
from vizcore.core.numbers import count
from vizcore.data.domains import SPLITS, domain_info, unavailable_reason
from vizcore.data.images import decode_image
from vizcore.data.pairs import check_domain_pair
from vizcore.data.sources.folders import (
    FOLDER_PREFIX,
    LINK_NOT_FOLLOWED,
    Entry,
    _folder_items,
    _folder_layout,
    _FolderItems,
)
from vizcore.views.data_choices import DataChoice

SAMPLE_SHAPE = (3, 32, 32)  # what a folder trains at unless a run asks for another input shape
HASH_CHUNK = 1 << 20
MAX_GRID_CLASSES = 30  # rows of the sample grid; a page says when a folder has more classes


@dataclass(frozen=True)
class Duplicate:
    """One image content found in both splits: its files in each (paths relative to the folder)."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    train_class: str
    test_class: str


@dataclass(frozen=True)
class FolderReport:
    """Everything the page shows of a folder.

    Attributes:
        domain: ``folder:<absolute path>``, the name it trains as.
        path: The folder.
        own_splits: True when it has its own train/ and test/ (or val/); False: an 80/20 split.
        split_folders: Split -> the folder its class folders are read from.
        classes: Class names, in label order.
        counts: Split -> class -> images training reads.
        kinds: (PIL mode, (H, W)) -> number of images stored so (both splits).
        skipped: (file relative to the folder, why) of every file or link that is not read.
        empty: Split -> classes without a readable image in it.
        duplicates: Image contents present in both splits.
        samples: Class -> a few files of the training split (absolute paths), for a grid.
        problem: Why a run on it is refused before it starts (None: it can train).
    """

    domain: str
    path: Path
    own_splits: bool
    split_folders: dict[str, Path]
    classes: tuple[str, ...]
    counts: dict[str, dict[str, int]]
    kinds: dict[tuple[str, tuple[int, int]], int]
    skipped: tuple[tuple[str, str], ...]
    empty: dict[str, tuple[str, ...]]
    duplicates: tuple[Duplicate, ...]
    samples: dict[str, tuple[str, ...]]
    problem: str | None

    @property
    def leaked(self) -> int:
        """Test images whose exact bytes are also in the training split."""
        return sum(len(d.test) for d in self.duplicates)


def folder_domain(path: str | Path) -> str:
    """``folder:<absolute path>`` of a folder typed on the page (``~`` expanded)."""
    text = str(path).strip()
    if not text:
        raise DataUnavailable("type the path of a folder on this server, e.g. /data/my_images")
    return f"{FOLDER_PREFIX}{Path(text).expanduser().resolve()}"


def inspect_folder(path: str | Path, samples_per_class: int = 6) -> FolderReport:
    """Read ``path`` as a run would and report what it found (headers and bytes only; no pixel
    is decoded, see :func:`sample_images` for the grid).

    Raises:
        DataUnavailable: the folder is missing or has no class folders (nothing to report).
    """
    domain = folder_domain(path)
    layout = _folder_layout(domain)
    items: dict[str, _FolderItems | None] = {}
    problems: dict[str, str] = {}
    for split in SPLITS:
        try:
            items[split] = _folder_items(domain, split)
        except DataUnavailable as e:  # no readable image at all in this split: reported, not raised
            items[split], problems[split] = None, str(e)
    counts = {split: _counts(items[split], layout.classes) for split in SPLITS}
    return FolderReport(
        domain=domain,
        path=layout.path,
        own_splits=layout.own_splits,
        split_folders=dict(layout.roots),
        classes=layout.classes,
        counts=counts,
        kinds=dict(Counter(h for it in _distinct(items) for h in it.headers)),
        skipped=_skipped(items, layout.path),
        empty={split: tuple(c for c, n in counts[split].items() if n == 0) for split in SPLITS},
        duplicates=_duplicates(items, layout.classes, layout.path),
        samples=_samples(items.get("train"), layout.classes, samples_per_class),
        problem=unavailable_reason(domain) or next(iter(problems.values()), None),
    )


def _distinct(items: Mapping[str, _FolderItems | None]) -> list[_FolderItems]:
    return [it for it in items.values() if it is not None]


def _counts(items: _FolderItems | None, classes: Sequence[str]) -> dict[str, int]:
    n = np.zeros(len(classes), dtype=np.int64) if items is None else np.bincount(items.labels, minlength=len(classes))
    return {c: int(k) for c, k in zip(classes, n.tolist(), strict=True)}


def _relative(path: str, folder: Path) -> str:
    return os.path.relpath(path, folder)


def _skipped(items: Mapping[str, _FolderItems | None], folder: Path) -> tuple[tuple[str, str], ...]:
    """Every link and unreadable file, once (two splits drawn from one folder share them)."""
    out: dict[str, str] = {}
    for it in _distinct(items):
        out.update({_relative(link, folder): LINK_NOT_FOLLOWED for link in it.links})
        out.update({_relative(f, folder): why for f, _, why in it.unreadable})
    return tuple(sorted(out.items()))


def _digest(path: str) -> str:
    """sha256 of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


Shared = tuple[tuple[Entry, ...], tuple[Entry, ...]]  # (train entries, test entries) of one content


@functools.lru_cache(maxsize=4)
def _shared_contents(train: tuple[Entry, ...], test: tuple[Entry, ...]) -> tuple[Shared, ...]:
    """The contents in both splits, by test file. Every file is read once per listing: the
    entries' modification times key the cache, so a page rerun does not read the folder again
    and an edited file is read anew."""
    by_hash: dict[str, tuple[list[Entry], list[Entry]]] = {}
    for side, entries in enumerate((train, test)):
        for entry in entries:
            by_hash.setdefault(_digest(entry[0]), ([], []))[side].append(entry)
    both = [(tuple(a), tuple(b)) for a, b in by_hash.values() if a and b]
    return tuple(sorted(both, key=lambda ab: ab[1][0][0]))


def _duplicates(items: Mapping[str, _FolderItems | None], classes: Sequence[str], folder: Path) -> tuple[Duplicate, ...]:
    """Contents found in both the training and the test split, by sha256 of the file bytes."""
    train, test = items.get("train"), items.get("test")
    if train is None or test is None:
        return ()
    return tuple(
        Duplicate(tuple(_relative(e[0], folder) for e in a), tuple(_relative(e[0], folder) for e in b),
                  classes[a[0][1]], classes[b[0][1]])  # fmt: skip
        for a, b in _shared_contents(train.entries, test.entries)
    )


def _samples(items: _FolderItems | None, classes: Sequence[str], k: int) -> dict[str, tuple[str, ...]]:
    """The first ``k`` training files of each class, in the order training lists them."""
    if items is None:
        return {c: () for c in classes}
    out: dict[str, list[str]] = {c: [] for c in classes}
    for f, label, _ in sorted(items.entries):
        if len(out[classes[label]]) < k:
            out[classes[label]].append(f)
    return {c: tuple(fs) for c, fs in out.items()}


@functools.lru_cache(maxsize=1024)
def _decoded(path: str, mtime_ns: int, shape: tuple[int, int, int]) -> np.ndarray:
    """One sample as training decodes it; kept per (file, modification time), so a rerun of the
    page does not decode the grid again."""
    return decode_image(path, shape)


def sample_images(
    report: FolderReport, shape: tuple[int, int, int] = SAMPLE_SHAPE, max_classes: int = MAX_GRID_CLASSES
) -> tuple[np.ndarray, list[str]]:
    """The sample files decoded as training decodes them (:func:`decode_image` at ``shape``), as
    (N, H, W, 3) uint8 tiles and a "class · file" caption each: one row per class (the first
    ``max_classes``), as many tiles as the fullest class has, a class with fewer padded with white
    tiles (the first of a class without a readable training image says so).

    A file broken past its header (which training would stop on too) is shown as a grey tile
    captioned "unreadable".
    """
    per_row = max((len(fs) for fs in report.samples.values()), default=0)
    blank = np.full((*shape[1:], 3), 255, np.uint8)
    tiles, captions = [], []
    for c, files in list(report.samples.items())[:max_classes]:
        for f in files:
            try:
                hwc, caption = _decoded(f, os.stat(f).st_mtime_ns, shape), f"{c} · {Path(f).name}"
            except OSError:
                hwc, caption = np.full((*shape[1:], shape[0]), 128, np.uint8), f"{c} · unreadable: {Path(f).name}"
            tiles.append(np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc)
            captions.append(caption)
        pad = per_row - len(files)
        tiles += [blank] * pad
        captions += ([f"{c} · no readable training image"] if not files and pad else []) + [""] * (pad - (not files))
    return (np.stack(tiles) if tiles else np.zeros((0, *shape[1:], 3), np.uint8)), captions


# --------------------------------------------------------------------------- tables for the page


def counts_rows(report: FolderReport) -> list[dict[str, object]]:
    """One row per class: images per split, and a note for a class empty in a split."""
    rows = []
    for c in report.classes:
        row: dict[str, object] = {"class": c, **{split: report.counts[split][c] for split in SPLITS}}
        row["note"] = "; ".join(f"no readable {s} image" for s in SPLITS if c in report.empty[s])
        rows.append(row)
    return rows


def kinds_rows(report: FolderReport) -> list[dict[str, object]]:
    """One row per (mode, size) stored, most frequent first."""
    return [{"mode": mode, "size (W x H)": f"{w}x{h}", "images": n}
            for (mode, (h, w)), n in sorted(report.kinds.items(), key=lambda kv: -kv[1])]  # fmt: skip


def duplicate_rows(report: FolderReport) -> list[dict[str, object]]:
    return [{"test file": ", ".join(d.test), "same bytes in train": ", ".join(d.train),
             "test class": d.test_class, "train class": d.train_class} for d in report.duplicates]  # fmt: skip


def summary_lines(report: FolderReport) -> list[str]:
    """The headline findings, one sentence each, worst first."""
    how = "its own train/ and test/ folders" if report.own_splits else "a fixed stratified 80/20 split (seed 0)"
    totals = {s: sum(report.counts[s].values()) for s in SPLITS}
    lines = [f"Cannot train: {report.problem}"] if report.problem else []
    lines.append(f"{count(len(report.classes), 'class', 'classes')}; {count(totals['train'], 'training image')} and "
                 f"{count(totals['test'], 'test image')}, split by {how}.")  # fmt: skip
    if report.skipped:
        n = len(report.skipped)
        lines.append(f"{count(n, 'file or link', 'files or links')} {'is' if n == 1 else 'are'} not read (listed below).")
    for split in SPLITS:
        if report.empty[split]:
            lines.append(f"Empty in {split}: {', '.join(report.empty[split])}.")
    if report.duplicates:
        lines.append(f"{count(report.leaked, 'test image')} {'is' if report.leaked == 1 else 'are'} byte-identical to "
                     "a training image (leakage; listed below).")  # fmt: skip
    return lines


# --------------------------------------------------------------------------- the pair check


def sources_by_fit(choices: Sequence[DataChoice], classes: Sequence[str]) -> list[DataChoice]:
    """``choices`` with those sharing the most class names with ``classes`` first (stable otherwise)."""
    want = set(classes)

    def shared(c: DataChoice) -> int:
        try:
            return len(want & set(domain_info(c.domain).class_names))
        except DataUnavailable:
            return 0

    return sorted(choices, key=lambda c: -shared(c))


def suggested_class_map(source: str, target: str) -> dict[str, str]:
    """Target class -> source class: the same name where the source has it, else by position."""
    src, tgt = domain_info(source).class_names, domain_info(target).class_names
    return {t: t if t in src else src[min(i, len(src) - 1)] for i, t in enumerate(tgt)}


def pair_check(source: str, target: str, class_map: Mapping[str, str] | None = None) -> str | None:
    """Why ``source`` and ``target`` cannot be trained as a pair under ``class_map`` (None: they
    can), in the words a run would be refused in."""
    try:
        check_domain_pair(source, target, class_map=effective_class_map(source, target, class_map) or None)
    except (DomainMismatch, DataUnavailable) as e:
        return str(e)
    return None


def effective_class_map(source: str, target: str, class_map: Mapping[str, str] | None) -> dict[str, str]:
    """The class map a run records: empty when the classes are already the same, in the same
    order, and every class maps onto its own name (a run then needs no map at all)."""
    mapping = dict(class_map or {})
    same = domain_info(source).class_names == domain_info(target).class_names
    return {} if same and all(t == s for t, s in mapping.items()) else mapping
