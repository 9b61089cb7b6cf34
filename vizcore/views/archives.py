"""A zip of images from the browser, extracted into the run store only when every entry is safe.

Everything is decided before a byte is written: the central directory is read for names, kinds
and sizes (no path that escapes, no absolute path, no link or device, no encrypted or repeated
entry, at most ``max_files`` entries, ``max_total_bytes`` once inflated, no entry inflating more
than ``max_ratio`` times), then each image's header is read from its bytes in memory (no image
over ``MAX_IMAGE_PIXELS``, the cap of the image uploads; nothing decoded). Only then are the
images written, into a hidden temporary folder under ``<store>/.datasets/`` that is renamed into
place in one step; a refusal or a crash on the way leaves no folder behind. Files that are not
images (a README, ``__MACOSX/`` metadata) are left out, and named.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from vizcore.data.images import IMAGE_EXTENSIONS, DecompressionBomb, image_header
from vizcore.data.prepare import MAX_IMAGE_PIXELS
from vizcore.store.datasets import check_name, datasets_dir

_DRIVE = re.compile(r"^[A-Za-z]:")
_LEFT_OUT_DIRS = ("__MACOSX",)  # resource forks macOS's archiver adds beside every file


class ArchiveRefused(ValueError):
    """A zip that is not extracted; the message is one line naming the entry and the rule."""


@dataclass(frozen=True)
class ZipLimits:
    """What a zip may hold. The defaults take tens of thousands of small images, not a disk's worth."""

    max_files: int = 50_000
    max_total_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0  # inflated / compressed size of one entry; images barely compress
    ratio_floor: int = 1024**2  # entries smaller than this are never a bomb, whatever their ratio
    max_pixels: int = MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class Extracted:
    """Where a zip went: ``folder`` (its one top folder when it has one), the number of images
    written, and the entries left out as not images."""

    folder: Path
    images: int
    left_out: tuple[str, ...]


def _kind(info: zipfile.ZipInfo) -> str | None:
    """'link', 'device' (anything but a file or a folder) or None, from the entry's Unix mode."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "link"
    if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "device"
    return None


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path of an entry as folder names, refused when it could land outside the folder."""
    if "\0" in name:
        raise ArchiveRefused(f"entry {name!r} has a NUL character in its name")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise ArchiveRefused(f"entry {name!r} is an absolute path; a zip's entries must stay inside it")
    parts = tuple(p for p in re.split(r"[/\\]", name) if p not in ("", "."))
    if ".." in parts:
        raise ArchiveRefused(f"entry {name!r} climbs out of the folder with '..'")
    return parts


def _is_image(parts: tuple[str, ...]) -> bool:
    hidden = any(p.startswith(".") or p in _LEFT_OUT_DIRS for p in parts)
    return bool(parts) and not hidden and PurePosixPath(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS


def _plan(z: zipfile.ZipFile, limits: ZipLimits) -> tuple[list[tuple[zipfile.ZipInfo, tuple[str, ...]]], list[str]]:
    """(image entries with their safe paths, names left out), every rule but the pixels checked."""
    infos = z.infolist()
    if len(infos) > limits.max_files:
        raise ArchiveRefused(f"the zip has {len(infos):,} entries, more than the {limits.max_files:,} allowed")
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        raise ArchiveRefused(f"the zip inflates to {total / 1024**2:,.0f} MB, more than the "
                             f"{limits.max_total_bytes / 1024**2:,.0f} MB allowed")  # fmt: skip
    images, left_out, seen = [], [], set()
    for info in infos:
        parts = _safe_parts(info.filename)
        if (kind := _kind(info)) is not None:
            raise ArchiveRefused(f"entry {info.filename!r} is a {'symbolic link' if kind == 'link' else 'special file'}; "
                                 "a zip of images holds only files and folders")  # fmt: skip
        if info.flag_bits & 0x1:
            raise ArchiveRefused(f"entry {info.filename!r} is encrypted")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= limits.ratio_floor and ratio > limits.max_ratio:
            raise ArchiveRefused(f"entry {info.filename!r} inflates {ratio:,.0f} times "
                                 f"(more than {limits.max_ratio:,.0f}), as a zip bomb does")  # fmt: skip
        if info.is_dir():
            continue
        key = "/".join(parts).lower()  # one file per name, on case-insensitive disks too
        if key in seen:
            raise ArchiveRefused(f"entry {info.filename!r} appears twice")
        seen.add(key)
        if _is_image(parts):
            images.append((info, parts))
        else:
            left_out.append(info.filename)
    if not images:
        raise ArchiveRefused(f"the zip holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images, left_out


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """An entry's bytes, never more than its declared size (a lying header inflates no further)."""
    with z.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise ArchiveRefused(f"entry {info.filename!r} inflates past the size its header declares")
    return data


def _check_pixels(name: str, data: bytes, limits: ZipLimits) -> None:
    """Refuse an image that declares more than ``limits.max_pixels``; a damaged image passes (the
    folder's listing skips it by name, as it would any damaged file)."""
    try:
        _, (h, w) = image_header(io.BytesIO(data))
    except DecompressionBomb:
        h = w = limits.max_pixels + 1
    except ValueError:
        return
    if h * w > limits.max_pixels:
        raise ArchiveRefused(f"image {name!r} declares {w:,}x{h:,} pixels, more than the "
                             f"{limits.max_pixels:,} vizcore decodes (a decompression bomb)")  # fmt: skip


def _top_folder(root: Path) -> Path:
    """``root``, or the one folder in it when the zip wrapped everything in one (``mydata/...``)."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return root


def extract_zip(
    archive: bytes | BinaryIO | Path, store_root: Path, name: str, limits: ZipLimits | None = None
) -> Extracted:
    """Extract the images of ``archive`` into ``<store>/.datasets/<name>/``, or nothing at all.

    Raises:
        ArchiveRefused: not a zip, an entry breaks a rule of :class:`ZipLimits` or the module's
            (one line naming it), or ``name`` is taken.
        DatasetNameError: ``name`` is not a valid data set name.
        StoreWriteError / OSError: the store cannot be written (the temporary folder is removed).
    """
    limits = limits or ZipLimits()
    key = check_name(name)
    final = datasets_dir(store_root) / key
    if final.exists() or final.is_symlink():
        raise ArchiveRefused(f"a data set folder named {key!r} exists already ({final}); choose another name")
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    try:
        with zipfile.ZipFile(source) as z:
            images, left_out = _plan(z, limits)
            for info, _ in images:  # every header before the first byte is written
                _check_pixels(info.filename, _read(z, info), limits)
            _write(z, images, final)
    except zipfile.BadZipFile as e:
        raise ArchiveRefused(f"not a readable zip file ({e})") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError) as e:  # zip64 off, an unknown compression...
        raise ArchiveRefused(f"the zip cannot be read ({e})") from None
    return Extracted(_top_folder(final), len(images), tuple(left_out))


def _write(z: zipfile.ZipFile, images: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], final: Path) -> None:
    """The images under a hidden temporary folder beside ``final``, renamed into place at the end."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    tmp.mkdir()
    try:
        for info, parts in images:
            dest = tmp.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "xb") as f:  # "x": never through a file (or link) already there
                f.write(_read(z, info))
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
