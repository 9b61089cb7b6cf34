"""Start-up work the server does in the background, so the first user request is fast.

Kept apart from :mod:`vizcore.embed.methods` so that ``app.py`` can schedule the warm-up without
importing scikit-learn on the first page load.

Imports take turns until everything the pages use has been imported once. Python's per-module
import locks do not keep apart a thread still running a package's ``__init__`` and a thread that
imports a module inside that package: the second finds the package in ``sys.modules``, goes on to
the inner module, and the two wait on each other until Python breaks the deadlock by handing one
of them a half-initialised module. Opening the Compare page while the warm-up imported
scikit-learn raised "cannot import name 'clone' from partially initialized module 'sklearn.base'".
So the warm-up imports under :data:`IMPORT_LOCK`, and ``app.py`` runs each page under
:func:`imports_in_turn`, which takes the same lock until the shared modules are in.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV = "VIZCORE_UMAP_WARMUP"  # "0" turns the start-up warm-up off (the Embeddings page still starts one)
# "0": no importing of torch and the pages' modules nor loading of the newest runs' analyses at start
RUNS_ENV = "VIZCORE_RUNS_WARMUP"
RUNS_DELAY_S = 1.0  # after the first page, which needs neither torch nor a run

_LOCK = threading.Lock()
_SCHEDULED: threading.Thread | None = None

IMPORT_LOCK = threading.RLock()  # held by whoever imports while the shared modules are not all in
_IMPORTED = threading.Event()  # set once they are: from then on pages run without the lock
# imported inside functions the pages and the warm-up call, not at the top of a vizcore module
LAZY_IMPORTS = (
    "PIL.Image",
    "pandas",
    "plotly.graph_objects",
    "safetensors.torch",
    "sklearn.datasets",
    "torchcam.methods",
    "torchvision.transforms.v2",
)


@functools.cache
def shared_modules() -> tuple[str, ...]:
    """Every vizcore module (and through them torch, scikit-learn, scipy, plotly) and LAZY_IMPORTS.

    Listed from the files, not by importing the packages, so asking is cheap; ``__main__`` runs the
    command line when imported and is left out."""
    root = Path(__file__).resolve().parents[1]  # the vizcore package
    files = [p.relative_to(root).with_suffix("").parts for p in sorted(root.rglob("*.py"))]
    names = [".".join(("vizcore", *parts)).removesuffix(".__init__") for parts in files]
    return (*(n for n in names if not n.endswith("__main__")), *LAZY_IMPORTS)


def _all_imported() -> bool:
    return all(name in sys.modules for name in shared_modules())


def import_shared() -> None:
    """Import :func:`shared_modules` in this thread, under :data:`IMPORT_LOCK` (a few seconds once)."""
    with IMPORT_LOCK:
        for name in shared_modules():
            importlib.import_module(name)
    _IMPORTED.set()


@contextmanager
def imports_in_turn() -> Iterator[None]:
    """Around a page's run: until the shared modules are imported, hold :data:`IMPORT_LOCK`, so the
    page's imports (at its top, or inside what it calls) never overlap the warm-up's or another
    session's. Once they are in, a page runs without it; a page opened during the warm-up's
    imports waits for them, which it would mostly have had to make itself."""
    if _IMPORTED.is_set():
        yield
        return
    with IMPORT_LOCK:
        try:
            yield
        finally:
            if _all_imported():  # the pages themselves imported everything (no warm-up, say)
                _IMPORTED.set()


def start_umap_warmup() -> None:
    """UMAP's warm-up, asked for by a page: started once the shared modules are in. Before that
    the start-up warm-up is still importing them, and umap-learn's import (scikit-learn's modules
    among it) would run beside it; the start-up warm-up starts UMAP's itself when done."""
    if _IMPORTED.is_set():
        from vizcore.embed.methods import start_umap_warmup_thread

        start_umap_warmup_thread()


def _after(delay_s: float) -> None:
    start = time.monotonic()
    time.sleep(min(RUNS_DELAY_S, delay_s))
    if os.environ.get(RUNS_ENV, "1") != "0":
        _warm_runs()
    if os.environ.get(ENV, "1") == "0":
        return
    time.sleep(max(0.0, delay_s - (time.monotonic() - start)))
    from vizcore.embed.methods import start_umap_warmup_thread

    start_umap_warmup_thread()


def _warm_runs(limit: int = 4) -> None:
    """Import what the pages use (torch among it) and load the newest runs' analyses and test
    images into memory, so the first view of a run reads memory instead of paying for the import
    and the data."""
    try:
        import_shared()  # first, and under the import lock: a page may be importing too
        from vizcore.store.runs import RunStore
        from vizcore.views.analysis import analysis_path, eval_domain, run_analysis

        runs = [r for r in RunStore().list() if r.status in ("complete", "stopped")][:limit]
        for info in sorted(runs, key=lambda r: not r.read_only):  # demo runs first: they are the default
            run = RunStore().get(info.run_id)
            for side in ["source"] + (["target"] if info.target else []):
                if analysis_path(run, side) is not None:  # computing a missing one is a page's call
                    run_analysis(run, side)
                    eval_domain(run.config(), side)
    except Exception:  # noqa: BLE001 — a warm-up must never break the server; the page reports errors
        return


def schedule_warmup(delay_s: float = 5.0) -> threading.Thread | None:
    """Once per process, in a daemon thread: a second after the first page, import what the pages
    use (torch, scikit-learn...: :func:`import_shared`) and load the newest runs' analyses and test
    images; ``delay_s`` seconds from now, warm up UMAP's numba code (about a minute of one core; the
    delay lets the first page render before it starts).

    Returns the scheduling thread, or None when both ``$VIZCORE_RUNS_WARMUP`` and
    ``$VIZCORE_UMAP_WARMUP`` are ``"0"``. Idempotent: later calls return the first thread.
    """
    global _SCHEDULED
    if os.environ.get(ENV, "1") == "0" and os.environ.get(RUNS_ENV, "1") == "0":
        return None
    with _LOCK:
        if _SCHEDULED is None:
            _SCHEDULED = threading.Thread(target=_after, args=(delay_s,), name="vizcore-warmup", daemon=True)
            _SCHEDULED.start()
        return _SCHEDULED
