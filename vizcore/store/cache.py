"""The one store of computed results of a run: every analysis, matrix, layout and score.

    <run>/analyses/<weights digest>/<kind>-<hash of the parameters>.npz

Keyed by the weights' content (a folder per digest) and by the computation's kind and
parameters (the file name), so a retrained run never shows a stale result and a copied run keeps
its caches. Each entry is computed once: two sessions asking at once share one computation (a
lock per entry), and it is written atomically when complete, so a stopped or failed computation
leaves nothing. Writing a result of new weights sweeps the folders of earlier ones, so the cache
does not grow with every retrain. A read-only (demo) run may ship entries in its own folder;
what is computed for it goes to the store's cache instead.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vizcore.core.atomic import write_bytes_atomic

CACHE_DIR = "analyses"
Arrays = dict[str, np.ndarray]

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def params_key(kind: str, params: dict[str, Any]) -> str:
    """Stable short hash of a computation's kind and its parameters (the entry's file name)."""
    blob = json.dumps({"kind": kind, **params}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def entry_name(kind: str, params: dict[str, Any], digest: str) -> str:
    """The file name of an entry (the digest is in the name too, so an entry moved by hand to
    another weights' folder is never read as theirs)."""
    return f"{params_key(kind, {**params, 'weights': digest})}.npz"


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), threading.Lock())


@functools.lru_cache(maxsize=16)
def _read_kept(path: str, mtime_ns: int) -> Arrays:
    return _read_now(Path(path))


def _read_now(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read(path: Path, in_memory: bool = False) -> Arrays:
    """An entry's arrays; ``in_memory`` keeps the last few in memory (an entry read at every
    click, such as a run's analysis: its arrays are then shared, never to be changed in place)."""
    return _read_kept(str(path), path.stat().st_mtime_ns) if in_memory else _read_now(path)


def cached(
    own: Path,
    shipped: Path | None,
    compute: Callable[[], Arrays],
    compressed: bool = False,
    in_memory: bool = False,
) -> Arrays:
    """The arrays at ``shipped`` (a demo run's own entry) or ``own``, computed into ``own`` once.

    A damaged entry of our own is removed and recomputed; a damaged shipped one is left as it is
    and computed into ``own``.
    """
    for path in (shipped, own):
        if path is not None and path.exists():
            try:
                return read(path, in_memory)
            except (OSError, ValueError, EOFError):
                if path == own:
                    own.unlink(missing_ok=True)
    with _lock(own):
        if own.exists():  # computed by another session while this one waited
            return read(own, in_memory)
        arrays = compute()
        buf = io.BytesIO()
        (np.savez_compressed if compressed else np.savez)(buf, **arrays)
        write_bytes_atomic(own, buf.getvalue())
        sweep(own.parent)
    return arrays


def sweep(current: Path) -> None:
    """Remove, beside the folder of the current weights, the folders of earlier ones (and loose
    entries of the layout before folders per weights)."""
    for old in current.parent.iterdir():
        if old.is_dir() and old.name != current.name and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
        elif old.is_file() and old.suffix == ".npz":
            old.unlink(missing_ok=True)
