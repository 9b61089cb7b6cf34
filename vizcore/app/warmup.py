"""Start-up work the server does in the background, so the first user request is fast.

Kept apart from :mod:`vizcore.embed.methods` so that ``app.py`` can schedule the warm-up without
importing scikit-learn on the first page load.
"""

from __future__ import annotations

import os
import threading
import time

ENV = "VIZCORE_UMAP_WARMUP"  # "0" turns the start-up warm-up off (the Embeddings page still starts one)
RUNS_ENV = "VIZCORE_RUNS_WARMUP"  # "0": no loading of torch and the newest runs' analyses at start
RUNS_DELAY_S = 1.0  # after the first page, which needs neither torch nor a run

_LOCK = threading.Lock()
_SCHEDULED: threading.Thread | None = None


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
    """Import torch and load the newest runs' analyses and test images into memory, so the
    first view of a run reads memory instead of paying for the import and the data."""
    try:
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
    """Once per process, in a daemon thread: a second after the first page, import torch and load
    the newest runs' analyses and test images; ``delay_s`` seconds from now, warm up UMAP's numba
    code (about a minute of one core; the delay lets the first page render before it starts).

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
