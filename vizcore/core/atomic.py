"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A temporary file is named ``.<name>.<writer pid>.<random>.tmp``, so the store can tell the
leftovers of a writer that was killed (swept) from the work of one still running (kept).

``fault_point(label)`` marks the places where a crash matters; it does nothing unless a test
installs a hook (``FAULT_HOOK``) that kills the process there, which is how the suite checks
that a kill at any of them leaves no run that looks complete.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
FAULT_HOOK: Callable[[str], None] | None = None

# errors that say the store itself cannot take the write, whatever is written: one clear line
STORE_ERRNOS = {
    errno.ENOSPC: "full",
    errno.EDQUOT: "full (over its disk quota)",
    errno.EROFS: "read-only",
    errno.EACCES: "not writable (permission denied)",
    errno.EPERM: "not writable (operation not permitted)",
}


class StoreWriteError(OSError):
    """The run store cannot take a write: full, read-only or not ours. The message is one line."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()  # the message alone, without "[Errno 28]"


def store_write_error(e: OSError, path: Path | str) -> OSError:
    """``e`` as a StoreWriteError naming ``path`` when the store cannot take writes, else ``e``."""
    if isinstance(e, StoreWriteError) or e.errno not in STORE_ERRNOS:
        return e
    return StoreWriteError(e.errno, f"the run store is {STORE_ERRNOS[e.errno]}: cannot write {path} ({os.strerror(e.errno)})")


def fault_point(label: str) -> None:
    """A place where a crash must lose nothing; a no-op unless a test installed FAULT_HOOK."""
    if FAULT_HOOK is not None:
        FAULT_HOOK(label)


def temp_writer_pid(path: Path) -> int | None:
    """The writer's pid in a temporary file's name, None for a name not made here."""
    parts = path.name.split(".")
    # "", name..., pid, random, "tmp"
    if len(parts) < 5 or parts[0] != "" or parts[-1] != TEMP_SUFFIX[1:] or not parts[-3].isdigit():
        return None
    return int(parts[-3])


def write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp)`` on a temporary file beside ``path``, fsync it, then rename over ``path``.

    Raises:
        StoreWriteError: the disk is full or read-only (``path`` keeps its old content, if any).
    """
    try:
        _write_atomic(path, writer)
    except OSError as e:
        raise store_write_error(e, path) from e


def _write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; runs are meant to be shared and shipped
        fault_point(f"{path.name}:temp-made")
        writer(tmp)
        fault_point(f"{path.name}:temp-written")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        fault_point(f"{path.name}:before-rename")
        os.replace(tmp, path)
        fault_point(f"{path.name}:renamed")
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda p: p.write_bytes(data))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=True).encode())
